"""Seed 002's first-frame lookups (animate mode b). FF-Attn: the processor against a hand computation, frame 0
unchanged, the video U-Net with it on, and its ONNX export validated at two frame counts. FF-Conv: the video U-Net
against one whose conv_in reads the first frame's latent concatenated to every frame's channels, zero at first,
exported and recorded in a bundle."""

from __future__ import annotations

import copy

import torch
from diffusers.models.attention_processor import Attention

from avcli.models.joint_unet import FirstFrameAttnProcessor, _FrameCount


def test_each_frame_attends_to_its_own_and_the_first_frames_tokens():
    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4).eval()
    b, f, n, c = 2, 3, 5, 8
    h = torch.randn(b * f, n, c)
    frames = _FrameCount()
    frames.n = f
    attn.set_processor(FirstFrameAttnProcessor(frames))
    with torch.no_grad():
        got = attn(h).reshape(b, f, n, c)
        x = h.reshape(b, f, n, c)
        for i in range(b):
            for j in range(f):
                kv = torch.cat([x[i, j], x[i, 0]])  # the set K of seed 002 eq. 12 for FF-Attn
                q, k, v = attn.to_q(x[i, j]), attn.to_k(kv), attn.to_v(kv)
                heads = []
                for hd in range(2):
                    s = slice(4 * hd, 4 * hd + 4)
                    w = torch.softmax(q[:, s] @ k[:, s].T / 2.0, dim=-1)  # scale 1/sqrt(4)
                    heads.append(w @ v[:, s])
                want = attn.to_out[0](torch.cat(heads, dim=1))
                assert torch.allclose(got[i, j], want, atol=1e-5), (i, j)
        plain = Attention(query_dim=8, heads=2, dim_head=4).eval()
        plain.load_state_dict(attn.state_dict())
        # frame 0 sees its own tokens twice: exactly its plain self-attention; later frames do not
        ref = plain(h).reshape(b, f, n, c)
        assert torch.allclose(got[:, 0], ref[:, 0], atol=1e-5)
        assert not torch.allclose(got[:, 1], ref[:, 1], atol=1e-3)


def _ff_model(manifest):
    from avcli.models.joint import JointModel

    m = copy.deepcopy(manifest)
    m["joint"]["video_first_frame_attn"] = True
    torch.manual_seed(0)
    return JointModel(m).eval()


def test_video_unet_with_first_frame_attention(tiny_manifest, tiny_model):
    ff = _ff_model(tiny_manifest)
    ff.load_state_dict(tiny_model.state_dict())  # no new weights: the same state dict loads
    procs = ff.video_unet.unet.attn_processors
    spatial = [k for k in procs if ".attentions." in f".{k}" and k.endswith("attn1.processor")]
    assert spatial and all(isinstance(procs[k], FirstFrameAttnProcessor) for k in spatial)
    assert not any(isinstance(v, FirstFrameAttnProcessor) for k, v in procs.items() if k not in spatial)
    from export.descriptions import get_description, inputs_at

    inputs = list(inputs_at(get_description(tiny_manifest, "video_unet"), tiny_model,
                            tiny_manifest["media"]["duration"]).values())
    with torch.no_grad():
        a, b = tiny_model.video_unet(*inputs), ff.video_unet(*inputs)
        assert a.shape == b.shape and inputs[0].shape[2] > 1
        assert not torch.allclose(a, b, atol=1e-4)  # the lookups change the prediction
        one = [inputs[0][:, :, :1], *inputs[1:]]  # a single frame: FF-Attn is plain attention
        assert torch.allclose(tiny_model.video_unet(*one), ff.video_unet(*one), atol=1e-5)


def test_first_frame_attention_exports_and_validates(tiny_manifest, tmp_path):
    from export.onnx_export import export_component

    rec = export_component(_ff_model(tiny_manifest), "video_unet", tmp_path)
    assert rec.status == "ok" and rec.max_error < 1e-3, rec
    assert len({tuple(v["shape"]) for v in rec.validation}) == 2  # two frame counts through one graph


def test_animate_on_a_first_frame_attention_bundle(tiny_bundle, tmp_path, monkeypatch, capsys):
    """A bundle that records FF-Attn (add_first_frame_attn, as `train joint --first-frame-attn` does) loads with it;
    animate --image keeps the first frame's latent exactly (mode a) and says it runs mode a + b."""
    import json
    import shutil

    import numpy as np

    from avcli.media.ffmpeg import write_video
    from avcli.models.bundle import load_bundle
    from avcli.pipelines.animate import AnimateRequest
    from avcli.pipelines.common import encode_video
    from avcli.pipelines.pipeline import JointPipeline
    from avcli.training.joint_stage import add_first_frame_attn
    from tests.conftest import run_cli

    ff = tmp_path / "ff"
    shutil.copytree(tiny_bundle, ff)
    assert add_first_frame_attn(load_bundle(ff), ff) and not add_first_frame_attn(load_bundle(ff), ff)
    geo = load_bundle(ff).geometry()
    rng = np.random.default_rng(0)
    pic = tmp_path / "first.mp4"  # any picture ffmpeg reads: a one-frame video
    write_video(pic, (rng.random((1, *geo.frame_size, 3)) * 255).astype(np.uint8), 1)
    t = np.arange(int(geo.duration * 16000)) / 16000
    clip = tmp_path / "hit.mp4"
    write_video(clip, np.zeros((int(geo.duration * geo.fps), *geo.frame_size, 3), np.uint8), geo.fps,
                (0.3 * np.sin(2 * np.pi * 440 * t) * (t % 1 < 0.05)).astype(np.float32), 16000)
    with_ff, plain = JointPipeline.from_bundle(ff, backend="torch"), JointPipeline.from_bundle(tiny_bundle,
                                                                                              backend="torch")
    a = with_ff.animate(clip, AnimateRequest(steps=2, image=str(pic), first_frame_steps=0))
    b = plain.animate(clip, AnimateRequest(steps=2, image=str(pic), first_frame_steps=0))
    want = encode_video(with_ff.components, a.first_frame[None])
    assert torch.equal(a.video_latent[:, :, :1], want)  # mode (a) still holds frame 0 exactly
    assert not torch.equal(a.video_latent[:, :, 1:], b.video_latent[:, :, 1:])  # the lookups change the rest
    code, out, _ = run_cli(monkeypatch, capsys, "animate", str(clip), "--bundle", str(ff), "--image", str(pic),
                           "--steps", "1", "--backend", "torch", "-o", str(tmp_path / "o.mp4"), "--json")
    assert code == 0 and json.loads(out)["first_frame"] == "mode a + b (latent known, FF-Attn)"


def _ffconv_model(manifest, weights):
    from avcli.models.joint import JointModel

    m = copy.deepcopy(manifest)
    m["joint"]["video_first_frame_conv"] = True
    model = JointModel(m).eval()
    missing = model.load_state_dict(weights.state_dict(), strict=False).missing_keys
    assert missing == ["video_unet.ff_conv.conv.weight"]  # the only new weights
    return model


def _video_inputs(manifest, model):
    from export.descriptions import get_description, inputs_at

    return list(inputs_at(get_description(manifest, "video_unet"), model, manifest["media"]["duration"]).values())


def test_first_frame_conv_starts_as_the_base_then_concatenates_the_first_frame(tiny_manifest, tiny_model):
    """Zero-initialised FF-Conv predicts exactly what the base does. With weights, it equals an independent
    model: the same U-Net whose conv_in takes 2C channels, [x_f, x_0] per frame, its extra input weights FF-Conv's."""
    ff = _ffconv_model(tiny_manifest, tiny_model)
    inputs = _video_inputs(tiny_manifest, tiny_model)
    x = inputs[0]
    assert x.shape[2] > 1
    with torch.no_grad():
        assert torch.equal(ff.video_unet(*inputs), tiny_model.video_unet(*inputs))
        torch.manual_seed(1)
        ff.video_unet.ff_conv.conv.weight.normal_(0, 0.3)
        got = ff.video_unet(*inputs)
        assert not torch.allclose(got, tiny_model.video_unet(*inputs), atol=1e-4)

        ref = copy.deepcopy(tiny_model)
        old = ref.video_unet.unet.conv_in
        wide = torch.nn.Conv2d(2 * old.in_channels, old.out_channels, old.kernel_size, padding=old.padding)
        wide.weight.copy_(torch.cat([old.weight, ff.video_unet.ff_conv.conv.weight], dim=1))
        wide.bias.copy_(old.bias)
        ref.video_unet.unet.conv_in = wide
        cat = torch.cat([x, x[:, :, :1].expand_as(x)], dim=1)  # (B, 2C, F, h, w): frame 0 beside every frame
        want = ref.video_unet(cat, *inputs[1:])
        assert torch.allclose(got, want, atol=1e-5)


def test_first_frame_conv_exports_and_validates(tiny_manifest, tiny_model, tmp_path):
    from export.onnx_export import export_component

    ff = _ffconv_model(tiny_manifest, tiny_model)
    torch.manual_seed(2)
    with torch.no_grad():
        ff.video_unet.ff_conv.conv.weight.normal_(0, 0.3)
    rec = export_component(ff, "video_unet", tmp_path)
    assert rec.status == "ok" and rec.max_error < 1e-3, rec
    assert len({tuple(v["shape"]) for v in rec.validation}) == 2


def test_first_frame_conv_is_written_into_the_bundle(tiny_bundle, tmp_path):
    """add_first_frame_conv (as `train joint --first-frame-conv` does) writes the weights and the flag; the bundle
    verifies and loads with FF-Conv, and animate names the mode."""
    import shutil

    from avcli.models.bundle import load_bundle
    from avcli.pipelines.animate import first_frame_mode
    from avcli.training.joint_stage import add_first_frame_conv

    ff = tmp_path / "ff"
    shutil.copytree(tiny_bundle, ff)
    assert add_first_frame_conv(load_bundle(ff), ff) and not add_first_frame_conv(load_bundle(ff), ff)
    model = load_bundle(ff)  # verified: hashes match the rewritten video_unet
    assert model.video_unet.first_frame_conv and not load_bundle(tiny_bundle).video_unet.first_frame_conv
    assert first_frame_mode(model.manifest, True) == "mode a + b (latent known, FF-Conv)"
    m = copy.deepcopy(model.manifest)
    m["joint"].update(video_first_frame_attn=True, video_first_frame_given=True)
    assert first_frame_mode(m, True) == "mode b (latent given clean, FF-Conv, FF-Attn)"
