"""Why DPM-Solver++ loses foley timing, and what the x0 clamp does (issue 14's open question; issue 13's foley F1).

Every row re-sounds 40 clips with `avgen foley`'s pipeline (`benchmarks/quality.py --parts foley`) and scores the
onsets against the true impacts. A row changes one thing of the shipped bundle's sampling: the solver and step
count, the schedules' x0 clamp (`clip_sample`, `clip_sample_range`), or gamma. Each variant is a copy of the
bundle with its bundle.json edited (`--work`/bundles/LABEL), so the runs are `quality.py` runs like any other.

Two clip sets: the 100 held-out clips' first 40 ("test", the steps sweep's clips and seeds) for the solver
question, and 40 clips of their own ("val": `avgen data synth --n 40 --seed 2 --impact-fps 8`) to choose a clamp
range, so that the held-out numbers are not tuned on.

    .venv/bin/python benchmarks/clamp_study.py --train work/v2/hits --test work/v2/hits-test \\
        --val work/v2/hits-val --work work/diag

Writes benchmarks/results/clamp_study.json; finished rows are kept (their clips are not made again).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "clamp_study.json"
SHIPPED = ROOT / "avcli" / "bundles" / "hits-demo"

# bundle variants: name -> edit of bundle.json
VARIANTS = {
    "base": {},
    "noclip": {"video.schedule.clip_sample": False, "audio.schedule.clip_sample": False},
    "gamma1": {"sampling.gamma": 1.0},
    **{f"aclip{r}": {"audio.schedule.clip_sample_range": r} for r in (3.0, 4.0, 7.0)},
    **{f"vclip{r}": {"video.schedule.clip_sample_range": r} for r in (3.0, 5.0, 6.0)},
}
# (label, clip set, variant, solver, steps)
ROWS = [
    ("ddim25-base", "test", "base", "ddim", 25),
    ("ddim25-noclip", "test", "noclip", "ddim", 25),
    ("ddim50-base", "test", "base", "ddim", 50),
    ("dpm16-base", "test", "base", "dpmpp2m", 16),
    ("dpm16-noclip", "test", "noclip", "dpmpp2m", 16),
    ("dpm16-gamma1", "test", "gamma1", "dpmpp2m", 16),
    ("dpm50-base", "test", "base", "dpmpp2m", 50),
    ("aclip3.0", "val", "aclip3.0", "ddim", 25),
    ("aclip4.0", "val", "aclip4.0", "ddim", 25),
    ("aclip5.5", "val", "base", "ddim", 25),
    ("aclip7.0", "val", "aclip7.0", "ddim", 25),
    # the video clamp (shipped 4.0) on `avgen generate`: the sound's agreement with the contacts in its own frames
    ("gen-vclip4.0", "val", "base", "ddim", 25),
    ("gen-vclip3.0", "val", "vclip3.0", "ddim", 25),
    ("gen-vclip5.0", "val", "vclip5.0", "ddim", 25),
    ("gen-vclip6.0", "val", "vclip6.0", "ddim", 25),
]


def variant_bundle(name: str, work: Path) -> Path:
    if name == "base":
        return SHIPPED
    path = work / "bundles" / name
    if not (path / "bundle.json").exists():
        shutil.copytree(SHIPPED, path, dirs_exist_ok=True)
        manifest = json.loads((path / "bundle.json").read_text())
        for dotted, value in VARIANTS[name].items():
            *keys, last = dotted.split(".")
            d = manifest
            for k in keys:
                d = d[k]
            d[last] = value
        (path / "bundle.json").write_text(json.dumps(manifest, indent=1))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--only", default=None, help="comma-separated labels to run (default: all)")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    res: dict = {"n": args.n, "bundle": str(SHIPPED.relative_to(ROOT)), "variants": VARIANTS,
                 "command": "python benchmarks/clamp_study.py " + " ".join(sys.argv[1:]), "rows": []}
    if OUT.exists():  # rows of an earlier (partial) run stay
        res["rows"] = json.loads(OUT.read_text()).get("rows", [])
    for label, clips, variant, solver, steps in ROWS:
        if only is not None and label not in only:
            continue
        folder = args.work / ("val" if clips == "val" else "runs") / label
        qjson = folder / "quality.json"
        gen = label.startswith("gen-")
        if not qjson.exists():
            parts = ["--parts", "generate,foley", "--adherence-model", str(args.work / "adherence.safetensors")] \
                if gen else ["--parts", "foley"]
            cmd = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), *parts,
                   "--bundle", str(variant_bundle(variant, args.work)), "--train", str(args.train),
                   "--test", str(args.val if clips == "val" else args.test), "--n", str(args.n),
                   "--out", str(folder / "clips"), "--steps", str(steps), "--solver", solver]
            print(f"== {label}", file=sys.stderr, flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        q = json.loads(qjson.read_text())
        row = {"label": label, "clips": clips, "variant": variant, "edit": VARIANTS[variant], "solver": solver,
               "steps": steps, "foley_onset_f1": q["onsets_foley"]["f1"],
               "foley_onset_precision": q["onsets_foley"]["precision"],
               "foley_onset_recall": q["onsets_foley"]["recall"],
               "fd_logmel_foley": q["eval_foley"]["set_metrics"]["FD-logmel"]["value"],
               "noise_floor_db_foley": q.get("noise_floor_db_foley"), "noise_floor_db_real": q.get("noise_floor_db_real"),
               "real_onset_f1": q["onsets_real"]["f1"]}
        if gen:
            sm = q["eval_generate"]["set_metrics"]
            row.update(contact_f1_generate=q["contact_generate"]["f1"], contact_f1_real=q["contact_real"]["f1"],
                       colour_generate=q["adherence_generate"]["colour"],
                       material_generate=q["adherence_generate"]["material"],
                       fd_logmel_generate=sm["FD-logmel"]["value"], fd_colourflow_generate=sm["FD-colourflow"]["value"],
                       av_align_generate=q["av_align_generate"]["seed000"])
        res["rows"] = [r for r in res["rows"] if r["label"] != label] + [row]
        OUT.write_text(json.dumps(res, indent=1) + "\n")
    order = [r[0] for r in ROWS]
    res["rows"].sort(key=lambda r: order.index(r["label"]) if r["label"] in order else len(order))
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    for r in res["rows"]:
        print(f"{r['label']:16s} {r['clips']:4s} F1 {r['foley_onset_f1']:.3f}  FD {r['fd_logmel_foley']:.1f}"
              + (f"  contacts {r['contact_f1_generate']:.3f} colour {r['colour_generate']:.2f} FD-cf "
                 f"{r['fd_colourflow_generate']:.0f}" if "contact_f1_generate" in r else ""))


if __name__ == "__main__":
    main()
