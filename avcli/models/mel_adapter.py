"""Run a vocoder trained on another mel front end behind a bundle's own: the bundle's natural-log mel (B, T, M) is
mapped onto the vocoder's mel, and its waveform is resampled back to the bundle's rate and length.

Why: the pretrained HiFi-GAN V1 universal (avcli.models.hifigan) expects 80 slaney bands of a 22.05 kHz signal with
hop 256, and our audio VAE and U-Nets speak 64 HTK bands of a 16 kHz signal with hop 160. Both cover 0-8 kHz, so the
bundle's mel can be carried over without retraining the audio side:

1. frequency: each source band's value divided by its filter's sum is the magnitude a spectrum flat across that
   band would have; the linear spectrum is interpolated linearly between band centres (each bin weighted by the
   triangle heights relative to their peaks), moved onto the vocoder's STFT bin grid (linear in Hz, zero above the
   source's Nyquist), and the vocoder's filter bank is applied. All of that is one fixed (M_dst, M_src) matrix on
   the magnitudes, derived from the two front ends alone (nothing is fitted, nothing stored);
2. time: frames at sr/hop per second are linearly resampled to the vocoder's frame rate;
3. the waveform: a windowed-sinc polyphase resampler (a strided conv1d, so it exports to ONNX) takes it to the
   bundle's rate, cut to T * hop samples, the length every vocoder of a bundle gives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from avcli.models.mel import mel_filterbank

def _filters(fe: dict) -> torch.Tensor:
    return mel_filterbank(int(fe["sample_rate"]), int(fe["n_fft"]), int(fe["n_mels"]), float(fe.get("f_min", 0.0)),
                          float(fe.get("f_max") or fe["sample_rate"] / 2), fe.get("mel_scale", "htk")).double()


def mel_map(src: dict, dst: dict) -> torch.Tensor:
    """(M_dst, M_src) float64: dst mel magnitudes ~= map @ src mel magnitudes (see the module's docstring)."""
    fb_src, fb_dst = _filters(src), _filters(dst)  # (M, K) each
    sums = fb_src.sum(1)  # (M_src,)
    rel = fb_src / fb_src.amax(1, keepdim=True).clamp(min=1e-12)  # triangle heights relative to their peaks
    cover = rel.sum(0)  # (K_src,)
    weights = torch.where(cover > 0, rel / cover.clamp(min=1e-12), torch.zeros_like(rel))  # (M_src, K_src)
    to_bins = weights.T / sums.clamp(min=1e-12)[None, :]  # (K_src, M_src): bin magnitude from band values
    k_src, k_dst = fb_src.shape[1], fb_dst.shape[1]
    f_src = torch.linspace(0, src["sample_rate"] / 2, k_src, dtype=torch.float64)
    f_dst = torch.linspace(0, dst["sample_rate"] / 2, k_dst, dtype=torch.float64)
    pos = f_dst / (f_src[1] - f_src[0])  # fractional source bin of each destination bin
    lo = pos.floor().long().clamp(max=k_src - 1)
    frac = (pos - lo).clamp(0, 1)
    interp = torch.zeros(k_dst, k_src, dtype=torch.float64)
    inside = f_dst <= f_src[-1]
    rows = torch.arange(k_dst)[inside]
    interp[rows, lo[inside]] += 1 - frac[inside]
    interp[rows, (lo[inside] + 1).clamp(max=k_src - 1)] += frac[inside]
    return fb_dst @ interp @ to_bins


def sinc_kernel(orig: int, new: int, zeros: int = 8, rolloff: float = 0.96) -> tuple[torch.Tensor, int, int]:
    """Polyphase low-pass kernel for orig -> new Hz: (L, 1, M + 2 * half) float64 with L = new / g, M = orig / g
    (g their gcd), the stride M and the left padding `half`. Phase i (output sample k*L + i, at input position
    k*M + i*M/L) weights input sample j by h(j - position): a sinc at the lower Nyquist times `rolloff`, under a
    Hann window `zeros` zero crossings wide on each side."""
    g = math.gcd(int(orig), int(new))
    up, down = int(new) // g, int(orig) // g
    fc = 0.5 * min(1.0, up / down) * rolloff  # cycles per input sample
    half = int(math.ceil(zeros / (2 * fc)))
    j = torch.arange(down + 2 * half, dtype=torch.float64)[None, :] - half  # input offsets from k*M
    d = j - torch.arange(up, dtype=torch.float64)[:, None] * down / up  # (L, taps): distance to the output time
    window = torch.where(d.abs() <= half, 0.5 * (1 + torch.cos(math.pi * d / half)), torch.zeros_like(d))
    h = 2 * fc * torch.sinc(2 * fc * d) * window
    return h[:, None, :], down, half


class MelAdapter(nn.Module):
    """The bundle's mel in, the vocoder's mel out (`mel_in`); the vocoder's waveform in, the bundle's out
    (`wave_out`). Buffers only, all derived from the two front ends: nothing of it is stored in a bundle."""

    def __init__(self, src: dict, dst: dict):
        super().__init__()
        self.src_hop, self.src_sr = int(src["hop_length"]), int(src["sample_rate"])
        self.dst_hop, self.dst_sr = int(dst["hop_length"]), int(dst["sample_rate"])
        self.dst_floor = float(dst.get("log_floor", 1e-7))
        self.frame_ratio = (self.dst_sr / self.dst_hop) / (self.src_sr / self.src_hop)
        # enough extra source frames that the waveform still covers T * hop after the two roundings down: under
        # one vocoder frame (interpolation) and under one polyphase block (the resampler), in source samples
        short = self.dst_hop * self.src_sr / self.dst_sr + self.src_sr // math.gcd(self.src_sr, self.dst_sr)
        self.pad_frames = int(math.ceil(short / self.src_hop)) + 1
        self.register_buffer("map", mel_map(src, dst).float(), persistent=False)
        kernel, self.stride, self.half = sinc_kernel(self.dst_sr, self.src_sr)
        self.register_buffer("kernel", kernel.float(), persistent=False)

    def mel_in(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, T, M_src) natural-log mel -> (B, T', M_dst) natural-log mel at the vocoder's frame rate."""
        x = torch.cat([mel, mel[:, -1:].expand(-1, self.pad_frames, -1)], dim=1)
        lin = torch.matmul(torch.exp(x), self.map.T)  # (B, T + pad, M_dst)
        logm = torch.log(torch.clamp(lin, min=self.dst_floor)).transpose(1, 2)
        out = F.interpolate(logm, scale_factor=self.frame_ratio, mode="linear", align_corners=False,
                            recompute_scale_factor=False)
        return out.transpose(1, 2)

    def wave_out(self, wav: torch.Tensor, frames: int | torch.Tensor) -> torch.Tensor:
        """(B, N) at the vocoder's rate -> (B, frames * hop) at the bundle's."""
        x = F.pad(wav[:, None], (self.half, self.half))
        y = F.conv1d(x, self.kernel, stride=self.stride)  # (B, L, K): phase i of block k
        y = y.transpose(1, 2).reshape(wav.shape[0], -1)
        return y[:, : frames * self.src_hop]
