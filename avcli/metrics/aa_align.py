"""AA-Align (seed 003, sec. II-D, eq. 8): temporal alignment between generated and reference audio.

AA-Align = (1 / |A_gt ∪ A_gen|) * sum_{p in A_gen} 1[p in A_gt], where a generated onset p counts as "in A_gt"
when some reference onset lies within +-T seconds (T = 0.1 s, a 2T window).

|A_gt ∪ A_gen| is counted as |A_gt| + |A_gen| - m, where m is the number of one-to-one (greedy, closest first)
matches within +-T: a generated onset and the reference onset it coincides with are one element of the union.
Since the numerator is <= |A_gen| and m <= |A_gt|, the score stays in [0, 1].
Degenerate: either onset set empty -> 0.0 with a RuntimeWarning.
"""

from __future__ import annotations

import numpy as np

from avcli.metrics._match import as_times, degenerate, greedy_match, has_neighbour

AA_TOLERANCE_S = 0.1


def aa_align(gen_onsets, ref_onsets, tol: float = AA_TOLERANCE_S) -> float:
    """AA-Align between generated and reference onset times (seconds)."""
    gen, ref = as_times(gen_onsets), as_times(ref_onsets)
    if len(gen) == 0 or len(ref) == 0:
        why = "no onsets in " + " and ".join(n for n, x in (("generated audio", gen), ("reference audio", ref))
                                            if len(x) == 0)
        return degenerate("AA-Align", 0.0, why)
    hits = int(has_neighbour(gen, ref, tol).sum())
    union = len(ref) + len(gen) - len(greedy_match(gen, ref, tol))
    return hits / union


def aa_align_audio(gen_audio: np.ndarray, ref_audio: np.ndarray, sr: int, tol: float = AA_TOLERANCE_S) -> float:
    """Detect onsets in both float32 (N,) signals (see av_align.audio_onsets) and score them."""
    from avcli.metrics.av_align import audio_onsets

    return aa_align(audio_onsets(gen_audio, sr), audio_onsets(ref_audio, sr), tol)
