"""Metric functions on constructed signals with hand-computed answers."""

import math
import warnings

import numpy as np
import pytest

from avcli.metrics import (aa_align, audio_onsets, av_align, av_align_legacy, av_align_official, av_align_seed000,
                           beat_hit_rate, beat_times, frechet_distance, impact_onsets, onset_accuracy, paired_distances,
                           parse_caption, train_adherence_classifiers, video_peaks)
from avcli.metrics.adherence import AdherenceModel

FPS = 8
SR = 16000
EVENT_FRAMES = [4, 12, 20, 27]
ALL = (av_align_seed000, av_align_official, av_align_legacy)


def square_video(event_frames, n=32, size=64):
    """A textured square that jumps sideways exactly at the given frames: (n, size, size, 3) uint8."""
    tex = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    frames = np.full((n, size, size, 3), 60, np.uint8)
    x = 8
    for i in range(n):
        if i in event_frames:
            x = 40 if x == 8 else 8
        frames[i, 24:40, x:x + 16] = tex
    return frames


def clicks(times, dur=4.0, sr=SR):
    y = np.zeros(int(sr * dur), np.float32)
    rng = np.random.default_rng(1)
    n = int(0.03 * sr)
    for t in times:
        s = int(round(t * sr))
        burst = rng.standard_normal(n) * np.exp(-np.arange(n) / (0.005 * sr))
        y[s:s + n] += 0.8 * burst[: len(y) - s].astype(np.float32)
    return y


@pytest.fixture(scope="module")
def video():
    return square_video(EVENT_FRAMES)


def test_detectors_find_constructed_events(video):
    np.testing.assert_allclose(video_peaks(video, FPS), np.array(EVENT_FRAMES) / FPS)
    on = audio_onsets(clicks(np.array(EVENT_FRAMES) / FPS), SR)
    assert len(on) == len(EVENT_FRAMES)
    assert np.max(np.abs(on - np.array(EVENT_FRAMES) / FPS)) < 0.03


@pytest.mark.parametrize("first", [0.25, 2.0])
def test_impact_onsets_ignore_a_noise_floor_from_the_start(first):
    """A steady -50 dBFS noise floor from t = 0 plus impacts: zero padding makes seed 000's detector report an onset in
    the first frames (the padding edge), the reflected ends of impact_onsets do not, and both find every impact."""
    times = np.array([first, 3.0])
    y = clicks(times) + (10 ** (-50 / 20) * np.random.default_rng(2).standard_normal(4 * SR)).astype(np.float32)
    seed = audio_onsets(y, SR)
    assert seed[0] < 0.12  # the edge onset the fix is for
    got = impact_onsets(y, SR)
    assert len(got) == len(times)
    assert np.max(np.abs(got - times)) < 0.03
    assert onset_accuracy(got, times, 1 / FPS).f1 == 1.0


@pytest.mark.parametrize("variant", ["seed000", "official", "legacy"])
def test_av_align_end_to_end(video, variant):
    aligned = clicks(np.array(EVENT_FRAMES) / FPS)
    assert av_align(video, aligned, SR, FPS, variant) == pytest.approx(1.0)
    late = clicks(np.array(EVENT_FRAMES[:3]) / FPS + 5 / FPS)  # 5 frames late (the last would fall off the end)
    early = clicks(np.array(EVENT_FRAMES) / FPS - 3 / FPS)  # 3 frames early: outside the three-frame window
    assert av_align(video, late, SR, FPS, variant) == 0.0
    assert av_align(video, early, SR, FPS, variant) == 0.0


def test_resolution_aware_threshold_scales_with_width():
    big = square_video(EVENT_FRAMES, size=64)
    # a threshold just above the measured peak height at 64 px, which the width rule lowers 4x
    assert len(video_peaks(big, FPS, threshold=2.5)) == 0
    assert len(video_peaks(big, FPS, threshold=2.5, resolution_aware=True)) == len(EVENT_FRAMES)


def test_half_matched_by_hand():
    A = [0.5, 1.5, 2.5, 3.5]
    V = [0.5, 1.5, 3.0]  # 2.5 and 3.5 are 0.5 s (4 frames) from 3.0
    p, r = 2 / 4, 2 / 3
    assert av_align_seed000(A, V, FPS) == pytest.approx(p * r / (p + r - p * r))  # = 0.4
    assert av_align_official(A, V, FPS) == pytest.approx(2 / (4 + 3 - 2))
    assert av_align_legacy(A, V, FPS) == pytest.approx(2 / (4 + 3 - 2))
    # a one-frame offset is inside the three-frame window, two frames is not
    assert av_align_official([1.0], [1.0 + 1 / FPS], FPS) == 1.0
    assert av_align_official([1.0], [1.0 + 2 / FPS], FPS) == 0.0


def test_variants_differ_when_onsets_outnumber_peaks():
    A = [1.0, 1.05, 1.1, 2.0]  # three onsets near the single peak at 1.0, one far away
    V = [1.0]
    legacy = av_align_legacy(A, V, FPS)
    assert legacy == pytest.approx(3 / (4 + 1 - 3)) and legacy > 1
    p, r = 3 / 4, 1.0
    assert av_align_seed000(A, V, FPS) == pytest.approx(p * r / (p + r - p * r))
    assert av_align_official(A, V, FPS) == pytest.approx(1 / (4 + 1 - 1))
    assert av_align_seed000(A, V, FPS) <= 1 and av_align_official(A, V, FPS) <= 1


@pytest.mark.parametrize("score", ALL)
def test_degenerate_av_align_warns(score):
    for A, V in (([], []), ([1.0], []), ([], [1.0])):
        with pytest.warns(RuntimeWarning):
            assert score(A, V, FPS) == 0.0


def test_silence_and_static_video_do_not_crash(video):
    static = np.repeat(video[:1], 16, axis=0)
    with pytest.warns(RuntimeWarning, match="no audio onsets and no video peaks"):
        assert av_align(static, np.zeros(SR * 2, np.float32), SR, FPS) == 0.0
    assert len(video_peaks(video[:2], FPS)) == 0  # too short for a local maximum


def test_onset_accuracy_by_hand():
    truth = [0.5, 1.0, 2.0, 3.0]
    s = onset_accuracy(truth, truth)
    assert (s.precision, s.recall, s.f1, s.offset_ms) == (1.0, 1.0, 1.0, 0.0)
    s = onset_accuracy([t + 0.03 for t in truth], truth)
    assert s.f1 == 1.0 and s.offset_ms == pytest.approx(30.0)
    with pytest.warns(RuntimeWarning, match="no detected onset matched"):
        assert onset_accuracy([t + 0.03 for t in truth], truth, tolerance=0.02).f1 == 0.0
    # missing 3.0, extra 2.5, 1.0 detected 20 ms early
    s = onset_accuracy([0.5, 0.98, 2.0, 2.5], truth)
    assert s.n_matched == 3 and s.precision == pytest.approx(3 / 4) and s.recall == pytest.approx(3 / 4)
    assert s.f1 == pytest.approx(0.75) and s.offset_ms == pytest.approx(20 / 3)
    # one detection between two truths is used once
    s = onset_accuracy([1.02], [1.0, 1.03])
    assert s.n_matched == 1 and s.offset_ms == pytest.approx(10.0)
    with pytest.warns(RuntimeWarning):
        s = onset_accuracy([], truth)
    assert s.precision == 0.0 and s.recall == 0.0 and math.isnan(s.offset_ms)


def test_aa_align_by_hand():
    ref = [0.5, 1.0, 2.0, 3.0]
    assert aa_align(ref, ref) == 1.0
    assert aa_align([0.55, 1.08, 2.3], ref) == pytest.approx(2 / (4 + 3 - 2))
    assert aa_align([t + 0.2 for t in ref], ref) == 0.0
    assert aa_align([1.0, 1.05, 1.09], [1.0]) == pytest.approx(1.0)  # bounded by the one-to-one union
    with pytest.warns(RuntimeWarning):
        assert aa_align([], ref) == 0.0


def test_beat_hit_rate_by_hand_and_on_a_click_track():
    ref = [0.5, 1.0, 1.5, 2.0]
    assert beat_hit_rate([0.55, 1.2, 1.5], ref, 0.1) == pytest.approx(2 / 4)
    assert beat_hit_rate([0.55, 1.2, 1.5], ref, 0.5) == pytest.approx(3 / 4)
    with pytest.warns(RuntimeWarning):
        assert beat_hit_rate([1.0], [], 0.1) == 0.0
    period = 0.5  # 120 bpm click track; a copy beats with itself, a half-period shift misses at 100 ms
    y = clicks(np.arange(0.25, 7.9, period), dur=8.0, sr=22050)
    b = beat_times(y, 22050)
    assert len(b) >= 8 and np.allclose(np.diff(b)[2:-2], period, atol=0.03)
    assert beat_hit_rate(b, b, 0.1) == 1.0
    assert beat_hit_rate(b + period / 2, b, 0.1) == 0.0
    assert beat_hit_rate(b + period / 2, b, 0.5) > 0.9


def test_frechet_distance():
    x = np.random.default_rng(0).standard_normal((200, 4))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    d1 = frechet_distance(x, x + 1.0)
    d2 = frechet_distance(x, x + 2.0)
    assert d1 == pytest.approx(4.0, rel=1e-6) and d2 == pytest.approx(16.0, rel=1e-6)
    with pytest.warns(RuntimeWarning, match="singular"):
        assert np.isfinite(frechet_distance(x[:3], x[3:6] + 1))
    np.testing.assert_allclose(paired_distances(x[:5], x[:5] + [3, 4, 0, 0]), 5.0)


def test_parse_caption():
    assert parse_caption("A red ball bouncing on a wooden table") == ("red", "wood")
    assert parse_caption("an orange drumstick striking a steel sheet") == ("orange", "metal")
    assert parse_caption("a small white ball hitting a drum skin") == ("white", "drum")
    assert parse_caption("someone drops a purple block on a soft rug twice") == ("purple", "carpet")
    assert parse_caption("a blue stick taps a sheet of glass") == ("blue", "glass")
    assert parse_caption("something happens") == (None, None)


def _blob_frames(rgb, rng, n=3):
    bg = rng.integers(20, 110, 3)
    f = np.broadcast_to(bg, (n, 32, 32, 3)).astype(np.float64).copy()
    for i in range(n):
        y, x = rng.integers(2, 20, 2)
        f[i, y:y + 10, x:x + 10] = np.array(rgb) * rng.uniform(0.85, 1.0)
    return np.clip(f, 0, 255).astype(np.uint8)


def _tone(material, rng, sr=SR):
    t = np.arange(int(0.5 * sr)) / sr
    f0 = {"metal": 2200.0, "wood": 300.0, "carpet": 120.0}[material] * rng.uniform(0.9, 1.1)
    decay = {"metal": 0.3, "wood": 0.05, "carpet": 0.02}[material]
    y = np.sin(2 * np.pi * f0 * t) * np.exp(-t / decay)
    if material == "carpet":
        y = y + 0.3 * rng.standard_normal(len(t)) * np.exp(-t / 0.01)
    return (0.5 * y).astype(np.float32)


def test_adherence_classifiers_roundtrip(tmp_path):
    from avcli.data.synth import COLOURS

    rng = np.random.default_rng(0)
    names = list(COLOURS)
    frames = [_blob_frames(COLOURS[c], rng) for c in names for _ in range(3)]
    colours = [c for c in names for _ in range(3)]
    mats = ["metal", "wood", "carpet"] * 3
    audio = [_tone(m, rng) for m in mats]
    model = train_adherence_classifiers(frames, audio + [None] * (len(frames) - 9),
                                        colours, mats + [None] * (len(frames) - 9), sr=SR)
    path = model.save(tmp_path / "adh.safetensors")
    loaded = AdherenceModel.load(path)
    for c in names:
        assert loaded.predict_colour(_blob_frames(COLOURS[c], rng)) == c
    for m in ("metal", "wood", "carpet"):
        assert loaded.predict_material(_tone(m, rng), SR) == m


def test_colour_frames_sees_an_object_change_hue():
    """A green ball that turns blue after 6 of 8 frames: the clip reads green (most of its moving pixels), and frame
    by frame six frames green, two blue, in order; frames where nothing moves are left out."""
    from avcli.data.synth import COLOURS
    from avcli.metrics.adherence import frame_colour_features

    rng = np.random.default_rng(1)
    names = list(COLOURS)
    mats = ["metal", "wood", "carpet"]
    model = train_adherence_classifiers([_blob_frames(COLOURS[c], rng) for c in names for _ in range(3)],
                                        [_tone(m, rng) for m in mats] + [None] * 18,
                                        [c for c in names for _ in range(3)], mats + [None] * 18, sr=SR)
    f = np.full((9, 32, 32, 3), 60, np.uint8)
    for i in range(8):  # the last frame has no ball: no moving pixels
        f[i, 4 + 2 * i:12 + 2 * i, 10:18] = COLOURS["green"] if i < 6 else COLOURS["blue"]
    assert model.predict_colour(f) == "green"
    assert model.colour_frames(f) == ["green"] * 6 + ["blue"] * 2
    assert frame_colour_features(f).shape == (8, 6)
    assert frame_colour_features(f[:1]).shape == (0, 6)  # one frame: nothing moves against its own median


def test_no_warnings_on_normal_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        av_align_seed000([1.0], [1.0], FPS)
        onset_accuracy([1.0], [1.0])


def test_psnr_db_known_values_and_mask():
    from avcli.metrics.psnr import psnr_db

    a = np.zeros((4, 8, 8, 3), np.uint8)
    b = a.copy()
    assert psnr_db(a, b) == float("inf")
    b[..., :4, :] = 16  # half the pixels off by 16: mse 128
    assert abs(psnr_db(a, b) - 10 * np.log10(255.0**2 / 128)) < 1e-9
    mask = np.zeros((4, 8, 8), bool)
    mask[..., :4] = True  # only the pixels that differ: mse 256
    assert abs(psnr_db(a, b, mask) - 10 * np.log10(255.0**2 / 256)) < 1e-9
