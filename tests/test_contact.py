"""The frames-only contact detector (metrics/contact.py) against the synthesizer's exact impact times, and the
noise floor of the silent stretch."""

import numpy as np
import pytest

from avcli.data.synth import make_clip
from avcli.metrics import onset_accuracy
from avcli.metrics.contact import frame_contacts, noise_floor_db

FPS = 8.0


@pytest.fixture(scope="module")
def clips():
    return [make_clip(seed, fps=FPS, size=(64, 64), impact_fps=FPS) for seed in range(12)]


def test_contacts_seen_in_the_frames_are_the_true_impacts(clips):
    f1 = [onset_accuracy(frame_contacts(c.frames, FPS), c.events, 0.5 / FPS).f1 for c in clips]
    assert np.mean(f1) >= 0.9, f1  # every impact lies on the frame grid: found on its own frame
    objects = {c.attrs["object"] for c in clips}
    assert objects == {"ball", "block", "stick"}  # all three motions were tried


def test_contacts_move_with_the_frames_and_vanish_without_an_object(clips):
    c = next(c for c in clips if len(c.events) >= 3)
    shifted = np.concatenate([c.frames[:1].repeat(3, 0), c.frames[:-3]])  # the picture 3 frames late
    got = frame_contacts(shifted, FPS)
    assert onset_accuracy(got, np.asarray(c.events) + 3 / FPS, 0.5 / FPS).f1 >= 0.8
    assert onset_accuracy(got, c.events, 0.5 / FPS).f1 <= 0.5
    still = c.frames[:, :, :, :].copy()
    still[:] = np.median(c.frames, axis=0).astype(np.uint8)  # no moving object: the median scene only
    assert len(frame_contacts(still, FPS)) <= 1


def test_noise_floor_is_the_rms_level_before_the_first_impact():
    sr = 16000
    t = np.arange(2 * sr) / sr
    x = 0.01 * np.sin(2 * np.pi * 440 * t)
    x[sr:] = 0.9  # the impact at 1 s and after: left out
    assert noise_floor_db(x, sr, 1.0) == pytest.approx(20 * np.log10(0.01 / np.sqrt(2)), abs=0.05)
    assert noise_floor_db(x, sr, 0.2) is None  # too short a stretch to call a floor


def test_buzz_tells_a_hop_rate_pulse_train_from_background_noise():
    from avcli.metrics.contact import buzz

    sr = 16000
    rng = np.random.default_rng(0)
    noise = 0.003 * rng.standard_normal(2 * sr)
    pulses = noise.copy()
    pulses[::160] += 0.03  # a click every 10 ms: the vocoder's hop at 16 kHz
    assert buzz(noise, sr, 1.5) < 0.05
    assert buzz(pulses, sr, 1.5) > 0.3
    assert buzz(noise, sr, 0.2) is None
