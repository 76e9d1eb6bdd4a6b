"""Noise filling for the vocoder's quiet frames (the bundle's `sampling.noise_fill_below_dbfs`).

A deterministic vocoder fed a nearly stationary mel (a quiet background between impacts) gives out nearly the same
waveform every hop: a pulse train at sr / hop (100 Hz for the demo's 16 kHz / 160), the "buzz" that
`avcli.metrics.contact.buzz` measures. Background noise has random phase, so in frames whose level is below a
threshold this replaces the vocoder's output with noise of the mel's level and spectral shape: the frame's mel
magnitudes spread back onto the STFT bins through the filter bank, random phases, inverse STFT, then scaled frame by
frame so that its log-mel meets the mel's on average. Louder frames (impacts, their decay above the threshold) keep the
vocoder's output; the switch is a crossfade over one hop. The phases come from a generator seeded by the mel's
bytes, so the output is deterministic and one clip's does not depend on the batch it was decoded in, while two
clips never share a noise pattern (layered, they do not comb-filter). This is the parametric noise substitution of
audio codecs (AAC's PNS), applied to a vocoder.
"""

from __future__ import annotations

import hashlib

import torch

from avcli.models.mel import LogMel


def _frame_rms(wav: torch.Tensor, hop: int, frames: int) -> torch.Tensor:
    """(B, N) -> (B, frames) RMS over each hop-long frame (the mel's frame grid, zero padded at the end)."""
    need = frames * hop
    x = torch.nn.functional.pad(wav, (0, max(0, need - wav.shape[-1])))[:, :need]
    return x.reshape(wav.shape[0], frames, hop).pow(2).mean(-1).sqrt()


def _to_samples(per_frame: torch.Tensor, hop: int, n: int) -> torch.Tensor:
    """(B, T) values at frame centres -> (B, n) linearly interpolated per sample (held at the ends)."""
    x = per_frame[:, None, :]
    up = torch.nn.functional.interpolate(x, scale_factor=hop, mode="linear", align_corners=False)[:, 0]
    if up.shape[-1] < n:
        up = torch.nn.functional.pad(up, (0, n - up.shape[-1]), mode="replicate")
    return up[:, :n]


def row_generator(logmel: torch.Tensor) -> torch.Generator:
    """A generator seeded by one clip's mel: the same mel, the same noise, whatever else was in the batch."""
    digest = hashlib.sha256(logmel.detach().float().cpu().contiguous().numpy().tobytes()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def shaped_noise(logmel: torch.Tensor, front_end: LogMel, samples: int, generator: torch.Generator) -> torch.Tensor:
    """(T, M) natural-log mel magnitudes -> (samples,) random-phase noise whose STFT magnitudes follow the mel's
    spectral shape (each bin the filter-weighted mean of the bands that cover it, each band's value per unit of its
    filter's area). Its level is set afterwards, frame by frame."""
    fb = front_end.fb.to(torch.float64)  # (M, F)
    area = fb.sum(1).clamp(min=1e-12)  # a flat spectrum s gives band m the value s * area[m]
    cover = fb.sum(0)  # (F,)
    band = torch.exp(logmel.to(torch.float64)) / area  # (T, M): the per-bin magnitude each band implies
    mag = (band @ fb) / cover.clamp(min=1e-12)  # (T, F): bins that no filter covers get 0
    mag = torch.where(cover > 0, mag, torch.zeros_like(mag))
    frames = mag.shape[0] + 1  # the STFT of `samples` with center=True has samples // hop + 1 frames
    mag = torch.cat([mag, mag[-1:]], 0)[:frames]
    phase = torch.rand(mag.shape, generator=generator, dtype=torch.float64) * (2 * torch.pi)
    spec = torch.polar(mag, phase).T  # (F, frames)
    window = front_end.window.to(torch.float64)
    return torch.istft(spec, front_end.n_fft, front_end.hop_length, front_end.win_length, window, center=True,
                       length=samples).to(torch.float32)


def noise_fill(wav: torch.Tensor, logmel: torch.Tensor, front_end: LogMel, below_dbfs: float) -> torch.Tensor:
    """The vocoder's (B, N) output with its frames quieter than `below_dbfs` (RMS re full scale) replaced by shaped
    noise at the same level. logmel: (B, T, M), what the vocoder was given."""
    hop = front_end.hop_length
    b, n = wav.shape
    t = logmel.shape[1]
    out = []
    for i in range(b):  # row by row: a clip's result does not depend on the batch's shape
        # row-major rows: a reduction along a strided axis rounds differently (the front end gives (T, M) transposed)
        row, lm = wav[i:i + 1].float().contiguous(), logmel[i].float().contiguous()
        quiet = (20 * torch.log10(_frame_rms(row, hop, t).clamp(min=1e-10)) < below_dbfs).float()  # (1, T)
        if not bool(quiet.any()):
            out.append(row[0])
            continue
        noise = shaped_noise(lm, front_end, n, row_generator(lm))
        # the level the mel asks for, frame by frame: random phases overlap-add to less than the magnitudes say
        got = front_end(noise[None])[0][:t].contiguous()
        gain = torch.exp((lm - got).mean(-1))
        g = _to_samples(gain[None], hop, n)[0]
        m = _to_samples(quiet, hop, n)[0]  # 1 in quiet frames, a one-hop ramp at each switch
        out.append(row[0] * (1 - m) + noise * g * m)
    return torch.stack(out).to(wav.dtype)
