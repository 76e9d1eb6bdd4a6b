"""Log-mel spectrogram in torch (what the audio VAE and the vocoder see): natural-log magnitude clamped at 1e-5 as
AudioLDM/HiFi-GAN do, slaney-normalised triangular filters on the HTK mel scale (our bundles) or the slaney mel scale
(librosa's default, which AudioLDM uses). T = N // hop frames, so a clip of d seconds has d*sr/hop frames."""

from __future__ import annotations

import math

import torch
from torch import nn


MEL_SCALES = ("htk", "slaney")
_SLANEY_STEP, _SLANEY_BREAK = 200.0 / 3, 1000.0  # librosa: linear below 1 kHz, logarithmic above
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(f: float, scale: str = "htk") -> float:
    if scale == "htk":
        return 2595.0 * math.log10(1.0 + f / 700.0)
    if f < _SLANEY_BREAK:
        return f / _SLANEY_STEP
    return _SLANEY_BREAK / _SLANEY_STEP + math.log(f / _SLANEY_BREAK) / _SLANEY_LOGSTEP


def _mel_to_hz(m: torch.Tensor, scale: str = "htk") -> torch.Tensor:
    if scale == "htk":
        return 700.0 * (10 ** (m / 2595.0) - 1.0)
    brk = _SLANEY_BREAK / _SLANEY_STEP
    return torch.where(m < brk, m * _SLANEY_STEP, _SLANEY_BREAK * torch.exp(_SLANEY_LOGSTEP * (m - brk)))


def mel_filterbank(sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float,
                   scale: str = "htk") -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, area-normalised (slaney-style norm)."""
    if scale not in MEL_SCALES:
        raise ValueError(f"unknown mel scale {scale!r}; expected one of {MEL_SCALES}")
    mels = torch.linspace(_hz_to_mel(f_min, scale), _hz_to_mel(f_max, scale), n_mels + 2, dtype=torch.float64)
    hz = _mel_to_hz(mels, scale)
    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1, dtype=torch.float64)
    lower = (freqs[None, :] - hz[:-2, None]) / (hz[1:-1, None] - hz[:-2, None])
    upper = (hz[2:, None] - freqs[None, :]) / (hz[2:, None] - hz[1:-1, None])
    fb = torch.clamp(torch.minimum(lower, upper), min=0.0)
    fb = fb * (2.0 / (hz[2:] - hz[:-2]))[:, None]
    return fb.float()


class LogMel(nn.Module):
    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, win_length: int, n_mels: int,
                 f_min: float = 0.0, f_max: float | None = None, mel_scale: str = "htk", log_floor: float = 1e-5):
        super().__init__()
        self.log_floor = float(log_floor)  # 1e-5 (AudioLDM, our bundles); HiFi-GAN's own front end uses 1e-7
        self.hop_length, self.n_fft, self.win_length = hop_length, n_fft, win_length
        fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max or sample_rate / 2, mel_scale)
        self.register_buffer("fb", fb, persistent=False)
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) waveform -> (B, N // hop, n_mels) natural-log mel magnitude."""
        frames = wav.shape[-1] // self.hop_length
        spec = torch.stft(wav, self.n_fft, self.hop_length, self.win_length, self.window, center=True,
                          pad_mode="reflect", return_complex=True).abs()  # (B, F, frames + 1)
        mel = torch.matmul(self.fb, spec[..., :frames])  # (B, n_mels, T)
        return torch.log(torch.clamp(mel, min=self.log_floor)).transpose(1, 2)
