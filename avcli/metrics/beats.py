"""Beat hit rate (seed 001, sec. 3.1): beats of generated vs ground-truth audio, both from librosa's beat tracker.

hit rate = (number of ground-truth beats matched one-to-one by a generated beat within +-tolerance) / |GT beats|,
i.e. the "beats hit" of the cited dance-to-music work, with seed 001's tolerances of +-100 ms (meaningful) and
+-500 ms (reported for reference only; seed 001 calls it close to random). Matching is greedy, closest first.
Degenerate: no ground-truth beats -> 0.0 with a RuntimeWarning.
"""

from __future__ import annotations

import numpy as np

from avcli.metrics._audio import as_mono
from avcli.metrics._match import as_times, degenerate, greedy_match

TOLERANCES_S = (0.1, 0.5)


def beat_times(audio: np.ndarray, sr: int) -> np.ndarray:
    """Beat times in seconds, float64 (B,), from librosa.beat.beat_track with default settings."""
    import librosa

    y = as_mono(audio, sr)
    if y.size == 0 or not np.any(y):
        return np.zeros(0)
    _, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    return np.asarray(beats, dtype=np.float64)


def beat_hit_rate(gen_beats, ref_beats, tolerance: float = 0.1) -> float:
    """Share of reference beats with a (one-to-one) generated beat within +-tolerance seconds."""
    gen, ref = as_times(gen_beats), as_times(ref_beats)
    if len(ref) == 0:
        return degenerate("beat hit rate", 0.0, "no beats in the reference audio")
    return len(greedy_match(gen, ref, tolerance)) / len(ref)


def beat_hit_rates(gen_audio: np.ndarray, ref_audio: np.ndarray, sr: int,
                   tolerances=TOLERANCES_S) -> dict[str, float]:
    """{"beat_hit_100ms": .., "beat_hit_500ms": ..} for two float32 (N,) signals at the same rate."""
    g, r = beat_times(gen_audio, sr), beat_times(ref_audio, sr)
    return {f"beat_hit_{round(t * 1000)}ms": beat_hit_rate(g, r, t) for t in tolerances}
