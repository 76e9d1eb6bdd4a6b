"""Seed 000's timestep adjustment gamma on the shipped recipe (its Table 1 gamma column; issue 13 deliver 4).

Each row runs `benchmarks/quality.py` (generate and foley, default settings but gamma) on the same n clips with the
same seeds; one more row repeats the bundle's gamma with other seeds, and the gap between the two default rows is
the noise band (`guidance_sweep.beyond_noise`). Generated clips are scored by adherence, the sound's agreement
with the contacts seen in their own frames, AV-Align and FD-logmel; foley by onset F1 against the true impacts.

Choose on the validation clips, not the held-out ones. Generated clips of a setting that already exist in another
quality.py folder can be reused (`--reuse LABEL=FOLDER`, e.g. the guidance sweep's default rows):

    .venv/bin/python benchmarks/gamma_sweep.py --train work/v2/hits --test work/v2/hits-val --n 40 \\
        --work work/gamma --adherence-model work/guidance/adherence.safetensors \\
        --reuse g1.5=work/guidance/v4-a2.5/clips   # the sweep's row at today's defaults (video 4, audio 2.5)

The cross-attention row of Table 1 needs a cross-attention twin trained on the same recipe (not trained for v2).
Writes benchmarks/results/gamma_sweep.json; finished rows are kept.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guidance_sweep import METRICS, NOISE_SEED_OFFSET, _get, beyond_noise  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "gamma_sweep.json"
FOLEY = {"foley_onset_f1": (("onsets_foley", "f1"), "higher"),
         "foley_av_align": (("av_align_foley", "seed000"), "higher")}


def settings(default: float, gammas: list[float]) -> list[dict]:
    row = lambda g, off=0: {"label": f"g{g:g}" + (f"-seeds{off}" if off else ""), "gamma": g,  # noqa: E731
                            "seed_offset": off}
    return [row(default)] + [row(g) for g in gammas if g != default] + [
        {**row(default, NOISE_SEED_OFFSET), "noise_run": True}]


def summarize(q: dict) -> dict:
    out = {k: _get(q, path) for k, (path, _) in {**METRICS, **FOLEY}.items()}
    out.update(colour_real=_get(q, ("adherence_real", "colour")), material_real=_get(q, ("adherence_real", "material")),
               contact_f1_real=_get(q, ("contact_real", "f1")), foley_onset_f1_real=_get(q, ("onsets_real", "f1")),
               onset_detector=q.get("onset_detector"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--gammas", default="1,2", help="gammas to try besides the bundle's")
    ap.add_argument("--adherence-model", type=Path, default=None)
    ap.add_argument("--reuse", action="append", default=[], help="LABEL=FOLDER: that row's generated clips exist "
                    "in FOLDER/generate (a quality.py --out of the same clips, seeds and settings)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    from avcli.models.bundle import load_bundle
    from avcli.pipelines.common import sampler_config

    model = load_bundle(args.bundle)
    cfg = sampler_config(model)
    rows = settings(cfg.gamma, [float(g) for g in args.gammas.split(",") if g])
    reuse = dict(r.split("=", 1) for r in args.reuse)
    res: dict = {"n": args.n, "bundle": str(model.bundle_path), "clips": str(args.test),
                 "default": {"gamma": cfg.gamma, "steps": cfg.steps, "solver": cfg.solver,
                             "cfg_video": cfg.cfg_video, "cfg_audio": cfg.cfg_audio},
                 "command": shlex.join(["python", "benchmarks/gamma_sweep.py", *sys.argv[1:]]), "rows": []}
    for row in rows:
        folder = args.work / row["label"]
        qjson = folder / "quality.json"
        if not qjson.exists():
            src = reuse.get(row["label"])
            if src and not (folder / "clips" / "generate").exists():
                (folder / "clips").mkdir(parents=True, exist_ok=True)
                shutil.copytree(Path(src) / "generate", folder / "clips" / "generate")
            cmd = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--train", str(args.train),
                   "--test", str(args.test), "--n", str(args.n), "--out", str(folder / "clips"),
                   "--gamma", f"{row['gamma']:g}", "--seed-offset", str(row["seed_offset"])]
            if args.adherence_model:
                cmd += ["--adherence-model", str(args.adherence_model)]
            if args.bundle:
                cmd += ["--bundle", args.bundle]
            print(f"== {row['label']}", file=sys.stderr, flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        row.update(summarize(json.loads(qjson.read_text())))
        res["rows"].append(row)
        args.out.write_text(json.dumps(res, indent=1) + "\n")

    base = res["rows"][0]
    noise = next(r for r in res["rows"] if r.get("noise_run"))
    for r in res["rows"][1:]:
        if not r.get("noise_run"):
            r["beyond_noise"] = beyond_noise(r, base, noise, {**METRICS, **FOLEY})
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    for r in res["rows"]:
        print(f"{r['label']:16s} foley F1 {r['foley_onset_f1']:.3f} contacts {r['contact_f1_generate']:.3f} "
              f"colour {r['colour_generate']:.2f} material {r['material_generate']:.2f} {r.get('beyond_noise', '')}")


if __name__ == "__main__":
    main()
