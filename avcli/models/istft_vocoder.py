"""A vocoder that predicts the short-time spectrum and inverts it (the design of Vocos, Siuzdak 2023): ConvNeXt
blocks at the mel frame rate, a linear head to a log magnitude and a phase per STFT bin, then an inverse STFT.

Why it is here: the demo's sounds are decaying modal partials (metal, glass, drum). A HiFi-GAN-style generator
that is trained without a discriminator, as our small one is, fills the valleys between those partials. In our
measurement its loudest frames sit about 4 nepers flatter than real ones in every band, so the material classifier
hears wood. This vocoder writes each bin's magnitude directly, so a valley stays a valley. (It still buzzes on a
stationary quiet mel, less than the small one: 0.074 against 0.150 on resynthesised real clips; the noise fill
handles that.)

Phase: Vocos predicts each frame's phase outright. Trained as ours is, without a discriminator, those phases disagree
from frame to frame; the overlap-add then beats, and the onset detector hears beats in every ringing tail (onset F1
0.72 on resynthesised real clips, 40 validation clips). So by default the head gives each bin's phase *advance* per
hop, and the phase is its running sum over frames, starting from the advance of the bin's centre frequency
(2 pi k hop / n_fft). A steady partial then keeps a steady phase, and resynthesis keeps the onsets (F1 0.99).

The inverse STFT is written as two matrix products (real and imaginary part times the windowed inverse-DFT basis)
and an overlap-add, a transposed 1-D convolution with an identity kernel. So the graph exports to ONNX and
TensorRT with ordinary ops (torch.istft does not export). Frame t is centred on sample t * hop, as the bundle's
LogMel frames are (torch.stft center=True), and the output has exactly T * hop samples, like SpeechT5HifiGan's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

PHASE_MODES = ("advance", "absolute")
LOG_MAG_MAX = 7.0  # exp(7) ~ 1100: far above any real bin, and safe in fp16 through the inverse-DFT sums


@dataclass(frozen=True)
class ISTFTVocoderConfig:
    model_in_dim: int = 64  # mel bands (the same key SpeechT5HifiGanConfig uses)
    dim: int = 192
    intermediate_dim: int = 576
    num_layers: int = 6
    n_fft: int = 640
    hop_length: int = 160
    sampling_rate: int = 16000
    phase: str = "advance"  # "advance": the head gives each bin's phase step, summed over frames; "absolute": Vocos'

    def __post_init__(self):
        if self.n_fft % 2 or self.n_fft < 2 * self.hop_length:
            raise ValueError(f"n_fft must be even and at least twice the hop; got n_fft {self.n_fft}, "
                             f"hop {self.hop_length}")
        if self.phase not in PHASE_MODES:
            raise ValueError(f"phase must be one of {PHASE_MODES}; got {self.phase!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate_dim: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T)
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y)))) * self.gamma
        return x + y.transpose(1, 2)


def inverse_dft_bases(n_fft: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K, N) bases with the Hann synthesis window folded in: frame = Re @ cos_basis + Im @ sin_basis is the
    windowed inverse real DFT of one onesided spectrum (K = N/2 + 1). Also (N,) the window squared."""
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    weight = torch.full_like(k, 2.0)
    weight[0] = weight[-1] = 1.0  # DC and Nyquist appear once in the full spectrum
    angle = 2 * math.pi * k[:, None] * n[None] / n_fft
    window = torch.hann_window(n_fft, dtype=torch.float64)
    cos_basis = weight[:, None] * torch.cos(angle) / n_fft * window
    sin_basis = -weight[:, None] * torch.sin(angle) / n_fft * window
    return cos_basis.float(), sin_basis.float(), (window ** 2).float()


class ISTFTVocoder(nn.Module):
    """mel (B, T, M) natural-log mel -> waveform (B, T * hop)."""

    def __init__(self, config: ISTFTVocoderConfig):
        super().__init__()
        self.config = config
        c = config
        bins = c.n_fft // 2 + 1
        self.embed = nn.Conv1d(c.model_in_dim, c.dim, 7, padding=3)
        self.norm_in = nn.LayerNorm(c.dim)
        self.blocks = nn.ModuleList([ConvNeXtBlock(c.dim, c.intermediate_dim) for _ in range(c.num_layers)])
        self.norm_out = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, 2 * bins)  # log magnitude and phase (or phase advance) of each bin
        if c.phase == "advance":
            with torch.no_grad():  # start as a phase vocoder at the bins' centre frequencies
                k = torch.arange(bins, dtype=torch.float64)
                centre = torch.remainder(2 * math.pi * k * c.hop_length / c.n_fft + math.pi, 2 * math.pi) - math.pi
                self.head.bias[bins:] = centre.float()
                self.head.weight[bins:] *= 0.1
        cos_basis, sin_basis, window_sq = inverse_dft_bases(c.n_fft)
        self.register_buffer("cos_basis", cos_basis, persistent=False)
        self.register_buffer("sin_basis", sin_basis, persistent=False)
        self.register_buffer("window_sq", window_sq[None, :, None], persistent=False)  # (1, N, 1)
        self.register_buffer("overlap_add", torch.eye(c.n_fft)[:, None, :], persistent=False)  # (N, 1, N)

    def spectrum(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, M) -> real and imaginary parts, each (B, T, K)."""
        x = self.norm_in(self.embed(mel.transpose(1, 2)).transpose(1, 2)).transpose(1, 2)  # (B, D, T)
        for block in self.blocks:
            x = block(x)
        log_mag, phase = self.head(self.norm_out(x.transpose(1, 2))).chunk(2, dim=-1)  # (B, T, K) each
        if self.config.phase == "advance":
            phase = torch.cumsum(phase, dim=1)
        mag = torch.exp(log_mag.clamp(max=LOG_MAG_MAX))
        return mag * torch.cos(phase), mag * torch.sin(phase)

    def istft(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        """(B, T, K) spectrum -> (B, T * hop) waveform; frame t centred on sample t * hop."""
        t = real.shape[1]
        frames = real @ self.cos_basis + imag @ self.sin_basis  # (B, T, N) windowed frames
        hop, n_fft = self.config.hop_length, self.config.n_fft
        wav = F.conv_transpose1d(frames.transpose(1, 2), self.overlap_add, stride=hop)[:, 0]  # (B, (T-1)hop + N)
        envelope = F.conv_transpose1d(self.window_sq.expand(1, -1, t), self.overlap_add, stride=hop)[:, 0]
        wav = wav / envelope.clamp(min=1e-4)
        start = n_fft // 2
        return wav[:, start:start + t * hop]

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.istft(*self.spectrum(mel))
