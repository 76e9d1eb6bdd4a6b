"""The video autoencoder's reconstruction on held-out clips, bundle beside bundle (issue 17's first-frame target):
every frame through encoder -> decoder (PSNR over all frames and over the moving object's pixels), and the first
frame as `avgen animate --image` makes it (the encoder's latent, then animate's L-BFGS fit through the decoder for
each of --fit-iterations). Bundles that share an encoder (a decoder-only leg) share the latent space, so the
U-Nets are unchanged; the JSON says whether the encoders' tensors are byte-equal.

    .venv/bin/python benchmarks/vae_decoder.py --test work/v2/hits-test --n 20 \\
        --row "shipped=avcli/bundles/hits-demo" --row "decoder 1500 steps=work/dec/bundle" \\
        --out benchmarks/results/vae_decoder.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def tensors_sha256(path: Path) -> str:
    """sha256 of a safetensors file's tensors (names, dtypes, shapes, bytes), not of the file: the same weights
    saved with other metadata hash the same."""
    import hashlib

    from safetensors.numpy import load_file

    h = hashlib.sha256()
    for name, t in sorted(load_file(str(path)).items()):
        h.update(f"{name}:{t.dtype}:{t.shape};".encode())
        h.update(t.tobytes())
    return h.hexdigest()


def captions(folder: Path) -> dict[str, str]:
    from avcli.jsonl import read_file_rows

    return {r["file"]: r["caption"] for r in read_file_rows(folder / "captions.jsonl", "captions")}


def measure(bundle: Path, clips: list[Path], fit_iterations: tuple[int, ...], adherence=None) -> dict:
    from animate_sync import first_frame_fit_curve  # the fit as animate runs it, one copy of the loop
    from avcli.media.ffmpeg import read_video
    from avcli.metrics.adherence import parse_caption
    from avcli.metrics.psnr import psnr_db
    from avcli.pipelines.common import decode_video, encode_video
    from avcli.pipelines.pipeline import JointPipeline

    pipe = JointPipeline.from_bundle(str(bundle), backend="torch", quiet=True)
    geo = pipe.geometry()

    caps = captions(clips[0].parent) if adherence is not None else {}
    all_frames, moving = [], []
    colour_hits = {"real": [], "reconstructed": []}
    for clip in clips:
        frames = read_video(clip, geo.fps, geo.frame_size, "crop", 0.0, geo.duration)[: geo.frames]  # (F, H, W, 3)
        rec = decode_video(pipe.components, encode_video(pipe.components, frames))[0]
        all_frames.append(psnr_db(rec, frames))
        # the object: pixels far from the clip's median frame (the static scene), as the VAE's foreground weight
        mask = np.abs(frames.astype(np.int16) - np.median(frames, axis=0)).sum(-1) > 3 * 255 * 0.1
        if mask.any():
            moving.append(psnr_db(rec, frames, mask))
        want = parse_caption(caps.get(clip.name, ""))[0] if adherence is not None else None
        if want is not None:  # the colour classifier on the clip at the bundle's size, and on its reconstruction
            colour_hits["real"].append(adherence.predict_colour(frames) == want)
            colour_hits["reconstructed"].append(adherence.predict_colour(rec) == want)
    return {"bundle": str(bundle), "clips": len(clips),
            "encoder_sha256": tensors_sha256(bundle / pipe.manifest["files"]["video_vae_encoder"]["file"]),
            "psnr_all_frames_db": float(np.mean(all_frames)),
            "psnr_moving_pixels_db": float(np.mean(moving)) if moving else None,
            "colour_adherence": {k: float(np.mean(v)) for k, v in colour_hits.items() if v} or None,
            "first_frame": first_frame_fit_curve(bundle, clips, fit_iterations)["rows"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", type=Path, required=True, help="held-out clips (mp4)")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--row", action="append", required=True, help="LABEL=BUNDLE (repeatable)")
    ap.add_argument("--fit-iterations", default="0,50")
    ap.add_argument("--adherence-model", type=Path, default=None,
                    help="colour classifier (avgen eval --fit-adherence): scores the clips and their reconstructions")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "vae_decoder.json")
    args = ap.parse_args()
    rows = []
    for spec in args.row:
        label, sep, path = spec.partition("=")
        if not sep or not Path(path, "bundle.json").is_file():
            sys.exit(f"--row {spec!r}: expected LABEL=BUNDLE_FOLDER")
        rows.append((label, Path(path)))
    clips = sorted(args.test.glob("*.mp4"))[: args.n]
    if not clips:
        sys.exit(f"{args.test}: no mp4 clips")
    iterations = tuple(int(v) for v in args.fit_iterations.split(","))
    from avcli.metrics.adherence import AdherenceModel

    adherence = AdherenceModel.load(args.adherence_model) if args.adherence_model else None
    out = {"command": shlex.join(["python", "benchmarks/vae_decoder.py", *sys.argv[1:]]),
           "test": str(args.test), "n": len(clips), "adherence_model": str(args.adherence_model or ""), "rows": []}
    for label, bundle in rows:
        row = {"label": label, **measure(bundle, clips, iterations, adherence)}
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
    base = out["rows"][0]["encoder_sha256"]
    for row in out["rows"]:
        row["same_encoder_as_first_row"] = row["encoder_sha256"] == base
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
