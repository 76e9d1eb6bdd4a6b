"""`avgen import` on tiny random AnimateDiff and AudioLDM pipelines built in code and saved with save_pretrained:
components, schedulers and text encoders picked up; with zero connectors and gamma = 1 the joint sampler gives the
same latents as diffusers' AnimateDiffPipeline and AudioLDMPipeline; pickles refused unless allowed; clear errors."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch
from typer.testing import CliRunner

from avcli.cli.main import app
from avcli.errors import UsageError
from avcli.models.bundle import load_bundle, save_bundle
from avcli.models.importer import ImportOptions, import_checkpoints
from avcli.testing import clip_tokenizer, roberta_tokenizer

PROMPT = "a red ball"  # short enough that both tokenizers pad it
FPS, DURATION, FRAMES, SIZE = 8, 1.0, 8, 32  # 8 frames of 32 x 32; audio: 100 mel frames at 16 kHz / hop 160
runner = CliRunner()


def tiny_animatediff():
    """An AnimateDiff pipeline, and the Stable Diffusion U-Net + motion adapter it was made of."""
    from diffusers import AnimateDiffPipeline, AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=2, sample_size=SIZE // 2, in_channels=4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=2)
    adapter = MotionAdapter(block_out_channels=(8, 16), motion_layers_per_block=2, motion_norm_num_groups=2,
                            motion_num_attention_heads=4)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=2, scaling_factor=0.18215)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32,
                                        intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                        vocab_size=600, max_position_embeddings=16))
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    # non-zero motion output layers (diffusers zero-initialises them): parity must cover the motion modules too
    for name, p in adapter.named_parameters():
        if "proj_out" in name:
            torch.nn.init.normal_(p, std=0.1)
    pipe = AnimateDiffPipeline(vae=vae, text_encoder=text.eval(), tokenizer=clip_tokenizer(), unet=unet,
                               motion_adapter=adapter, scheduler=sched)
    return pipe, unet, adapter


def tiny_audioldm():
    from diffusers import AudioLDMPipeline, AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import ClapTextConfig, ClapTextModelWithProjection, SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(1)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, sample_size=32,
                                in_channels=4, out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=(8, 16),
                                class_embed_type="simple_projection", projection_class_embeddings_input_dim=8,
                                class_embeddings_concat=True)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=1, out_channels=1, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=8)
    text = ClapTextModelWithProjection(ClapTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=8,
                                                      intermediate_size=37, num_attention_heads=1, num_hidden_layers=1,
                                                      vocab_size=300, projection_dim=8, max_position_embeddings=40))
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16,
                                                    upsample_rates=[4, 4, 10], upsample_kernel_sizes=[8, 8, 20],
                                                    resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
                                                    normalize_before=False))
    sched = DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    return AudioLDMPipeline(vae=vae, text_encoder=text.eval(), tokenizer=roberta_tokenizer(), unet=unet,
                            scheduler=sched, vocoder=vocoder.eval())


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (video, unet2d, adapter), audio = tiny_animatediff(), tiny_audioldm()
        video.save_pretrained(root / "animatediff")
        audio.save_pretrained(root / "audioldm")
    return {"video": video, "audio": audio, "video_dir": root / "animatediff", "audio_dir": root / "audioldm",
            "unet2d": unet2d, "adapter": adapter}


@pytest.fixture(scope="module")
def imported(pipelines, tmp_path_factory):
    opts = ImportOptions(video=pipelines["video_dir"], audio=pipelines["audio_dir"], duration=DURATION, fps=FPS)
    result = import_checkpoints(opts)
    path = save_bundle(result.model, tmp_path_factory.mktemp("bundles") / "imported", folders=result.folders)
    return result, path


def test_components_schedules_and_text_encoders_picked_up(pipelines, imported):
    result, path = imported
    model = load_bundle(path)
    m = model.manifest
    assert m["components"]["audio_unet"]["text_mode"] == "class_embedding"
    assert m["text"]["video"]["class"] == "transformers.CLIPTextModel" and m["text"]["video"]["max_length"] == 16
    assert m["text"]["audio"]["class"] == "transformers.ClapTextModelWithProjection"
    assert m["text"]["audio"]["max_length"] == 24 and not m["text"]["video"]["use_attention_mask"]
    assert m["video"]["schedule"] == {"beta_schedule": "linear", "beta_start": 0.00085, "beta_end": 0.012,
                                      "num_train_timesteps": 1000, "prediction_type": "epsilon",
                                      "set_alpha_to_one": False, "timestep_spacing": "leading", "steps_offset": 1}
    assert m["audio"]["schedule"]["beta_schedule"] == "scaled_linear" and m["audio"]["schedule"]["beta_end"] == 0.0195
    media = m["media"]
    assert media["frame_size"] == [SIZE, SIZE] and media["sample_rate"] == 16000 and media["hop_length"] == 160
    assert (media["n_mels"], media["mel_mean"], media["mel_std"], media["mel_scale"]) == (8, 0.0, 1.0, "slaney")
    geo = model.geometry()
    assert geo.video_latent == (4, FRAMES, SIZE // 2, SIZE // 2) and geo.audio_latent == (4, 50, 4)
    # every base tensor is the pipeline's (the motion U-Net as diffusers' from_unet2d builds it)
    video, audio = pipelines["video"], pipelines["audio"]
    pairs = [(model.video_unet.unet, video.unet), (model.video_vae, video.vae), (model.audio_unet.unet, audio.unet),
             (model.audio_vae, audio.vae), (model.vocoder.model, audio.vocoder),
             (model.text_encoder_video.model, video.text_encoder), (model.text_encoder_audio.model, audio.text_encoder)]
    for ours, theirs in pairs:
        sd = theirs.state_dict()
        assert all(torch.equal(v, sd[k]) for k, v in ours.state_dict().items()), type(theirs).__name__
    for name in ("tokenizer_video", "tokenizer_audio"):
        assert (path / name / "tokenizer_config.json").is_file()
    rows = {r["component"]: r for r in result.rows}
    assert rows["video_unet"]["class"] == "UNetMotionModel" and rows["video_connector"]["source"].startswith("fresh")
    assert rows["text_encoder_audio"]["parameters"] == sum(p.numel() for p in audio.text_encoder.parameters())


def test_text_encoders_match_the_pipelines(pipelines, imported):
    from avcli.pipelines.common import PromptEncoder, torch_components

    model = load_bundle(imported[1])
    enc = PromptEncoder(model, torch_components(model))
    video, audio = pipelines["video"], pipelines["audio"]
    with torch.no_grad():
        v_pos, v_neg = video.encode_prompt(PROMPT, "cpu", 1, True, None)
        a_embeds = audio._encode_prompt(PROMPT, "cpu", 1, True)  # [negative ""; positive], normalised
        assert torch.allclose(enc.encode([PROMPT], "video"), v_pos, atol=1e-6)
        assert torch.allclose(enc.encode([""], "video"), v_neg, atol=1e-6)
        assert torch.allclose(enc.encode(["", PROMPT], "audio")[:, 0], a_embeds, atol=1e-6)


def test_joint_sampler_reproduces_both_pipelines(pipelines, imported):
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    model = load_bundle(imported[1])
    g = torch.Generator().manual_seed(42)
    noise_v = torch.randn((1,) + model.geometry().video_latent, generator=g)
    noise_a = torch.randn((1,) + model.geometry().audio_latent, generator=g)
    steps, cfg_v, cfg_a = 3, 7.5, 2.5
    req = GenerateRequest(PROMPT, steps=steps, solver="ddim", gamma=1.0, cfg_video=cfg_v, cfg_audio=cfg_a, eta=0.0)
    clip = JointPipeline.from_model(model).generate(req, initial_noise=(noise_v, noise_a))[0]

    video, audio = pipelines["video"], pipelines["audio"]
    assert video.scheduler.init_noise_sigma == 1.0 and audio.scheduler.init_noise_sigma == 1.0
    with torch.no_grad():
        ref_v = video(PROMPT, num_frames=FRAMES, height=SIZE, width=SIZE, num_inference_steps=steps,
                      guidance_scale=cfg_v, latents=noise_v.clone(), output_type="latent").frames
        seen = {}
        audio(PROMPT, audio_length_in_s=DURATION, num_inference_steps=steps, guidance_scale=cfg_a,
              latents=noise_a.clone(), callback=lambda i, t, x: seen.update(latents=x.clone()), callback_steps=1)
    assert ref_v.shape == clip.video_latent.shape and seen["latents"].shape == clip.audio_latent.shape
    assert (ref_v - noise_v).abs().max() > 1e-2  # the pipelines did move the latents
    torch.testing.assert_close(clip.video_latent, ref_v, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(clip.audio_latent, seen["latents"], atol=1e-4, rtol=1e-4)


def _hf_cache(model, root, repo: str):
    """Save `model` the way the Hugging Face cache lays a repo out: models--org--name/{refs/main, snapshots/<hash>}."""
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    model.save_pretrained(repo_dir / "snapshots" / "0123abcd")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0123abcd")
    return repo_dir


def _sd_folder(pipelines, root):
    """A Stable Diffusion folder (2-D U-Net, no motion adapter) sharing the AnimateDiff pipeline's other parts."""
    sd = root / "sd15"
    shutil.copytree(pipelines["video_dir"], sd, ignore=shutil.ignore_patterns("unet", "motion_adapter"))
    pipelines["unet2d"].save_pretrained(sd / "unet")
    return sd


def test_stable_diffusion_plus_motion_adapter_from_hf_cache(pipelines, tmp_path):
    sd = _sd_folder(pipelines, tmp_path)
    adapter = _hf_cache(pipelines["adapter"], tmp_path, "guoyww/tiny-motion-adapter")
    with pytest.raises(UsageError, match="no motion_adapter/ .*pass --motion-adapter"):
        import_checkpoints(ImportOptions(video=sd, audio=pipelines["audio_dir"]))
    result = import_checkpoints(ImportOptions(video=sd, audio=pipelines["audio_dir"], motion_adapter=adapter))
    ref = pipelines["video"].unet.state_dict()  # what diffusers' from_unet2d made of the same two parts
    assert all(torch.equal(v, ref[k]) for k, v in result.model.video_unet.unet.state_dict().items())
    assert result.model.manifest["media"]["duration"] == 2.0  # AnimateDiff's 16 frames at 8 fps


def test_single_file_unet_and_pickle_policy(pipelines, tmp_path):
    from safetensors.torch import save_file

    sd = _sd_folder(pipelines, tmp_path)
    # a "fine-tuned" 2-D U-Net as one file, replacing the folder's
    tuned = {k: v + 0.01 for k, v in pipelines["unet2d"].state_dict().items()}
    save_file(tuned, str(tmp_path / "tuned.safetensors"))
    torch.save(tuned, tmp_path / "tuned.ckpt")
    base = dict(video=sd, audio=pipelines["audio_dir"], motion_adapter=pipelines["video_dir"] / "motion_adapter")
    result = import_checkpoints(ImportOptions(**base, video_unet=tmp_path / "tuned.safetensors",
                                              video_config=sd / "unet" / "config.json"))
    got = result.model.video_unet.unet.conv_in.weight
    assert torch.equal(got, tuned["conv_in.weight"])
    with pytest.raises(UsageError, match=r"tuned\.ckpt: pickled checkpoint.*--allow-pickle"):
        import_checkpoints(ImportOptions(**base, video_unet=tmp_path / "tuned.ckpt"))
    result = import_checkpoints(ImportOptions(**base, video_unet=tmp_path / "tuned.ckpt", allow_pickle=True))
    assert torch.equal(result.model.video_unet.unet.conv_in.weight, tuned["conv_in.weight"])
    with pytest.raises(UsageError, match="a single file holds only a U-Net.*--video-unet"):
        import_checkpoints(ImportOptions(video=tmp_path / "tuned.safetensors", audio=pipelines["audio_dir"]))


class _Payload:
    def __reduce__(self):
        return (print, ("unpickling ran code",))


def test_pickled_weights_inside_a_folder(pipelines, tmp_path):
    audio = tmp_path / "audioldm"
    shutil.copytree(pipelines["audio_dir"], audio)
    (audio / "vocoder" / "model.safetensors").unlink()
    torch.save(pipelines["audio"].vocoder.state_dict(), audio / "vocoder" / "pytorch_model.bin")
    with pytest.raises(UsageError, match=r"vocoder/pytorch_model\.bin: pickled checkpoint"):
        import_checkpoints(ImportOptions(video=pipelines["video_dir"], audio=audio))
    # a pickle that would call code is refused even with the flag (weights_only=True never runs it)
    torch.save({"state_dict": pipelines["audio"].vocoder.state_dict(), "payload": _Payload()},
               audio / "vocoder" / "pytorch_model.bin")
    with pytest.raises(UsageError, match="not a plain tensor checkpoint"):
        import_checkpoints(ImportOptions(video=pipelines["video_dir"], audio=audio, allow_pickle=True))
    torch.save({"state_dict": pipelines["audio"].vocoder.state_dict()}, audio / "vocoder" / "pytorch_model.bin")
    result = import_checkpoints(ImportOptions(video=pipelines["video_dir"], audio=audio, allow_pickle=True))
    ref = pipelines["audio"].vocoder.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in result.model.vocoder.model.state_dict().items())


@pytest.mark.parametrize("side, sub, message", [
    ("audio", "vocoder", "no vocoder/ (AudioLDM pipelines have one)"),
    ("audio", "tokenizer", "no tokenizer/ (AudioLDM pipelines have one)"),
    ("video", "vae", "no vae/ (AnimateDiff pipelines have one)"),
])
def test_folder_missing_a_component(pipelines, tmp_path, side, sub, message):
    folder = tmp_path / side
    shutil.copytree(pipelines[f"{side}_dir"], folder)
    shutil.rmtree(folder / sub)
    other = "audio" if side == "video" else "video"
    with pytest.raises(UsageError) as err:
        import_checkpoints(ImportOptions(**{side: folder, other: pipelines[f"{other}_dir"]}))
    assert str(err.value) == f"{folder}: {message}"


def test_trained_connectors_carried_over_and_mismatch_named(pipelines, imported, tiny_bundle, tmp_path):
    from avcli.models.connector_io import joint_state_dict, save_connectors

    model = load_bundle(imported[1])
    torch.manual_seed(3)
    for p in model.joint_parameters():
        torch.nn.init.normal_(p, std=0.05)
    trained = save_bundle(model, tmp_path / "trained")
    save_connectors(model, tmp_path / "joint.safetensors")
    want = joint_state_dict(model)
    for source in (trained, tmp_path / "joint.safetensors"):
        result = import_checkpoints(ImportOptions(video=pipelines["video_dir"], audio=pipelines["audio_dir"],
                                                  connectors=source, duration=DURATION, fps=FPS))
        got = joint_state_dict(result.model)
        assert all(torch.equal(got[k], want[k]) for k in want)
    with pytest.raises(UsageError, match="does not match the connectors"):
        import_checkpoints(ImportOptions(video=pipelines["video_dir"], audio=pipelines["audio_dir"],
                                         connectors=trained, mode="xattn"))
    # connectors trained on other bases (the tiny preset) do not fit: the first mismatch is named
    with pytest.raises(UsageError, match=r"connectors from .*tiny: .* is \(\d+, \d+\), this model needs"):
        import_checkpoints(ImportOptions(video=pipelines["video_dir"], audio=pipelines["audio_dir"],
                                         connectors=tiny_bundle))


def test_cli_import_then_generate(pipelines, tmp_path):
    from avcli.media.ffmpeg import probe

    out = tmp_path / "bundle"
    args = ["import", "--video", str(pipelines["video_dir"]), "--audio", str(pipelines["audio_dir"]), "-o", str(out),
            "--duration", str(DURATION), "--fps", str(FPS)]
    res = runner.invoke(app, args + ["--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert {r["component"] for r in summary["components"]} >= {"video_unet", "audio_unet", "vocoder",
                                                               "text_encoder_video", "text_encoder_audio"}
    assert summary["parameters"] > 0 and summary["schedules"]["audio"]["beta_end"] == 0.0195
    model = load_bundle(out)
    assert model.manifest["imported"]["video"] == str(pipelines["video_dir"])
    res = runner.invoke(app, args)  # one line, exit 2 through main.run
    assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2
    assert "already exists (use --overwrite" in str(res.exception) and "\n" not in str(res.exception)
    res = runner.invoke(app, args + ["--overwrite", "--dtype", "float16"])
    assert res.exit_code == 0 and "UNetMotionModel" in res.stdout
    video = tmp_path / "clip.mp4"
    res = runner.invoke(app, ["generate", "--bundle", str(out), "-p", PROMPT, "--steps", "2", "-o", str(video)])
    assert res.exit_code == 0, res.output
    info = probe(video)
    assert info.has_video and info.has_audio and (info.width, info.height) == (SIZE, SIZE)
    assert info.audio_sample_rate == 16000


def test_imported_text_encoders_export_to_onnx(imported, tmp_path):
    """CLIP (mask ignored, as diffusers does) and CLAP (one pooled embedding) export with the usual signature."""
    pytest.importorskip("onnxruntime")
    out = tmp_path / "exp"
    res = runner.invoke(app, ["export", "--bundle", str(imported[1]), "--out", str(out), "--components",
                              "text_encoder_video,text_encoder_audio", "--json"])
    assert res.exit_code == 0, res.output
    man = json.loads((out / "export_manifest.json").read_text())
    assert {v["status"] for v in man["components"].values()} == {"ok"}


def test_older_checkpoint_key_layouts(pipelines, tmp_path):
    """Real checkpoints predate today's key names: CLIP saved with a 'text_model.' prefix (transformers 4), VAE
    attention as query/key/value/proj_attn (diffusers < 0.14). Both load; an LDM-format U-Net is named as such."""
    from safetensors.torch import load_file, save_file

    video = tmp_path / "animatediff"
    shutil.copytree(pipelines["video_dir"], video)
    te = video / "text_encoder" / "model.safetensors"
    save_file({f"text_model.{k}": v for k, v in load_file(str(te)).items()}, str(te))
    vae = video / "vae" / "diffusion_pytorch_model.safetensors"
    old_names = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    renamed = {}
    for k, v in load_file(str(vae)).items():
        for new, old in old_names.items():
            if ".attentions." in k and f".{new}." in k:
                k = k.replace(f".{new}.", f".{old}.")
        renamed[k] = v
    assert any(".query." in k for k in renamed)
    save_file(renamed, str(vae))
    result = import_checkpoints(ImportOptions(video=video, audio=pipelines["audio_dir"]))
    for ours, theirs in ((result.model.text_encoder_video.model, pipelines["video"].text_encoder),
                         (result.model.video_vae, pipelines["video"].vae)):
        ref = theirs.state_dict()
        assert all(torch.equal(v, ref[k]) for k, v in ours.state_dict().items())
    unet = video / "unet" / "diffusion_pytorch_model.safetensors"
    save_file({f"model.diffusion_model.{k}": v for k, v in load_file(str(unet)).items()}, str(unet))
    with pytest.raises(UsageError, match="original \\(LDM/CompVis\\) checkpoint"):
        import_checkpoints(ImportOptions(video=video, audio=pipelines["audio_dir"]))


def test_ddim_clip_sample_is_carried_into_the_schedule(tmp_path):
    from diffusers import DDIMScheduler

    from avcli.models.importer import _schedule

    DDIMScheduler(beta_schedule="scaled_linear", clip_sample=True, clip_sample_range=2.5).save_pretrained(
        tmp_path / "scheduler")
    warnings_: list[str] = []
    s = _schedule(tmp_path, warnings_, "audio")
    assert (s["clip_sample"], s["clip_sample_range"]) == (True, 2.5) and not warnings_
    DDIMScheduler(clip_sample=False).save_pretrained(tmp_path / "scheduler")
    assert "clip_sample" not in _schedule(tmp_path, warnings_, "audio")
