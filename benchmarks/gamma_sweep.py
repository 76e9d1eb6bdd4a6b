"""Seed 000's Table 1 on our domain: the timestep adjustment gamma, and cross-attention against CMC-PE (issue 13).

Each row runs `benchmarks/quality.py` (generate and foley, default settings but gamma) on the same n clips with the
same seeds; one more row repeats the bundle's gamma with other seeds, and the gap between the two default rows is
the noise band (`guidance_sweep.beyond_noise`). Generated clips are scored by adherence, the sound's agreement
with the contacts seen in their own frames, AV-Align and FD-logmel; foley by onset F1 against the true impacts.

Choose on the validation clips, not the held-out ones. Generated clips of a setting that already exist in another
quality.py folder can be reused (`--reuse LABEL=FOLDER`, e.g. the guidance sweep's default rows):

    .venv/bin/python benchmarks/gamma_sweep.py --train work/v2/hits --test work/v2/hits-val --n 40 \\
        --work work/gamma --adherence-model work/guidance/adherence.safetensors \\
        --reuse g1.5=work/guidance/v4-a2.5/clips   # the sweep's row at today's defaults (video 4, audio 2.5)

With `--xattn BUNDLE` (a cross-attention twin trained on the same recipe and bases, `scripts/train_demo_v2.sh 6`)
its rows join at `--xattn-gammas` (seed 000's baseline row is gamma 1); `--bundle` is then the CMC-PE twin:

    .venv/bin/python benchmarks/gamma_sweep.py --bundle work/t1/cmcpe/bundle --xattn work/t1/xattn/bundle \\
        --train work/v2/hits --test work/v2/hits-val --n 40 --work work/t1/rows \\
        --adherence-model work/adherence.safetensors --gammas 1,2 --out benchmarks/results/table1_v2.json

Writes benchmarks/results/gamma_sweep.json (or --out); finished rows are kept.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sweep import add_sweep_args, run_rows  # noqa: E402
from guidance_sweep import METRICS, NOISE_SEED_OFFSET, _get, beyond_noise  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "gamma_sweep.json"
FOLEY = {"foley_onset_f1": (("onsets_foley", "f1"), "higher"),
         "foley_av_align": (("av_align_foley", "seed000"), "higher")}


def settings(default: float, gammas: list[float], xattn_gammas: list[float] = ()) -> list[dict]:
    """The bundle's gamma first, the other gammas, the cross-attention twin's rows, then the noise row (the
    default again with other seeds)."""
    def row(g, off=0, connector="cmcpe"):
        label = ("xattn-" if connector == "xattn" else "") + f"g{g:g}" + (f"-seeds{off}" if off else "")
        return {"label": label, "connector": connector, "gamma": g, "seed_offset": off}
    return [row(default)] + [row(g) for g in gammas if g != default] + [row(g, connector="xattn")
                                                                        for g in xattn_gammas] + [
        {**row(default, NOISE_SEED_OFFSET), "noise_run": True}]


def summarize(q: dict) -> dict:
    out = {k: _get(q, path) for k, (path, _) in {**METRICS, **FOLEY}.items()}
    out.update(colour_real=_get(q, ("adherence_real", "colour")), material_real=_get(q, ("adherence_real", "material")),
               contact_f1_real=_get(q, ("contact_real", "f1")), foley_onset_f1_real=_get(q, ("onsets_real", "f1")),
               av_align_real=_get(q, ("av_align_real", "seed000")),
               onset_detector=q.get("onset_detector"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_args(ap)
    ap.add_argument("--gammas", default="1,2", help="gammas to try besides the bundle's")
    ap.add_argument("--adherence-model", type=Path, default=None)
    ap.add_argument("--xattn", default=None, help="a cross-attention twin of --bundle (same bases and recipe)")
    ap.add_argument("--xattn-gammas", default="1", help="gammas for the --xattn rows (seed 000's baseline: 1)")
    ap.add_argument("--reuse", action="append", default=[], help="LABEL=FOLDER: that row's generated clips exist "
                    "in FOLDER/generate (a quality.py --out of the same clips, seeds and settings)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    from avcli.models.bundle import load_bundle
    from avcli.pipelines.common import sampler_config

    model = load_bundle(args.bundle)
    cfg = sampler_config(model)
    floats = lambda text: [float(g) for g in text.split(",") if g]  # noqa: E731
    bundles = {"cmcpe": args.bundle, "xattn": args.xattn}
    # before any compute: each row's bundle is what its label says
    for connector, m in (("cmcpe", model), ("xattn", load_bundle(args.xattn) if args.xattn else None)):
        if m is not None and m.manifest["joint"]["mode"] != connector:
            sys.exit(f"gamma_sweep.py: {m.bundle_path} is a {m.manifest['joint']['mode']} bundle, not {connector}")
    rows = settings(cfg.gamma, floats(args.gammas), floats(args.xattn_gammas) if args.xattn else [])
    reuse = dict(r.split("=", 1) for r in args.reuse)
    res: dict = {"n": args.n, "bundle": str(model.bundle_path), "xattn_bundle": args.xattn, "clips": str(args.test),
                 "default": {"gamma": cfg.gamma, "steps": cfg.steps, "solver": cfg.solver,
                             "cfg_video": cfg.cfg_video, "cfg_audio": cfg.cfg_audio},
                 "command": shlex.join(["python", "benchmarks/gamma_sweep.py", *sys.argv[1:]]), "rows": []}
    run_rows(res, rows, work=args.work, train=args.train, test=args.test, n=args.n, out=args.out,
             flags=lambda row: ["--gamma", f"{row['gamma']:g}"], summarize=summarize,
             bundle=lambda row: bundles[row["connector"]], adherence=args.adherence_model, reuse=reuse)

    base = res["rows"][0]
    noise = next(r for r in res["rows"] if r.get("noise_run"))
    for r in res["rows"][1:]:
        if not r.get("noise_run"):
            r["beyond_noise"] = beyond_noise(r, base, noise, {**METRICS, **FOLEY})
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    for r in res["rows"]:
        print(f"{r['label']:18s} foley F1 {r['foley_onset_f1']:.3f} contacts {r['contact_f1_generate']:.3f} "
              f"colour {r['colour_generate']:.2f} material {r['material_generate']:.2f} {r.get('beyond_noise', '')}")


if __name__ == "__main__":
    main()
