"""`avgen bench`: latency per component and per joint step, per backend, side by side (the library function is
avcli.pipelines.bench.run_bench; benchmarks/run_benchmarks.py calls it too)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from avcli.cli.common import console, stdout
from avcli.errors import UsageError

HELP = ("Benchmark components and joint sampling steps on several backends, side by side.\n\nExamples:\n\n"
        "  avgen bench --backends torch,ort --repeat 10\n\n"
        "  avgen bench --task foley --duration 4 --json bench.json")


def register(app: typer.Typer) -> None:
    app.command("bench", short_help="Latency per component / step / backend.", help=HELP)(bench_cmd)


def _split(value: str | None, default: list[str]) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()] if value else list(default)


def bench_cmd(
    bundle: str = typer.Option(None, "--bundle", "-b", help="Bundle name or folder."),
    backends: str = typer.Option("torch,ort", "--backends", help="Comma-separated: torch, ort, trt, auto."),
    components: str = typer.Option(None, "--components", "-c", help="Comma-separated (default: the sampler's four "
                                                                      "plus decoders and vocoder)."),
    task: str = typer.Option("generate", "--task", help="generate | foley | animate (which networks a step runs)."),
    duration: float = typer.Option(None, "--duration", help="Clip seconds (default: the bundle's)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Prompts per call (U-Nets see 2x for guidance)."),
    steps: int = typer.Option(4, "--steps", min=1, help="Sampler steps for the per-step timing."),
    warmup: int = typer.Option(2, "--warmup", min=0, help="Untimed calls first."),
    repeat: int = typer.Option(10, "--repeat", min=1, help="Timed calls per component."),
    json_file: Path = typer.Option(None, "--json", help="Also write the results to this JSON file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or fp16 (fp16: CUDA, or ONNX Runtime graphs)."),
    device: str = typer.Option(None, "--device", help="cpu or cuda[:N] for the torch backend."),
    threads: int = typer.Option(None, "--threads", min=1, help="CPU threads for torch and ONNX Runtime "
                                                             "(default: torch's default, ORT: physical cores)."),
    e2e: bool = typer.Option(True, "--e2e/--no-e2e", help="Also time one end-to-end run per backend, per stage "
                                                          "(text, denoise, decode, vocode, mux) at the bundle's "
                                                          "default step count."),
) -> None:
    import os

    import torch

    if threads:
        torch.set_num_threads(threads)
        os.environ["AVGEN_ORT_THREADS"] = str(threads)
    from avcli.cli.common import refuse_existing
    from avcli.cli.export import parse_components
    from avcli.models.bundle import load_bundle
    from avcli.pipelines.backends import BACKENDS
    from avcli.pipelines.batch import check_writable_dir, write_report
    from avcli.pipelines.bench import run_bench

    bk = _split(backends, ["torch"])
    bad = [b for b in bk if b not in BACKENDS]
    if bad:
        raise UsageError(f"unknown backend(s) {', '.join(bad)}; choose from {', '.join(BACKENDS)}")
    names = parse_components(components) if components else [
        "video_connector", "audio_connector", "video_unet", "audio_unet", "video_vae_decoder", "audio_vae_decoder",
        "vocoder"]
    if json_file is not None:  # before minutes of timing
        refuse_existing([json_file], overwrite)
        check_writable_dir(json_file.parent if str(json_file.parent) else Path("."), create=True)
    model = load_bundle(bundle)
    res = run_bench(model, bk, names, task, duration, batch, steps, warmup, repeat,
                    log=lambda m: console.print(m, style="dim"), e2e=e2e, precision=precision, device=device)
    if json_file:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        write_report(json_file, res)  # atomic: temp file, then rename
    _table(res)


def _fmt(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def _table(res: dict) -> None:
    bks = list(res["backends"])
    cfg = res["config"]
    ratio = "torch" in bks and len(bks) > 1
    t = Table(title=f"components: {cfg['task']} {cfg['duration']:g} s, batch {cfg['batch']} "
                    f"(matmul peak {res['matmul_peak_gflops']:.1f} GFLOP/s)")
    t.add_column("component")
    t.add_column("GFLOP", justify="right")
    for b in bks:
        t.add_column(f"{b} ms p50 (p90)", justify="right")
        t.add_column(f"{b} util", justify="right")
    if ratio:
        for b in bks:
            if b != "torch":
                t.add_column(f"{b}/torch", justify="right")
    for n in cfg["components"]:
        row = [n, _fmt(res["flops"].get(n) and res["flops"][n] / 1e9, ".3f")]
        for b in bks:
            c = res["backends"][b]["components"][n]
            row += [f"{_fmt(c['p50_ms'], '.1f')} ({_fmt(c['p90_ms'], '.1f')})", _fmt(c["utilisation_pct"], ".0f") + "%"]
        if ratio:
            row += [_fmt(res["backends"][b]["components"][n]["speedup_vs_torch"]) + "x" for b in bks if b != "torch"]
        t.add_row(*row)
    stdout.print(t)
    s = Table(title=f"joint {cfg['task']} step ({cfg['steps']} steps)")
    for col in ("backend", "ms / step", "sampler overhead", "speed-up vs torch", "peak RSS"):
        s.add_column(col, justify="left" if col == "backend" else "right")
    for b in bks:
        st = res["backends"][b]["step"]
        s.add_row(b, _fmt(st["ms_per_step"], ".1f"), f"{st['sampler_overhead_pct']:.2f} %",
                  _fmt(st["speedup_vs_torch"]) + "x", f"{res['backends'][b]['peak_rss_mb']:.0f} MB")
    stdout.print(s)
    e2e = {b: res["backends"][b].get("e2e") for b in bks if res["backends"][b].get("e2e")}
    if e2e:
        stages = list(dict.fromkeys(k for r in e2e.values() for k in r["stages_s"]))
        first = next(iter(e2e.values()))
        e = Table(title=f"end to end {cfg['task']} ({first['steps']} steps), seconds per stage")
        e.add_column("backend")
        for k in stages + ["total"]:
            e.add_column(k, justify="right")
        for b, r in e2e.items():
            e.add_row(b, *[_fmt(r["stages_s"].get(k)) for k in stages], _fmt(r["total_s"]))
        stdout.print(e)
