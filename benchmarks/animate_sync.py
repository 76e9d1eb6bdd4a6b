"""Seed 002's measures for `avgen animate` on our domain (issue 17): the audio of real held-out clips (and their
first frame) -> animate -> RelSync and AlignSync against the real video, and the first frame's PSNR against the
given picture. The sync classifier and the image-audio model (AlignSync's stand-in for ImageBind) are trained
first on real training clips; their held-out accuracies are reported with their chance lines.

Rows (each on the same clips and seeds; a row already in the JSON is kept unless --redo names it):
    audio only / audio + first frame (mode a)                 --bundle (default: the shipped demo)
    mode a + FF-Attn, training-free                           the same weights with the lookups switched on
    mode a, eta = E (bundle trained with audio dropout)       --eta-bundle B --etas 1,2,4,8 (seed 002 Table 10)
    mode a, motion trained (no FF-Attn)                       --motion-bundle B (--unfreeze-motion --audio-dropout)
    mode a + FF-Attn (trained)                                --ff-bundle B (the same, with --first-frame-attn)
    mode b: FF-Attn + frame 0 given clean (trained)           --given-bundle B (the same, + --first-frame-p)
    mode b: FF-Conv + frame 0 given clean (trained)           --ffconv-bundle B (--first-frame-conv)
    the last four at more etas (seed 002 Table 8's rows)      --ff-etas 1,8
The picture is the clip's first frame written as a lossless PNG; the first latent is fitted through the decoder
(animate's default) unless a row says fit 0 (rows measured before the fit landed).

    .venv/bin/python benchmarks/animate_sync.py --train work/v2/hits --test work/v2/hits-test --n 20 \\
        [--eta-bundle work/levers/audio_dropout/bundle --etas 1,2,4,8] [--ff-bundle work/ff/bundle]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from avcli.metrics.psnr import psnr_db  # noqa: E402


def _with_first_frame_attn(bundle: Path, into: Path) -> Path:
    """A copy of a bundle whose manifest switches FF-Attn on (no weights change: the training-free row)."""
    shutil.copytree(bundle, into)
    manifest = json.loads((into / "bundle.json").read_text())
    manifest["joint"]["video_first_frame_attn"] = True
    (into / "bundle.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return into


def _classifiers(args, train_clips, test_clips):
    """The sync classifier and image-audio model: loaded from --sync-model when it exists, else trained (and saved
    there). Returns (model, report)."""
    from avcli.metrics import image_audio as IA
    from avcli.metrics import sync as S

    t0 = time.perf_counter()
    test = [S.clip_data(p) for p in test_clips]
    model = S.SyncClassifier.load(args.sync_model) if args.sync_model is not None and args.sync_model.exists() \
        else None
    if model is None or model.align is None:  # a version-1 file has no image-audio part: train both again
        train = [S.clip_data(p) for p in train_clips]
        model = S.train([(a, v) for a, v, _ in train], steps=args.sync_steps)
        model.align = IA.train([(a, f) for a, _, f in train], steps=args.align_steps)
        if args.sync_model is not None:
            model.save(args.sync_model, overwrite=True)
    report = {"sync_classifier": {**S.shift_accuracy(model, [(a, v) for a, v, _ in test]),
                                  "train_clips": len(train_clips), "steps": args.sync_steps},
              "image_audio": {**IA.retrieval_accuracy(model.align, [(a, f) for a, _, f in test]),
                              "train_clips": len(train_clips), "steps": args.align_steps},
              "classifier_seconds": time.perf_counter() - t0}
    return model, test, report


def _write_png(path: Path, rgb: np.ndarray) -> Path:
    """A lossless picture (the PSNR target is against the given picture: a lossy input would cost dB of its own)."""
    import subprocess

    from avcli.media.ffmpeg import ffmpeg_exe

    h, w = rgb.shape[:2]
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{w}x{h}", "-i", "pipe:0", "-frames:v", "1", str(path)],
                   input=np.ascontiguousarray(rgb).tobytes(), check=True)
    return path


def _captions(test_clips) -> dict[str, str]:
    path = Path(test_clips[0]).parent / "captions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return {r["file"]: r["caption"] for r in rows}


def run_row(label: str, bundle, image: bool, eta, model, test_clips, test, prompt: bool = False) -> dict:
    from avcli.media.ffmpeg import read_video, write_video
    from avcli.metrics import sync as S
    from avcli.pipelines.animate import AnimateRequest
    from avcli.pipelines.pipeline import JointPipeline

    pipe = JointPipeline.from_bundle(str(bundle) if bundle is not None else None)
    geo = pipe.geometry()
    from avcli.metrics.frechet import frechet_distance, paired_distances, video_features

    vals: dict[str, list[float]] = {"relsync": [], "p_align": [], "alignsync": [], "psnr": [], "future_psnr": [],
                                    "colourflow_paired": []}
    feats_gen, feats_real = [], []
    fit_steps = 0
    captions = _captions(test_clips) if prompt else {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as td:
        for i, (clip, (a_real, _, f_real)) in enumerate(zip(test_clips, test)):
            png = None
            if image:
                first = read_video(clip, geo.fps, geo.frame_size, "crop", 0.0, 1.0 / geo.fps)[0]
                png = _write_png(Path(td) / f"first_{i}.png", first)
            text = captions.get(Path(clip).name, "") if prompt else ""
            out = pipe.animate(clip, AnimateRequest(prompt=text, seed=i, image=str(png) if png else None,
                                                    audio_guidance=eta))
            fit_steps = out.first_frame_fit_steps
            gen = Path(td) / f"gen_{i}.mp4"
            write_video(gen, out.frames, out.fps, out.audio, out.sample_rate, overwrite=True)
            _, _, f_gen = S.clip_data(gen)
            both = S.align_sync(model, a_real, f_gen, f_real)
            for k in ("relsync", "p_align", "alignsync"):
                vals[k].append(both[k])
            # the picture (seed 002 scores future frames 2..b against the real clip's): PSNR and colour/flow stats
            real = read_video(clip, geo.fps, geo.frame_size, "crop", 0.0, len(out.frames) / geo.fps)
            n = min(len(real), len(out.frames))
            vals["future_psnr"].append(psnr_db(out.frames[1:n], real[1:n]))
            feats_gen.append(video_features(out.frames[1:n]))
            feats_real.append(video_features(real[1:n]))
            vals["colourflow_paired"].append(float(paired_distances(feats_gen[-1][None], feats_real[-1][None])[0]))
            if png is not None:
                assert np.array_equal(out.first_frame, first)  # the picture as given, at the bundle's size
                vals["psnr"].append(out.first_frame_psnr_db)
            print(f"{label}: {i + 1}/{len(test_clips)}", file=sys.stderr, flush=True)
    row = {"row": label, "bundle": str(bundle) if bundle else "shipped", "image": image, "eta": eta,
           "seconds_per_clip": (time.perf_counter() - t0) / len(test_clips),
           **{k: float(np.mean(v)) for k, v in vals.items() if k not in ("psnr", "future_psnr", "colourflow_paired")},
           "future_frames_psnr_db": float(np.mean(vals["future_psnr"])),
           "colourflow_paired": float(np.mean(vals["colourflow_paired"])),
           "fd_colourflow": frechet_distance(np.stack(feats_gen), np.stack(feats_real))}
    row["first_frame_psnr_db"] = float(np.mean(vals["psnr"])) if vals["psnr"] else None
    row["prompt"] = "caption" if prompt else None
    row["first_frame_fit_steps"] = fit_steps if image else None
    row["first_frame_fit"] = "lbfgs" if image and fit_steps else None
    return row


def first_frame_fit_curve(bundle, test_clips, iterations=(0, 10, 25, 50, 100, 200)) -> dict:
    """The first frame's decoded PSNR against the picture by L-BFGS iterations of animate's latent fit (0: the
    encoder's latent), on the clips' first frames, with the seconds each fit took on this machine."""
    from avcli.media.ffmpeg import read_video
    from avcli.pipelines.animate import fit_first_latent
    from avcli.pipelines.backends import descriptions
    from avcli.pipelines.common import decode_video, encode_video
    from avcli.pipelines.pipeline import JointPipeline

    pipe = JointPipeline.from_bundle(str(bundle) if bundle is not None else None, backend="torch", quiet=True)
    geo = pipe.geometry()
    decoder = descriptions(pipe.manifest)["video_vae_decoder"].module(pipe.model)
    psnrs: dict[int, list[float]] = {n: [] for n in iterations}
    secs: dict[int, list[float]] = {n: [] for n in iterations}
    for clip in test_clips:
        pic = read_video(clip, geo.fps, geo.frame_size, "crop", 0.0, 1.0 / geo.fps)[0]
        enc = encode_video(pipe.components, pic[None])
        for n in iterations:
            t0 = time.perf_counter()
            z = fit_first_latent(decoder, pic, enc, n)
            secs[n].append(time.perf_counter() - t0)
            psnrs[n].append(psnr_db(decode_video(pipe.components, z)[0][0], pic))
    return {"bundle": str(bundle) if bundle else "shipped", "clips": len(test_clips),
            "rows": [{"iterations": n, "psnr_db": float(np.mean(psnrs[n])), "seconds": float(np.mean(secs[n]))}
                     for n in iterations]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--train-clips", type=int, default=300)
    ap.add_argument("--sync-steps", type=int, default=600)
    ap.add_argument("--align-steps", type=int, default=600)
    ap.add_argument("--sync-model", type=Path, default=ROOT / "work" / "animate" / "sync.safetensors",
                    help="where the classifiers are kept between runs (trained when missing)")
    ap.add_argument("--bundle", type=Path, default=None, help="default: the shipped demo bundle")
    ap.add_argument("--eta-bundle", type=Path, default=None, help="a bundle trained with --audio-dropout")
    ap.add_argument("--etas", default="1,2,4,8")
    ap.add_argument("--motion-bundle", type=Path, default=None,
                    help="a bundle trained with --unfreeze-motion (and audio dropout), without FF-Attn")
    ap.add_argument("--ff-bundle", type=Path, default=None, help="the same training with --first-frame-attn")
    ap.add_argument("--given-bundle", type=Path, default=None,
                    help="a bundle trained with --first-frame-p (and FF-Attn): mode b, the picture given clean")
    ap.add_argument("--ffconv-bundle", type=Path, default=None,
                    help="a bundle trained with --first-frame-conv --first-frame-p: mode b with FF-Conv")
    ap.add_argument("--caption-rows", action="store_true",
                    help="also run the mode b rows with the clip's caption as the prompt (seed 002 Table 9: text + audio)")
    ap.add_argument("--ff-etas", default="1", help="audio guidance of the motion and FF-Attn rows (seed 002 Table 7 "
                    "at the sweep's best eta)")
    ap.add_argument("--redo", action="append", default=[], help="a row label to measure again (repeatable)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "animate_sync.json")
    args = ap.parse_args()

    from avcli.manifest import resolve_bundle
    from export.files import sha256_file

    base = Path(args.bundle) if args.bundle else resolve_bundle(None)
    test_clips = sorted(args.test.glob("*.mp4"))[: args.n]
    train_clips = sorted(args.train.glob("*.mp4"))[: args.train_clips]
    if args.sync_model is not None:
        args.sync_model.parent.mkdir(parents=True, exist_ok=True)
    model, test, report = _classifiers(args, train_clips, test_clips)
    prior = json.loads(args.json.read_text()) if args.json.exists() else {}
    rows = {r["row"]: r for r in prior.get("rows", []) if prior.get("clips") == len(test_clips)}
    redo = set(args.redo)
    with tempfile.TemporaryDirectory() as td:
        plan = [("audio only", base, False, None), ("audio + first frame (mode a)", base, True, None),
                ("mode a + FF-Attn, training-free", _with_first_frame_attn(base, Path(td) / "ff0"), True, None)]
        if args.eta_bundle is not None:
            plan += [(f"mode a, eta = {e:g} (audio dropout 0.1)", args.eta_bundle, True, e)
                     for e in (float(x) for x in args.etas.split(","))]
        for e in (float(x) for x in args.ff_etas.split(",")):
            tail = "" if e == 1 else f", eta = {e:g}"
            if args.motion_bundle is not None:
                plan.append((f"mode a, motion trained, no FF-Attn{tail}", args.motion_bundle, True, e))
            if args.ff_bundle is not None:
                plan.append((f"mode a + FF-Attn (trained){tail}", args.ff_bundle, True, e))
            if args.given_bundle is not None:
                plan.append((f"mode b: FF-Attn + first frame given clean (trained){tail}", args.given_bundle, True, e))
                if args.caption_rows:
                    plan.append((f"mode b (trained){tail}, caption as prompt", args.given_bundle, True, e))
            if args.ffconv_bundle is not None:
                what = "FF-Conv + FF-Attn" if json.loads((args.ffconv_bundle / "bundle.json").read_text())[
                    "joint"].get("video_first_frame_attn") else "FF-Conv"
                plan.append((f"mode b: {what} + first frame given clean (trained){tail}", args.ffconv_bundle, True, e))
        res = {"command": "python benchmarks/animate_sync.py " + " ".join(sys.argv[1:]), **report,
               "relsync_ground_truth": 0.5, "clips": len(test_clips),
               # which training of the classifiers scored a row: a row kept from a run with another one is marked
               "sync_model_sha256": sha256_file(args.sync_model)[:16] if args.sync_model else None}
        fit = prior.get("first_frame_fit") if prior.get("clips") == len(test_clips) else None
        res["first_frame_fit"] = fit if fit and "first-frame fit" not in redo else first_frame_fit_curve(base,
                                                                                                        test_clips)
        for label, bundle, image, eta in plan:
            if label in rows and label not in redo:
                continue
            rows[label] = run_row(label, bundle, image, eta, model, test_clips, test, "caption as prompt" in label)
            rows[label]["scored_with"] = res["sync_model_sha256"]
            res["rows"] = [rows[k] for k in dict.fromkeys([p[0] for p in plan] + list(rows)) if k in rows]
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=1) + "\n")  # after every row: a cut run keeps what it has
        res["rows"] = [rows[k] for k in dict.fromkeys([p[0] for p in plan] + list(rows)) if k in rows]
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
