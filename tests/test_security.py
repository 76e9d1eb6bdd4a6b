"""A crafted bundle cannot read or write outside its folder, unchecked weights are refused, user file names never
become Rich markup, and usage errors from the sampler's schedule are exit 2 (issue 15)."""

from __future__ import annotations

import json
import shutil

import pytest

from avcli.errors import BundleError


def _crafted(tiny_bundle, tmp_path, edit):
    b = tmp_path / "crafted"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "bundle.json").read_text())
    edit(m, b)
    (b / "bundle.json").write_text(json.dumps(m))
    return b


def _run(monkeypatch, capsys, *args):
    from conftest import run_cli

    return run_cli(monkeypatch, capsys, *args)


@pytest.mark.parametrize("name", ["../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors"])
def test_weights_outside_the_bundle_are_refused(tiny_bundle, tmp_path, name, monkeypatch, capsys):
    from avcli.models.bundle import load_bundle

    (tmp_path / "outside.safetensors").write_bytes((tiny_bundle / "vocoder.safetensors").read_bytes())
    b = _crafted(tiny_bundle, tmp_path, lambda m, b: m["files"]["vocoder"].update(file=name))
    with pytest.raises(BundleError, match="outside the bundle folder"):
        load_bundle(b)
    code, _, err = _run(monkeypatch, capsys, "generate", "--bundle", b, "-p", "x", "-o", tmp_path / "o.mp4")
    assert code == 2 and "outside the bundle folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_a_symlink_out_of_the_bundle_is_refused(tiny_bundle, tmp_path):
    from avcli.models.bundle import load_bundle

    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes((tiny_bundle / "vocoder.safetensors").read_bytes())
    b = _crafted(tiny_bundle, tmp_path, lambda m, b: None)
    (b / "vocoder.safetensors").unlink()
    (b / "vocoder.safetensors").symlink_to(outside)
    with pytest.raises(BundleError, match="outside the bundle folder"):
        load_bundle(b)


def test_a_tokenizer_folder_outside_the_bundle_is_refused(tiny_bundle, tmp_path):
    from avcli.manifest import read_manifest

    b = _crafted(tiny_bundle, tmp_path, lambda m, b: m["text"]["video"].update(tokenizer="../../tok"))
    with pytest.raises(BundleError, match="outside the bundle folder"):
        read_manifest(b)


def test_weights_without_a_checksum_are_refused(tiny_bundle, tmp_path):
    from avcli.models.bundle import load_bundle

    b = _crafted(tiny_bundle, tmp_path, lambda m, b: m["files"]["vocoder"].pop("sha256"))
    with pytest.raises(BundleError, match="no sha256"):
        load_bundle(b)
    assert load_bundle(b, verify=False) is not None  # an explicit opt-out still loads (tests, own bundles)


def test_file_names_with_brackets_are_not_markup(tmp_path, monkeypatch, capsys):
    weird = tmp_path / "[bold red]take[/] 1 [x].mp4"
    code, _, err = _run(monkeypatch, capsys, "foley", weird)
    assert code == 2, err
    assert "[bold red]take[/] 1 [x].mp4" in err and "internal error" not in err


def test_impossible_step_schedule_is_a_usage_error(tiny_bundle, tmp_path, monkeypatch, capsys):
    """More steps than the schedule has distinct local timesteps: exit 2 before sampling, not an internal error."""
    code, _, err = _run(monkeypatch, capsys, "generate", "--bundle", tiny_bundle, "-p", "x", "--steps", "1000",
                        "--gamma", "40", "-o", tmp_path / "a.mp4")
    assert code == 2 and "internal error" not in err and "steps" in err, err
    assert not (tmp_path / "a.mp4").exists()


def test_foley_latent_rate_ignores_mel_padding():
    """The audio latent's frames per second come from sample rate, hop and down-sampling; when mel frames are
    padded up to the down-sampling step, latent frames / duration overstates the rate (tail shift in long foley)."""
    from avcli.models.presets import get_preset
    from export.geometry import geometry

    m = get_preset("tiny")
    m["media"]["duration"] = 1.03  # 103 mel frames, padded to a multiple of the down-sampling
    geo = geometry(m)
    true_rate = m["media"]["sample_rate"] / m["media"]["hop_length"] / geo.audio_factor
    assert geo.audio_latent_per_s == pytest.approx(true_rate)
    assert geo.audio_latent[1] / geo.duration != pytest.approx(true_rate)


# --- nothing is replaced without --overwrite ----------------------------------------------------------------------
def test_train_finalize_refuses_to_replace_a_bundle(tiny_bundle, tmp_path, monkeypatch, capsys):
    out = tmp_path / "shipped"
    shutil.copytree(tiny_bundle, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = _run(monkeypatch, capsys, "train", "finalize", "--bundle", tiny_bundle, "-o", out)
    assert code == 2 and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    code, _, err = _run(monkeypatch, capsys, "train", "finalize", "--bundle", tiny_bundle, "-o", out, "--overwrite",
                        "--dtype", "float32")
    assert code == 0, err


def test_bench_json_is_not_replaced_without_overwrite(tiny_bundle, tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench.json"
    out.write_text("{}")
    code, _, err = _run(monkeypatch, capsys, "bench", "--bundle", tiny_bundle, "--backends", "torch", "--components",
                        "vocoder", "--steps", "1", "--repeat", "1", "--warmup", "0", "--no-e2e", "--json", out)
    assert code == 2 and "already exists" in err and out.read_text() == "{}"  # refused before the timing


def test_foley_sidecars_are_not_replaced_without_overwrite(tiny_bundle, tmp_path, monkeypatch, capsys):
    import numpy as np

    from avcli.media.ffmpeg import write_video

    src = tmp_path / "clip.mp4"
    write_video(src, np.zeros((4, 32, 32, 3), np.uint8), 4)
    (tmp_path / "clip.foley.wav").write_bytes(b"mine")
    code, _, err = _run(monkeypatch, capsys, "foley", src, "--bundle", tiny_bundle, "--steps", "1", "--save-wav")
    assert code == 2 and "clip.foley.wav" in err and "--overwrite" in err
    assert (tmp_path / "clip.foley.wav").read_bytes() == b"mine" and not (tmp_path / "clip.foley.mp4").exists()


def test_adherence_model_is_not_replaced_without_overwrite(tmp_path):
    import numpy as np

    from avcli.metrics.adherence import AdherenceModel

    model = AdherenceModel.__new__(AdherenceModel)
    path = tmp_path / "adh.safetensors"
    path.write_bytes(b"keep")
    from avcli.errors import UsageError

    clf = type("C", (), {"centroids": np.zeros((2, 3)), "mean": np.zeros(3), "scale": np.ones(3), "labels": ("a", "b")})
    model.colour, model.material = clf, clf
    with pytest.raises(UsageError, match="already exists"):
        model.save(path)
    assert path.read_bytes() == b"keep"
    model.save(path, overwrite=True)
    assert path.read_bytes() != b"keep"
