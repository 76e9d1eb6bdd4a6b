"""`avgen animate`: audio in -> a video of the audio's length at the bundle's fps, carrying the original audio."""

import json

import numpy as np
from typer.testing import CliRunner

from avcli.cli.main import app

runner = CliRunner()


def test_animate_writes_video_with_the_original_audio(tiny_bundle, tiny_model, tmp_path):
    from avcli.media.ffmpeg import probe, read_audio, write_wav

    sr = 22050  # not the bundle's rate: the output must keep the original rate
    t = np.arange(int(1.5 * sr)) / sr
    tone = (0.4 * np.sin(2 * np.pi * 330 * t) * (t % 0.5 < 0.1)).astype(np.float32)
    write_wav(tmp_path / "hit.wav", tone, sr)
    out = tmp_path / "hit.mp4"
    res = runner.invoke(app, ["animate", str(tmp_path / "hit.wav"), "-p", "a ball hits a plate", "--bundle",
                              str(tiny_bundle), "--steps", "2", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["outputs"][0]
    geo = tiny_model.geometry()
    assert row["frames"] == round(1.5 * geo.fps)
    info = probe(out)
    assert info.has_video and info.audio_sample_rate == sr
    assert (info.width, info.height) == (geo.frame_size[1], geo.frame_size[0])
    back = read_audio(out, sr)
    assert abs(len(back) - len(tone)) <= 1024
    n = min(len(back), len(tone)) - 2048
    assert np.corrcoef(back[1024:n], tone[1024:n])[0, 1] > 0.9  # the same sound, not a re-synthesis
    res = runner.invoke(app, ["animate", str(tmp_path / "missing.wav"), "--bundle", str(tiny_bundle)])
    from avcli.errors import MediaError

    assert isinstance(res.exception, MediaError) and "file not found" in str(res.exception)  # exit 2 via main.run


def _tone(path, seconds, sr=8000):
    from avcli.media.ffmpeg import write_wav

    t = np.arange(int(seconds * sr)) / sr
    write_wav(path, (0.4 * np.sin(2 * np.pi * 330 * t) * (t % 0.5 < 0.1)).astype(np.float32), sr)
    return path


def test_long_audio_is_animated_in_windows_to_its_full_length(tiny_bundle, tiny_model, tmp_path):
    """No silent cut: audio longer than the model's window gives a video as long as the audio (+-1 frame), made of
    overlapping windows whose shared frames are carried over by replacement (no seam)."""
    from avcli.media.ffmpeg import probe
    from avcli.pipelines.animate import AnimateRequest
    from avcli.pipelines.pipeline import JointPipeline

    geo = tiny_model.geometry()
    seconds = 3.3 * geo.duration
    wav = _tone(tmp_path / "long.wav", seconds)
    out = tmp_path / "long.mp4"
    res = runner.invoke(app, ["animate", str(wav), "--bundle", str(tiny_bundle), "--steps", "1", "-o", str(out),
                              "--json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["outputs"][0]
    assert abs(row["frames"] - seconds * geo.fps) <= 1 and row["windows"] >= 4
    assert abs(probe(out).duration_s - seconds) <= 1.0 / geo.fps + 0.05
    pipe = JointPipeline.from_bundle(tiny_bundle)
    whole = pipe.animate(wav, AnimateRequest(steps=1))
    first = pipe.animate(wav, AnimateRequest(steps=1, duration=geo.duration))
    # the first window is the same computation either way; later windows start from its tail
    assert np.array_equal(whole.frames[:geo.frames], first.frames)


def test_image_becomes_the_first_frame(tiny_bundle, tiny_model, tmp_path):
    """Mode (a): the given picture's latent is known at frame 0 and re-noised each step, so it comes back exactly
    in latent space; decoded, it is the VAE's reconstruction of the picture."""
    import torch

    from avcli.media.ffmpeg import read_image, write_video
    from avcli.pipelines.animate import AnimateRequest
    from avcli.pipelines.common import decode_video, encode_video
    from avcli.pipelines.pipeline import JointPipeline

    geo = tiny_model.geometry()
    rng = np.random.default_rng(0)
    img = (rng.random((90, 120, 3)) * 255).astype(np.uint8)  # not the bundle's size: fitted
    png = tmp_path / "first.png"
    write_video(tmp_path / "still.mp4", img[None].repeat(2, 0), 1)  # any picture ffmpeg reads
    import subprocess

    from avcli.media.ffmpeg import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(tmp_path / "still.mp4"), "-frames:v", "1",
                    str(png)], check=True)
    wav = _tone(tmp_path / "hit.wav", geo.duration)
    pipe = JointPipeline.from_bundle(tiny_bundle)
    for fit in ("crop", "pad"):
        out = pipe.animate(wav, AnimateRequest(steps=2, image=str(png), fit=fit))
        fitted = read_image(png, geo.frame_size, fit)
        assert np.array_equal(out.first_frame, fitted)
        want = encode_video(pipe.components, fitted[None])
        assert torch.equal(out.video_latent[:, :, :1], want)  # exact in latent space
        recon = decode_video(pipe.components, want)[0][0]
        assert np.array_equal(out.frames[0], recon)
    plain = pipe.animate(wav, AnimateRequest(steps=2))
    assert not torch.equal(plain.video_latent[:, :, :1], want)


def test_bad_image_is_one_line_exit_2_before_compute(tiny_bundle, tmp_path, monkeypatch, capsys):
    import sys

    from avcli.cli.main import run

    wav = _tone(tmp_path / "hit.wav", 1.0)
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    (tmp_path / "o.mp4").unlink(missing_ok=True)
    for image, why in ((tmp_path / "bad.png", "not an image"), (tmp_path / "none.png", "file not found")):
        monkeypatch.setattr(sys, "argv", ["avgen", "animate", str(wav), "--image", str(image), "--bundle",
                                          str(tiny_bundle), "-o", str(tmp_path / "o.mp4")])
        try:
            run()
            code = 0
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and why in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o.mp4").exists()
