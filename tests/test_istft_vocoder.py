"""avgen.ISTFTVocoder: its inverse STFT against torch.istft, its frame alignment with the bundle's LogMel, ONNX
export against torch, and `avgen train vocoder --arch istft` from a bundle to a loadable bundle."""

import copy
import json
import shutil

import pytest
import torch

from avcli.models.istft_vocoder import ISTFTVocoder, ISTFTVocoderConfig


def _vocoder(**kw) -> ISTFTVocoder:
    torch.manual_seed(0)
    cfg = ISTFTVocoderConfig(**{"model_in_dim": 16, "dim": 32, "intermediate_dim": 48, "num_layers": 2, "n_fft": 320,
                                "hop_length": 80, "sampling_rate": 8000, **kw})
    return ISTFTVocoder(cfg).eval()


def test_inverse_stft_matches_torch_istft_on_any_spectrum():
    """The matmul + overlap-add inverse is torch.istft (Hann window, centred frames) on random complex spectra, which
    need not be the STFT of any signal; it also gives one more hop at the end (T * hop samples in all)."""
    voc = _vocoder()
    g = torch.Generator().manual_seed(1)
    real, imag = torch.randn(2, 37, 161, generator=g), torch.randn(2, 37, 161, generator=g)
    ours = voc.istft(real, imag)
    ref = torch.istft(torch.complex(real, imag).transpose(1, 2), 320, 80, 320, torch.hann_window(320), center=True)
    assert ours.shape == (2, 37 * 80) and ref.shape == (2, 36 * 80)
    assert torch.allclose(ours[:, : ref.shape[1]], ref, atol=1e-5), (ours[:, : ref.shape[1]] - ref).abs().max()


def test_inverse_of_the_stft_gives_the_signal_back_frame_aligned():
    """Frame t of torch.stft(center=True) is centred on sample t * hop, as the bundle's LogMel frames are: the
    inverse of a signal's own STFT returns it sample for sample (a half-hop shift would not)."""
    voc = _vocoder()
    x = torch.randn(1, 80 * 50, generator=torch.Generator().manual_seed(2))
    spec = torch.stft(x, 320, 80, 320, torch.hann_window(320), center=True, return_complex=True)  # (1, K, 51)
    spec = spec[..., :50].transpose(1, 2)
    y = voc.istft(spec.real, spec.imag)
    assert y.shape == x.shape
    assert torch.allclose(y[:, : 49 * 80], x[:, : 49 * 80], atol=1e-4)


def test_output_length_and_config_checks():
    voc = _vocoder()
    assert voc(torch.randn(3, 25, 16)).shape == (3, 25 * 80)
    with pytest.raises(ValueError, match="twice the hop"):
        ISTFTVocoderConfig(n_fft=120, hop_length=80)


def test_bundle_with_an_istft_vocoder_round_trips(tiny_manifest, tmp_path):
    from avcli.models.bundle import load_bundle, save_bundle
    from avcli.models.joint import JointModel
    from avcli.models.presets import istft_vocoder_config

    m = copy.deepcopy(tiny_manifest)
    m["components"]["vocoder"] = {"class": "avgen.ISTFTVocoder", "config": istft_vocoder_config(m["media"])}
    torch.manual_seed(0)
    model = JointModel(m).eval()
    assert isinstance(model.vocoder.model, ISTFTVocoder) and model.vocoder.model.config.n_fft == 4 * 80
    save_bundle(model, tmp_path / "b")
    back = load_bundle(tmp_path / "b")
    mel = torch.randn(1, 12, 16) - 4
    with torch.no_grad():
        assert torch.equal(back.vocoder(mel=mel), model.vocoder(mel=mel))


def test_istft_vocoder_exports_to_onnx_and_matches_torch(tiny_manifest, tmp_path):
    pytest.importorskip("onnxruntime")
    from avcli.models.joint import JointModel
    from avcli.models.presets import istft_vocoder_config
    from export.onnx_export import export_all

    m = copy.deepcopy(tiny_manifest)
    m["components"]["vocoder"] = {"class": "avgen.ISTFTVocoder", "config": istft_vocoder_config(m["media"])}
    torch.manual_seed(0)
    model = JointModel(m).eval()
    recs = export_all(model, tmp_path, ["vocoder"])
    assert recs[0].status == "ok", recs[0]
    assert len(recs[0].validation) == 2 and recs[0].max_error < 1e-4  # two mel lengths through one graph


def test_train_vocoder_arch_istft_replaces_and_trains(tiny_bundle, tmp_path):
    """--arch istft: the bundle's vocoder becomes an avgen.ISTFTVocoder, its loss falls, the bundle loads it back,
    and a second run trains the same one on (it is not re-initialised)."""
    from typer.testing import CliRunner

    from avcli.cli.main import app
    from avcli.models.bundle import load_bundle

    runner = CliRunner()
    data = tmp_path / "hits"
    res = runner.invoke(app, ["data", "synth", "--n", "4", "-o", str(data), "--duration", "1", "--fps", "8",
                              "--size", "32", "--sample-rate", "8000"])
    assert res.exit_code == 0, res.output
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    args = ["train", "vocoder", "--bundle", str(bundle), "--data", str(data), "--work", str(tmp_path / "w"),
            "--batch", "4", "--lr", "2e-3", "--ckpt-every", "20", "--json", "--arch", "istft"]
    res = runner.invoke(app, [*args, "--steps", "40"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["vocoder_class"] == "avgen.ISTFTVocoder"
    rows = json.loads((tmp_path / "w/runs/vocoder/log.json").read_text())
    assert rows[-1]["loss"] < rows[0]["loss"]
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["components"]["vocoder"]["class"] == "avgen.ISTFTVocoder"
    first = load_bundle(bundle).vocoder.state_dict()
    res = runner.invoke(app, [*args, "--steps", "50"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["steps_run"] == 10  # resumed from step 40 of the same vocoder
    second = load_bundle(bundle).vocoder.state_dict()
    assert first.keys() == second.keys() and any(not torch.equal(first[k], second[k]) for k in first)


def test_arch_is_refused_outside_the_vocoder_stage(tiny_bundle, tmp_path):
    from typer.testing import CliRunner

    from avcli.cli.main import app
    from avcli.errors import UsageError

    res = CliRunner().invoke(app, ["train", "vae-audio", "--bundle", str(tiny_bundle), "--data", str(tmp_path),
                                   "--work", str(tmp_path / "w"), "--arch", "istft"])
    assert isinstance(res.exception, UsageError) and "train vocoder" in str(res.exception)
    res = CliRunner().invoke(app, ["train", "vocoder", "--bundle", str(tiny_bundle), "--data", str(tmp_path),
                                   "--work", str(tmp_path / "w"), "--arch", "wavenet"])
    assert isinstance(res.exception, UsageError) and "istft" in str(res.exception)
    assert not (tmp_path / "w").exists()


def test_phase_advance_starts_as_a_phase_vocoder_at_the_bin_centres():
    """phase 'advance': with its phase weights at zero, the head steps every bin by its centre frequency's advance
    per hop (2 pi k hop / n_fft), so one bin alone overlap-adds to a steady sinusoid. Phases that disagree from frame
    to frame (what 'absolute' gives when it has not learnt them; here random) make the same bin beat."""
    import math

    voc = _vocoder(phase="advance")
    bins = 161
    with torch.no_grad():
        voc.head.weight[bins:] = 0
        real, imag = voc.spectrum(torch.randn(1, 40, 16))
    step = torch.diff(torch.atan2(imag, real), dim=1)  # (1, 39, K)
    want = 2 * math.pi * torch.arange(bins) * 80 / 320
    assert torch.allclose(torch.remainder(step - want + math.pi, 2 * math.pi) - math.pi, torch.zeros_like(step),
                          atol=1e-3)

    def envelope_spread(phase):
        k, t = 7, torch.arange(40, dtype=torch.float32)[None, :, None]
        mask = torch.zeros(1, 1, bins)
        mask[..., k] = 1.0
        y = voc.istft(torch.cos(phase(t, k)) * mask, torch.sin(phase(t, k)) * mask)[0, 400:-400]
        peaks = y.abs().unfold(0, 320, 320).amax(1)  # one peak per 320 samples (7 periods of bin 7)
        return float((peaks.max() - peaks.min()) / peaks.max())

    assert envelope_spread(lambda t, k: 2 * math.pi * k * 80 / 320 * t) < 0.01
    g = torch.Generator().manual_seed(3)
    assert envelope_spread(lambda t, k: 2 * math.pi * torch.rand(t.shape, generator=g)) > 0.3
    with pytest.raises(ValueError, match="phase"):
        ISTFTVocoderConfig(phase="random")


def test_arch_istft_refuses_the_previous_vocoders_checkpoint(tiny_bundle, tmp_path):
    """The same --work after a run of the bundle's old vocoder: one line that names --restart, the bundle untouched;
    with --restart it trains."""
    from typer.testing import CliRunner

    from avcli.cli.main import app
    from avcli.errors import UsageError

    runner = CliRunner()
    data = tmp_path / "hits"
    assert runner.invoke(app, ["data", "synth", "--n", "3", "-o", str(data), "--duration", "1", "--fps", "8", "--size",
                               "32", "--sample-rate", "8000"]).exit_code == 0
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    args = ["train", "vocoder", "--bundle", str(bundle), "--data", str(data), "--work", str(tmp_path / "w"),
            "--steps", "3", "--batch", "2", "--json"]
    assert runner.invoke(app, args).exit_code == 0
    before = (bundle / "bundle.json").read_text()
    res = runner.invoke(app, [*args, "--arch", "istft"])
    assert isinstance(res.exception, UsageError) and "--restart" in str(res.exception)
    assert (bundle / "bundle.json").read_text() == before
    res = runner.invoke(app, [*args, "--arch", "istft", "--restart"])
    assert res.exit_code == 0, res.output
    assert json.loads((bundle / "bundle.json").read_text())["components"]["vocoder"]["class"] == "avgen.ISTFTVocoder"
