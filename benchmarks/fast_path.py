"""The fast path, measured as users run it (issue 14): whole commands in fresh processes, side by side in one run.

1. export the bundle once as an engine folder (`avgen export --out DIR`), not timed;
2. `avgen generate` with defaults, a fresh process each, median of --repeat: the engine-only ONNX Runtime path
   (`--bundle DIR`) against the weights bundle on PyTorch, and the engine-only path without its CPU tuning
   (`engine_ort_untuned`: AVGEN_ORT_FUSION=0, AVGEN_CONCURRENT_UNETS=0, i.e. plain graphs, one U-Net at a time);
   wall clock measured outside the process, the stage times (import, load, text, denoise, ...) from its --json;
3. a prompt batch (`--prompts`, N prompts) on the engine-only path: seconds per clip against the single command;
4. per joint generate step and per component (avcli.pipelines.bench.run_bench) for torch and ort in this process,
   with the video U-Net's share of the measured matmul peak.

    .venv/bin/python benchmarks/fast_path.py --threads 2       # -> benchmarks/results/fast_path.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
AVGEN = [sys.executable, "-m", "avcli"]
PROMPT = "a red ball bouncing on a metal plate"


def _run(args: list[str], env: dict) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = subprocess.run(AVGEN + args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"avgen {' '.join(args)} failed: {r.stderr[-800:]}")
    return wall, json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--engines", type=Path, default=ROOT / "work" / "engines", help="engine folder (made if missing)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16, help="prompts in the batch run")
    ap.add_argument("--batch-sizes", default="1,4", help="--batch-size values of the batch run")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "fast_path.json")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), AVGEN_ORT_THREADS=str(args.threads))
    bundle = ["--bundle", args.bundle] if args.bundle else []
    if not (args.engines / "export_manifest.json").exists():
        subprocess.run(AVGEN + ["export", *bundle, "--out", str(args.engines)], check=True, env=env)
    res: dict = {"command": "python benchmarks/fast_path.py " + " ".join(sys.argv[1:]), "repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="avgen-fast-") as td:
        td = Path(td)
        untuned = dict(env, AVGEN_ORT_FUSION="0", AVGEN_CONCURRENT_UNETS="0")
        variants = (("engine_ort", ["--bundle", str(args.engines)], env),
                    ("engine_ort_untuned", ["--bundle", str(args.engines)], untuned),
                    ("torch", [*bundle, "--backend", "torch"], env))
        for name, extra, e in variants:  # not timed: each variant's optimised graphs are written once
            _run(["generate", "-p", PROMPT, "--steps", "1", "-o", str(td / f"{name}_warm.mp4"), "--json", *extra], e)
        runs: dict[str, list] = {name: [] for name, _, _ in variants}
        for i in range(args.repeat):  # interleaved, so drift hits all alike
            for name, extra, e in variants:
                wall, out = _run(["generate", "-p", PROMPT, "-o", str(td / f"{name}_{i}.mp4"), "--json", *extra], e)
                runs[name].append({"wall_s": wall, **out["timings_s"]})
        for name, rs in runs.items():
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            med["import_plus_load_s"] = med.get("import", 0) + med.get("load", 0)
            # what no stage holds: the interpreter's start, the CLI's own imports (typer, rich) and the exit
            med["outside_stages_s"] = med["wall_s"] - sum(v for k, v in med.items() if k not in ("wall_s",
                                                                                                 "import_plus_load_s"))
            res[f"generate_{name}"] = {"median": med, "runs": rs}
        res["generate_e2e_ort_vs_torch"] = res["generate_torch"]["median"]["wall_s"] / \
            res["generate_engine_ort"]["median"]["wall_s"]
        res["generate_tuned_vs_untuned"] = {k: res["generate_engine_ort_untuned"]["median"][k] /
                                            res["generate_engine_ort"]["median"][k] for k in ("wall_s", "denoise")}
        prompts = td / "prompts.txt"
        prompts.write_text("".join(f"{PROMPT}, take {k}\n" for k in range(args.batch)))
        single = res["generate_engine_ort"]["median"]["wall_s"]
        res["batch"] = {"prompts": args.batch, "by_batch_size": {}}
        for bs in (int(x) for x in args.batch_sizes.split(",")):
            wall, rep = _run(["generate", "--prompts", str(prompts), "--out-dir", str(td / f"batch{bs}"), "--bundle",
                              str(args.engines), "--batch-size", str(bs), "--json"], env)
            assert rep["counts"]["ok"] == args.batch, rep["counts"]
            res["batch"]["by_batch_size"][str(bs)] = {"wall_s": wall, "per_clip_s": wall / args.batch,
                                                      "per_clip_vs_single_command": wall / args.batch / single}
        best = min(res["batch"]["by_batch_size"].items(), key=lambda kv: kv[1]["wall_s"])
        res["batch"].update(best_batch_size=int(best[0]), **best[1])
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from avcli.models.bundle import load_bundle
    from avcli.pipelines.bench import run_bench

    model = load_bundle(args.bundle)
    b = run_bench(model, ["torch", "ort"], ["video_unet", "audio_unet"], "generate", steps=8, repeat=5,
                  export_dir=None, e2e=False)
    res["per_step"] = {k: {"ms_per_step": v["step"]["ms_per_step"], "speedup_vs_torch": v["step"]["speedup_vs_torch"],
                           "concurrent_unets": v["step"]["concurrent_unets"],
                           "video_unet_util_pct": v["components"]["video_unet"]["utilisation_pct"],
                           "video_unet_p50_ms": v["components"]["video_unet"]["p50_ms"]}
                       for k, v in b["backends"].items()}
    res["matmul_peak_gflops"] = b["matmul_peak_gflops"]
    res["machine"] = b["machine"]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k not in ("machine",)}, indent=1, default=str)[:3000])


if __name__ == "__main__":
    main()
