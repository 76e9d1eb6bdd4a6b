"""Seed 002's measures for `avgen animate` on our domain (issue 17): the audio of real held-out clips (and their
first frame, mode (a)) -> animate -> RelSync against the real video, and the first frame's PSNR against the given
picture. The sync classifier is trained first on real training clips (its held-out shift accuracy reported with
its chance line).

    .venv/bin/python benchmarks/animate_sync.py --train work/v2/hits --test work/v2/hits-test --n 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--train-clips", type=int, default=300)
    ap.add_argument("--sync-steps", type=int, default=600)
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "animate_sync.json")
    args = ap.parse_args()

    from avcli.media.ffmpeg import read_video, write_video
    from avcli.metrics import sync as S
    from avcli.pipelines.animate import AnimateRequest
    from avcli.pipelines.pipeline import JointPipeline

    t0 = time.perf_counter()
    train = [S.clip_features(p) for p in sorted(args.train.glob("*.mp4"))[: args.train_clips]]
    model = S.train(train, steps=args.sync_steps)
    test_clips = sorted(args.test.glob("*.mp4"))[: args.n]
    test_feats = [S.clip_features(p) for p in test_clips]
    res = {"command": "python benchmarks/animate_sync.py " + " ".join(sys.argv[1:]),
           "sync_classifier": {**S.shift_accuracy(model, test_feats), "train_clips": len(train),
                               "steps": args.sync_steps, "seconds": time.perf_counter() - t0}}
    pipe = JointPipeline.from_bundle(args.bundle)
    geo = pipe.geometry()
    rows = {"audio only": [], "audio + first frame (mode a)": []}
    psnrs = []
    with tempfile.TemporaryDirectory() as td:
        for i, (clip, (a_real, v_real)) in enumerate(zip(test_clips, test_feats)):
            first = read_video(clip, geo.fps, geo.frame_size, "crop", 0.0, 1.0 / geo.fps)[0]
            png = Path(td) / f"first_{i}.mp4"  # any picture ffmpeg reads: a one-frame video
            write_video(png, first[None], 1)
            for name, image in (("audio only", None), ("audio + first frame (mode a)", str(png))):
                out = pipe.animate(clip, AnimateRequest(seed=i, image=image))
                gen = Path(td) / f"gen_{i}.mp4"
                write_video(gen, out.frames, out.fps, out.audio, out.sample_rate, overwrite=True)
                _, v_gen = S.clip_features(gen)
                rows[name].append(S.rel_sync(model, a_real, v_gen, v_real))
                if image is not None:
                    psnrs.append(psnr(out.frames[0], first))
            print(f"{i + 1}/{len(test_clips)}", file=sys.stderr, flush=True)
    res["relsync"] = {k: float(np.mean(v)) for k, v in rows.items()}
    res["relsync_ground_truth"] = 0.5
    res["first_frame_psnr_db"] = float(np.mean(psnrs))
    res["clips"] = len(test_clips)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
