"""Make the README's pictures: frame strips and spectrograms of generated clips (and of real synthetic clips).

    .venv/bin/python scripts/make_figures.py --out docs/ --prompts "a red ball bouncing on a metal plate" ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DEFAULT_PROMPTS = [
    "a red ball bouncing on a metal plate",
    "a green block dropped onto a wooden table",
    "a blue ball bouncing on a drum",
]


def figure(frames: np.ndarray, audio: np.ndarray, sr: int, fps: float, title: str, path: Path,
           events: list[float] | None = None, events_label: str = "true impacts") -> None:
    import librosa

    n = 8
    idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
    fig = plt.figure(figsize=(12, 4.2), dpi=100)
    gs = fig.add_gridspec(3, n, height_ratios=[1.2, 0.6, 1.0])
    for j, i in enumerate(idx):
        ax = fig.add_subplot(gs[0, j])
        ax.imshow(frames[i])
        ax.set_title(f"{i / fps:.2f} s", fontsize=8)
        ax.axis("off")
    t = np.arange(len(audio)) / sr
    ax = fig.add_subplot(gs[1, :])
    ax.plot(t, audio, lw=0.4, color="k")
    ax.set_xlim(0, t[-1])
    ax.set_yticks([])
    from avcli.metrics.onsets import impact_onsets

    for o in impact_onsets(audio, sr):  # the onsets the onset F1 and contact agreement score
        ax.axvline(o, color="tab:red", lw=0.8, alpha=0.7)
    for e in events or []:
        ax.axvline(e, color="tab:blue", lw=0.8, ls="--", alpha=0.7)
    ax = fig.add_subplot(gs[2, :])
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=sr, n_mels=64, hop_length=160))
    ax.imshow(mel, origin="lower", aspect="auto", extent=[0, t[-1], 0, 64], cmap="magma")
    ax.set_xlabel("time (s)   red: detected audio onsets" + (f"   blue dashed: {events_label}" if events is not None else ""))
    ax.set_ylabel("mel")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--prompts", nargs="*", default=DEFAULT_PROMPTS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", type=Path, default=None, help="also draw the first clip of a synthetic data folder")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from avcli.metrics.contact import frame_contacts
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    pipe = JointPipeline.from_bundle(args.bundle, backend="torch")
    for k, prompt in enumerate(args.prompts):
        clip = pipe.generate(GenerateRequest(prompt, seed=args.seed + k))[0]
        path = args.out / f"generated_{k}.png"
        contacts = frame_contacts(clip.frames, clip.fps).tolist()  # read from the generated frames alone
        figure(clip.frames, clip.audio, clip.sample_rate, clip.fps, f"generated: “{prompt}” (seed {clip.seed})", path,
               contacts, "contacts seen in the frames")
        print(path)
    if args.real:
        import json

        from avcli.media.ffmpeg import read_audio, read_video

        geo = pipe.geometry()
        rows = [json.loads(line) for line in (args.real / "events.jsonl").read_text().splitlines() if line.strip()]
        caps = {json.loads(line)["file"]: json.loads(line)["caption"]
                for line in (args.real / "captions.jsonl").read_text().splitlines() if line.strip()}
        row = rows[0]
        f = args.real / row["file"]
        frames = read_video(f, geo.fps, geo.frame_size, "crop", 0.0, geo.duration)
        audio = read_audio(f, geo.sample_rate, 0.0, geo.duration)
        path = args.out / "real_0.png"
        figure(frames, audio, geo.sample_rate, geo.fps, f"real synthetic clip: “{caps.get(row['file'], '')}”", path,
               row.get("events"))
        print(path)
        # the same held-out video re-sounded by `avgen foley` (its own sound never seen): onsets vs true impacts
        from avcli.pipelines.foley import FoleyRequest

        sound = pipe.foley(f, FoleyRequest(seed=args.seed)).audio
        path = args.out / "foley_0.png"
        figure(frames, sound, geo.sample_rate, geo.fps, f"avgen foley on the held-out video above (seed {args.seed})",
               path, row.get("events"))
        print(path)


if __name__ == "__main__":
    main()
