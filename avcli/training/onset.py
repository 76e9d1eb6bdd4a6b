"""Onset pretext task for the video connector (seed 003, STA-V2A sec. II-B1), run before joint training.

The joint diffusion loss alone did not teach our connectors when things happen: `benchmarks/joint_probe.py` showed
the audio U-Net's loss unchanged whichever clip the video features came from. STA-V2A learns its local temporal
video features with a pretext task instead: predict the audio's onsets from the video, with onset pseudo-labels
found in the audio by an onset detector, under a binary cross-entropy loss. Here the video connector's per-frame
features, stretched to the audio latent's time axis exactly as the CMC-PE blocks stretch them, go through one linear
layer to an onset logit per audio latent frame.

Pseudo-labels come from the cached audio latents: the audio VAE decodes them to log-mel, librosa's onset strength
and peak picking find the onsets (units: mel frames), and each onset marks the audio latent frame it falls in.

The connector sees what the foley sampler gives it: the video latent noised to a random level and the clean video
as its x0 estimate.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class OnsetHead(nn.Module):
    """(B, F, D) connector features -> (B, T) onset logits on the audio latent's T frames."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, 1)

    def forward(self, features: torch.Tensor, frames: int) -> torch.Tensor:
        x = F.interpolate(features.transpose(1, 2), size=frames, mode="linear", align_corners=False)  # as CMC-PE
        return self.proj(x.transpose(1, 2))[..., 0]


def onset_frames(log_mel: np.ndarray, sample_rate: int, hop_length: int) -> np.ndarray:
    """log_mel (T_mel, M) in any log scale -> onset positions in mel frames (librosa onset strength + peak picking,
    librosa's default thresholds).

    center=False: the mel frames are already centred on their times; librosa's default would shift the envelope by
    n_fft // (2 * hop) frames of its *own* default n_fft (2048: 6 frames = 60 ms late at our hop of 160)."""
    import librosa

    env = librosa.onset.onset_strength(S=log_mel.T.astype(np.float32), sr=sample_rate, hop_length=hop_length,
                                       center=False)
    return librosa.onset.onset_detect(onset_envelope=env, sr=sample_rate, hop_length=hop_length, units="frames")


def onset_labels(log_mels: torch.Tensor, latent_frames: int, sample_rate: int, hop_length: int) -> torch.Tensor:
    """(N, T_mel, M) log-mel -> (N, latent_frames) {0, 1}: 1 where an onset falls in that latent frame."""
    n, t_mel = log_mels.shape[0], log_mels.shape[1]
    out = torch.zeros(n, latent_frames)
    for i in range(n):
        f = onset_frames(log_mels[i].float().numpy(), sample_rate, hop_length)
        idx = np.clip((f * latent_frames) // t_mel, 0, latent_frames - 1)
        out[i, idx] = 1.0
    return out


@torch.no_grad()
def labels_from_latents(model, audio_latents: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Decode (N, C, T, m) audio latents to log-mel with the bundle's audio VAE and find their onsets."""
    media = model.manifest["media"]
    mels = []
    for i in range(0, len(audio_latents), batch):
        mels.append(model.audio_vae_decoder(latent=audio_latents[i:i + batch].float())[:, 0].float())
    return onset_labels(torch.cat(mels), audio_latents.shape[2], media["sample_rate"], media["hop_length"])


def balanced_pos_weight(labels: torch.Tensor) -> float:
    """BCE weight of the positive (onset) frames: the negatives-to-positives ratio, capped at 50."""
    rate = float(labels.float().mean())
    return min(50.0, (1 - rate) / rate) if rate > 0 else 1.0


def onset_loss(logits: torch.Tensor, labels: torch.Tensor, pos_weight: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=torch.tensor(pos_weight))


def onset_f1(logits: torch.Tensor, labels: torch.Tensor, tolerance: int = 1) -> dict[str, float]:
    """Peak-picked predictions (local maxima with p > 0.5) against the labels, +-tolerance latent frames, one-to-one
    (the metrics' greedy matching, closest pairs first); the pretext task's own score, pooled over the batch."""
    from avcli.metrics._match import greedy_match

    p = torch.sigmoid(logits)
    left = F.pad(p, (1, 0), value=-1)[:, :-1]
    right = F.pad(p, (0, 1), value=-1)[:, 1:]
    pred = (p > 0.5) & (p >= left) & (p > right)
    tp = n_pred = n_true = 0
    for pr, tr in zip(pred, labels.bool()):
        ps, ts = pr.nonzero()[:, 0].double().numpy(), tr.nonzero()[:, 0].double().numpy()
        n_pred, n_true = n_pred + len(ps), n_true + len(ts)
        tp += len(greedy_match(ps, ts, float(tolerance)))
    prec = tp / n_pred if n_pred else 0.0
    rec = tp / n_true if n_true else 0.0
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0}
