"""Contacts seen in the frames alone, for the "hits" domain (a side view: an object over a surface band).

Independent of every model: it reads only pixels, so the onsets of a generated soundtrack can be checked against
the impacts visible in the generated frames (`avgen eval --metrics contact`), with real clips as the reference.

Per clip, at 64 px (frames are resized):
  surface   the first strong horizontal edge, from the top, in the lower part of the median frame (a two-row colour
            jump; the background above is a smooth vertical gradient, the surface band starts abruptly);
  jitter    each frame's vertical camera shake undone by the row shift that best matches the median's row profile;
  object    pixels far from their row's own median colour (the background is uniform along a row and the object
            covers few columns); rows lit across most of the width are edge artefacts, not the object;
  contact   the object's lowest row within `gap_px` of the surface; a contact *starts* on a frame whose previous
            frame was in the air, so an object that comes to rest counts once.
On synthesized clips it finds the true impacts (tests/test_contact.py).
"""

from __future__ import annotations

import numpy as np

SIZE = 64
AIR = 99  # the gap of a frame with no object found


def _resized(frames: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames]).astype(np.float32)


def surface_row(median: np.ndarray) -> int:
    """Row index of the surface band's top in a (H, W, 3) median frame."""
    h = median.shape[0]
    rows = median.mean(axis=1)  # (H, 3)
    jump2 = np.linalg.norm(rows[2:] - rows[:-2], axis=1)  # tolerant of a row of blur
    lo, hi = int(h * 0.55), int(h * 0.9)
    band = jump2[lo:hi]
    k = lo + int(np.nonzero(band >= 0.5 * band.max())[0][0])
    jump1 = np.linalg.norm(np.diff(rows, axis=0), axis=1)
    return k + 1 + int(np.argmax(jump1[k:k + 2]))


def _unshake(frames: np.ndarray, median: np.ndarray, max_shift: int = 3) -> np.ndarray:
    prof_m = median.mean(axis=1)[max_shift + 1:-max_shift - 1]
    out = frames.copy()
    for i, f in enumerate(frames):
        prof = f.mean(axis=1)
        errs = [np.abs(np.roll(prof, -s, 0)[max_shift + 1:-max_shift - 1] - prof_m).mean()
                for s in range(-max_shift, max_shift + 1)]
        s = int(np.argmin(errs)) - max_shift
        if s:
            out[i] = np.roll(f, -s, 0)
    return out


def contact_gaps(frames: np.ndarray, size: int = SIZE, threshold: float = 60.0) -> tuple[np.ndarray, int]:
    """(F,) pixels between the object's lowest row and the surface (AIR where no object), and the surface row."""
    f = _resized(frames, size)
    median = np.median(f, axis=0)
    surf = surface_row(median)
    f = _unshake(f, median)
    mask = np.abs(f - np.median(f, axis=2, keepdims=True)).sum(-1) > threshold
    mask[:, surf - 1:] = False
    gaps = np.full(len(f), AIR)
    for i, m in enumerate(mask):
        count = m.sum(1)
        rows = np.nonzero((count >= 2) & (count <= 0.4 * size))[0]
        if len(rows):
            gaps[i] = surf - 1 - rows.max()
    return gaps, surf


def frame_contacts(frames: np.ndarray, fps: float, gap_px: int = 2) -> np.ndarray:
    """(F, H, W, 3) uint8 frames -> the times (s) at which a contact with the surface starts."""
    if len(frames) == 0:
        return np.zeros(0)
    gaps, _ = contact_gaps(frames)
    touching = gaps <= gap_px
    starts = touching & ~np.concatenate([[False], touching[:-1]])
    return np.nonzero(starts)[0] / float(fps)


def _silent_stretch(audio: np.ndarray, sr: int, first_event: float, guard: float, min_seconds: float):
    end = int((first_event - guard) * sr)
    return None if end < int(min_seconds * sr) else np.asarray(audio[:end], dtype=np.float64)


def noise_floor_db(audio: np.ndarray, sr: int, first_event: float, guard: float = 0.05,
                   min_seconds: float = 0.3) -> float | None:
    """RMS level (dBFS) of the stretch before the first impact (ending `guard` s before it), where a clip of this
    domain is silent but for its background; None when that stretch is shorter than `min_seconds`."""
    seg = _silent_stretch(audio, sr, first_event, guard, min_seconds)
    return None if seg is None else float(20 * np.log10(np.sqrt(np.mean(seg**2)) + 1e-12))


def buzz(audio: np.ndarray, sr: int, first_event: float, guard: float = 0.05, min_seconds: float = 0.3,
         lags_ms: tuple[float, float] = (2.5, 20.0)) -> float | None:
    """How periodic the silent stretch before the first impact is: the largest normalised autocorrelation at lags of
    2.5-20 ms (a 50-400 Hz buzz). Background noise scores near 0 (real clips ~0.03); a pulse train at the
    vocoder's hop (10 ms at 16 kHz / 160) scores high. None when the stretch is too short."""
    seg = _silent_stretch(audio, sr, first_event, guard, min_seconds)
    if seg is None:
        return None
    seg = seg - seg.mean()
    spec = np.fft.rfft(seg, 2 * len(seg))
    ac = np.fft.irfft(np.abs(spec) ** 2)[: len(seg)]
    if ac[0] <= 0:
        return 0.0
    lo, hi = int(lags_ms[0] * sr / 1000), int(lags_ms[1] * sr / 1000)
    return float(ac[lo:hi].max() / ac[0])
