"""Concat augmentation (seed 004, VTA-LDM sec. 4 "Concat Augment"): a training sample made of two clips, the first
part of one and the rest of another, cut at the same instant in both modalities, so that one window holds two
different events and the model must place each where its own picture is.

The cut falls on an instant that is a whole frame of both latents (video F frames and audio T frames over the same
duration: every F / gcd(F, T) video frames), so video and sound stay exactly in step. A mixed window has no single
caption, so it trains with the empty prompt (the cached embeddings cannot be re-captioned).
"""

from __future__ import annotations

import math

import torch


def cut_points(video_frames: int, audio_frames: int) -> list[tuple[int, int]]:
    """Instants inside the window that are whole frames of both latents, as (video frame, audio frame) pairs."""
    g = math.gcd(video_frames, audio_frames)
    sv, sa = video_frames // g, audio_frames // g
    return [(k * sv, k * sa) for k in range(1, g)]


def concat_augment(video0: torch.Tensor, audio0: torch.Tensor, other_v: torch.Tensor, other_a: torch.Tensor,
                   p: float, generator: torch.Generator | None, labels: torch.Tensor | None = None,
                   other_labels: torch.Tensor | None = None):
    """With probability p per sample: concat(own[:cut], other[cut:]) on the time axis (dim 2) of both latents, and
    of the (B, T) onset labels when given. Returns (video, audio, labels or None, mixed (B,) bool)."""
    b = video0.shape[0]
    cuts = cut_points(video0.shape[2], audio0.shape[2])
    mixed = torch.rand(b, generator=generator) < p
    if not cuts or not bool(mixed.any()):
        return video0, audio0, labels, mixed & bool(cuts)
    which = torch.randint(0, len(cuts), (b,), generator=generator)
    v, a = video0.clone(), audio0.clone()
    lab = labels.clone() if labels is not None else None
    for i in mixed.nonzero()[:, 0].tolist():
        cv, ca = cuts[int(which[i])]
        v[i, :, cv:] = other_v[i, :, cv:]
        a[i, :, ca:] = other_a[i, :, ca:]
        if lab is not None:
            lab[i, ca:] = other_labels[i, ca:]
    return v, a, lab, mixed
