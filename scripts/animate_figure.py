"""The README's animate picture: one held-out clip's real frames, then `avgen animate` of its audio with its first
frame as the picture, once per bundle (mode a, mode b, ...), with the true impacts marked under the strips.

    .venv/bin/python scripts/animate_figure.py --test work/v2/hits-test --clip 3 --out docs/animate_0.png \\
        --row "v2 bundle, mode a=avcli/bundles/hits-demo" --row "mode b, eta 8, caption=work/animate/ffg/bundle@8+caption"
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _row(spec: str) -> tuple[str, str, float | None, bool]:
    """LABEL=BUNDLE[@ETA][+caption]: +caption gives the clip's caption as the prompt."""
    label, _, rest = spec.partition("=")
    caption = rest.endswith("+caption")
    bundle, _, eta = rest.removesuffix("+caption").partition("@")
    if not label or not bundle:
        raise SystemExit(f"--row wants 'LABEL=BUNDLE[@ETA][+caption]', got {spec!r}")
    return label, bundle, float(eta) if eta else None, caption


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", type=Path, required=True, help="held-out clips (with events.jsonl)")
    ap.add_argument("--clip", type=int, default=3)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--row", action="append", default=[], help="LABEL=BUNDLE[@ETA] (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "animate_0.png")
    args = ap.parse_args()

    from animate_sync import _write_png  # noqa: E402  (benchmarks/, on the path below)

    from avcli.media.ffmpeg import read_video
    from avcli.pipelines.animate import AnimateRequest
    from avcli.pipelines.pipeline import JointPipeline

    clip = sorted(args.test.glob("*.mp4"))[args.clip]
    events = {json.loads(line)["file"]: json.loads(line) for line in (args.test / "events.jsonl").read_text()
              .splitlines() if line.strip()}.get(clip.name, {})
    strips, labels, fps = [], [], None
    with tempfile.TemporaryDirectory() as td:
        caps = [json.loads(line) for line in (args.test / "captions.jsonl").read_text().splitlines() if line.strip()]
        caption = {r["file"]: r["caption"] for r in caps}.get(clip.name, "")
        for label, bundle, eta, with_caption in (_row(r) for r in args.row):
            pipe = JointPipeline.from_bundle(bundle, backend="torch", quiet=True)
            geo = pipe.geometry()
            fps = geo.fps
            if not strips:
                real = read_video(clip, geo.fps, geo.frame_size)[: args.frames]
                strips.append(real)
                labels.append("real clip")
                png = _write_png(Path(td) / "first.png", real[0])
            out = pipe.animate(clip, AnimateRequest(prompt=caption if with_caption else "", seed=args.clip,
                                                    image=str(png), audio_guidance=eta))
            strips.append(out.frames[: args.frames])
            labels.append(f"{label} (frame 0 {out.first_frame_psnr_db:.1f} dB)")
    n = min(len(s) for s in strips)
    fig, axes = plt.subplots(len(strips), 1, figsize=(n * 0.75, 0.95 * len(strips) + 0.5), dpi=100, squeeze=False)
    for ax, s, label in zip(axes[:, 0], strips, labels):
        ax.imshow(np.concatenate(list(s[:n]), axis=1), interpolation="nearest")
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        w = s.shape[2]
        ax.set_xticks([(i + 0.5) * w for i in range(n)], [f"{i / fps:.2f}" for i in range(n)], fontsize=6)
        for t in events.get("events", []):
            if t * fps < n:
                ax.axvline(t * fps * w, color="tab:red", lw=1.0)
    axes[-1, 0].set_xlabel("time (s); red lines: the true impacts of the real clip's audio", fontsize=8)
    fig.suptitle(f"avgen animate of {clip.name}'s audio, its first frame given (caption: {caption!r})", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    plt.close(fig)
    print(args.out)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    main()
