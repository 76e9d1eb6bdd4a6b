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


def _ring() -> torch.Tensor:
    """A struck bar's tail: eight partials at -50 dBFS each, decaying over seconds, in the first second."""
    t = np.arange(SR) / SR
    ring = sum(np.sin(2 * np.pi * f * t) for f in (700, 1130, 1870, 2450, 3310, 4020, 5270, 6480)) * 3e-3
    return torch.from_numpy(np.concatenate([ring * np.exp(-t / 2.0), np.zeros(SR)]).astype(np.float32)[None])


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
    # the vocoder's own level (not the mel's), and the mel's broad shape: band by band, the filled stretch's mel
    # differs from the given one by one constant (the level), within a fraction of a neper
    assert abs(_level_db(b[: SR - 2 * HOP]) - _level_db(a[: SR - 2 * HOP])) < 0.5
    quiet_mel, filled_mel = mel[0, 5:90].mean(0), front(out)[0, 5:90].mean(0)
    d = filled_mel - quiet_mel
    assert float((d - d.mean()).abs().mean()) < 0.25
    # the burst's first 30 ms are far above -40 dBFS: exactly the input, away from the one-hop crossfade
    assert np.array_equal(b[SR + 2 * HOP: SR + 2 * HOP + 480], a[SR + 2 * HOP: SR + 2 * HOP + 480])
    # a threshold below every frame changes nothing
    assert torch.equal(noise_fill(wav, mel, front, -120.0), wav)


def test_a_mel_louder_than_the_vocoder_or_itself_periodic_neither_raises_the_floor_nor_buzzes():
    """What generated audio does (measured): its quiet mel asks for more than the vocoder renders, and its fine
    structure is the buzz's own. Filling from the mel of the pulse train itself, 12 dB up, still gives noise at the
    vocoder's level without the buzz."""
    front = _front()
    _, wav = _clip()
    mel = front(wav) + np.log(10 ** (12 / 20))
    out = noise_fill(wav, mel, front, -40.0)[0].numpy()
    a = wav[0].numpy()
    assert abs(_level_db(out[: SR - 2 * HOP]) - _level_db(a[: SR - 2 * HOP])) < 0.5
    assert buzz(a, SR, 1.0) > 0.5 and buzz(out, SR, 1.0) < 0.1


def test_a_quiet_ringing_tail_is_not_background_and_keeps_the_vocoders_output():
    """Metal and glass ring on below the threshold: tonal, well above the background in their bands. Filling that
    with noise cost onset F1 on generated audio (0.504 against 0.582 on 30 clips, measured); such frames keep the
    vocoder's output."""
    front = _front()
    given, wav = _clip()
    w, g = wav + _ring(), given + _ring()
    a = w[0].numpy()
    assert _level_db(a[4 * HOP: 60 * HOP]) < -40  # quiet by the threshold's measure
    out = noise_fill(w, front(g), front, -40.0)[0].numpy()
    assert np.array_equal(out[10 * HOP: 60 * HOP], a[10 * HOP: 60 * HOP])


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


def test_a_bundle_with_the_setting_decodes_through_it(tiny_model, monkeypatch):
    """decode_audio on a manifest with sampling.noise_fill_below_dbfs equals the plain decode passed through
    noise_fill with the bundle's own front end."""
    import copy

    import avcli.models.noise_fill as nf

    monkeypatch.setattr(nf, "BACKGROUND_NEPERS", float("inf"))  # a random model's mel is nowhere stationary

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


def test_a_hum_louder_than_the_level_is_filled_when_far_under_the_clips_peak():
    """A generated hum above the absolute level (-35 dBFS here, the threshold -47) keeps buzzing under the absolute
    rule alone; `below_peak_db` counts it as quiet because it lies 20+ dB under the clip's loudest frame, fills it at
    its own level, and still leaves the impact's frames exactly as the vocoder rendered them."""
    front = _front()
    given, wav = _clip()
    up = 10 ** (15 / 20)  # the background and the pulse train 15 dB louder: about -35 dBFS
    t = np.arange(SR) / SR
    hit = np.zeros(2 * SR, dtype=np.float32)
    hit[SR:] = 0.5 * np.sin(2 * np.pi * 700 * t) * np.exp(-t / 0.05)
    hit = torch.from_numpy(hit)[None]
    given, wav = (given - hit) * up + hit, (wav - hit) * up + hit
    a = wav[0].numpy()
    assert -40 < _level_db(a[: SR - 2 * HOP]) < -30
    absolute = noise_fill(wav, front(given), front, -47.0)[0].numpy()
    assert np.array_equal(absolute, a)  # nothing is under -47 dBFS
    out = noise_fill(wav, front(given), front, -47.0, below_peak_db=20.0)[0].numpy()
    assert buzz(a, SR, 1.0) > 0.5 and buzz(out, SR, 1.0) < 0.1
    assert abs(_level_db(out[: SR - 2 * HOP]) - _level_db(a[: SR - 2 * HOP])) < 0.5
    assert np.array_equal(out[SR + 2 * HOP: SR + 2 * HOP + 480], a[SR + 2 * HOP: SR + 2 * HOP + 480])
    # a peak rule that reaches nothing (the hum is only ~30 dB under the burst) changes nothing either
    assert np.array_equal(noise_fill(wav, front(given), front, -47.0, below_peak_db=60.0)[0].numpy(), a)


def test_a_tonal_tail_under_the_peak_rule_still_keeps_the_vocoders_output():
    """The peak rule widens which frames are quiet, not which are background: a ringing tail stays."""
    front = _front()
    given, wav = _clip()
    w, g = wav + _ring(), given + _ring()
    a = w[0].numpy()
    out = noise_fill(w, front(g), front, -47.0, below_peak_db=10.0)[0].numpy()
    assert np.array_equal(out[10 * HOP: 60 * HOP], a[10 * HOP: 60 * HOP])


def test_a_bundle_with_only_the_peak_rule_decodes_through_it(tiny_model, monkeypatch):
    """sampling.noise_fill_below_peak_db alone: the absolute level plays no part (it is not 0 dBFS, which would
    fill every frame), and decode_audio equals noise_fill with that rule."""
    import copy

    import avcli.models.noise_fill as nf

    monkeypatch.setattr(nf, "BACKGROUND_NEPERS", float("inf"))

    from avcli.pipelines.common import decode_audio, denormalize_mel, log_mel

    comps = {"audio_vae_decoder": tiny_model.audio_vae_decoder, "vocoder": tiny_model.vocoder}
    geo = tiny_model.geometry()
    torch.manual_seed(0)
    lat = torch.randn(1, *geo.audio_latent)
    samples = int(geo.duration * geo.sample_rate)
    plain = decode_audio(tiny_model.manifest, comps, lat, samples)
    m = copy.deepcopy(tiny_model.manifest)
    m["sampling"].pop("noise_fill_below_dbfs", None)
    m["sampling"]["noise_fill_below_peak_db"] = 6.0
    filled = decode_audio(m, comps, lat, samples)
    with torch.no_grad():
        logmel = denormalize_mel(m, tiny_model.audio_vae_decoder(latent=lat)[:, 0].float())
        wav = tiny_model.vocoder(mel=logmel).float().clamp(-1, 1)
        want = noise_fill(wav, logmel, log_mel(m), float("-inf"), below_peak_db=6.0)[:, :samples]
        everything = noise_fill(wav, logmel, log_mel(m), 0.0)[:, :samples]
    n = int(0.01 * geo.sample_rate)
    assert not np.allclose(filled, plain)
    assert np.allclose(filled[:, : samples - n], want.clamp(-1, 1).numpy()[:, : samples - n], atol=1e-6)
    e = everything.clamp(-1, 1).numpy()[:, : samples - n]
    assert np.abs(filled[:, : samples - n] - e).max() > 0.1 * np.abs(e).max()
