"""The one way metrics take a signal in: float32 mono (channels averaged), resampled to the rate a metric works at,
padded to a minimum length where a transform needs whole frames."""

from __future__ import annotations

import numpy as np


def as_mono(audio, sr: int, target_sr: int | None = None, min_len: int = 0) -> np.ndarray:
    """audio float (N,) or (N, C) at sr -> float32 (M,) at target_sr (sr when None), zero-padded to min_len."""
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim == 2:  # (N, C) -> mono
        y = y.mean(axis=1)
    if target_sr is not None and sr != target_sr and y.size:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=target_sr)
    if len(y) < min_len:
        y = np.pad(y, (0, min_len - len(y)))
    return y
