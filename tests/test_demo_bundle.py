"""The shipped demo bundle (avcli/bundles/hits-demo): present, small, verified on load, and `avgen generate` on it
(no --bundle: the default) writes a playable mp4 of the requested length, deterministic by seed."""

import hashlib
import json

import pytest
from typer.testing import CliRunner

from avcli.cli.main import app
from avcli.models.bundle import BUNDLES_DIR, DEFAULT_BUNDLE, load_bundle

runner = CliRunner()
BUNDLE = BUNDLES_DIR / DEFAULT_BUNDLE


def test_shipped_bundle_is_small_verified_and_records_its_training():
    assert (BUNDLE / "bundle.json").is_file(), f"{BUNDLE} is missing: the default bundle must ship with the repo"
    size = sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file())
    assert size < 40 * 2**20, f"demo bundle is {size / 2**20:.1f} MB"
    model = load_bundle(None)  # the default: by name, with SHA-256 verification of every file
    manifest = model.manifest
    assert manifest["name"] == DEFAULT_BUNDLE
    stages = {r["stage"] for r in manifest["training"]}
    assert stages >= {"vae-video", "vae-audio", "vocoder", "unet-video", "unet-audio", "joint"}
    # the cross-modal blocks were trained: their zero-initialised output projections moved
    moved = [float(p.abs().sum()) for blk in model.video_unet.cross_blocks for p in blk.out.parameters()]
    assert max(moved) > 0


def _gen(out, *extra):
    return runner.invoke(app, ["generate", "-p", "a blue ball bouncing on a metal plate", "--steps", "3",
                               "--duration", "3", "-o", str(out), "--json", *extra])


def test_generate_on_the_default_bundle(tmp_path):
    from avcli.media.ffmpeg import probe

    a, b, c = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    res = _gen(a, "--seed", "5")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["bundle"].endswith(DEFAULT_BUNDLE) or DEFAULT_BUNDLE in json.dumps(summary)
    manifest = json.loads((BUNDLE / "bundle.json").read_text())
    # --json says what the sampler ran with: the bundle's defaults (e.g. its guidance intervals), --steps from the
    # command line
    ran = summary["sampling"]
    assert ran["steps"] == 3 and all(ran[k] == v for k, v in manifest["sampling"].items() if k in ran and k != "steps")
    assert ran["audio_guidance_interval"] == manifest["sampling"].get("audio_guidance_interval", [0.0, 1.0])
    fps, sr = manifest["media"]["fps"], manifest["media"]["sample_rate"]
    info = probe(a)
    assert info.has_video and info.has_audio
    assert abs(info.duration_s - 3.0) <= 1.0 / fps + 1e-3
    assert [info.height, info.width] == manifest["media"]["frame_size"]
    assert info.audio_sample_rate == sr
    assert _gen(b, "--seed", "5").exit_code == 0
    assert _gen(c, "--seed", "6").exit_code == 0
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


@pytest.mark.slow
def test_generate_default_settings(tmp_path):
    res = runner.invoke(app, ["generate", "-p", "a red ball bouncing on a wooden table", "-o", str(tmp_path / "d.mp4")])
    assert res.exit_code == 0, res.output


def test_shipped_animate_guidance_comes_with_audio_dropout_training():
    """An animate (or generate) eta above 1 only means something on a bundle whose video U-Net saw null audio features in
    training: the shipped default must come with a joint record that used --audio-dropout."""
    manifest = json.loads((BUNDLE / "bundle.json").read_text())
    eta = manifest["sampling"].get("animate_audio_guidance", 1.0)
    dropout = max((r.get("audio_dropout") or 0.0) for r in manifest["training"] if r["stage"] == "joint")
    assert eta == 1.0 or dropout > 0, (eta, dropout)
    gen_eta = manifest["sampling"].get("audio_guidance", 1.0)  # generate's (2026-12-04: 12 on the last 40 %)
    assert gen_eta == 1.0 or dropout > 0, (gen_eta, dropout)
    assert eta > 1.0  # the shipped bundle is the audio-dropout one (README "Quality of the demo bundle")
