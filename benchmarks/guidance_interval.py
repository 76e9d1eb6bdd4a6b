"""Text guidance in a limited interval of the steps (`--cfg-video-interval` / `--cfg-audio-interval`) on `avgen
generate`: adherence, timing, buzz and speed against the bundle's default, on the guidance sweep's clips.

Kynkaenniemi et al. (2024) found classifier-free guidance harmful at the noisiest steps and unneeded at the least
noisy ones. Here the questions are ours: does audio guidance 5, which lifts material adherence but adds buzz,
keep its material with the buzz gone when it stops before the quiet details are drawn; and do the unguided steps
(one U-Net call at batch 1 instead of the CFG batch of 2) cost any quality. Each row is one
`benchmarks/quality.py --parts generate` run on the same clips and seeds; the last row repeats the default with
other seeds, and the gap between the two default rows is the noise band (as in guidance_sweep.py).

    .venv/bin/python benchmarks/guidance_interval.py --train work/v2/hits --test work/v2/hits-val --n 40 \\
        --work work/gi --rows default,a5-0:0.6,both-0:0.6

A row label is `[vV][aA][-SIDE]-START:END`, SIDE `a` (the audio's guidance interval), `v` or `both`, taken from
the one scale given when left out: `a5-0:0.6` is audio guidance 5 in the first 60 % of the steps, `both-0:0.6`
the default scales with both intervals cut; `default` is the bundle's setting. A `+agETA` suffix adds seed 002's
audio guidance on the video U-Net (`default+ag4`: the picture pulled toward the sound it is generated with), and
`+agETA@START:END` that guidance only in part of the steps (`v-0:0.4+ag4@0.4:1`: text guidance on the video in the
noisier 40 %, audio guidance after it, two video U-Net passes every step, the default's cost). Writes
benchmarks/results/guidance_interval.json; finished rows are kept.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _sweep import add_sweep_args, run_rows  # noqa: E402
from guidance_sweep import NOISE_SEED_OFFSET, judge_and_write, summarize  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "guidance_interval.json"
LABEL = re.compile(r"^(?:v(?P<v>[\d.]+))?(?:a(?P<a>[\d.]+))?-?(?P<which>a|v|both)?-?(?P<iv>[\d.]+:[\d.]+)?$")


def parse_row(label: str, default: tuple[float, float]) -> dict:
    """A row from its label: `default`, `a5` (a scale only), `a-0:0.6`, `a5-0:0.6`, `both-0:0.6`, `v4a5-both-0:0.5`;
    then optionally `+agETA[@START:END]` (seed 002's audio guidance on the video U-Net) and, last,
    `+vgETA[@START:END]` (seed 004's guidance over the picture on the audio U-Net)."""
    row = {"label": label, "cfg_video": default[0], "cfg_audio": default[1], "cfg_video_interval": [0.0, 1.0],
           "cfg_audio_interval": [0.0, 1.0], "audio_guidance": 1.0, "audio_guidance_interval": [0.0, 1.0],
           "video_guidance": 1.0, "video_guidance_interval": [0.0, 1.0], "seed_offset": 0}
    for mark, key in (("+vg", "video_guidance"), ("+ag", "audio_guidance")):  # the last suffix first
        if mark not in label:
            continue
        label, eta = label.split(mark, 1)
        eta, _, iv = eta.partition("@")
        try:
            row[key] = float(eta)
            if iv:
                row[f"{key}_interval"] = [float(x) for x in iv.split(":")]
        except ValueError:
            raise SystemExit(f"row label {row['label']!r}: {mark}ETA[@START:END] takes numbers") from None
    if label == "default":
        return row
    m = LABEL.match(label)
    which = m and (m["which"] or ("a" if m["a"] and not m["v"] else "v" if m["v"] and not m["a"] else None))
    if not m or not (m["v"] or m["a"] or m["iv"]) or (m["iv"] and not which) or (m["which"] and not m["iv"]):
        raise SystemExit(f"row label {label!r}: use default, a5, a-0:0.6, a5-0:0.6, both-0:0.6 or v4a5-both-0:0.5")
    if m["v"]:
        row["cfg_video"] = float(m["v"])
    if m["a"]:
        row["cfg_audio"] = float(m["a"])
    if m["iv"]:
        lo, hi = (float(x) for x in m["iv"].split(":"))
        for side in ("video", "audio"):
            if which in (side[0], "both"):
                row[f"cfg_{side}_interval"] = [lo, hi]
    return row


def parse_scales(text: str | None) -> tuple[float, float] | None:
    """'V:A' -> (V, A), the video and audio text-guidance scales; None stays None."""
    if text is None:
        return None
    try:
        v, a = (float(x) for x in text.split(":"))
    except ValueError:
        raise SystemExit(f"--scales takes V:A, e.g. 4:2.5; got {text!r}") from None
    return v, a


def flags(row: dict) -> list[str]:
    iv = lambda x: f"{x[0]:g}:{x[1]:g}"  # noqa: E731
    return ["--parts", "generate", "--cfg-video", f"{row['cfg_video']:g}", "--cfg-audio", f"{row['cfg_audio']:g}",
            "--cfg-video-interval", iv(row["cfg_video_interval"]), "--cfg-audio-interval", iv(row["cfg_audio_interval"]),
            "--audio-guidance", f"{row.get('audio_guidance', 1.0):g}",
            "--audio-guidance-interval", iv(row.get("audio_guidance_interval", [0.0, 1.0])),
            "--video-guidance", f"{row.get('video_guidance', 1.0):g}",
            "--video-guidance-interval", iv(row.get("video_guidance_interval", [0.0, 1.0]))]


def unet_calls(row: dict, steps: int) -> float:
    """U-Net passes per clip (batch rows per clip: a text-guided step is 2, audio guidance doubles the video's)."""
    from avcli.sampling.joint import SamplerConfig

    cfg = SamplerConfig(steps=steps, cfg_video=row["cfg_video"], cfg_audio=row["cfg_audio"],
                        cfg_video_interval=tuple(row["cfg_video_interval"]),
                        cfg_audio_interval=tuple(row["cfg_audio_interval"]),
                        audio_guidance=row.get("audio_guidance", 1.0),
                        audio_guidance_interval=tuple(row.get("audio_guidance_interval", (0.0, 1.0))),
                        video_guidance=row.get("video_guidance", 1.0),
                        video_guidance_interval=tuple(row.get("video_guidance_interval", (0.0, 1.0))))
    # a second video U-Net pass on null audio where audio guidance is on
    v = sum((2 if cfg.guidance_at(k)[0] != 1.0 else 1) * (2 if cfg.audio_guidance_at(k) != 1.0 else 1)
            for k in range(steps))
    a = sum((2 if cfg.guidance_at(k)[1] != 1.0 else 1) * (2 if cfg.video_guidance_at(k) != 1.0 else 1)
            for k in range(steps))
    return (v, a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_args(ap)
    ap.add_argument("--rows", default="default,a5-0:0.6,both-0:0.6", help="row labels, comma-separated")
    ap.add_argument("--reuse", action="append", default=[],
                    help="LABEL=FOLDER: a quality.py --out folder whose generated clips are that row's")
    ap.add_argument("--redo", action="append", default=[])
    ap.add_argument("--adherence-model", type=Path, default=None,
                    help="adherence classifiers every row shares (default: WORK/adherence.safetensors, fitted by "
                         "the first row)")
    ap.add_argument("--scales", default=None, metavar="V:A",
                    help="the text-guidance scales a row label leaves out (default: the bundle's); give them "
                         "when the bundle's default changed after rows were measured, so kept rows keep their labels")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    from avcli.models.bundle import load_bundle
    from avcli.pipelines.common import sampler_config

    model = load_bundle(args.bundle)
    base = sampler_config(model)
    default = parse_scales(args.scales) or (base.cfg_video, base.cfg_audio)
    labels = [s for s in args.rows.split(",") if s]
    if "default" not in labels:
        labels.insert(0, "default")
    rows = [parse_row(s, default) for s in labels]
    rows.append({**parse_row("default", default), "label": f"default-seeds{NOISE_SEED_OFFSET}",
                 "seed_offset": NOISE_SEED_OFFSET, "noise_run": True})
    for r in rows:
        r["unet_batch_calls"] = dict(zip(("video", "audio"), unet_calls(r, base.steps)))
    res: dict = {"n": args.n, "bundle": str(model.bundle_path), "clips": str(args.test),
                 "default": {"cfg_video": base.cfg_video, "cfg_audio": base.cfg_audio, "steps": base.steps,
                             "solver": base.solver, "cfg_video_interval": list(base.cfg_video_interval),
                             "cfg_audio_interval": list(base.cfg_audio_interval),
                             "audio_guidance": base.audio_guidance,
                             "audio_guidance_interval": list(base.audio_guidance_interval)},
                 "command": shlex.join(["python", "benchmarks/guidance_interval.py", *sys.argv[1:]]), "rows": []}
    reuse = dict(x.split("=", 1) for x in args.reuse)
    run_rows(res, rows, work=args.work, train=args.train, test=args.test, n=args.n, out=args.out, flags=flags,
             summarize=summarize, bundle=lambda row: args.bundle, redo=args.redo, reuse=reuse,
             adherence=args.adherence_model)
    judge_and_write(res, args.out)

if __name__ == "__main__":
    main()
