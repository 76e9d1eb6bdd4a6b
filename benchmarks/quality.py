"""Quality of the demo bundle on held-out synthetic clips (the README's quality table).

1. generate: one clip per held-out caption with the default settings of `avgen generate` (seed = index);
2. foley: the held-out videos (never seen in training) re-sounded with `avgen foley`'s pipeline;
3. scores: AV-Align (seed-000 variant and the official one) of generated clips, of foley outputs, and of the real
   clips themselves; onset accuracy of foley audio against the true impact times; prompt adherence of generated
   clips (object colour from frames, material from audio) by small classifiers trained on the training clips.

    .venv/bin/python benchmarks/quality.py --bundle hits-demo --train work/hits --test work/hits-test --n 60
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/quality"))
    ap.add_argument("--skip-generate", action="store_true")
    args = ap.parse_args()

    from avcli.media.ffmpeg import mux_audio, read_audio, read_video, write_video
    import avcli.metrics as adherence
    import avcli.metrics as ava
    import avcli.metrics as ons
    from avcli.models.bundle import load_bundle
    from avcli.pipelines.foley import FoleyRequest, foley
    from avcli.pipelines.generate import GenerateRequest, generate

    model = load_bundle(args.bundle)
    geo = model.geometry()
    fps, sr = geo.fps, geo.sample_rate
    caps = _rows(args.test / "captions.jsonl")[: args.n]
    events = {r["file"]: r for r in _rows(args.test / "events.jsonl")}
    gen_dir, foley_dir = args.out / "generate", args.out / "foley"
    gen_dir.mkdir(parents=True, exist_ok=True)
    foley_dir.mkdir(parents=True, exist_ok=True)
    t_gen = t_foley = 0.0
    if not args.skip_generate:
        for i, row in enumerate(caps):
            out = gen_dir / row["file"]
            if not out.exists():
                t0 = time.perf_counter()
                clip = generate(model, GenerateRequest(row["caption"], seed=i))[0]
                write_video(out, clip.frames, clip.fps, clip.audio, clip.sample_rate)
                t_gen += time.perf_counter() - t0
            fout = foley_dir / row["file"]
            if not fout.exists():
                t0 = time.perf_counter()
                audio = foley(model, args.test / row["file"], FoleyRequest(seed=i))
                mux_audio(args.test / row["file"], audio, sr, fout)
                t_foley += time.perf_counter() - t0
        (gen_dir / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in caps))

    def align(path: Path) -> dict:
        frames, audio = read_video(path, fps, geo.frame_size), read_audio(path, sr)
        A, V = ava.audio_onsets(audio, sr), ava.video_peaks(frames, fps)
        return {"seed000": ava.av_align_seed000(A, V, fps), "official": ava.av_align_official(A, V, fps)}

    res: dict = {"n": len(caps), "bundle": str(model.bundle_path), "fps": fps, "sample_rate": sr}
    for name, folder in (("real", args.test), ("generate", gen_dir), ("foley", foley_dir)):
        scores = [align(folder / r["file"]) for r in caps]
        res[f"av_align_{name}"] = {k: float(np.mean([s[k] for s in scores])) for k in ("seed000", "official")}
    # onset accuracy of foley audio (and of the real audio, as a ceiling) against the true impact times
    for name, folder in (("real", args.test), ("foley", foley_dir)):
        accs = [ons.onset_accuracy(ava.audio_onsets(read_audio(folder / r["file"], sr), sr),
                                   events[r["file"]]["events"], tolerance=1.0 / fps) for r in caps]
        res[f"onsets_{name}"] = {k: float(np.mean([getattr(a, k) for a in accs])) for k in ("precision", "recall", "f1")}
    # prompt adherence: classifiers trained on the training clips, applied to generated clips
    train_rows = _rows(args.train / "events.jsonl")[:200]
    tf = [read_video(args.train / r["file"], fps, geo.frame_size) for r in train_rows]
    ta = [read_audio(args.train / r["file"], sr) for r in train_rows]
    clf = adherence.train_adherence_classifiers(tf, ta, [r["attrs"]["colour"] for r in train_rows],
                                                [r["attrs"]["material"] for r in train_rows], sr=sr)
    want = [events[r["file"]]["attrs"] for r in caps]
    got_c = [clf.predict_colour(read_video(gen_dir / r["file"], fps, geo.frame_size)) for r in caps]
    got_m = [clf.predict_material(read_audio(gen_dir / r["file"], sr), sr) for r in caps]
    real_c = [clf.predict_colour(read_video(args.test / r["file"], fps, geo.frame_size)) for r in caps]
    real_m = [clf.predict_material(read_audio(args.test / r["file"], sr), sr) for r in caps]
    res["adherence_generate"] = {"colour": float(np.mean([g == w["colour"] for g, w in zip(got_c, want)])),
                                 "material": float(np.mean([g == w["material"] for g, w in zip(got_m, want)]))}
    res["adherence_real"] = {"colour": float(np.mean([g == w["colour"] for g, w in zip(real_c, want)])),
                             "material": float(np.mean([g == w["material"] for g, w in zip(real_m, want)]))}
    res["seconds"] = {"generate_total": t_gen, "foley_total": t_foley}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (args.out.parent / "quality.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
