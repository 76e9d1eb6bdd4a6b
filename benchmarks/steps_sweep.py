"""Quality against sampling steps, for DDIM and DPM-Solver++ 2M (issue 14: make the default the fastest setting
that stays within noise of today's).

Each setting runs `benchmarks/quality.py` (generate + foley, scored by `avgen eval`) on the same n held-out clips
with the same seeds, in its own folder; one more run repeats today's default with other seeds, and the gap between
the two default runs is the noise band a cheaper setting is compared against. Finished settings are kept (their
clips are not made again); `--redo LABEL` makes one again.

    .venv/bin/python benchmarks/steps_sweep.py --train work/v2/hits --test work/v2/hits-test --n 40 \\
        --work work/sweep

Writes benchmarks/results/steps_sweep.json; `benchmarks/report.py` renders the README table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _sweep import add_sweep_args, run_rows  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "steps_sweep.json"
NOISE_SEED_OFFSET = 1000

# (metric key, where quality.json keeps it, better) -- the sweep's columns
METRICS = {
    "foley_onset_f1": (("onsets_foley", "f1"), "higher"),
    "fd_logmel_generate": (("eval_generate", "set_metrics", "FD-logmel", "value"), "lower"),
    "fd_colourflow_generate": (("eval_generate", "set_metrics", "FD-colourflow", "value"), "lower"),
    "fd_logmel_foley": (("eval_foley", "set_metrics", "FD-logmel", "value"), "lower"),
    "colour_generate": (("adherence_generate", "colour"), "higher"),
    "material_generate": (("adherence_generate", "material"), "higher"),
    "contact_f1_generate": (("contact_generate", "f1"), "higher"),
}


def _get(d: dict, path: tuple):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def settings(solvers: list[str], steps: list[int], default: tuple[str, int]) -> list[dict]:
    rows = [{"label": f"{default[0]}-{default[1]}", "solver": default[0], "steps": default[1], "seed_offset": 0}]
    rows += [{"label": f"{s}-{n}", "solver": s, "steps": n, "seed_offset": 0} for s in solvers for n in steps
             if (s, n) != default]
    rows.append({"label": f"{default[0]}-{default[1]}-seeds{NOISE_SEED_OFFSET}", "solver": default[0],
                 "steps": default[1], "seed_offset": NOISE_SEED_OFFSET, "noise_run": True})
    return rows


def summarize(q: dict) -> dict:
    row = {k: _get(q, path) for k, (path, _) in METRICS.items()}
    row["seconds_per_clip"] = q.get("seconds_per_clip")
    row["onset_detector"] = q.get("onset_detector")
    return row


def within_noise(row: dict, base: dict, noise: dict) -> dict[str, bool]:
    """Per metric: is `row` no worse than `base` by more than the seed-to-seed gap |base - noise| (a worse value is
    one further in the metric's bad direction)."""
    out = {}
    for k, (_, better) in METRICS.items():
        r, b, n = row.get(k), base.get(k), noise.get(k)
        if r is None or b is None or n is None:
            continue
        band = abs(b - n)
        worse = (b - r) if better == "higher" else (r - b)
        out[k] = worse <= band
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_args(ap)
    ap.add_argument("--solvers", default="ddim,dpmpp2m")
    ap.add_argument("--steps", default="8,12,16,25")
    ap.add_argument("--redo", action="append", default=[], help="make this setting's clips again (repeatable)")
    args = ap.parse_args()

    from avcli.models.bundle import load_bundle
    from avcli.pipelines.common import sampler_config

    model = load_bundle(args.bundle)
    base_cfg = sampler_config(model)
    default = (base_cfg.solver, base_cfg.steps)
    rows = settings(args.solvers.split(","), [int(s) for s in args.steps.split(",")], default)
    res: dict = {"n": args.n, "bundle": str(model.bundle_path), "default": {"solver": default[0], "steps": default[1]},
                 "command": "python benchmarks/steps_sweep.py " + " ".join(sys.argv[1:]), "rows": []}
    run_rows(res, rows, work=args.work, train=args.train, test=args.test, n=args.n, out=OUT,
             flags=lambda row: ["--steps", str(row["steps"]), "--solver", row["solver"]],
             summarize=summarize, bundle=lambda row: args.bundle, redo=args.redo)

    by = {r["label"]: r for r in res["rows"]}
    base = by[f"{default[0]}-{default[1]}"]
    noise = next(r for r in res["rows"] if r.get("noise_run"))
    for r in res["rows"]:
        if r is not base and not r.get("noise_run"):
            r["within_noise"] = within_noise(r, base, noise)
    ok = [r for r in res["rows"] if r.get("within_noise") and all(r["within_noise"].values())]
    res["fastest_within_noise"] = min(ok, key=lambda r: r["steps"])["label"] if ok else None
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({r["label"]: {k: r.get(k) for k in METRICS} for r in res["rows"]}, indent=1))
    print("fastest within noise:", res["fastest_within_noise"])


if __name__ == "__main__":
    main()
