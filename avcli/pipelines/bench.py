"""Latency per component and per joint step, per backend, side by side (`avgen bench`, benchmarks/).

Per component: p50/p90/min after warm-up (perf_counter; CUDA events on GPU), FLOPs counted analytically on the
torch module (torch.utils.flop_counter) and achieved GFLOP/s against a matmul peak measured on the same device
(the CPU's for CPU runs, the GPU's for CUDA runs). Per joint step: the real sampler (avcli.sampling.joint.sample)
for the task, and its overhead (time outside the networks). End to end: JointPipeline.generate / .foley.
"""

from __future__ import annotations

import platform
import resource
import statistics
import sys
import time
from pathlib import Path

from avcli.errors import UsageError


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def time_call(fn, warmup: int, repeat: int, device: str = "cpu") -> list[float]:
    """Seconds per call after `warmup` calls; CUDA events when on the GPU."""
    import torch

    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return times


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def matmul_peak_gflops(n: int = 512, repeat: int = 5, device: str = "cpu") -> float:
    import torch

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = min(time_call(lambda: a @ b, 2, repeat, device))
    return 2 * n**3 / best / 1e9


def count_flops(module, inputs: dict) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(**inputs)
    return int(counter.get_total_flops())


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024**2


def machine_info() -> dict:
    import importlib.metadata as md
    import os

    import torch

    def ver(d):
        try:
            return md.version(d)
        except md.PackageNotFoundError:
            return None

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"hostname": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
            "cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "versions": {d: ver(d) for d in ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "diffusers",
                                             "transformers", "onnx")}}


def _task_inputs(model, task: str, duration: float, batch: int):
    import torch

    from avcli.pipelines.common import modality_specs
    from avcli.sampling.joint import TextConditioning

    geo = model.geometry(duration)
    vspec, aspec = modality_specs(model, geo, batch)
    g = torch.Generator().manual_seed(0)
    from export.descriptions import descriptions, limits

    lim = limits(model.manifest)
    descs = descriptions(model.manifest)
    # the text lengths the U-Nets see (1 for an encoder that gives one pooled embedding, e.g. AudioLDM's CLAP)
    axis = {"text_len": lim.text_len[1], "audio_text_len": lim.audio_text_len[1]}
    lv = axis.get(descs["text_encoder_video"].outputs[0].shape[1], 1)
    la = axis.get(descs["text_encoder_audio"].outputs[0].shape[1], 1)
    dv, da = lim.text_dim_video, lim.text_dim_audio
    text = TextConditioning(torch.randn(batch, lv, dv, generator=g), torch.randn(batch, la, da, generator=g),
                            torch.randn(batch, lv, dv, generator=g), torch.randn(batch, la, da, generator=g))
    known = {}
    if task == "foley":
        known["known_video"] = torch.randn(vspec.shape, generator=g)
    if task == "animate":
        known["known_audio"] = torch.randn(aspec.shape, generator=g)
    return vspec, aspec, text, known


def bench_step(model, comps, task: str, duration: float, batch: int, steps: int, pool=None) -> dict:
    import torch

    from avcli.pipelines.common import sampler_config
    from avcli.sampling.joint import sample

    vspec, aspec, text, known = _task_inputs(model, task, duration, batch)
    cfg = sampler_config(model, steps=steps)
    sample(comps, vspec, aspec, text, cfg, torch.Generator().manual_seed(0), task=task, pool=pool, **known)  # warm-up
    res = sample(comps, vspec, aspec, text, cfg, torch.Generator().manual_seed(0), task=task, pool=pool, **known)
    total, net = res.total_seconds, res.network_seconds
    # only generate runs both U-Nets (foley and animate run one): the pool is used there alone
    return {"steps": steps, "concurrent_unets": pool is not None and task == "generate", "total_s": total, "network_s": net, "ms_per_step": 1e3 * total / steps,
            "sampler_overhead_pct": 100.0 * (total - net) / total if total > 0 else 0.0, "calls": res.calls}


def bench_e2e(pipe, task: str, duration: float, steps: int | None, workdir: Path) -> dict | None:
    """One end-to-end run through the real pipeline, seconds per stage: load, text, (decode-video, encode,)
    denoise, decode, vocode, mux. generate writes a new mp4; foley re-sounds a clip made by generate first (its
    video stream is copied, as `avgen foley` does). animate has no end-to-end stage table here (None)."""
    from avcli.media.ffmpeg import mux_audio, write_video
    from avcli.pipelines.common import Timings
    from avcli.pipelines.foley import FoleyRequest
    from avcli.pipelines.generate import GenerateRequest

    if task == "animate":
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "e2e_generate.mp4"
    timings = Timings()
    timings.stages["load"] = pipe.load_seconds
    clip = pipe.generate(GenerateRequest("a red ball bouncing on a metal plate", duration=duration, steps=steps),
                         timings=timings)[0]
    with timings.stage("mux"):
        write_video(src, clip.frames, clip.fps, clip.audio, clip.sample_rate, overwrite=True)
    if task == "foley":
        timings = Timings()
        timings.stages["load"] = pipe.load_seconds
        audio = pipe.foley(src, FoleyRequest(steps=steps), timings=timings).audio
        with timings.stage("mux"):
            mux_audio(src, audio, pipe.geometry().sample_rate, workdir / "e2e_foley.mp4", overwrite=True)
    stages = {k: round(v, 4) for k, v in timings.stages.items()}
    return {"stages_s": stages, "total_s": round(sum(stages.values()), 4),
            "steps": steps or pipe.default_steps, "peak_rss_mb": peak_rss_mb()}


TASK_COMPONENTS = {"generate": ("video_connector", "audio_connector", "video_unet", "audio_unet"),
                   "foley": ("video_connector", "audio_unet"),  # video known: its features feed the audio U-Net
                   "animate": ("audio_connector", "video_unet")}


def run_bench(model, backends: list[str], components: list[str], task: str = "generate", duration: float | None = None,
              batch: int = 1, steps: int = 4, warmup: int = 2, repeat: int = 10, export_dir=None,
              log=lambda msg: None, e2e: bool = False, e2e_steps: int | None = None, precision: str = "fp32",
              device: str | None = None) -> dict:
    """Benchmark results as a JSON-able dict: {machine, config, peak_gflops, backends: {b: {...}}}."""
    from avcli.pipelines.pipeline import JointPipeline
    from export.descriptions import descriptions, inputs_at

    if task not in TASK_COMPONENTS:
        raise UsageError(f"unknown task {task!r}; choose generate, foley or animate")
    duration = float(duration or model.manifest["media"]["duration"])
    max_dur = float(model.manifest["media"].get("max_duration", duration))
    if duration > max_dur + 1e-9:
        raise UsageError(f"--duration {duration} exceeds the bundle's max_duration {max_dur}")
    descs = descriptions(model.manifest)
    peaks: dict[str, float] = {"cpu": matmul_peak_gflops(device="cpu")}  # each device's own peak (CUDA: measured there)
    peak = peaks["cpu"]
    flops = {}
    inputs = {n: inputs_at(descs[n], model, duration, batch, seed=1) for n in components}
    for n in components:
        try:
            flops[n] = count_flops(descs[n].module(model), inputs[n])
        except Exception:  # counting is best-effort; latency still counts
            flops[n] = None
    out = {"machine": machine_info(), "config": {"task": task, "duration": duration, "batch": batch, "steps": steps,
                                                  "warmup": warmup, "repeat": repeat, "components": components,
                                                  "precision": precision,
                                                  "bundle": model.manifest.get("name")},
           "matmul_peak_gflops": peak, "flops": flops, "backends": {}}
    for b in backends:
        log(f"[{b}] loading components")
        need = None if e2e else sorted(set(components) | set(TASK_COMPONENTS[task]))  # e2e runs every network
        pipe = JointPipeline.from_model(model, b, export_dir=export_dir, names=need, fp16=precision == "fp16",
                                        device=device)
        chosen, comps = pipe.backend, pipe.components
        per = {}
        for n in components:
            fn, x = comps[n], inputs[n]
            eng = getattr(fn, "engine", None)
            dev = eng.capabilities.device if eng is not None else "cpu"
            log(f"[{b}] {n}")
            ts = time_call(lambda: fn(**x), warmup, repeat, dev)
            p50 = percentile(ts, 0.5)
            if dev not in peaks:
                peaks[dev] = matmul_peak_gflops(device=dev)
            gf = flops[n] / p50 / 1e9 if flops.get(n) else None
            per[n] = {"p50_ms": 1e3 * p50, "p90_ms": 1e3 * percentile(ts, 0.9), "min_ms": 1e3 * min(ts),
                      "mean_ms": 1e3 * statistics.fmean(ts), "gflops": flops.get(n) and flops[n] / 1e9,
                      "achieved_gflops_s": gf, "utilisation_pct": 100.0 * gf / peaks[dev] if gf else None,
                      "device": dev}
        log(f"[{b}] joint {task} steps")
        step = bench_step(model, comps, task, duration, batch, steps, pool=pipe.unet_pool)
        out["backends"][b] = {"resolved": chosen, "components": per, "step": step, "peak_rss_mb": peak_rss_mb(),
                              "matmul_peak_gflops": {d: peaks[d] for d in sorted({c["device"] for c in per.values()})}}
        if e2e:
            import tempfile

            log(f"[{b}] end to end ({task})")
            with tempfile.TemporaryDirectory(prefix="avgen-bench-") as tmp:
                out["backends"][b]["e2e"] = bench_e2e(pipe, task, duration, e2e_steps, Path(tmp))
    base = out["backends"].get("torch")
    for b, r in out["backends"].items():
        for n, c in r["components"].items():
            c["speedup_vs_torch"] = base["components"][n]["p50_ms"] / c["p50_ms"] if base else None
        r["step"]["speedup_vs_torch"] = base["step"]["ms_per_step"] / r["step"]["ms_per_step"] if base else None
    return out
