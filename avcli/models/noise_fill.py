"""Noise filling for the vocoder's quiet frames (the bundle's `sampling.noise_fill_below_dbfs`).

A deterministic vocoder fed a nearly stationary mel (a quiet background between impacts) gives out nearly the same
waveform every hop: a pulse train at sr / hop (100 Hz for the demo's 16 kHz / 160), the "buzz" that
`avcli.metrics.contact.buzz` measures. Background noise has random phase, so in frames whose level is below a
threshold this replaces the vocoder's output with noise of the mel's broad spectral shape at the vocoder's own level:
the mel's magnitudes spread back onto the STFT bins through the filter bank, random phases, inverse STFT, then scaled
frame by frame to the RMS the vocoder gave out there. Both choices come from generated audio (the first version,
measured in `benchmarks/results/quality_long2000_noisefill.json`, took level and shape from the mel as given): a
generated mel's quiet stretches ask for 2-13 dB more than the vocoder renders from them, so noise at the mel's level
raised the floor by about 6 dB; and their fine structure across bands and frames is itself periodic enough that noise
shaped by it still buzzes (up to 0.6 on the buzz metric). So the level is the vocoder's, and the shape is the mel
averaged over SMOOTH_BANDS bands and SMOOTH_FRAMES frames: a background's broad spectrum, not its lines. Only
background frames are filled: below the threshold and, on a time-smoothed mel, within BACKGROUND_NEPERS of each
band's BACKGROUND_QUANTILE level in BACKGROUND_BANDS of the bands (minimum statistics), because below -40 dBFS a
struck metal bar or glass is still ringing, and noise in place of that tonal tail cost onset F1. Louder frames
(impacts, ringing tails) keep the vocoder's output; the switch is a crossfade over one hop. The phases come from a
generator seeded by the mel's bytes, so the output is deterministic and one clip's does not depend on the batch it
was decoded in, while two clips never share a noise pattern (layered, they do not comb-filter). This is the
parametric noise substitution of audio codecs (AAC's PNS), applied to a vocoder.
"""

from __future__ import annotations

import hashlib

import torch

from avcli.models.mel import LogMel

SMOOTH_BANDS = 9  # the noise's spectral shape: the mel averaged over this many neighbouring bands
SMOOTH_FRAMES = 9  # ... and over this many frames; the level follows the vocoder's RMS averaged over as many
BACKGROUND_QUANTILE = 0.1  # a band's background level: this quantile of its values over the clip
BACKGROUND_NEPERS = 0.6  # a frame is background when its mel exceeds that by less than this ...
BACKGROUND_BANDS = 0.9  # ... in this fraction of its bands (a few partials standing out make it not background)


def _smooth(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Moving average of width k (odd) along dim, the ends held."""
    if k <= 1:
        return x
    y = x.movedim(dim, -1)
    shape = y.shape
    flat = torch.nn.functional.pad(y.reshape(-1, 1, shape[-1]), (k // 2, k // 2), mode="replicate")
    out = torch.nn.functional.conv1d(flat, torch.full((1, 1, k), 1.0 / k, dtype=x.dtype))
    return out.reshape(shape).movedim(-1, dim).contiguous()


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


def _background(logmel: torch.Tensor) -> torch.Tensor:
    """(T, M) mel (smoothed over time, so a noise's own frame-to-frame fluctuation does not count) -> (T,) bool: the
    frames that are the clip's background (minimum statistics: in BACKGROUND_BANDS of the bands, within
    BACKGROUND_NEPERS of that band's BACKGROUND_QUANTILE over time). A ringing tail that is quiet but tonal (metal,
    glass) stands above it in its partials' bands and keeps the vocoder's output."""
    floor = torch.quantile(logmel, BACKGROUND_QUANTILE, dim=0)
    excess = (logmel - floor).clamp(min=0)
    return torch.quantile(excess, BACKGROUND_BANDS, dim=-1) < BACKGROUND_NEPERS


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


def noise_fill(wav: torch.Tensor, logmel: torch.Tensor, front_end: LogMel, below_dbfs: float,
               below_peak_db: float | None = None) -> torch.Tensor:
    """The vocoder's (B, N) output with its frames quieter than `below_dbfs` (RMS re full scale) replaced by noise of
    the mel's broad shape at the vocoder's own level. logmel: (B, T, M), what the vocoder was given.

    `below_peak_db` also counts as quiet a frame more than that many dB under the clip's loudest frame (the bundle's
    `sampling.noise_fill_below_peak_db`): a generated hum louder than the absolute level but far under the clip's
    impacts is background too. Either way only background frames (`_background`) are filled."""
    hop = front_end.hop_length
    b, n = wav.shape
    t = logmel.shape[1]
    out = []
    for i in range(b):  # row by row: a clip's result does not depend on the batch's shape
        # row-major rows: a reduction along a strided axis rounds differently (the front end gives (T, M) transposed)
        row, lm = wav[i:i + 1].float().contiguous(), logmel[i].float().contiguous()
        rms = _frame_rms(row, hop, t)  # (1, T)
        db = 20 * torch.log10(rms.clamp(min=1e-10))
        level = below_dbfs if below_peak_db is None else max(below_dbfs, float(db.max()) - below_peak_db)
        quiet = (db < level) & _background(_smooth(lm, SMOOTH_FRAMES, 0))[None]
        quiet = quiet.float()
        if not bool(quiet.any()):
            out.append(row[0])
            continue
        shape = _smooth(_smooth(lm, SMOOTH_BANDS, 1), SMOOTH_FRAMES, 0)
        noise = shaped_noise(shape, front_end, n, row_generator(lm))
        # the vocoder's own level, averaged over the neighbouring quiet frames only (so the gain does not pulse at
        # the hop rate, and an impact's level does not leak into the noise before it)
        level = _smooth(rms * quiet, SMOOTH_FRAMES, 1) / _smooth(quiet, SMOOTH_FRAMES, 1).clamp(min=1e-6)
        gain = torch.where(quiet > 0, level, rms) / _frame_rms(noise[None], hop, t).clamp(min=1e-10)
        g = _to_samples(gain, hop, n)[0]
        m = _to_samples(quiet, hop, n)[0]  # 1 in quiet frames, a one-hop ramp at each switch
        out.append(row[0] * (1 - m) + noise * g * m)
    return torch.stack(out).to(wav.dtype)
