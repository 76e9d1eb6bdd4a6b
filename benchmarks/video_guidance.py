"""Seed 004's guidance over the picture on `avgen foley` (`--video-guidance ETA`): eps(no picture) + ETA
(eps(picture) - eps(no picture)), the no-picture pass being zero video-connector features, on the audio U-Net.

Without it the generated mel is smeared between impacts: about 10 dB nearer its peak than real clips (see
vocoder_generated.py), which the pretrained HiFi-GAN renders as extra onsets. For each bundle (e.g. the shipped
one with the small vocoder, and the same weights with `--vocoder hifigan-universal`) and each ETA, `avgen foley`'s
own pipeline runs on the first N clips of a folder (seed = clip index) and is scored against the true impacts:
onset F1 (+-1 frame at 8 fps), precision, onsets per clip, the between-impacts level (median 100 ms RMS outside
+-150 ms of every impact, in dB under the clip's loudest 100 ms; the real clips' own is the reference row), and the
floor and buzz before the first impact. Seconds per clip are the whole `pipe.foley` call. Without a prompt, text
guidance does nothing and is skipped, so ETA != 1 costs no extra U-Net call: its two passes are one call of batch 2.

    .venv/bin/python benchmarks/video_guidance.py --test work/v2/hits-val --n 40 --etas 1,2,3,4,6 \\
        --bundle "small vocoder (shipped)=avcli/bundles/hits-demo" --bundle "HiFi-GAN universal=work/b_hifi" \\
        --bundle-etas "HiFi-GAN universal=1,3,5,8"
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
OUT = ROOT / "benchmarks" / "results" / "video_guidance_foley.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", type=Path, required=True, help="clips with events.jsonl (true impact times)")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--bundle", action="append", default=[], metavar="NAME=FOLDER",
                    help="a bundle to measure (default: the shipped one)")
    ap.add_argument("--etas", default="1,2,3,4", help="video-guidance values, comma-separated")
    ap.add_argument("--bundle-etas", action="append", default=[], metavar="NAME=ETAS",
                    help="other values for one bundle")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    import torch

    import avcli.metrics as M
    from avcli.jsonl import read_file_rows
    from avcli.media.ffmpeg import read_audio
    from avcli.metrics.contact import buzz, noise_floor_db
    from avcli.pipelines.foley import FoleyRequest
    from avcli.pipelines.pipeline import JointPipeline
    from vocoder_generated import between_impacts_db

    torch.set_num_threads(args.threads)
    bundles = [b.split("=", 1) for b in args.bundle] or [["shipped", None]]
    etas = {name: [float(x) for x in args.etas.split(",")] for name, _ in bundles}
    etas.update({k: [float(x) for x in v.split(",")] for k, v in (x.split("=", 1) for x in args.bundle_etas)})
    rows_in = read_file_rows(args.test / "events.jsonl", "events")[: args.n]
    sr = None
    res: dict = {"n": len(rows_in), "clips": str(args.test), "threads": args.threads, "date": time.strftime("%Y-%m-%d"),
                 "command": shlex.join(["python", "benchmarks/video_guidance.py", *sys.argv[1:]]), "rows": []}

    def score(name, eta, ys, seconds):
        f1, p, on, bt, fl, bz = [], [], [], [], [], []
        for y, r in zip(ys, rows_in):
            ev = r["events"]
            onsets = M.impact_onsets(y, sr)
            acc = M.onset_accuracy(onsets, ev, tolerance=1 / 8)
            f1.append(acc.f1), p.append(acc.precision), on.append(len(onsets))
            if (b := between_impacts_db(y, ev, sr)) is not None:
                bt.append(b)
            if (x := noise_floor_db(y, sr, ev[0])) is not None:
                fl.append(x), bz.append(buzz(y, sr, ev[0]))
        mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
        return {"bundle": name, "video_guidance": eta, "onset_f1": mean(f1), "onset_precision": mean(p),
                "onsets_per_clip": mean(on), "between_impacts_db": mean(bt), "floor_db": mean(fl), "buzz": mean(bz),
                "seconds_per_clip": seconds}

    for name, folder in bundles:
        pipe = JointPipeline.from_bundle(folder, backend="torch", quiet=True)
        sr = pipe.geometry().sample_rate
        if not res["rows"]:
            res["rows"].append(score("real clips", None, [read_audio(args.test / r["file"], sr) for r in rows_in], None))
        for eta in etas[name]:
            ys, t0 = [], time.perf_counter()
            for i, r in enumerate(rows_in):
                ys.append(pipe.foley(args.test / r["file"], FoleyRequest(seed=i, video_guidance=eta)).audio)
            row = score(name, eta, ys, (time.perf_counter() - t0) / len(rows_in))
            res["rows"].append(row)
            print(f"{name} eta {eta:g}: F1 {row['onset_f1']:.3f} onsets {row['onsets_per_clip']:.1f} "
                  f"between {row['between_impacts_db']:.1f} dB", file=sys.stderr, flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
