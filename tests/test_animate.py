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


def _png(tmp_path, shape=(90, 120, 3), seed=0):
    import subprocess

    from avcli.media.ffmpeg import ffmpeg_exe, write_video

    img = (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)
    write_video(tmp_path / "still.mp4", img[None].repeat(2, 0), 1)  # any picture ffmpeg reads
    png = tmp_path / "first.png"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(tmp_path / "still.mp4"), "-frames:v", "1",
                    str(png)], check=True)
    return png


def test_image_becomes_the_first_frame(tiny_bundle, tiny_model, tmp_path):
    """Mode (a): the given picture's latent is known at frame 0 and re-noised each step, so it comes back exactly
    in latent space; decoded, it is the VAE's reconstruction of the picture (here the encoder's latent, unfitted)."""
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
        out = pipe.animate(wav, AnimateRequest(steps=2, image=str(png), fit=fit, first_frame_steps=0))
        assert out.first_frame_fit_steps == 0
        fitted = read_image(png, geo.frame_size, fit)
        assert np.array_equal(out.first_frame, fitted)
        want = encode_video(pipe.components, fitted[None])
        assert torch.equal(out.video_latent[:, :, :1], want)  # exact in latent space
        recon = decode_video(pipe.components, want)[0][0]
        assert np.array_equal(out.frames[0], recon)
    plain = pipe.animate(wav, AnimateRequest(steps=2))
    assert not torch.equal(plain.video_latent[:, :, :1], want)


def test_first_latent_is_fitted_through_the_decoder(tiny_bundle, tiny_model, tmp_path):
    """By default the first latent is fitted so that its decoded frame is closer to the picture than the encoder's
    latent decodes: the output keeps that latent exactly at frame 0 (mode a), its decoded frame 0 is that latent's
    decode, the decoder's weights get no gradients, and the CLI reports the steps and the PSNR."""
    import torch

    from avcli.media.ffmpeg import read_image
    from avcli.pipelines.animate import FIRST_FRAME_STEPS, AnimateRequest, fit_first_latent
    from avcli.pipelines.backends import descriptions
    from avcli.pipelines.common import decode_video, encode_video
    from avcli.pipelines.pipeline import JointPipeline

    geo = tiny_model.geometry()
    png = _png(tmp_path)
    wav = _tone(tmp_path / "hit.wav", geo.duration)
    pipe = JointPipeline.from_bundle(tiny_bundle)
    out = pipe.animate(wav, AnimateRequest(steps=2, image=str(png)))
    assert out.first_frame_fit_steps == FIRST_FRAME_STEPS > 0
    pic = read_image(png, geo.frame_size, "crop")
    enc = encode_video(pipe.components, pic[None])
    decoder = descriptions(pipe.manifest)["video_vae_decoder"].module(pipe.model)
    want = fit_first_latent(decoder, pic, enc, FIRST_FRAME_STEPS)
    assert all(p.grad is None for p in decoder.parameters())
    assert torch.allclose(out.video_latent[:, :, :1], want, atol=1e-6)  # the same fit, bit for bit up to float order
    assert np.array_equal(out.frames[0], decode_video(pipe.components, out.video_latent[:, :, :1])[0][0])

    def err(latent):
        return float(np.mean((decode_video(pipe.components, latent)[0][0].astype(float) - pic) ** 2))

    assert err(want) < 0.9 * err(enc)  # the fit moves the decoded frame towards the picture
    unfitted = pipe.animate(wav, AnimateRequest(steps=2, image=str(png), first_frame_steps=0))
    assert out.first_frame_psnr_db > unfitted.first_frame_psnr_db
    res = runner.invoke(app, ["animate", str(wav), "--image", str(png), "--bundle", str(tiny_bundle), "--steps",
                              "1", "--first-frame-steps", "3", "-o", str(tmp_path / "o.mp4"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["first_frame_fit_steps"] == 3
    assert summary["outputs"][0]["first_frame_psnr_db"] > 0


def test_bad_image_is_one_line_exit_2_before_compute(tiny_bundle, tmp_path, monkeypatch, capsys):
    import sys

    from avcli.cli.main import run

    wav = _tone(tmp_path / "hit.wav", 1.0)
    import subprocess

    from avcli.media.ffmpeg import ffmpeg_exe, read_image

    (tmp_path / "bad.png").write_bytes(b"not a picture")
    good = tmp_path / "good.jpg"  # a real JPEG, then the same file cut short (a half-copied picture)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=97x53:rate=1", "-frames:v", "1",
                    str(good)], check=True)
    assert read_image(good, (32, 32)).shape == (32, 32, 3)
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "o.mp4").unlink(missing_ok=True)
    for image, why in ((tmp_path / "bad.png", "not an image"), (tmp_path / "none.png", "file not found"),
                       (tmp_path / "cut.jpg", "can decode")):
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


def test_audio_guidance_follows_seed_002s_formula_and_eta_1_is_the_conditional_prediction():
    """eps = eps(null audio) + eta (eps(audio) - eps(null audio)) on top of text CFG, the null being zero audio
    features; eta = 1 makes no extra call and returns the conditional prediction itself."""
    import torch

    from avcli.sampling.joint import _guided, cross_guided

    calls = []

    def unet(sample, timestep, text_embeds, cross_features):  # a stand-in with distinct text and audio paths
        calls.append(float(cross_features.abs().sum()))
        return sample * 0.5 + text_embeds.mean() + 2.0 * cross_features.mean(dim=(1, 2), keepdim=True)[..., None]

    g = torch.Generator().manual_seed(0)
    x, cross = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 6, 7, generator=g)
    pos, neg = torch.randn(2, 4, 8, generator=g), torch.zeros(2, 4, 8)
    cond = _guided(unet, x, 10, pos, neg, cross, 3.0)
    calls.clear()
    assert torch.equal(cross_guided(unet, x, 10, pos, neg, cross, 3.0, 1.0), cond) and len(calls) == 1
    null = _guided(unet, x, 10, pos, neg, torch.zeros_like(cross), 3.0)
    calls.clear()
    got = cross_guided(unet, x, 10, pos, neg, cross, 3.0, 2.5)
    assert torch.allclose(got, null + 2.5 * (cond - null)) and not torch.allclose(got, cond)
    assert len(calls) == 2 and calls.count(0.0) == 1  # one pass with the null (zero) audio features
    # without text guidance (scale 1) the two passes share one call of batch 2 (the CFG batch engines are built
    # for); the result is the same formula on the positive prompt alone
    t = torch.full((2,), 10, dtype=torch.int64)
    cond1 = unet(sample=x, timestep=t, text_embeds=pos, cross_features=cross)
    null1 = unet(sample=x, timestep=t, text_embeds=pos, cross_features=torch.zeros_like(cross))
    calls.clear()
    got = cross_guided(unet, x, 10, pos, neg, cross, 1.0, 2.5)
    assert torch.allclose(got, null1 + 2.5 * (cond1 - null1), atol=1e-6) and not torch.allclose(got, cond1)
    assert len(calls) == 1


def _record_null_audio_calls(pipe) -> list[bool]:
    """Wrap the pipeline's video U-Net: each batch row of each call appends whether its audio features were the
    null (all zero)."""
    import torch

    unet, seen = pipe.components["video_unet"], []

    def counting(**kw):
        seen.extend(bool(torch.count_nonzero(row) == 0) for row in kw["cross_features"])
        return unet(**kw)

    pipe.components["video_unet"] = counting
    return seen


def test_animate_audio_guidance_reaches_the_video_unet_and_eta_1_changes_nothing(tiny_bundle, tiny_model,
                                                                                     tmp_path):
    """Through the pipeline: eta = 1 gives the same frames as no flag; eta != 1 runs the extra null-audio pass of
    the video U-Net every step, with zero audio features (a fresh model's zero-initialised CMC-PE blocks ignore
    the audio either way, so the pass is checked, not the picture)."""

    from avcli.pipelines.animate import AnimateRequest
    from avcli.pipelines.pipeline import JointPipeline

    wav = _tone(tmp_path / "hit.wav", tiny_model.geometry().duration)
    pipe = JointPipeline.from_bundle(tiny_bundle)
    seen = _record_null_audio_calls(pipe)
    base = pipe.animate(wav, AnimateRequest(steps=2))
    n_base = len(seen)
    assert np.array_equal(pipe.animate(wav, AnimateRequest(steps=2, audio_guidance=1.0)).frames, base.frames)
    assert len(seen) == 2 * n_base and not any(seen)
    seen.clear()
    pipe.animate(wav, AnimateRequest(steps=2, audio_guidance=3.0))
    assert len(seen) == 2 * n_base and seen.count(True) == n_base  # one null-audio row per step


def _cross_batch(tiny_model, unet: str):
    """A copy of the model whose `unet`'s fresh (zero-initialised) CMC-PE blocks get a say, its schedules, and a
    noised batch of 2 with random captions: (model, sv, sa, nv, na, tv, ta)."""
    import copy

    import torch

    from avcli.sampling.schedules import NoiseSchedule
    from avcli.training.objective import add_noise

    m = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for name, p in getattr(m, unet).named_parameters():
            if name.startswith("cross_blocks.") and name.endswith("out.weight"):
                p.normal_(0, 0.2, generator=torch.Generator().manual_seed(3))
    sv, sa = (NoiseSchedule.from_dict(m.manifest[k]["schedule"]) for k in ("video", "audio"))
    geo = m.geometry()
    g = torch.Generator().manual_seed(0)
    v0, a0 = torch.randn(2, *geo.video_latent[:], generator=g), torch.randn(2, *geo.audio_latent[:], generator=g)
    text = m.manifest["text"]
    tv = torch.randn(2, text["max_length"], text["video"]["dim"], generator=g)
    ta = torch.randn(2, text["max_length"], text["audio"]["dim"], generator=g)
    nv = add_noise(v0, sv, sv.alphas_cumprod(), torch.Generator().manual_seed(1))
    na = add_noise(a0, sa, sa.alphas_cumprod(), torch.Generator().manual_seed(2))
    return m, sv, sa, nv, na, tv, ta


def test_audio_dropout_shows_the_video_unet_the_null_audio(tiny_model):
    """Training side of audio guidance: with dropout 1 every sample's video U-Net input is the zero (null) audio
    features that sampling uses for eps(null audio); the audio U-Net is untouched."""
    import torch

    from avcli.training.objective import joint_predict

    m, sv, sa, nv, na, tv, ta = _cross_batch(tiny_model, "video_unet")
    with torch.no_grad():
        pv, pa = joint_predict(m, nv, na, tv, ta, sv, sa, None, 0.0, audio_dropout=1.0)
        pv_keep, pa_keep = joint_predict(m, nv, na, tv, ta, sv, sa, None, 0.0)
        f_a = m.audio_connector(latent=na.x_t, x0_hat=torch.zeros_like(na.x_t))
        want = m.video_unet(sample=nv.x_t, timestep=nv.t, text_embeds=tv, cross_features=torch.zeros_like(f_a))
    assert torch.allclose(pv, want, atol=1e-6) and not torch.allclose(pv, pv_keep, atol=1e-4)
    assert torch.equal(pa, pa_keep)


def test_video_dropout_shows_the_audio_unet_the_null_video(tiny_model):
    """Training side of seed 004's guidance over the picture: with video dropout 1 every sample's audio U-Net input
    is the zero (null) video features that sampling uses for eps(null video); the video U-Net is untouched, and the
    features returned for the onset head are the connector's own. Off, the random stream is that of a run without
    it."""
    import torch

    from avcli.training.objective import joint_predict

    m, sv, sa, nv, na, tv, ta = _cross_batch(tiny_model, "audio_unet")
    with torch.no_grad():
        pv, pa, f = joint_predict(m, nv, na, tv, ta, sv, sa, None, 0.0, video_dropout=1.0, features=True)
        pv_keep, pa_keep, f_keep = joint_predict(m, nv, na, tv, ta, sv, sa, None, 0.0, features=True)
        f_v = m.video_connector(latent=nv.x_t, x0_hat=torch.zeros_like(nv.x_t))
        want = m.audio_unet(sample=na.x_t, timestep=na.t, text_embeds=ta, cross_features=torch.zeros_like(f_v))
    assert torch.allclose(pa, want, atol=1e-6) and not torch.allclose(pa, pa_keep, atol=1e-4)
    assert torch.equal(pv, pv_keep) and torch.equal(f, f_keep) and torch.allclose(f, f_v, atol=1e-6)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    with torch.no_grad():
        joint_predict(m, nv, na, tv, ta, sv, sa, g1, 0.5, video_dropout=0.0)
        joint_predict(m, nv, na, tv, ta, sv, sa, g2, 0.5)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_a_bundle_can_carry_its_animate_audio_guidance(tiny_bundle, tiny_model, tmp_path):
    """`sampling.animate_audio_guidance` in bundle.json is animate's default eta (the null-audio pass runs without
    the flag, on every step: generate's `audio_guidance_interval` is not animate's), --audio-guidance overrides it,
    generate and foley ignore it, and --json says which eta ran."""
    import shutil

    import torch

    from avcli.pipelines.animate import AnimateRequest
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    b = tmp_path / "eta"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "bundle.json").read_text())
    m["sampling"]["animate_audio_guidance"] = 3.0
    m["sampling"]["audio_guidance_interval"] = [0.5, 1.0]
    (b / "bundle.json").write_text(json.dumps(m))
    wav = _tone(tmp_path / "hit.wav", tiny_model.geometry().duration)
    pipe = JointPipeline.from_bundle(b)
    seen = _record_null_audio_calls(pipe)
    out = pipe.animate(wav, AnimateRequest(steps=2))
    assert out.audio_guidance == 3.0 and seen.count(True) == seen.count(False) > 0  # one null-audio call per step
    seen.clear()
    assert pipe.animate(wav, AnimateRequest(steps=2, audio_guidance=1.0)).audio_guidance == 1.0
    assert not any(seen)
    seen.clear()
    plain = JointPipeline.from_bundle(tiny_bundle)
    a = pipe.generate(GenerateRequest(prompt="a ball", steps=2, seed=0))
    c = plain.generate(GenerateRequest(prompt="a ball", steps=2, seed=0))
    assert not any(seen) and torch.equal(a[0].video_latent, c[0].video_latent)
    res = runner.invoke(app, ["animate", str(wav), "--bundle", str(b), "--steps", "1", "-o", str(tmp_path / "o.mp4"),
                              "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["audio_guidance"] == 3.0
