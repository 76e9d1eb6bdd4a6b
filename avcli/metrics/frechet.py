"""Fréchet distance between feature sets, with offline (download-free) per-clip features.

These are NOT FAD/FVD: the embeddings are hand-made statistics, so the numbers are only comparable with other
runs of the same extractors. Names used in reports: "FD-logmel" (audio) and "FD-colourflow" (video).

FD(X, Y) = |mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x S_y)^(1/2)).
"""

from __future__ import annotations

import warnings

import numpy as np

from avcli.metrics._audio import as_mono

FD_AUDIO_NAME = "FD-logmel"
FD_VIDEO_NAME = "FD-colourflow"
AUDIO_SR = 16000
N_MELS = 64
HIST_BINS = 8


def _stats(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got shape {x.shape}")
    n, d = x.shape
    cov = np.cov(x, rowvar=False).reshape(d, d)
    if n <= d:
        warnings.warn(f"Fréchet distance: {n} samples for {d} feature dimensions; covariance is singular, "
                      f"adding {eps:g}*I (values are only comparable at the same n)", RuntimeWarning, stacklevel=3)
        cov = cov + eps * np.eye(d)
    return x.mean(axis=0), cov


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets (N may differ, D must match)."""
    from scipy import linalg

    mu1, s1 = _stats(feats_a, eps)
    mu2, s2 = _stats(feats_b, eps)
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]}")
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.all(np.isfinite(covmean)):  # near-singular product: regularise both and retry
        off = np.eye(len(mu1)) * eps
        covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(covmean.imag))
        if imag > 1e-3 * max(1.0, np.max(np.abs(covmean.real))):
            warnings.warn(f"Fréchet distance: sqrtm has an imaginary part of {imag:.3g}; using the real part",
                          RuntimeWarning, stacklevel=2)
        covmean = covmean.real
    diff = mu1 - mu2
    fd = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return max(fd, 0.0)  # tiny negatives are round-off


def paired_distances(feats_gen: np.ndarray, feats_ref: np.ndarray) -> np.ndarray:
    """Per-sample L2 distance between each generated feature row and its paired reference row: (N,)."""
    a, b = np.asarray(feats_gen, np.float64), np.asarray(feats_ref, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired features must have the same shape, got {a.shape} and {b.shape}")
    return np.linalg.norm(a - b, axis=-1)


def audio_features(audio: np.ndarray, sr: int) -> np.ndarray:
    """Per-clip "logmel" feature, float64 (2*64 + 3,): mean and std over time of the 64-band log-mel spectrogram
    (16 kHz, n_fft 1024, hop 256) followed by mean, std and max of the onset-strength envelope."""
    import librosa

    y = as_mono(audio, sr, AUDIO_SR, min_len=1024)
    mel = librosa.feature.melspectrogram(y=y, sr=AUDIO_SR, n_fft=1024, hop_length=256, n_mels=N_MELS)  # (64, T)
    logmel = np.log(mel + 1e-6)
    env = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=AUDIO_SR)  # (T,)
    return np.concatenate([logmel.mean(1), logmel.std(1), [env.mean(), env.std(), env.max()]]).astype(np.float64)


def video_features(frames: np.ndarray) -> np.ndarray:
    """Per-clip "colourflow" feature, float64 (3*8 + 4,): per-channel 8-bin colour histograms over all frames
    (each sums to 1) followed by mean, std, max and 90th percentile of the mean optical-flow magnitude per frame."""
    from avcli.metrics.av_align import flow_magnitudes

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3), got {frames.shape}")
    px = frames.reshape(-1, 3)  # (F*H*W, 3)
    hists = [np.bincount(px[:, c].astype(np.int64) * HIST_BINS // 256, minlength=HIST_BINS) / len(px)
             for c in range(3)]
    m = flow_magnitudes(frames)[1:] if len(frames) > 1 else np.zeros(1)
    return np.concatenate([*hists, [m.mean(), m.std(), m.max(), np.percentile(m, 90)]]).astype(np.float64)
