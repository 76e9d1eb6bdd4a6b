"""`avgen generate` end to end on a bundle: a playable mp4 of the requested length, deterministic by seed."""

import hashlib
import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from avcli.cli.main import app

runner = CliRunner()


def _generate(bundle, out, *extra):
    return runner.invoke(app, ["generate", "--bundle", str(bundle), "-p", "a red ball bouncing on a metal plate",
                               "--steps", "2", "-o", str(out), *extra])


def test_generate_writes_decodable_mp4(tiny_bundle, tiny_model, tmp_path):
    from avcli.media.ffmpeg import probe, read_audio

    out = tmp_path / "a.mp4"
    res = _generate(tiny_bundle, out, "--json", "--save-wav")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert set(summary["timings_s"]) >= {"load", "text", "denoise", "decode", "vocode", "mux"}
    geo = tiny_model.geometry()
    info = probe(out)
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (geo.frame_size[1], geo.frame_size[0])
    assert abs(info.duration_s - geo.duration) <= 1.0 / geo.fps + 0.05
    assert info.audio_sample_rate == geo.sample_rate
    import soundfile as sf

    wav, sr = sf.read(out.with_suffix(".wav"))
    assert sr == geo.sample_rate and len(wav) == int(geo.duration * sr)
    assert len(read_audio(out, geo.sample_rate)) >= 0.9 * geo.duration * geo.sample_rate


def test_same_seed_same_file(tiny_bundle, tmp_path):
    digests = []
    for name in ("x.mp4", "y.mp4"):
        assert _generate(tiny_bundle, tmp_path / name, "--seed", "3").exit_code == 0
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    assert _generate(tiny_bundle, tmp_path / "z.mp4", "--seed", "4").exit_code == 0
    assert hashlib.sha256((tmp_path / "z.mp4").read_bytes()).hexdigest() != digests[0]


def test_several_samples_into_directory(tiny_bundle, tmp_path):
    out = tmp_path / "takes"
    out.mkdir()
    res = _generate(tiny_bundle, out, "--num-samples", "2")
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("*.mp4"))) == 2


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "avcli", *args], capture_output=True, text=True)


def test_existing_output_not_overwritten(tiny_bundle, tmp_path):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"precious")
    r = _cli("generate", "--bundle", str(tiny_bundle), "-p", "x", "--steps", "1", "-o", str(out))
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("args,needle", [
    (["--duration", "99"], "--duration"),
    (["--fps", "100"], "--fps"),
    (["--solver", "euler"], "solver"),
    (["--bundle", "/nonexistent/bundle"], "not found"),
    (["--cfg-audio-interval", "0.7:0.3"], "--cfg-audio-interval"),
    (["--cfg-video-interval", "half"], "--cfg-video-interval"),
    (["--audio-guidance-interval", "0.9:0.1"], "--audio-guidance-interval"),
    (["--video-guidance-interval", "0.9:0.1"], "--video-guidance-interval"),
])
def test_bad_options_give_one_line(tiny_bundle, tmp_path, args, needle):
    base = ["generate", "-p", "x", "--steps", "1", "-o", str(tmp_path / "o.mp4")]
    if "--bundle" not in args:
        base += ["--bundle", str(tiny_bundle)]
    r = _cli(*base, *args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_unknown_option_is_a_usage_error_not_an_internal_one(tmp_path):
    # typer vendors click: its usage errors must still print click's short usage text and exit 2
    r = _cli("generate", "-p", "x", "--no-such-flag", "-o", str(tmp_path / "o.mp4"))
    assert r.returncode == 2, r.stderr
    assert "No such option" in r.stderr and "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_the_console_script_leaves_without_finalization_but_runs_threads_and_atexit_handlers(tmp_path):
    """The console script (`main()`) leaves through os._exit (skipping ~0.7 s of torch/onnxruntime finalization) only after what the
    interpreter would still do: a non-daemon thread finishes its write, atexit handlers run, stdout is flushed,
    and the exit code is the command's (2 for a usage error, 0 for success)."""
    import textwrap

    def script(argv):
        return textwrap.dedent(f"""
            import atexit, sys, threading, time
            from pathlib import Path
            out = Path({str(tmp_path)!r})
            atexit.register(lambda: (out / "atexit").write_text("ran"))
            threading.Thread(target=lambda: (time.sleep(0.3), (out / "thread").write_text("done"))).start()
            sys.argv = ["avgen", *{argv!r}]
            from avcli.cli.main import main
            main()
            (out / "after_run").write_text("main returned")  # never: main() does not return
        """)

    r = subprocess.run([sys.executable, "-c", script(["generate"])], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "give --prompt" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "atexit").read_text() == "ran" and (tmp_path / "thread").read_text() == "done"
    assert not (tmp_path / "after_run").exists()
    (tmp_path / "atexit").unlink()
    r = subprocess.run([sys.executable, "-c", script(["generate", "--help"])], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "Examples" in r.stdout and (tmp_path / "atexit").exists()


def test_guidance_interval_reaches_the_sampler_from_the_command_line(tiny_bundle, tmp_path):
    out = tmp_path / "gi.mp4"
    r = _cli("generate", "--bundle", str(tiny_bundle), "-p", "a red ball", "--steps", "2", "--cfg-audio-interval",
             "0:0.5", "--save-latents", "--json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["settings"]["cfg_audio_interval"] == [0.0, 0.5]
    import torch
    from safetensors.torch import load_file

    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    got = load_file(str(out.with_suffix(".latents.safetensors")))
    pipe = JointPipeline.from_bundle(tiny_bundle, backend="torch")
    want = pipe.generate(GenerateRequest("a red ball", steps=2, cfg_audio_interval=(0.0, 0.5)))[0]
    full = pipe.generate(GenerateRequest("a red ball", steps=2))[0]
    key = [k for k in got if "audio" in k][0]
    assert torch.equal(got[key], want.audio_latent) and not torch.equal(got[key], full.audio_latent)


def test_guidance_rescale_reaches_the_sampler_from_the_command_line_and_ships_in_a_bundle(tiny_bundle, tmp_path):
    out = tmp_path / "gr.mp4"
    r = _cli("generate", "--bundle", str(tiny_bundle), "-p", "a red ball", "--steps", "2", "--cfg-audio", "4",
             "--cfg-audio-rescale", "0.7", "--save-latents", "--json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    settings = json.loads(r.stdout)["settings"]
    assert settings["cfg_audio_rescale"] == 0.7 and settings["cfg_video_rescale"] is None  # None: the bundle's
    import torch
    from safetensors.torch import load_file

    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline
    from avcli.training.stages import shipping_manifest

    got = load_file(str(out.with_suffix(".latents.safetensors")))
    pipe = JointPipeline.from_bundle(tiny_bundle, backend="torch")
    want = pipe.generate(GenerateRequest("a red ball", steps=2, cfg_audio=4.0, cfg_audio_rescale=0.7))[0]
    plain = pipe.generate(GenerateRequest("a red ball", steps=2, cfg_audio=4.0))[0]
    key = [k for k in got if "audio" in k][0]
    assert torch.equal(got[key], want.audio_latent) and not torch.equal(got[key], plain.audio_latent)
    extra = shipping_manifest(pipe.manifest, None, cfg_audio_rescale=0.5)
    assert extra["sampling"]["cfg_audio_rescale"] == 0.5


def _trained_pipe(manifest):
    """A pipeline over a tiny joint model whose cross-modal blocks have weight (a fresh model's zero-initialised
    blocks would make any guidance over the other modality a no-op)."""
    from avcli.models.joint import JointModel
    from avcli.pipelines.pipeline import JointPipeline

    torch.manual_seed(0)
    model = JointModel(manifest).eval()
    with torch.no_grad():
        for p in model.joint_parameters():
            p.add_(0.05 * torch.randn_like(p))
    return JointPipeline.from_model(model)


def test_audio_guidance_on_generate_runs_the_video_unet_on_null_audio_too(tiny_manifest):
    """seed 002's eta in generate: with eta != 1 each step adds a video U-Net call with zero audio features (the
    picture pulled toward its sound); eta = 1 is the plain conditional sampler, bit for bit."""
    from avcli.pipelines.generate import GenerateRequest

    pipe = _trained_pipe(tiny_manifest)
    calls = {"n": 0, "null": 0}
    unet = pipe.components["video_unet"]

    def counting(**kw):
        calls["n"] += 1
        calls["null"] += int(not kw["cross_features"].any())
        return unet(**kw)

    pipe.components["video_unet"] = counting
    plain = pipe.generate(GenerateRequest("a red ball", steps=3))[0]
    assert calls == {"n": 3, "null": 0}
    one = pipe.generate(GenerateRequest("a red ball", steps=3, audio_guidance=1.0))[0]
    assert torch.equal(one.video_latent, plain.video_latent)
    calls.update(n=0, null=0)
    pulled = pipe.generate(GenerateRequest("a red ball", steps=3, audio_guidance=3.0))[0]
    assert calls == {"n": 6, "null": 3}
    assert not torch.allclose(pulled.video_latent, plain.video_latent)


def test_audio_guidance_interval_takes_turns_with_the_video_text_guidance(tiny_manifest):
    """--cfg-video-interval 0:0.4 with --audio-guidance-interval 0.4:1 (5 steps: k/K = 0, .2 | .4, .6, .8): the
    first two steps run the video U-Net on [negative; positive] text with the real audio features, the last three
    on [null audio; real audio] with the positive text; one call of batch 2 every step, the cost of text guidance
    alone. The result differs from both the pull on every step and no pull (the batched formula itself is checked
    against separate calls in test_animate's audio-guidance test)."""
    from avcli.pipelines.generate import GenerateRequest

    pipe = _trained_pipe(tiny_manifest)
    unet, seen = pipe.components["video_unet"], []

    def recording(**kw):
        zero_rows = [not r.any() for r in kw["cross_features"]]
        same_text = bool(torch.equal(kw["text_embeds"][0], kw["text_embeds"][-1]))
        seen.append((kw["sample"].shape[0], zero_rows, same_text))
        return unet(**kw)

    pipe.components["video_unet"] = recording
    req = GenerateRequest("a red ball", steps=5, audio_guidance=3.0, cfg_video_interval=(0.0, 0.4),
                          audio_guidance_interval=(0.4, 1.0))
    turns = pipe.generate(req)[0]
    assert [s[0] for s in seen] == [2] * 5
    assert [s[1] for s in seen] == [[False, False]] * 2 + [[True, False]] * 3
    assert [s[2] for s in seen] == [False] * 2 + [True] * 3  # text guidance first, then the positive prompt only
    pipe.components["video_unet"] = unet
    full = pipe.generate(GenerateRequest("a red ball", steps=5, audio_guidance=3.0, cfg_video_interval=(0.0, 0.4)))[0]
    none = pipe.generate(GenerateRequest("a red ball", steps=5, cfg_video_interval=(0.0, 0.4)))[0]
    assert not torch.allclose(turns.video_latent, full.video_latent)
    assert not torch.allclose(turns.video_latent, none.video_latent)


def test_audio_guidance_on_a_bundle_never_trained_for_it_warns_and_still_runs(tiny_bundle, tmp_path):
    """The tiny bundle's training record has no joint stage with --audio-dropout: --audio-guidance 3 warns on one
    line and writes the clip; a record with --audio-dropout 0.1 (or eta 1) gives no warning."""
    import shutil

    from avcli.pipelines.generate import audio_guidance_untrained

    r = _cli("generate", "--bundle", str(tiny_bundle), "-p", "a red ball", "--steps", "1", "--audio-guidance", "3",
             "-o", str(tmp_path / "w.mp4"))
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and "--audio-dropout" in r.stderr and (tmp_path / "w.mp4").exists()
    b = tmp_path / "dropout"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "bundle.json").read_text())
    m["training"] = (m.get("training") or []) + [{"stage": "joint", "steps": 10, "audio_dropout": 0.1}]
    assert audio_guidance_untrained(m, 3.0) is None and audio_guidance_untrained(m | {"training": []}, 1.0) is None
    assert "--audio-dropout" in audio_guidance_untrained(m | {"training": []}, 3.0)
    (b / "bundle.json").write_text(json.dumps(m))
    r = _cli("generate", "--bundle", str(b), "-p", "a red ball", "--steps", "1", "--audio-guidance", "3",
             "-o", str(tmp_path / "ok.mp4"))
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_video_guidance_on_generate_runs_the_audio_unet_on_null_video_too(tiny_manifest):
    """seed 004's guidance over the picture in generate, on the audio U-Net: with eta != 1 each step in its interval
    adds an audio U-Net pass with zero video features; eta = 1 is the plain sampler, bit for bit."""
    from avcli.pipelines.generate import GenerateRequest, resolved_sampling

    pipe = _trained_pipe(tiny_manifest)
    rows = []
    unet = pipe.components["audio_unet"]

    def counting(**kw):
        rows.extend(bool(not r.any()) for r in kw["cross_features"])
        return unet(**kw)

    pipe.components["audio_unet"] = counting
    plain = pipe.generate(GenerateRequest("a red ball", steps=4))[0]
    n_plain = len(rows)
    assert not any(rows)
    assert torch.equal(pipe.generate(GenerateRequest("a red ball", steps=4, video_guidance=1.0))[0].audio_latent,
                       plain.audio_latent)
    rows.clear()
    req = GenerateRequest("a red ball", steps=4, video_guidance=3.0, video_guidance_interval=(0.0, 0.5))
    pulled = pipe.generate(req)[0]
    assert rows.count(True) == n_plain // 2 and len(rows) == n_plain + n_plain // 2  # two of four steps
    assert not torch.allclose(pulled.audio_latent, plain.audio_latent)
    ran = resolved_sampling(pipe, req)
    assert ran["video_guidance"] == 3.0 and ran["video_guidance_interval"] == [0.0, 0.5]
