"""Peak signal-to-noise ratio of 8-bit pictures: the one formula animate, its benchmarks and the decoder table use."""

from __future__ import annotations

import numpy as np


def psnr_db(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of two uint8 (or 0..255 float) arrays of one shape; inf when equal. `mask` (boolean, the arrays'
    shape without the channel axis) restricts it to some pixels."""
    d = a.astype(np.float64) - b.astype(np.float64)
    if mask is not None:
        d = d[mask]
    mse = float(np.mean(d**2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
