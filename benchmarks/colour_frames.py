"""Colour adherence frame by frame: does the object keep the prompt's colour in every frame, or drift?

The quality table's colour column classifies a clip by the mean colour of all its moving pixels. This also
classifies each frame by its own moving pixels (`AdherenceModel.colour_frames`, the same classifier), so an object
that turns from green to blue halfway through scores half its frames wrong. Rows: folders of clips with
captions.jsonl (a quality run's real / generate folders), and with --reconstruct BUNDLE the first folder's clips
after that bundle's video VAE (encoder, then decoder): the ceiling that the latent space sets.

    python benchmarks/colour_frames.py --side real=work/q_ship4/clips/real \\
        --side generate=work/q_ship4/clips/generate --reconstruct avcli/bundles/hits-demo \\
        --adherence-model work/adherence.safetensors --out benchmarks/results/colour_frames.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def score(clips, model) -> dict:
    """clips: iterable of (frames uint8 (F, H, W, 3), wanted colour) -> clip and frame shares right."""
    clip_hits, frame_hits, frames_read = 0, 0, 0
    n = 0
    for frames, want in clips:
        n += 1
        clip_hits += model.predict_colour(frames) == want
        got = model.colour_frames(frames)
        frame_hits += sum(g == want for g in got)
        frames_read += len(got)
    return {"clips": n, "colour_clips": clip_hits / max(n, 1), "frames": frames_read,
            "colour_frames": frame_hits / max(frames_read, 1)}


def folder_clips(folder: Path, fps: float, limit: int | None, size=None):
    """(frames, wanted colour) per captioned clip: at the clip's own size (as `avgen eval`), or cropped to size."""
    from avcli.jsonl import read_file_rows
    from avcli.media.ffmpeg import read_video
    from avcli.metrics.adherence import parse_caption
    from avcli.metrics.evaluate import read_clip_frames

    rows = [r for r in read_file_rows(folder / "captions.jsonl", "captions") if parse_caption(r["caption"])[0]]
    for r in rows[:limit]:
        clip = folder / r["file"]
        frames = read_clip_frames(clip, fps) if size is None else read_video(clip, fps, size, "crop")
        yield frames, parse_caption(r["caption"])[0]


def reconstructed(folder: Path, fps: float, limit: int | None, pipe):
    """The clips at the bundle's size and length, and the same through its video VAE (encoder, then decoder)."""
    from avcli.pipelines.common import decode_video, encode_video

    geo = pipe.geometry()
    for frames, want in folder_clips(folder, fps, limit, tuple(geo.frame_size)):
        frames = frames[: geo.frames]
        yield (frames, want), (decode_video(pipe.components, encode_video(pipe.components, frames))[0], want)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", action="append", required=True, metavar="NAME=FOLDER")
    ap.add_argument("--reconstruct", type=Path, default=None, metavar="BUNDLE",
                    help="add a row: the first --side's clips through this bundle's video VAE")
    ap.add_argument("--adherence-model", type=Path, required=True)
    ap.add_argument("--fps", type=float, default=8.0)
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "colour_frames.json")
    args = ap.parse_args()
    from avcli.metrics.adherence import AdherenceModel

    model = AdherenceModel.load(args.adherence_model)
    sides = [s.split("=", 1) for s in args.side]
    rows = []
    for name, folder in sides:
        rows.append({"name": name, "folder": folder, **score(folder_clips(Path(folder), args.fps, args.n), model)})
        print(json.dumps(rows[-1]), flush=True)
    if args.reconstruct is not None:
        from avcli.pipelines.pipeline import JointPipeline

        pipe = JointPipeline.from_bundle(str(args.reconstruct), backend="torch", quiet=True)
        size = "x".join(map(str, pipe.geometry().frame_size))
        name, folder = sides[0]
        pairs = list(reconstructed(Path(folder), args.fps, args.n, pipe))
        for label, clips in ((f"{name} at {size}", [a for a, _ in pairs]),
                             (f"{name} at {size} through the video VAE", [b for _, b in pairs])):
            rows.append({"name": label, "folder": folder, "bundle": str(args.reconstruct), **score(clips, model)})
            print(json.dumps(rows[-1]), flush=True)
    out = {"command": shlex.join(["python", "benchmarks/colour_frames.py", *sys.argv[1:]]), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
