"""A vocoder behind a MelAdapter (avcli/models/mel_adapter.py): the bundle's mel mapped onto another front end's
mel agrees with that front end run on the same sound, the waveform resampler agrees with scipy's, the length is
the bundle's T * hop, and the whole vocoder still exports to ONNX with dynamic lengths."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from avcli.models.hifigan import MEDIA
from avcli.models.mel import LogMel
from avcli.models.mel_adapter import MelAdapter, mel_map, sinc_kernel

DEMO_MEDIA = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 160, "win_length": 1024, "n_mels": 64,
              "f_min": 0.0, "f_max": 8000.0}  # the hits-demo bundle's mel front end


def _logmel(fe: dict) -> LogMel:
    return LogMel(fe["sample_rate"], fe["n_fft"], fe["hop_length"], fe.get("win_length", fe["n_fft"]), fe["n_mels"],
                  fe.get("f_min", 0.0), fe.get("f_max"), fe.get("mel_scale", "htk"), fe.get("log_floor", 1e-5))


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(x.astype(np.float64), sr_out // g, sr_in // g).astype(np.float32)


def _both_mels(wav16: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The same sound through the bundle's front end (16 kHz) and through HiFi-GAN's own (22.05 kHz)."""
    src = _logmel(DEMO_MEDIA)(torch.from_numpy(wav16)[None])
    dst = _logmel(MEDIA)(torch.from_numpy(_resample(wav16, 16000, 22050))[None])
    return src, dst


def test_adapted_mel_matches_the_other_front_end_on_noise_and_tones():
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    noise = (0.1 * rng.standard_normal(len(t))).astype(np.float32)
    adapter = MelAdapter(DEMO_MEDIA, MEDIA)
    src, dst = _both_mels(noise)
    got = adapter.mel_in(src)[:, 10: dst.shape[1] - 10]
    want = dst[:, 10: got.shape[1] + 10]
    bands = slice(2, 76)  # away from DC and the 8 kHz edge
    err = (got[..., bands] - want[..., bands]).abs().mean()
    assert err < 0.35, err  # white noise: per-band levels carried over (not its random fine structure)
    bias = (got[..., bands] - want[..., bands]).mean()
    assert abs(bias) < 0.25, bias
    # the naive adapter, the 64 log bands stretched onto 80 by index (HTK and slaney scales, band widths and
    # levels ignored), is further off: the test can tell a right mapping from a plausible wrong one
    naive = torch.nn.functional.interpolate(src, size=80, mode="linear")  # (1, T, 80): bands by index
    naive = torch.nn.functional.interpolate(naive.transpose(1, 2), scale_factor=adapter.frame_ratio,
                                            mode="linear").transpose(1, 2)
    n = min(naive.shape[1], dst.shape[1]) - 10
    naive_err = (naive[:, 10:n, bands] - dst[:, 10:n, bands]).abs().mean()
    assert naive_err > 1.3 * err, (naive_err, err)
    naive_off = []
    for hz in (300.0, 1000.0, 2500.0, 6000.0):  # a tone lands in the band the other front end puts it in
        tone = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
        src, dst = _both_mels(tone)
        a = int(adapter.mel_in(src)[0, 20:120].mean(0).argmax())
        b = int(dst[0, 20:120].mean(0).argmax())
        c = int(torch.nn.functional.interpolate(src, size=80, mode="linear")[0, 20:120].mean(0).argmax())
        assert abs(a - b) <= 1, (hz, a, b)
        naive_off.append(abs(c - b))
    assert max(naive_off) >= 2  # (300 Hz: 3 bands off by index)


def test_mel_map_is_nonnegative_and_zero_where_the_source_has_no_bands():
    m = mel_map(DEMO_MEDIA, MEDIA)
    assert m.shape == (80, 64) and bool((m >= 0).all())
    narrow = dict(DEMO_MEDIA, sample_rate=8000, f_max=4000.0, n_fft=512, hop_length=80)
    m2 = mel_map(narrow, MEDIA)  # source covers 0-4 kHz: HiFi's top bands (above ~5 kHz) get nothing
    assert float(m2[-10:].abs().max()) == 0.0 and bool((m2[:40].sum(1) > 0).all())


def test_waveform_resampler_matches_scipy_and_the_true_sines():
    sr_in, sr_out = MEDIA["sample_rate"], 16000
    t_in = np.arange(sr_in) / sr_in
    freqs = (220.0, 1750.0, 5100.0)
    x = sum(0.2 * np.sin(2 * np.pi * f * t_in + i) for i, f in enumerate(freqs)).astype(np.float32)
    adapter = MelAdapter(DEMO_MEDIA, MEDIA)
    frames = 90  # 0.9 s at the bundle's hop
    got = adapter.wave_out(torch.from_numpy(x)[None], frames)[0].numpy()
    assert got.shape == (frames * 160,)
    t_out = np.arange(len(got)) / sr_out
    truth = sum(0.2 * np.sin(2 * np.pi * f * t_out + i) for i, f in enumerate(freqs))
    ref = _resample(x, sr_in, sr_out)[: len(got)]
    inner = slice(200, len(got) - 200)
    assert np.abs(got[inner] - truth[inner]).max() < 5e-3
    assert np.abs(got[inner] - ref[inner]).max() < 5e-3
    # the kernel's phases: a delayed kernel (wrong output times) would be far off the true sines
    k, stride, half = sinc_kernel(sr_in, sr_out)
    assert k.shape == (320, 1, 441 + 2 * half) and stride == 441
    assert torch.allclose(k.sum(-1), torch.ones(320, 1, dtype=k.dtype), atol=2e-3)  # unit gain at DC, each phase


@pytest.mark.parametrize("frames", [1, 2, 7, 99, 400, 401, 1234])
def test_adapted_vocoder_gives_the_bundles_length(frames):
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    from avcli.models.components import Vocoder

    cfg = SpeechT5HifiGanConfig(model_in_dim=80, sampling_rate=22050, upsample_initial_channel=8,
                                upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8],
                                resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]], normalize_before=False)
    voc = Vocoder(SpeechT5HifiGan(cfg).eval(), MelAdapter(DEMO_MEDIA, MEDIA))
    with torch.no_grad():
        y = voc(torch.randn(2, frames, 64) - 5)
    assert y.shape == (2, frames * 160)


def _adapted_tiny_manifest(tiny_manifest: dict) -> dict:
    """The tiny preset (8 kHz, 16 mels) with a small random HiFi-GAN on its own front end (11.025 kHz, 20 mels)."""
    m = copy.deepcopy(tiny_manifest)
    front = {"sample_rate": 11025, "n_fft": 256, "hop_length": 64, "win_length": 256, "n_mels": 20, "f_min": 0.0,
             "f_max": 4000.0, "mel_scale": "slaney", "log_floor": 1e-7}
    m["components"]["vocoder"] = {"class": "transformers.SpeechT5HifiGan", "front_end": front, "config": {
        "model_in_dim": 20, "sampling_rate": 11025, "upsample_initial_channel": 16, "upsample_rates": [4, 4, 4],
        "upsample_kernel_sizes": [8, 8, 8], "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]],
        "normalize_before": False}}
    return m


def test_adapted_vocoder_exports_to_onnx_with_dynamic_length(tiny_manifest, tmp_path):
    pytest.importorskip("onnxruntime")
    from avcli.models.joint import JointModel
    from export.onnx_export import export_all

    torch.manual_seed(0)
    model = JointModel(_adapted_tiny_manifest(tiny_manifest)).eval()
    assert model.vocoder.adapter is not None
    recs = export_all(model, tmp_path, ["vocoder"])
    assert recs[0].status == "ok", recs[0]
    assert len(recs[0].validation) == 2 and recs[0].max_error < 1e-4  # two mel lengths through one graph


def test_manifest_check_reads_the_vocoders_own_front_end(tiny_manifest, tmp_path):
    from avcli.errors import BundleError
    from avcli.manifest import vocoder_mels

    m = _adapted_tiny_manifest(tiny_manifest)
    assert vocoder_mels(m, tmp_path)[1::2] == (20, 20)
    del m["components"]["vocoder"]["front_end"]["hop_length"]
    with pytest.raises(BundleError, match="front_end lacks hop_length"):
        vocoder_mels(m, tmp_path)
