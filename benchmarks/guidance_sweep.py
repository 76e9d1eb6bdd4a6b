"""Text guidance against prompt adherence on `avgen generate` (issue 13: colour >= 85 %, material >= 70 %).

Colour is read from the frames and material from the sound, each by a classifier trained on the training clips,
so the two scales of classifier-free guidance the joint sampler applies, `cfg_video` and `cfg_audio`, are the
sampling levers for them. Each row runs `benchmarks/quality.py --parts generate` on the same n clips with the same
seeds and one change of the two scales; one more row repeats the bundle's default with other seeds, and the gap
between the two default rows is the noise band. `avgen foley` is not part of it: with no prompt, text guidance
adds nothing there (guiding "" against "" returns the unguided prediction).

Choose on clips of their own (`--test work/v2/hits-val`: `avgen data synth --n 40 --seed 2 --impact-fps 8`), then
confirm a winner on the held-out clips, so that the held-out numbers are not tuned on:

    .venv/bin/python benchmarks/guidance_sweep.py --train work/v2/hits --test work/v2/hits-val --n 40 \\
        --work work/guidance

Writes benchmarks/results/guidance_sweep.json; finished rows are kept (their clips are not made again);
`benchmarks/report.py` renders the README table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _sweep import add_sweep_args, run_rows  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "guidance_sweep.json"
NOISE_SEED_OFFSET = 1000

# (metric key, where quality.json keeps it, better) -- the sweep's columns
METRICS = {
    "colour_generate": (("adherence_generate", "colour"), "higher"),
    "material_generate": (("adherence_generate", "material"), "higher"),
    "contact_f1_generate": (("contact_generate", "f1"), "higher"),
    "av_align_generate": (("av_align_generate", "seed000"), "higher"),
    "fd_logmel_generate": (("eval_generate", "set_metrics", "FD-logmel", "value"), "lower"),
    "fd_colourflow_generate": (("eval_generate", "set_metrics", "FD-colourflow", "value"), "lower"),
    "buzz_generate": (("buzz_generate",), "lower"),
}
REAL = {"colour_real": ("adherence_real", "colour"), "material_real": ("adherence_real", "material"),
        "contact_f1_real": ("contact_real", "f1")}


def _get(d: dict, path: tuple):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def settings(default: tuple[float, float], videos: list[float], audios: list[float],
             pairs: list[tuple[float, float]] = ()) -> list[dict]:
    """The default, each video scale with the default audio scale, each audio scale with the default video scale,
    each (video, audio) pair of both changed, and the default again with other seeds."""
    row = lambda v, a, off=0: {"label": f"v{v:g}-a{a:g}" + (f"-seeds{off}" if off else ""),  # noqa: E731
                               "cfg_video": v, "cfg_audio": a, "seed_offset": off}
    rows = [row(*default)]
    rows += [row(v, default[1]) for v in videos if v != default[0]]
    rows += [row(default[0], a) for a in audios if a != default[1]]
    rows += [row(v, a) for v, a in pairs if (v, a) != default]
    rows.append({**row(*default, NOISE_SEED_OFFSET), "noise_run": True})
    return rows


def summarize(q: dict) -> dict:
    row = {k: _get(q, path) for k, (path, _) in METRICS.items()}
    row.update({k: _get(q, path) for k, path in REAL.items()})
    row["noise_floor_db_generate"] = q.get("noise_floor_db_generate")  # shown, not judged: real clips' is the aim
    row["noise_floor_db_real"] = q.get("noise_floor_db_real")
    row["seconds_per_clip"] = (q.get("seconds_per_clip") or {}).get("generate")
    row["onset_detector"] = q.get("onset_detector")
    return row


def beyond_noise(row: dict, base: dict, noise: dict, metrics: dict = METRICS) -> dict[str, str]:
    """Per metric: 'better' or 'worse' where `row` differs from `base` by more than the seed-to-seed gap
    |base - noise| in that direction, else 'same'."""
    out = {}
    for k, (_, better) in metrics.items():
        r, b, n = row.get(k), base.get(k), noise.get(k)
        if r is None or b is None or n is None:
            continue
        gain = (r - b) if better == "higher" else (b - r)
        out[k] = "better" if gain > abs(b - n) else "worse" if -gain > abs(b - n) else "same"
    return out


def judge_and_write(res: dict, out: Path) -> None:
    """Mark each row better / same / worse than the first (the default) against the noise row, write the JSON, and
    print a line a row (guidance_sweep.py and guidance_interval.py)."""
    base = res["rows"][0]
    noise = next(r for r in res["rows"] if r.get("noise_run"))
    for r in res["rows"][1:]:
        if not r.get("noise_run"):
            r["beyond_noise"] = beyond_noise(r, base, noise)
    out.write_text(json.dumps(res, indent=1) + "\n")
    for r in res["rows"]:
        print(f"{r['label']:22s} colour {r['colour_generate']:.2f} material {r['material_generate']:.2f} "
              f"contacts {r['contact_f1_generate']:.3f} buzz {r['buzz_generate']:.3f} "
              f"FD-logmel {r['fd_logmel_generate']:.1f} {r.get('beyond_noise', '')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_args(ap)
    ap.add_argument("--video", default="4,12", help="video guidance scales to try (besides the bundle's)")
    ap.add_argument("--audio", default="1,5,7.5", help="audio guidance scales to try (besides the bundle's)")
    ap.add_argument("--pairs", default="", help="VIDEO:AUDIO pairs to try, both changed (e.g. 4:5,4:7.5)")
    ap.add_argument("--redo", action="append", default=[], help="make this row's clips again (repeatable)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    from avcli.models.bundle import load_bundle
    from avcli.pipelines.common import sampler_config

    model = load_bundle(args.bundle)
    base_cfg = sampler_config(model)
    default = (base_cfg.cfg_video, base_cfg.cfg_audio)
    rows = settings(default, [float(s) for s in args.video.split(",") if s],
                    [float(s) for s in args.audio.split(",") if s],
                    [tuple(float(x) for x in p.split(":")) for p in args.pairs.split(",") if p])
    res: dict = {"n": args.n, "bundle": str(model.bundle_path), "clips": str(args.test),
                 "default": {"cfg_video": default[0], "cfg_audio": default[1], "steps": base_cfg.steps,
                             "solver": base_cfg.solver},
                 "command": shlex.join(["python", "benchmarks/guidance_sweep.py", *sys.argv[1:]]), "rows": []}
    run_rows(res, rows, work=args.work, train=args.train, test=args.test, n=args.n, out=args.out,
             flags=lambda row: ["--parts", "generate", "--cfg-video", f"{row['cfg_video']:g}",
                                "--cfg-audio", f"{row['cfg_audio']:g}"],
             summarize=summarize, bundle=lambda row: args.bundle, redo=args.redo)

    judge_and_write(res, args.out)


if __name__ == "__main__":
    main()
