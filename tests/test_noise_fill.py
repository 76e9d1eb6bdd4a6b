"""Noise filling of the vocoder's quiet frames (avcli.models.noise_fill): a hop-periodic buzz at a background level
loses its periodicity (avcli.metrics.contact.buzz, the metric the quality tables report) and keeps its level and
mel shape, loud frames pass through untouched, the noise is deterministic and independent of the batch, and a
bundle that sets `sampling.noise_fill_below_dbfs` decodes through it."""

from __future__ import annotations

import numpy as np
import torch

from avcli.metrics.contact import buzz
from avcli.models.mel import LogMel
from avcli.models.noise_fill import noise_fill

SR, HOP = 16000, 160


def _front() -> LogMel:
    return LogMel(SR, 1024, HOP, 1024, 64, 0.0, 8000.0)


def _clip(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """What the vocoder was given and what it gave out. Given: 2 s of background noise at about -50 dBFS with a
    loud decaying 700 Hz tone burst at 1.0 s. Out: the same burst over a 100 Hz pulse train (one pulse per hop, the
    vocoder's buzz) at the noise's level."""
    rng = np.random.default_rng(seed)
    n = 2 * SR
    t = np.arange(n - SR) / SR
    hit = np.zeros(n)
    hit[SR:] = 0.5 * np.sin(2 * np.pi * 700 * t) * np.exp(-t / 0.05)
    noise = rng.normal(0, 3.2e-3, n)
    pulses = np.zeros(n)
    pulses[rng.integers(0, HOP)::HOP] = 0.032
    pulses = np.convolve(pulses, np.hanning(9), mode="same")
    f = lambda x: torch.from_numpy(x.astype(np.float32))[None]  # noqa: E731
    return f(noise + hit), f(pulses + hit)


def _level_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


def test_quiet_buzz_becomes_noise_at_its_level_and_loud_frames_are_untouched():
    front = _front()
    given, wav = _clip()
    mel = front(given)
    out = noise_fill(wav, mel, front, -40.0)
    a, b = wav[0].numpy(), out[0].numpy()
    assert buzz(a, SR, 1.0) > 0.5  # the input is the buzz the metric is built for
    assert buzz(b, SR, 1.0) < 0.1
    assert abs(_level_db(b[: SR - 2 * HOP]) - _level_db(given[0, : SR - 2 * HOP].numpy())) < 1.5
    quiet_mel, filled_mel = mel[0, 5:90], front(out)[0, 5:90]
    assert float((filled_mel - quiet_mel).mean().abs()) < 0.3  # the mel's level, band by band on average
    # the burst's first 30 ms are far above -40 dBFS: exactly the input, away from the one-hop crossfade
    assert np.array_equal(b[SR + 2 * HOP: SR + 2 * HOP + 480], a[SR + 2 * HOP: SR + 2 * HOP + 480])
    # a threshold below every frame changes nothing
    assert torch.equal(noise_fill(wav, mel, front, -120.0), wav)


def test_noise_is_deterministic_per_clip_and_independent_of_the_batch():
    front = _front()
    (g1, w1), (g2, w2) = _clip(0), _clip(1)
    m1, m2 = front(g1), front(g2)
    both = noise_fill(torch.cat([w1, w2]), torch.cat([m1, m2]), front, -40.0)
    alone = noise_fill(w2, m2, front, -40.0)
    assert torch.equal(both[1:], alone) and torch.equal(noise_fill(w1, m1, front, -40.0), both[:1])
    # two clips do not share a noise pattern (layered, they would comb-filter)
    q1, q2 = both[0, :SR // 2].numpy() - w1[0, :SR // 2].numpy(), both[1, :SR // 2].numpy()
    assert abs(np.corrcoef(both[0, :SR // 2].numpy(), q2)[0, 1]) < 0.2 and np.abs(q1).max() > 0


def test_a_bundle_with_the_setting_decodes_through_it(tiny_model):
    """decode_audio on a manifest with sampling.noise_fill_below_dbfs equals the plain decode passed through
    noise_fill with the bundle's own front end."""
    import copy

    from avcli.pipelines.common import decode_audio, denormalize_mel, log_mel

    comps = {"audio_vae_decoder": tiny_model.audio_vae_decoder, "vocoder": tiny_model.vocoder}
    geo = tiny_model.geometry()
    torch.manual_seed(0)
    lat = torch.randn(1, *geo.audio_latent)
    samples = int(geo.duration * geo.sample_rate)
    plain = decode_audio(tiny_model.manifest, comps, lat, samples)
    m = copy.deepcopy(tiny_model.manifest)
    rms = np.sqrt(np.mean(plain.astype(np.float64) ** 2))
    m["sampling"]["noise_fill_below_dbfs"] = float(20 * np.log10(rms) + 40)  # every frame counts as quiet
    filled = decode_audio(m, comps, lat, samples)
    with torch.no_grad():
        logmel = denormalize_mel(m, tiny_model.audio_vae_decoder(latent=lat)[:, 0].float())
        wav = tiny_model.vocoder(mel=logmel).float().clamp(-1, 1)
        want = noise_fill(wav, logmel, log_mel(m), m["sampling"]["noise_fill_below_dbfs"])[:, :samples]
    assert not np.allclose(filled, plain)
    n = int(0.01 * geo.sample_rate)  # the fade-out at the end is decode_audio's own
    assert np.allclose(filled[:, : samples - n], want.clamp(-1, 1).numpy()[:, : samples - n], atol=1e-6)
