"""Latency and memory vs clip duration, per backend: benchmarks/results/<machine>.json and a PNG plot.

For each duration in 2, 4, 8, 16 s that the bundle allows (max_duration), runs `avgen bench`'s library function
(avcli.cli.bench.run_bench) on the sampler's components, then fits cost ~ a * duration^k per backend (log-log
least squares) for the joint step: k near 1 means linear in clip length; above 1, attention's quadratic part shows.
Each backend's peak RSS is measured in a fresh process so memory is not inherited from earlier durations.

    .venv/bin/python benchmarks/run_benchmarks.py --bundle hits-demo --backends torch,ort
    .venv/bin/python benchmarks/run_benchmarks.py --preset tiny            # no bundle: random weights in code
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import subprocess
import sys
from pathlib import Path

DURATIONS = (2.0, 4.0, 8.0, 16.0)
RESULTS = Path(__file__).resolve().parent / "results"
SAMPLER = ["video_connector", "audio_connector", "video_unet", "audio_unet"]


def load_model(bundle: str | None, preset: str):
    import torch

    from avcli.models.bundle import load_bundle

    if bundle:
        return load_bundle(bundle)
    from avcli.models.joint import JointModel
    from avcli.models.presets import get_preset

    torch.manual_seed(0)
    manifest = get_preset(preset)
    # random weights: let the bench reach the durations we plot
    manifest["media"]["max_duration"] = max(manifest["media"].get("max_duration", 0), max(DURATIONS))
    return JointModel(manifest).eval()


def fit_exponent(xs: list[float], ys: list[float]) -> dict:
    """Least squares of log y = log a + k log x."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y and y > 0]
    if len(pts) < 2:
        return {"k": None, "a": None, "points": len(pts)}
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    k = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    return {"k": k, "a": math.exp(my - k * mx), "points": len(pts)}


def one_point(args, backend: str, duration: float) -> dict:
    """Run one (backend, duration) point in a child process: clean peak RSS, no cross-talk between backends."""
    cmd = [sys.executable, __file__, "--child", "--backends", backend, "--duration", str(duration),
           "--preset", args.preset, "--steps", str(args.steps), "--repeat", str(args.repeat),
           "--warmup", str(args.warmup), "--batch", str(args.batch)]
    if args.bundle:
        cmd += ["--bundle", args.bundle]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # argv list: no shell
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child(args) -> None:
    from avcli.cli.bench import run_bench

    model = load_model(args.bundle, args.preset)
    res = run_bench(model, [args.backends], SAMPLER, "generate", args.duration, args.batch, args.steps, args.warmup,
                    args.repeat)
    print(json.dumps(res, default=str))


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for b, pts in summary["series"].items():
        d = [p["duration"] for p in pts if "ms_per_step" in p]
        ax1.plot(d, [p["ms_per_step"] for p in pts if "ms_per_step" in p], "o-",
                 label=f"{b} (k={summary['fits'][b]['k']:.2f})" if summary["fits"][b]["k"] else b)
        ax2.plot(d, [p["peak_rss_mb"] for p in pts if "ms_per_step" in p], "o-", label=b)
    for ax, title, unit in ((ax1, "joint step latency", "ms / step"), (ax2, "peak RSS", "MB")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("clip duration (s)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{summary['bundle']} on {summary['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None, help="bundle name or folder (default: a preset with random weights)")
    ap.add_argument("--preset", default="tiny", choices=("tiny", "demo"))
    ap.add_argument("--backends", default="torch,ort")
    ap.add_argument("--durations", default=",".join(f"{d:g}" for d in DURATIONS))
    ap.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    model = load_model(args.bundle, args.preset)
    max_dur = float(model.manifest["media"].get("max_duration", model.manifest["media"]["duration"]))
    durations = [float(d) for d in args.durations.split(",") if float(d) <= max_dur + 1e-9]
    machine = re.sub(r"[^A-Za-z0-9_.-]+", "_", platform.node() or "machine")
    summary = {"machine": machine, "bundle": args.bundle or f"preset:{args.preset}", "durations": durations,
               "series": {}, "fits": {}, "runs": []}
    for b in [x.strip() for x in args.backends.split(",") if x.strip()]:
        pts = []
        for d in durations:
            print(f"{b} {d:g} s ...", file=sys.stderr, flush=True)
            res = one_point(args, b, d)
            summary["runs"].append({"backend": b, "duration": d, "result": res})
            if "error" in res:
                pts.append({"duration": d, "error": res["error"]})
                continue
            r = res["backends"][b]
            pts.append({"duration": d, "ms_per_step": r["step"]["ms_per_step"], "peak_rss_mb": r["peak_rss_mb"],
                        "components_p50_ms": {n: c["p50_ms"] for n, c in r["components"].items()}})
        summary["series"][b] = pts
        ok = [p for p in pts if "ms_per_step" in p]
        summary["fits"][b] = fit_exponent([p["duration"] for p in ok], [p["ms_per_step"] for p in ok])
    out = args.out or RESULTS / f"{machine}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    plot(summary, out.with_suffix(".png"))
    for b, f in summary["fits"].items():
        print(f"{b}: step cost ~ duration^{f['k']:.2f}" if f["k"] is not None else f"{b}: not enough points")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
