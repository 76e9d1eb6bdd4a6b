"""Log-mel spectrogram in torch (what the audio VAE and the vocoder see). HTK mel scale, natural-log magnitude
clamped at 1e-5 as AudioLDM/HiFi-GAN do. T = N // hop frames, so a clip of d seconds has d*sr/hop frames."""

from __future__ import annotations

import math

import torch
from torch import nn


def _hz_to_mel(f: float) -> float:
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, area-normalised (slaney-style norm)."""
    mels = torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1, dtype=torch.float64)
    lower = (freqs[None, :] - hz[:-2, None]) / (hz[1:-1, None] - hz[:-2, None])
    upper = (hz[2:, None] - freqs[None, :]) / (hz[2:, None] - hz[1:-1, None])
    fb = torch.clamp(torch.minimum(lower, upper), min=0.0)
    fb = fb * (2.0 / (hz[2:] - hz[:-2]))[:, None]
    return fb.float()


class LogMel(nn.Module):
    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, win_length: int, n_mels: int,
                 f_min: float = 0.0, f_max: float | None = None):
        super().__init__()
        self.hop_length, self.n_fft, self.win_length = hop_length, n_fft, win_length
        self.register_buffer("fb", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max or sample_rate / 2),
                             persistent=False)
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) waveform -> (B, N // hop, n_mels) natural-log mel magnitude."""
        frames = wav.shape[-1] // self.hop_length
        spec = torch.stft(wav, self.n_fft, self.hop_length, self.win_length, self.window, center=True,
                          pad_mode="reflect", return_complex=True).abs()  # (B, F, frames + 1)
        mel = torch.matmul(self.fb, spec[..., :frames])  # (B, n_mels, T)
        return torch.log(torch.clamp(mel, min=1e-5)).transpose(1, 2)
