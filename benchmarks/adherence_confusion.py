"""Where prompt adherence misses: the colour and material classifiers' confusion counts on a quality run's clips.

The quality table's colour and material columns are shares of clips whose prediction matches the caption; this
splits them by class (caption's class -> predicted class), with the same classifier and the same caption parsing
as `avgen eval --metrics adherence`, so each table sums back to the quality table's number.

    python benchmarks/adherence_confusion.py --side generate=work/q_ua01/clips/generate \\
        --side foley=work/q_ua01/clips/foley --adherence-model work/adherence.safetensors \\
        --out benchmarks/results/adherence_confusion.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections import Counter
from pathlib import Path


def confusion(folder: Path, model, fps: float, colour: bool) -> dict:
    """{"material": {true: {pred: n}}, "colour": ...} over the clips of a folder with captions.jsonl."""
    from avcli.jsonl import read_file_rows
    from avcli.metrics.adherence import parse_caption
    from avcli.metrics.evaluate import read_clip_audio, read_clip_frames

    counts = {"material": Counter(), "colour": Counter()}
    for row in read_file_rows(folder / "captions.jsonl", "captions"):
        want_colour, want_material = parse_caption(row["caption"])
        clip = folder / row["file"]
        if want_material:
            audio, sr = read_clip_audio(clip)
            counts["material"][(want_material, model.predict_material(audio, sr))] += 1
        if colour and want_colour:
            counts["colour"][(want_colour, model.predict_colour(read_clip_frames(clip, fps)))] += 1
    out = {}
    for kind, c in counts.items():
        table: dict[str, dict[str, int]] = {}
        for (true, pred), n in sorted(c.items()):
            table.setdefault(true, {})[pred] = n
        if table:
            out[kind] = table
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", action="append", required=True, metavar="NAME=DIR",
                    help="a quality.py output folder (captions.jsonl + clips); colour too, but not for `foley` "
                         "(its frames are the input video)")
    ap.add_argument("--adherence-model", type=Path, required=True)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from avcli.metrics.adherence import AdherenceModel

    model = AdherenceModel.load(args.adherence_model)
    sides = {}
    for spec in args.side:
        name, sep, folder = spec.partition("=")
        if not sep or not Path(folder, "captions.jsonl").is_file():
            raise SystemExit(f"--side {spec!r}: give NAME=DIR, a folder with captions.jsonl")
        sides[name] = confusion(Path(folder), model, args.fps, colour=name != "foley")
    res = {"command": "python benchmarks/adherence_confusion.py " + shlex.join(sys.argv[1:]), "sides": sides}
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
