"""Onset accuracy against ground-truth event times (e.g. the impact times of the synthetic "hits" domain).

Detected and true times are matched one-to-one (greedy, closest pairs first) within +-tolerance. Then
precision = matched / |detected|, recall = matched / |truth|, F1 = 2PR / (P + R), and the mean absolute offset
(ms) over matched pairs. Degenerate: empty detected -> precision 0; empty truth -> recall 0 (both warn);
no match -> offset NaN (warns).

`impact_onsets` is the detector these scores are computed on: seed 000's (librosa's defaults), with the STFT's
ends reflected instead of zero-padded, so that a noise floor present from t = 0 is not an onset at 70 ms.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from avcli.metrics._match import as_times, degenerate, greedy_match

DEFAULT_TOLERANCE_S = 0.05
# what benchmark JSON records under "onset_detector" (results without the key came from the zero-padded detector)
IMPACT_ONSET_DETECTOR = "librosa onset_detect, reflected STFT ends"


@dataclass(frozen=True)
class OnsetScores:
    precision: float
    recall: float
    f1: float
    offset_ms: float  # mean |detected - true| over matched pairs; NaN when nothing matched
    n_detected: int
    n_truth: int
    n_matched: int

    def as_dict(self) -> dict:
        return asdict(self)


def impact_onsets(audio: np.ndarray, sr: int) -> np.ndarray:
    """Onset times (seconds) to score against true impact times: see `avcli.metrics.av_align.audio_onsets`."""
    from avcli.metrics.av_align import audio_onsets

    return audio_onsets(audio, sr, pad_mode="reflect")


def onset_accuracy(detected, truth, tolerance: float = DEFAULT_TOLERANCE_S) -> OnsetScores:
    """Score detected event times (seconds) against true ones within +-tolerance seconds."""
    if tolerance <= 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    det, tru = as_times(detected), as_times(truth)
    pairs = greedy_match(det, tru, tolerance)
    m = len(pairs)
    p = m / len(det) if len(det) else degenerate("onset precision", 0.0, "no detected onsets")
    r = m / len(tru) if len(tru) else degenerate("onset recall", 0.0, "no ground-truth events")
    f1 = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    if m:
        offset = float(np.mean([abs(det[i] - tru[j]) for i, j in pairs]) * 1000.0)
    else:
        offset = degenerate("onset offset", math.nan, "no detected onset matched a true event")
    return OnsetScores(p, r, f1, offset, len(det), len(tru), m)
