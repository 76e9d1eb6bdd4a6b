"""Paired clips of a data folder, decoded once at the bundle's geometry and cached on disk.

Each file is cut into windows of the bundle's duration (at least one; short files are padded), resampled to its
fps, frame size and sample rate through ffmpeg. The cache key includes file identity and geometry, so changing
either re-decodes; later epochs (and later training stages) skip ffmpeg entirely.
"""

from __future__ import annotations

import hashlib
import os
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avcli.errors import UsageError
from avcli.models.joint import Geometry


@dataclass
class ClipSet:
    frames: np.ndarray  # (N, F, H, W, 3) uint8
    audio: np.ndarray  # (N, S) float32, S = mel_frames * hop
    captions: list[str]
    files: list[str]
    events: list[list[float] | None]

    def __len__(self) -> int:
        return len(self.captions)


def _key(path: Path, geo: Geometry) -> str:
    st = path.stat()
    raw = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, geo.fps, list(geo.frame_size),
                      geo.sample_rate, geo.duration, geo.frames, geo.samples])
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n]
    pad = [(0, n - len(x))] + [(0, 0)] * (x.ndim - 1)
    return np.pad(x, pad, mode="edge" if x.ndim > 1 and len(x) else "constant")


def load_clips(data_dir: str | Path, geo: Geometry, cache_dir: str | Path | None = None, limit: int | None = None,
               progress: bool = True) -> ClipSet:
    from avcli.data.folder import read_folder
    from avcli.media.ffmpeg import probe, read_audio, read_video

    data_dir = Path(data_dir)
    items = read_folder(data_dir)
    if limit:
        items = items[:limit]
    cache = Path(cache_dir) if cache_dir else data_dir / ".avgen_cache"
    cache.mkdir(parents=True, exist_ok=True)
    frames, audio, captions, files, events = [], [], [], [], []
    from rich.progress import track

    for item in track(items, description="decoding clips", disable=not progress, transient=True):
        path = Path(item.path)
        key = _key(path, geo)
        cfile = cache / f"{key}.npz"
        if cfile.exists():
            with np.load(cfile) as z:
                fr, au, starts = z["frames"], z["audio"], z["starts"]
        else:
            info = probe(path)
            if not info.has_audio:
                raise UsageError(f"{path}: no audio stream; paired training needs video with sound")
            n_win = max(1, int(info.duration_s // geo.duration))
            starts = np.arange(n_win) * geo.duration
            fr = np.stack([_fit(read_video(path, geo.fps, geo.frame_size, "crop", s, geo.duration), geo.frames)
                           for s in starts])
            au = np.stack([_fit(read_audio(path, geo.sample_rate, s, geo.duration).astype(np.float32), geo.samples)
                           for s in starts])
            tmp = cache / f"{key}.{os.getpid()}.tmp.npz"  # unique: parallel stages may decode the same file
            np.savez(tmp, frames=fr, audio=au, starts=starts)
            tmp.replace(cfile)
        for w in range(len(fr)):
            frames.append(fr[w])
            audio.append(au[w])
            captions.append(item.caption)
            files.append(str(path))
            ev = getattr(item, "events", None)
            events.append([t - float(starts[w]) for t in ev if 0 <= t - float(starts[w]) < geo.duration]
                          if ev is not None else None)
    if not frames:
        raise UsageError(f"{data_dir}: no usable clips")
    return ClipSet(np.stack(frames), np.stack(audio), captions, files, events)
