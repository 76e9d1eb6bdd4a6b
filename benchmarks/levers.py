"""The seeds' timing levers, one table row each, against the same 100 held-out clips (issue 13 deliver 3).

Every row starts from the same bundle (the demo v2 bundle after its 800 joint steps) and trains the same number of
further joint steps with the same recipe (`--known-p 0.5 --high-noise-weight 20`, batch 8); only the lever differs.
The "more joint steps" row is that recipe alone, so each lever is read against it and the base row shows what
the extra steps themselves bought. Every row is then scored by `benchmarks/quality.py --parts foley` (avgen foley
with default settings on the held-out videos, seed = clip index; onsets against the true impacts, AV-Align, FD).

    .venv/bin/python benchmarks/levers.py --base work/v2/bundle --data work/v2/hits --test work/v2/hits-test \\
        --work work/levers [--only control,onset_aux]

Resumable: a row whose training record exists is not trained again (a cut training resumes from its checkpoint),
a row whose quality.json exists is not scored again. Writes benchmarks/results/levers_v2.json (`--out`).
`--recipe` replaces the options every row shares; `--adherence-model` also scores foley's material (with no prompt:
the material taken from the picture), `--base-foley` the base row's:

    .venv/bin/python benchmarks/levers.py --base B --base-quality Q --base-foley DIR/foley --data work/v2/hits \\
        --test work/v2/hits-test --work work/lm --steps 800 --recipe '--batch 8 --lr 2e-4 --seed 3' \\
        --adherence-model work/adherence.safetensors --only control,unfreeze_audio --out OUT.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ["--batch", "8", "--lr", "2e-4", "--known-p", "0.5", "--high-noise-weight", "20", "--seed", "1"]
LEVERS = {  # name: (what it is, its extra `avgen train joint` options)
    "control": ("more joint steps (the recipe alone)", []),
    "onset_aux": ("seed 003: onset loss kept on during joint, weight 0.5", ["--onset-weight", "0.5"]),
    "onset_aux_w01": ("seed 003: onset loss kept on during joint, weight 0.1", ["--onset-weight", "0.1"]),
    "concat": ("seed 004: concat augmentation, 30 % of samples", ["--concat-p", "0.3"]),
    "attentive_pool": ("seed 003: attentive-pooled global video feature beside the local ones",
                       ["--attentive-pool"]),
    "contrastive": ("seed 001: contrastive term, eta 5e-5 (batch x3)", ["--contrastive-weight", "5e-5"]),
    "audio_dropout": ("seed 002: null audio features for 10 % of samples (for animate's audio guidance)",
                      ["--audio-dropout", "0.1"]),
    # whether foley's sound can take the material from the picture (the caption names it in most samples)
    "cfg_dropout_05": ("the empty caption for 50 % of samples (10 % in the recipe)", ["--cfg-dropout", "0.5"]),
    "unfreeze_audio": ("the audio base U-Net fine-tuned beside the connectors", ["--unfreeze-audio"]),
    "unfreeze_audio_cfg_dropout_05": ("the audio base U-Net fine-tuned, and the empty caption for 50 % of samples",
                                      ["--unfreeze-audio", "--cfg-dropout", "0.5"]),
}


def _run(cmd: list[str], log: Path) -> None:
    with log.open("a") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}; see {log}")


def _foley_row(q: dict) -> dict:
    fd = q["eval_foley"]["set_metrics"]
    return {"onset_f1": q["onsets_foley"]["f1"], "onset_precision": q["onsets_foley"]["precision"],
            "onset_recall": q["onsets_foley"]["recall"], "av_align": q["av_align_foley"]["seed000"],
            "fd_logmel": (fd.get("FD-logmel") or {}).get("value"), "onset_f1_real": q["onsets_real"]["f1"],
            "av_align_real": q["av_align_real"]["seed000"], "noise_floor_db": q.get("noise_floor_db_foley"),
            "noise_floor_db_real": q.get("noise_floor_db_real"), "buzz": q.get("buzz_foley"),
            "buzz_real": q.get("buzz_real"), "n": q["n"], "onset_detector": q.get("onset_detector")}


def lever_row(name: str, args) -> dict:
    what, extra = LEVERS[name]
    w = args.work / name
    bundle = w / "bundle"
    w.mkdir(parents=True, exist_ok=True)
    if not bundle.exists():
        shutil.copytree(args.base, bundle)
    for sub in ("cache", "runs/onset"):  # the latent cache and the onset stage's head: shared, read only
        link, src = w / sub, args.base.parent / sub
        link.parent.mkdir(parents=True, exist_ok=True)
        if src.exists() and not link.exists():
            link.symlink_to(src.resolve())
    avgen = [sys.executable, "-m", "avcli"]
    train = [*avgen, "train", "joint", "--bundle", str(bundle), "--data", str(args.data), "--work", str(w),
             "--steps", str(args.steps), *args.recipe, *extra,
             "--ckpt-every", "50", "--json"]  # checkpoints: resume only
    record = w / "records" / "joint.json"
    if not record.exists():
        _run(train, w / "train.log")
    rec = json.loads(record.read_text())[-1]
    qual = w / "quality" / "quality.json"
    score = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--bundle", str(bundle), "--train",
             str(args.data), "--test", str(args.test), "--n", str(args.n), "--out", str(w / "quality" / "clips"),
             "--parts", "foley"]
    if not qual.exists():
        _run(score, w / "quality.log")
    row = {"lever": name, "what": what, "train_options": extra, "steps": rec["steps_run"],
           "train_seconds": rec["seconds"], "final_loss": rec["final_loss"],
           "train_command": "avgen " + " ".join(train[3:]), "score_command": "python " + " ".join(score[1:])}
    row.update(_foley_row(json.loads(qual.read_text())))
    if args.adherence_model is not None:
        row["material"] = foley_material(w / "quality" / "clips" / "foley", w / "quality", args.adherence_model)
    return row


def foley_material(foley: Path, into: Path, model: Path) -> float:
    """Share of foley's clips whose sound the material classifier gives the caption's material (`avgen eval
    --metrics adherence`; foley runs with no prompt, so this is the material taken from the picture)."""
    out = into / "adherence.json"
    if not out.exists():
        cmd = [sys.executable, "-m", "avcli", "eval", str(foley), "--fps", "8", "--metrics", "adherence",
               "--adherence-model", str(model), "--csv", str(into / "adherence.csv"), "--json", "--overwrite"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}: {proc.stderr.strip()[-500:]}")
        out.write_text(proc.stdout)
    return json.loads(out.read_text())["summary"]["material_ok"]["mean"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True, help="the bundle every row starts from")
    ap.add_argument("--base-quality", type=Path, default=ROOT / "benchmarks" / "results" / "quality_v2.json",
                    help="quality.py's JSON of --base on the same clips (the row without further training)")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "levers")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--only", default=",".join(LEVERS), help="comma-separated rows, in order")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "levers_v2.json")
    ap.add_argument("--base-what", default="the v2 bundle as trained (800 joint steps)",
                    help="how the table names the base row")
    ap.add_argument("--recipe", default=shlex.join(RECIPE),
                    help="the `avgen train joint` options every row shares (default: %(default)s)")
    ap.add_argument("--adherence-model", type=Path, default=None,
                    help="also score foley's material (avgen eval --metrics adherence with this classifier)")
    ap.add_argument("--base-foley", type=Path, default=None,
                    help="the foley clips of --base-quality's run, for the base row's material")
    args = ap.parse_args()
    args.recipe = shlex.split(args.recipe)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        raise SystemExit(f"unknown lever {unknown[0]!r}; choose from {', '.join(LEVERS)}")
    base = {"lever": "base", "what": args.base_what, "steps": 0}
    base.update(_foley_row(json.loads(args.base_quality.read_text())))
    if args.adherence_model is not None and args.base_foley is not None:
        (args.work / "base").mkdir(parents=True, exist_ok=True)
        base["material"] = foley_material(args.base_foley, args.work / "base", args.adherence_model)
    prior = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    rows = {r["lever"]: r for r in prior if r["lever"] in LEVERS}
    for name in names:
        rows[name] = lever_row(name, args)
        res = {"command": "python benchmarks/levers.py " + shlex.join(sys.argv[1:]), "base_bundle": str(args.base),
               "steps_per_row": args.steps, "recipe": args.recipe,
               "rows": [base] + [rows[n] for n in LEVERS if n in rows]}
        args.out.write_text(json.dumps(res, indent=1) + "\n")  # after every row: a cut run keeps what it has
        print(json.dumps(rows[name]), flush=True)


if __name__ == "__main__":
    main()
