"""Paired clips of a data folder, decoded once at the bundle's geometry and cached on disk.

Each file is cut into windows of the bundle's duration (at least one; short files are padded), resampled to its
fps, frame size and sample rate through ffmpeg. The cache key includes file identity and geometry, so changing
either re-decodes; later epochs (and later training stages) skip ffmpeg entirely.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avcli.errors import UsageError
from avcli.models.joint import Geometry


@dataclass
class ClipSet:
    frames: np.ndarray  # (N, F, H, W, 3) uint8
    audio: np.ndarray  # (N, S) float32, S = mel_frames * hop
    captions: list[str]
    files: list[str]
    events: list[list[float] | None]
    weights: list[float]  # each window's file's captions.jsonl "weight" (1 unless set)

    def __len__(self) -> int:
        return len(self.captions)


def uniform_or(weights: torch.Tensor) -> torch.Tensor | None:
    """Window sampling weights, or None when they are all 1 (the uniform draw)."""
    return None if bool((weights == 1).all()) else weights


def weighted_windows(weights: torch.Tensor | None) -> int:
    """How many windows weigh other than 1 (what a training record reports)."""
    return 0 if weights is None else int((weights != 1).sum())


def draw_windows(weights: torch.Tensor | None, n: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """`batch` window indices, with replacement: uniform without weights (torch.randint, the stream of runs before
    weights existed), else in proportion to them."""
    if weights is None:
        return torch.randint(0, n, (batch,), generator=gen)
    return torch.multinomial(weights, batch, replacement=True, generator=gen)


def clip_key(path: Path, geo: Geometry) -> str:
    """File identity (path, size, mtime) + geometry: what a decoded window depends on."""
    st = path.stat()
    raw = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, geo.fps, list(geo.frame_size),
                      geo.sample_rate, geo.duration, geo.frames, geo.samples])
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n]
    pad = [(0, n - len(x))] + [(0, 0)] * (x.ndim - 1)
    return np.pad(x, pad, mode="edge" if x.ndim > 1 and len(x) else "constant")


def decode_file(path: Path, geo: Geometry, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One file's windows: frames (W, F, H, W, 3) uint8, audio (W, S) float32 and window starts (W,) in seconds."""
    from avcli.media.ffmpeg import probe, read_audio, read_video

    cfile = cache / f"{clip_key(path, geo)}.npz"
    if cfile.exists():
        with np.load(cfile) as z:
            return z["frames"], z["audio"], z["starts"]
    info = probe(path)
    if not info.has_audio:
        raise UsageError(f"{path}: no audio stream; paired training needs video with sound")
    n_win = max(1, int(info.duration_s // geo.duration))
    starts = np.arange(n_win) * geo.duration
    fr = np.stack([_fit(read_video(path, geo.fps, geo.frame_size, "crop", s, geo.duration), geo.frames)
                   for s in starts])
    au = np.stack([_fit(read_audio(path, geo.sample_rate, s, geo.duration).astype(np.float32), geo.samples)
                   for s in starts])
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f"{cfile.stem}.{os.getpid()}.tmp.npz"  # unique: parallel stages may decode the same file
    np.savez(tmp, frames=fr, audio=au, starts=starts)
    tmp.replace(cfile)
    return fr, au, starts


def load_clips(data_dir: str | Path, geo: Geometry, cache_dir: str | Path | None = None, limit: int | None = None,
               progress: bool = True) -> ClipSet:
    from rich.progress import track

    from avcli.data.folder import read_folder

    data_dir = Path(data_dir)
    items = read_folder(data_dir)
    if limit:
        items = items[:limit]
    cache = Path(cache_dir) if cache_dir else data_dir / ".avgen_cache"
    frames, audio, captions, files, events, weights = [], [], [], [], [], []
    for item in track(items, description="decoding clips", disable=not progress, transient=True):
        path = Path(item.path)
        fr, au, starts = decode_file(path, geo, cache)
        for w in range(len(fr)):
            frames.append(fr[w])
            audio.append(au[w])
            captions.append(item.caption)
            weights.append(item.weight)
            files.append(str(path))
            ev = getattr(item, "events", None)
            events.append([t - float(starts[w]) for t in ev if 0 <= t - float(starts[w]) < geo.duration]
                          if ev is not None else None)
    if not frames:
        raise UsageError(f"{data_dir}: no usable clips")
    return ClipSet(np.stack(frames), np.stack(audio), captions, files, events, weights)
