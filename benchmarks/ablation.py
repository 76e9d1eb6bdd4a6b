"""Seed 000 Table 1 on our domain: cross-attention connector vs CMC-PE, and the timestep-adjustment gamma sweep.

Generates N clips per setting from the held-out captions of a synthetic test folder (same seeds for every
setting), writes them as mp4 (+ captions.jsonl), then scores each folder with avcli.metrics:
AV-Align (seed-000 and official variants), audio/video Fréchet distances against the real test clips.
Generated clips have no ground-truth event times, so onset F1 comes from the foley task on the same model and
setting: the held-out test videos are re-sounded (video known) and the onsets of the generated audio are scored
against the true impact times (+-1 video frame), next to AV-Align of that audio with the real video.

    .venv/bin/python benchmarks/ablation.py --cmcpe work/bundle --xattn work/xattn/bundle \
        --test work/hits-test --n 100 --steps 10 --solver dpmpp2m --out benchmarks/results/ablation
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

GAMMAS = (1.0, 1.25, 1.5, 1.75, 2.0)


def generate_folder(model, captions: list[str], out: Path, gamma: float, steps: int, solver: str, batch: int,
                    seed0: int = 0) -> float:
    """One clip per caption through JointPipeline.generate_batch (clip i: seed seed0 + i, what `avgen generate
    --seed` gives for it), `batch` captions per network call; existing clips are kept."""
    from avcli.media.ffmpeg import write_video
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    out.mkdir(parents=True, exist_ok=True)
    pipe = JointPipeline.from_model(model)
    names = [f"clip_{i:05d}.mp4" for i in range(len(captions))]
    todo = [i for i, n in enumerate(names) if not (out / n).exists()]
    reqs = [GenerateRequest(captions[i], steps=steps, solver=solver, gamma=gamma, seed=seed0 + i) for i in todo]
    t0 = time.perf_counter()
    pipe.generate_batch(reqs, batch, on_clip=lambda k, c: write_video(out / names[todo[k]], c.frames, c.fps, c.audio,
                                                                      c.sample_rate, overwrite=True))
    rows = [{"file": n, "caption": c} for n, c in zip(names, captions)]
    (out / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return time.perf_counter() - t0


def foley_scores(model, test: Path, n: int, gamma: float, steps: int, solver: str) -> dict:
    """Onset P/R/F1 of foley audio on held-out test videos against their true impact times, and its AV-Align."""
    import avcli.metrics as M
    from avcli.media.ffmpeg import read_video
    from avcli.pipelines.foley import FoleyRequest
    from avcli.pipelines.pipeline import JointPipeline

    geo = model.geometry()
    rows = [json.loads(line) for line in (test / "events.jsonl").read_text().splitlines() if line.strip()][:n]
    pipe = JointPipeline.from_model(model)
    accs, aligns = [], []
    t0 = time.perf_counter()
    for i, r in enumerate(rows):
        audio = pipe.foley(test / r["file"], FoleyRequest(steps=steps, solver=solver, gamma=gamma, seed=i)).audio
        accs.append(M.onset_accuracy(M.impact_onsets(audio, geo.sample_rate), r["events"], tolerance=1.0 / geo.fps))
        frames = read_video(test / r["file"], geo.fps, geo.frame_size)
        seed_onsets = M.audio_onsets(audio, geo.sample_rate)  # seed 000's detector for its AV-Align
        aligns.append(M.av_align_seed000(seed_onsets, M.video_peaks(frames, geo.fps), geo.fps))
    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    return {"foley_onset_precision": mean([a.precision for a in accs]), "foley_onset_recall": mean([a.recall for a in accs]),
            "foley_onset_f1": mean([a.f1 for a in accs]), "foley_av_align_seed000": mean(aligns),
            "foley_seconds": time.perf_counter() - t0}


def score_folder(folder: Path, real: Path, fps: float, sr: int) -> dict:
    """AV-Align (seed-000 and official variants) per clip, and Fréchet distances against the real clips."""
    import avcli.metrics as ava
    import avcli.metrics as frechet
    from avcli.media.ffmpeg import read_audio, read_video

    def load(dirpath: Path):
        clips = []
        for f in sorted(dirpath.glob("clip_*.mp4")):
            frames = read_video(f, fps, (64, 64))
            audio = read_audio(f, sr)
            clips.append((frames, audio))
        return clips

    gen, ref = load(folder), load(real)
    scores = {"seed000": [], "official": []}
    for frames, audio in gen:
        A = ava.audio_onsets(audio, sr)
        V = ava.video_peaks(frames, fps)
        scores["seed000"].append(ava.av_align_seed000(A, V, fps))
        scores["official"].append(ava.av_align_official(A, V, fps))
    fa = frechet.frechet_distance(np.stack([frechet.audio_features(a, sr) for _, a in gen]),
                                  np.stack([frechet.audio_features(a, sr) for _, a in ref]))
    fv = frechet.frechet_distance(np.stack([frechet.video_features(f) for f, _ in gen]),
                                  np.stack([frechet.video_features(f) for f, _ in ref]))
    return {"n": len(gen), "av_align_seed000": float(np.mean(scores["seed000"])),
            "av_align_official": float(np.mean(scores["official"])), "fd_logmel": float(fa), "fd_colourflow": float(fv)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cmcpe", required=True)
    ap.add_argument("--xattn", default=None)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--solver", default="dpmpp2m")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--gammas", type=float, nargs="*", default=list(GAMMAS))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ablation"))
    ap.add_argument("--score-only", action="store_true")
    ap.add_argument("--no-foley", action="store_true", help="Skip the foley onset-F1 column.")
    ap.add_argument("--foley-only", action="store_true",
                    help="Only the foley columns (no text-to-video generation, no AV-Align/FD of generated clips).")
    ap.add_argument("--name", default="ablation", help="Result files: benchmarks/results/NAME.json and NAME.md.")
    ap.add_argument("--foley-gammas", type=float, nargs="*", default=None,
                    help="Score foley only at these gammas (default: every setting); it costs as much as generating.")
    args = ap.parse_args()
    from avcli.models.bundle import load_bundle

    caps = [json.loads(line)["caption"] for line in (args.test / "captions.jsonl").read_text().splitlines()
            if line.strip()][: args.n]
    settings = [("xattn", args.xattn, 1.0)] if args.xattn else []
    settings += [("cmcpe", args.cmcpe, g) for g in args.gammas]
    results = []
    for mode, bundle, gamma in settings:
        model = load_bundle(bundle)
        folder = args.out / f"{mode}_g{gamma:g}"
        seconds = None
        if not args.score_only and not args.foley_only:
            seconds = generate_folder(model, caps, folder, gamma, args.steps, args.solver, args.batch)
        geo = model.geometry()
        row = {"mode": mode, "gamma": gamma, "steps": args.steps, "solver": args.solver, "bundle": str(bundle)}
        if not args.foley_only:
            row.update(generate_seconds=seconds, **score_folder(folder, args.test, geo.fps, geo.sample_rate))
        if not args.no_foley and (args.foley_gammas is None or gamma in args.foley_gammas):
            row.update(foley_scores(model, args.test, args.n, gamma, args.steps, args.solver))
        print(json.dumps(row), flush=True)
        results.append(row)
    geo = load_bundle(args.cmcpe).geometry()
    real = None if args.foley_only else score_folder(args.test, args.test, geo.fps, geo.sample_rate)
    from avcli.metrics.onsets import IMPACT_ONSET_DETECTOR

    summary = {"settings": results, "real_test_clips": real, "n_captions": len(caps),
               "onset_detector": IMPACT_ONSET_DETECTOR,
               "command": "python benchmarks/ablation.py " + " ".join(sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out.parent / f"{args.name}.json").write_text(json.dumps(summary, indent=1))
    lines = ["| connector | gamma | AV-Align (seed 000) | AV-Align (official) | FD-logmel | FD-colourflow "
             "| foley onset F1 | foley AV-Align |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        fol = (f"{r['foley_onset_f1']:.3f} | {r['foley_av_align_seed000']:.3f}" if "foley_onset_f1" in r
               else "- | -")
        if args.foley_only:
            lines.append(f"| {r['mode']} | {r['gamma']:g} | - | - | - | - | {fol} |")
            continue
        lines.append(f"| {r['mode']} | {r['gamma']:g} | {r['av_align_seed000']:.3f} | {r['av_align_official']:.3f} "
                     f"| {r['fd_logmel']:.2f} | {r['fd_colourflow']:.2f} | {fol} |")
    if real is not None:
        lines.append(f"| real test clips | - | {real['av_align_seed000']:.3f} | {real['av_align_official']:.3f} "
                     f"| 0 | 0 | - | - |")
    (args.out.parent / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
