"""Chance level for "onset F1 vs true impacts": the real sound of *another* held-out clip scored against each
clip's true impact times (same onset detector, same +-1 video frame tolerance). A foley model that ignores the
video lands here; one that follows it lands near the real clips' own score.

    .venv/bin/python benchmarks/onset_chance.py --test work/hits-test --n 100 --fps 8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import avcli.metrics as M
    from avcli.media.ffmpeg import read_audio

    rows = [json.loads(line) for line in (args.test / "events.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[: args.n]
    onsets = [M.impact_onsets(read_audio(args.test / r["file"], args.sample_rate), args.sample_rate) for r in rows]
    tol = 1.0 / args.fps
    own = [M.onset_accuracy(onsets[i], rows[i]["events"], tol).f1 for i in range(len(rows))]
    other = [M.onset_accuracy(onsets[(i + 1) % len(rows)], rows[i]["events"], tol).f1 for i in range(len(rows))]
    res = {"n": len(rows), "onset_f1_own_sound": float(np.mean(own)), "onset_f1_other_clips_sound": float(np.mean(other)),
           "command": "python benchmarks/onset_chance.py " + " ".join(sys.argv[1:])}
    print(json.dumps(res, indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
