"""The onset detector's padding edge: seed 000's detector (librosa defaults, zero-padded STFT) against the same
detector with reflected ends (`avcli.metrics.impact_onsets`, what onset accuracy and contact agreement use), on the
real held-out clips and on any folders of generated clips with the same file names.

Both are scored against the true impact times (+-1 video frame). "edge" counts the clips whose first detected onset
lies before 0.12 s with no true impact within one frame of it: onsets that the padding, not the sound, made.

    .venv/bin/python benchmarks/onset_detector.py --test work/v2/hits-test --n 100 \\
        --generated foley=work/ship4/clips/foley
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
OUT = Path(__file__).resolve().parent / "results" / "onset_detector.json"
EDGE_S = 0.12


def score(folder: Path, rows: list[dict], fps: float, sr: int) -> dict:
    import avcli.metrics as M
    from avcli.media.ffmpeg import read_audio

    tol = 1.0 / fps
    out = {}
    detectors = {"zero_padded (seed 000)": M.audio_onsets, "reflected (impact_onsets)": M.impact_onsets}
    audio = [read_audio(folder / r["file"], sr) for r in rows]
    for name, detect in detectors.items():
        s = {"precision": [], "recall": [], "f1": [], "edge": 0}
        for y, r in zip(audio, rows):
            on = detect(y, sr)
            acc = M.onset_accuracy(on, r["events"], tol)
            s["precision"].append(acc.precision)
            s["recall"].append(acc.recall)
            s["f1"].append(acc.f1)
            ev = np.asarray(r["events"], float)
            if len(on) and on[0] < EDGE_S and not np.any(np.abs(ev - on[0]) <= tol):
                s["edge"] += 1
        out[name] = {k: (float(np.mean(v)) if isinstance(v, list) else v) for k, v in s.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", type=Path, required=True, help="held-out clips with events.jsonl")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--generated", action="append", default=[], metavar="LABEL=DIR",
                    help="a folder of generated clips named like the held-out ones (repeatable)")
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    from avcli.jsonl import read_file_rows

    rows = read_file_rows(args.test / "events.jsonl", "events")[: args.n]
    sets = {"real": args.test}
    for g in args.generated:
        label, sep, folder = g.partition("=")
        if not sep:
            ap.error(f"--generated takes LABEL=DIR, got {g!r}")
        sets[label] = Path(folder)
    from avcli.metrics.onsets import IMPACT_ONSET_DETECTOR

    res = {"n": len(rows), "tolerance_s": 1.0 / args.fps, "edge_s": EDGE_S, "onset_detector": IMPACT_ONSET_DETECTOR,
           "command": "python benchmarks/onset_detector.py " + shlex.join(sys.argv[1:]),
           "sets": {label: score(folder, rows, args.fps, args.sample_rate) for label, folder in sets.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
