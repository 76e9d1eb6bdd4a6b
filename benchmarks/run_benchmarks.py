"""The standard benchmark suite: benchmarks/results/<machine>.json, a PNG plot, and the README's performance section.

1. tasks: `avgen bench`'s library function (avcli.pipelines.bench.run_bench) on the bundle, per task (generate, foley,
   animate) and backend, each backend in a fresh process (clean peak RSS): per-component latency, ms per joint
   step, sampler overhead, and one end-to-end run per stage (generate, foley) at the bundle's default steps;
2. sweep: ms per joint generate step and peak RSS for clip durations 2, 4, 8, 16 s per backend, on the bundle's
   preset architecture with random weights (latency does not depend on the weights, and the shipped bundle stops
   at 8 s), then a fit of cost ~ a * duration^k per backend (log-log least squares): k near 1 means linear in clip
   length; above 1, attention's quadratic part shows;
3. cli: wall-clock seconds of the commands as a user runs them (a fresh process each, imports and model load
   included): `avgen generate` at its defaults, `avgen foley` on a 4 s and on a 20 s clip (the linear-cost target);
4. benchmarks/report.py renders the results into README.md (between the perf markers).

    .venv/bin/python benchmarks/run_benchmarks.py                       # the default bundle, torch vs ort
    .venv/bin/python benchmarks/run_benchmarks.py --bundle hits-demo --backends torch,ort --threads 2
    .venv/bin/python benchmarks/run_benchmarks.py --preset tiny --no-tasks   # seconds, for a smoke test
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


def load_model(bundle: str | None, preset: str | None):
    """The bundle (tasks) or, with a preset, random weights stretched to reach every duration we plot (sweep)."""
    import torch

    from avcli.models.bundle import load_bundle

    if not preset:
        return load_bundle(bundle)
    from avcli.models.joint import JointModel
    from avcli.models.presets import get_preset

    torch.manual_seed(0)
    manifest = get_preset(preset)
    media = manifest["media"]
    media["max_duration"] = max(media.get("max_duration", 0), max(DURATIONS))
    cfg = manifest["components"]["video_unet"]["config"]
    frames = int(round(media["max_duration"] * media["fps"]))
    cfg["motion_max_seq_length"] = max(cfg.get("motion_max_seq_length", 32), frames)
    return JointModel(manifest).eval()


def machine_name() -> str:
    """A file name that says what ran it: the GPU (if any) or the CPU model, and the logical CPU count."""
    import os

    import torch

    what = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor()
    if not torch.cuda.is_available():
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    what = line.split(":", 1)[1]
                    break
        except OSError:
            pass
    slug = re.sub(r"[^a-z0-9]+", "-", (what or platform.node() or "machine").lower()).strip("-")
    return f"{'gpu' if torch.cuda.is_available() else 'cpu'}-{slug}-{os.cpu_count()}cpu"


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


def _child_cmd(args, backend: str, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", "--backends", backend, "--steps", str(args.steps), "--repeat",
           str(args.repeat), "--warmup", str(args.warmup), "--batch", str(args.batch), *extra]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # argv list: no shell
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def one_point(args, backend: str, duration: float) -> dict:
    """One (backend, duration) point of the sweep in a child process: clean peak RSS, no cross-talk."""
    return _child_cmd(args, backend, ["--duration", str(duration), "--preset", args.sweep_preset])


def one_task(args, backend: str, task: str) -> dict:
    extra = ["--task", task, "--bundle", args.bundle or ""]
    if task != "animate":
        extra.append("--e2e")
    return _child_cmd(args, backend, extra)


def child(args) -> None:
    import torch

    from avcli.pipelines.bench import run_bench

    if args.threads:
        import os

        torch.set_num_threads(args.threads)
        os.environ["AVGEN_ORT_THREADS"] = str(args.threads)
    model = load_model(args.bundle or None, args.preset)
    names = SAMPLER if args.preset else SAMPLER + ["video_vae_decoder", "audio_vae_decoder", "vocoder"]
    res = run_bench(model, [args.backends], names, args.task, args.duration, args.batch, args.steps, args.warmup,
                    args.repeat, e2e=args.e2e)
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
    fig.suptitle(f"joint generate step, {summary['sweep_preset']} architecture (random weights), "
                 f"on {summary['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def cli_walls(bundle: str | None, threads: int | None, repeat: int = 2) -> dict:
    """Wall seconds of whole CLI commands (best of `repeat`), in fresh processes: what a user waits for."""
    import os
    import tempfile
    import time

    from avcli.media.ffmpeg import ffmpeg_exe

    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    avgen = [sys.executable, "-m", "avcli"]
    bflag = ["--bundle", bundle] if bundle else []
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        subprocess.run([*avgen, "data", "synth", "--n", "5", "-o", str(t / "clips"), "--seed", "3"], env=env,
                       check=True, capture_output=True)
        clips = sorted((t / "clips").glob("*.mp4"))
        listing = t / "list.txt"
        listing.write_text("".join(f"file '{c.resolve()}'\n" for c in clips))
        long = t / "long20.mp4"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                        str(long)], check=True, capture_output=True)
        jobs = {"generate_default_s": [*avgen, "generate", *bflag, "--prompt", "a blue ball bouncing on a metal plate",
                                       "-o", str(t / "gen.mp4"), "--overwrite"],
                "foley_4s_s": [*avgen, "foley", *bflag, str(clips[0]), "-o", str(t / "f4.mp4"), "--overwrite"],
                "foley_20s_s": [*avgen, "foley", *bflag, str(long), "-o", str(t / "f20.mp4"), "--overwrite"]}
        for name, cmd in jobs.items():
            best = None
            for _ in range(repeat):
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if proc.returncode != 0:
                    out[name] = None
                    out.setdefault("errors", {})[name] = proc.stderr.strip()[-300:]
                    break
                best = wall if best is None else min(best, wall)
            else:
                out[name] = best
    if out.get("foley_4s_s") and out.get("foley_20s_s"):
        out["foley_20s_over_4s"] = out["foley_20s_s"] / out["foley_4s_s"]
    out["repeat"] = repeat
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None, help="bundle name or folder for the task benchmarks (default bundle)")
    ap.add_argument("--preset", default=None, help=argparse.SUPPRESS)  # child: random weights of this preset
    ap.add_argument("--sweep-preset", default="demo", choices=("tiny", "demo"),
                    help="architecture (random weights) of the duration sweep")
    ap.add_argument("--backends", default="torch,ort")
    ap.add_argument("--durations", default=",".join(f"{d:g}" for d in DURATIONS))
    ap.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--task", default="generate", help=argparse.SUPPRESS)
    ap.add_argument("--e2e", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch and ORT (default: all cores)")
    ap.add_argument("--no-tasks", action="store_true", help="only the duration sweep")
    ap.add_argument("--no-sweep", action="store_true", help="only the task benchmarks")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--no-cli", action="store_true", help="skip the wall-clock runs of whole CLI commands")
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    backends = [x.strip() for x in args.backends.split(",") if x.strip()]
    machine = machine_name()
    out = args.out or RESULTS / f"{machine}.json"
    summary = {"machine": machine, "command": " ".join(["python", "benchmarks/run_benchmarks.py", *sys.argv[1:]]),
               "bundle": args.bundle or "default", "sweep_preset": args.sweep_preset, "threads": args.threads,
               "tasks": {}, "durations": [], "series": {}, "fits": {}, "runs": []}
    if not args.no_tasks:
        for task in ("generate", "foley", "animate"):
            summary["tasks"][task] = {}
            for b in backends:
                print(f"{task} on {b} ...", file=sys.stderr, flush=True)
                res = one_task(args, b, task)
                summary["tasks"][task][b] = res if "error" in res else {**res["backends"][b], "config": res["config"],
                                                                        "flops": res["flops"]}
                summary.setdefault("machine_info", res.get("machine"))
                summary.setdefault("matmul_peak_gflops", res.get("matmul_peak_gflops"))
        for task, per in summary["tasks"].items():  # ratios side by side, from this one run
            base = per.get("torch", {}).get("step", {}).get("ms_per_step")
            for b, r in per.items():
                if base and "step" in r:
                    r["step"]["speedup_vs_torch"] = base / r["step"]["ms_per_step"]
    if not args.no_sweep:
        model = load_model(None, args.sweep_preset)
        max_dur = float(model.manifest["media"].get("max_duration", model.manifest["media"]["duration"]))
        durations = [float(d) for d in args.durations.split(",") if float(d) <= max_dur + 1e-9]
        summary["durations"] = durations
        for b in backends:
            pts = []
            for d in durations:
                print(f"sweep {b} {d:g} s ...", file=sys.stderr, flush=True)
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
    if not args.no_cli:
        print("cli wall clock ...", file=sys.stderr, flush=True)
        summary["cli"] = cli_walls(args.bundle, args.threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    if summary["series"]:
        plot(summary, out.with_suffix(".png"))
    for b, f in summary["fits"].items():
        print(f"{b}: step cost ~ duration^{f['k']:.2f}" if f["k"] is not None else f"{b}: not enough points")
    print(f"wrote {out}" + (f" and {out.with_suffix('.png')}" if summary["series"] else ""))


if __name__ == "__main__":
    main()
