"""Shared event-time helpers: tolerance checks and greedy one-to-one matching (times in seconds)."""

from __future__ import annotations

import warnings

import numpy as np

# float times built as k / fps must still count as "within one frame"
EPS = 1e-6


def as_times(x) -> np.ndarray:
    """Any sequence of times -> sorted float64 (N,)."""
    return np.sort(np.asarray(x, dtype=np.float64).reshape(-1))


def has_neighbour(src, dst, tol: float) -> np.ndarray:
    """bool (len(src),): whether each src time has at least one dst time within +-tol (many-to-one allowed)."""
    src, dst = as_times(src), as_times(dst)
    if len(src) == 0 or len(dst) == 0:
        return np.zeros(len(src), dtype=bool)
    d = np.abs(src[:, None] - dst[None, :])  # (len(src), len(dst))
    return (d <= tol + EPS).any(axis=1)


def greedy_match(a, b, tol: float) -> list[tuple[int, int]]:
    """One-to-one matching of sorted a and b within +-tol: closest pairs first, each time used at most once.

    Returns index pairs (i into sorted a, j into sorted b). Closest-first makes the result independent of order."""
    a, b = as_times(a), as_times(b)
    if len(a) == 0 or len(b) == 0:
        return []
    d = np.abs(a[:, None] - b[None, :])  # (|a|, |b|)
    ii, jj = np.nonzero(d <= tol + EPS)
    order = np.lexsort((jj, ii, d[ii, jj]))  # by distance, then index: deterministic ties
    used_a, used_b, pairs = set(), set(), []
    for k in order:
        i, j = int(ii[k]), int(jj[k])
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def degenerate(name: str, value: float, why: str) -> float:
    """Warn that a metric was computed on a degenerate input and return its documented fallback value."""
    warnings.warn(f"{name}: {why}; returning {value}", RuntimeWarning, stacklevel=3)
    return value
