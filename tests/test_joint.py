"""The joint model and sampler: zero-init parity with the bases, determinism, CFG batching, task routing."""

import copy
import threading
from dataclasses import replace

import pytest

import torch

from avcli.models.joint import JointModel
from avcli.sampling.joint import SamplerConfig, TextConditioning, _guided, sample
from avcli.pipelines.common import modality_specs


def _inputs(model, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    geo = model.geometry()
    L, D = model.manifest["text"]["max_length"], model.manifest["text"]["video"]["dim"]
    dim = model.manifest["joint"]["connector_dim"]
    xv = torch.randn((batch,) + geo.video_latent, generator=g)
    xa = torch.randn((batch,) + geo.audio_latent, generator=g)
    text = torch.randn(batch, L, D, generator=g)
    fa = torch.randn(batch, geo.audio_latent[1], dim, generator=g)
    fv = torch.randn(batch, geo.frames, dim, generator=g)
    t = torch.tensor([700, 30][:batch])
    return xv, xa, text, fa, fv, t


@pytest.mark.parametrize("mode", ["cmcpe", "xattn"])
@torch.no_grad()
def test_fresh_joint_model_equals_bases(tiny_manifest, mode):
    manifest = copy.deepcopy(tiny_manifest)
    manifest["joint"]["mode"] = mode
    torch.manual_seed(1)
    model = JointModel(manifest)
    xv, xa, text, fa, fv, t = _inputs(model)
    frames = xv.shape[2]
    base_v = model.video_unet.unet
    model.video_unet._ctx = (fa, frames)  # hooks need context; they must add exactly zero
    ref_v = base_v(xv, t, encoder_hidden_states=text.repeat_interleave(frames, 0)).sample
    model.video_unet._ctx = None
    joint_v = model.video_unet(sample=xv, timestep=t, text_embeds=text, cross_features=fa)
    assert torch.equal(joint_v, ref_v)
    # a base U-Net of the same class and weights, without any hooks, gives the same answer
    clean_v = type(base_v).from_config(base_v.config)
    clean_v.load_state_dict(base_v.state_dict())
    assert torch.allclose(clean_v(xv, t, encoder_hidden_states=text.repeat_interleave(frames, 0)).sample, joint_v,
                          atol=1e-6)
    base_a = model.audio_unet.unet
    clean_a = type(base_a).from_config(base_a.config)
    clean_a.load_state_dict(base_a.state_dict())
    joint_a = model.audio_unet(sample=xa, timestep=t, text_embeds=text, cross_features=fv)
    assert torch.allclose(clean_a(xa, t, encoder_hidden_states=text).sample, joint_a, atol=1e-6)

    # once the zero projections move, the other modality's features change the output (the hooks are live)
    for blk in list(model.video_unet.cross_blocks) + list(model.audio_unet.cross_blocks):
        torch.nn.init.normal_(blk.out.weight, std=0.5)
    fa2 = fa + 3.0 * torch.linspace(-1, 1, fa.shape[1])[None, :, None]
    assert not torch.allclose(model.video_unet(sample=xv, timestep=t, text_embeds=text, cross_features=fa),
                              model.video_unet(sample=xv, timestep=t, text_embeds=text, cross_features=fa2))
    fv2 = fv + 3.0 * torch.linspace(-1, 1, fv.shape[1])[None, :, None]
    assert not torch.allclose(model.audio_unet(sample=xa, timestep=t, text_embeds=text, cross_features=fv),
                              model.audio_unet(sample=xa, timestep=t, text_embeds=text, cross_features=fv2))


def _text(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    L, D = model.manifest["text"]["max_length"], model.manifest["text"]["video"]["dim"]
    return TextConditioning(*(torch.randn(1, L, D, generator=g) for _ in range(4)))


def _run(model, seed, task="generate", cfg=None, comps=None, **kw):
    vspec, aspec = modality_specs(model, model.geometry())
    cfg = cfg or SamplerConfig(steps=3, gamma=1.5)
    with torch.no_grad():
        return sample(comps or model.sampler_components(), vspec, aspec, _text(model), cfg,
                      torch.Generator().manual_seed(seed), task=task, **kw)


def test_same_seed_bit_identical_different_seed_differs(tiny_model):
    a, b, c = _run(tiny_model, 5), _run(tiny_model, 5), _run(tiny_model, 6)
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)
    assert not torch.allclose(a.video, c.video) and not torch.allclose(a.audio, c.audio)


@torch.no_grad()
def test_batched_cfg_equals_two_calls(tiny_model):
    # in float64: a float32 conv may round a batch of 2 differently from a batch of 1 (oneDNN picks its kernel by
    # shape and CPU), and the guidance scale of 7.5 lifts that 1e-6 above any tight tolerance
    xv, xa, text, fa, fv, t = (x.double() if x.is_floating_point() else x for x in _inputs(tiny_model, batch=1))
    neg = torch.randn_like(text)
    unet = copy.deepcopy(tiny_model.video_unet).double()
    guided = _guided(unet, xv, 400, text, neg, fa, 7.5)
    tt = torch.tensor([400])
    pos = unet(sample=xv, timestep=tt, text_embeds=text, cross_features=fa)
    ng = unet(sample=xv, timestep=tt, text_embeds=neg, cross_features=fa)
    assert (pos - ng).abs().max() > 1e-3  # the two texts give different predictions, so the order matters
    assert torch.allclose(guided, ng + 7.5 * (pos - ng), atol=1e-9)
    assert not torch.allclose(guided, pos + 7.5 * (ng - pos), atol=1e-3)


class _Counting(dict):
    def __init__(self, comps):
        super().__init__()
        self.counts = {k: 0 for k in comps}
        for k, fn in comps.items():
            self[k] = self._wrap(k, fn)

    def _wrap(self, k, fn):
        def call(**kw):
            self.counts[k] += 1
            return fn(**kw)
        return call


def test_foley_never_runs_video_unet_and_keeps_video(tiny_model):
    geo = tiny_model.geometry()
    known = torch.randn((1,) + geo.video_latent, generator=torch.Generator().manual_seed(9))
    comps = _Counting(tiny_model.sampler_components())
    res = _run(tiny_model, 0, task="foley", comps=comps, known_video=known)
    assert comps.counts["video_unet"] == 0
    assert comps.counts["audio_unet"] == 3 and comps.counts["video_connector"] == 3
    assert comps.counts["audio_connector"] == 0  # its features would only feed the video U-Net
    assert torch.equal(res.video, known)
    assert res.audio.shape == (1,) + geo.audio_latent


def test_animate_never_runs_audio_unet_and_keeps_audio(tiny_model):
    geo = tiny_model.geometry()
    known = torch.randn((1,) + geo.audio_latent, generator=torch.Generator().manual_seed(9))
    comps = _Counting(tiny_model.sampler_components())
    res = _run(tiny_model, 0, task="animate", comps=comps, known_audio=known)
    assert comps.counts["audio_unet"] == 0 and comps.counts["video_unet"] == 3
    assert comps.counts["audio_connector"] == 3 and comps.counts["video_connector"] == 0
    assert torch.equal(res.audio, known)


def test_foley_with_reconstruction_guidance_changes_audio(tiny_model):
    geo = tiny_model.geometry()
    m = copy.deepcopy(tiny_model)
    for blk in m.audio_unet.cross_blocks:  # give the cross-modal path some weight so the gradient is non-zero
        torch.nn.init.normal_(blk.out.weight, std=0.2)
    for blk in m.video_unet.cross_blocks:
        torch.nn.init.normal_(blk.out.weight, std=0.2)
    known = torch.randn((1,) + geo.video_latent, generator=torch.Generator().manual_seed(2))
    plain = _run(m, 0, task="foley", known_video=known)
    guided = _run(m, 0, task="foley", known_video=known, cfg=SamplerConfig(steps=3, recon_guidance=5.0))
    assert not torch.allclose(plain.audio, guided.audio)
    # the value of one guided step, against an independent autograd of seed 001 eq. 3:
    # x0_a' = x0_a - lambda sqrt(abar_n) d/da ||v0 - v0_hat(a)||^2
    from avcli.sampling.joint import _recon_guidance_video
    from avcli.sampling.solvers import make_solver

    vspec, aspec = modality_specs(m, geo)
    sv, sa = make_solver("ddim", vspec.schedule), make_solver("ddim", aspec.schedule)
    g = torch.Generator().manual_seed(3)
    x_v, x_a = torch.randn((1,) + geo.video_latent, generator=g), torch.randn((1,) + geo.audio_latent, generator=g)
    text, mt, nt, lam = _text(m), 400, 500, 5.0
    sc_v, sc_a = known, torch.zeros_like(x_a)
    with torch.no_grad():
        eps_a = m.audio_unet(sample=x_a, timestep=torch.tensor([nt]), text_embeds=text.audio,
                             cross_features=m.video_connector(latent=x_v, x0_hat=sc_v))
    got = _recon_guidance_video(m.sampler_components(), x_v, x_a, mt, nt, known, text, sv, sa, sc_v, sc_a, eps_a, lam)
    a = x_a.clone().requires_grad_(True)
    v_eps = m.video_unet(sample=x_v, timestep=torch.tensor([mt]), text_embeds=text.video,
                         cross_features=m.audio_connector(latent=a, x0_hat=sc_a))
    abar_m, abar_n = sv.abar(mt), sa.abar(nt)
    v0_hat = (x_v - (1 - abar_m).sqrt() * v_eps) / abar_m.sqrt()
    (grad,) = torch.autograd.grad(((known - v0_hat) ** 2).sum(), a)
    x0_a = (x_a - (1 - abar_n).sqrt() * eps_a) / abar_n.sqrt() - lam * abar_n.sqrt() * grad
    want = (x_a - abar_n.sqrt() * x0_a) / (1 - abar_n).sqrt()
    assert grad.abs().max() > 0 and torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, eps_a, atol=1e-4)


def test_self_conditioning_feeds_connectors(tiny_model):
    seen = []
    comps = dict(tiny_model.sampler_components())
    orig = comps["audio_connector"]

    def spy(latent, x0_hat):
        seen.append(float(x0_hat.abs().sum()))
        return orig(latent=latent, x0_hat=x0_hat)

    comps["audio_connector"] = spy
    _run(tiny_model, 0, comps=comps)
    assert seen[0] == 0.0 and all(s > 0 for s in seen[1:])


def test_dpm_solver_runs_and_differs_from_ddim(tiny_model):
    a = _run(tiny_model, 1, cfg=SamplerConfig(steps=4, solver="ddim"))
    b = _run(tiny_model, 1, cfg=SamplerConfig(steps=4, solver="dpmpp2m"))
    assert torch.isfinite(b.video).all() and not torch.allclose(a.video, b.video)


def test_bad_sampler_config():
    with pytest.raises(ValueError):
        SamplerConfig(steps=0)
    with pytest.raises(ValueError):
        SamplerConfig(gamma=-1)


def test_joint_training_touches_only_joint_parameters(tiny_model):
    from avcli.sampling.schedules import NoiseSchedule
    from avcli.training.objective import joint_loss

    m = copy.deepcopy(tiny_model)
    trainable = m.freeze_bases()
    xv, xa, text, _, _, _ = _inputs(m)
    sv = NoiseSchedule.from_dict(m.manifest["video"]["schedule"])
    sa = NoiseSchedule.from_dict(m.manifest["audio"]["schedule"])
    loss, parts = joint_loss(m, xv, xa, text, text, sv, sa, sv.alphas_cumprod(), sa.alphas_cumprod(),
                             torch.Generator().manual_seed(0), self_condition_p=1.0)
    loss.backward()
    ids = {id(p) for p in trainable}
    assert all(p.grad is None for p in m.parameters() if id(p) not in ids)
    # the zero-initialised output projections receive gradient: training can move them
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.video_unet.joint_parameters())
    assert set(parts) == {"loss_video", "loss_audio"}


def test_foley_partial_audio_conditioning_keeps_known_part(tiny_model):
    geo = tiny_model.geometry()
    known_v = torch.randn((1,) + geo.video_latent, generator=torch.Generator().manual_seed(1))
    known_a = torch.randn((1,) + geo.audio_latent, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(1, 1, geo.audio_latent[1], 1)
    mask[:, :, :10] = 1
    res = _run(tiny_model, 0, task="foley", known_video=known_v, known_audio=known_a, audio_mask=mask)
    assert torch.equal(res.audio[:, :, :10], known_a[:, :, :10])
    assert not torch.allclose(res.audio[:, :, 10:], known_a[:, :, 10:])


def test_concurrent_unets_give_identical_latents_and_honest_network_time(tiny_model):
    from concurrent.futures import ThreadPoolExecutor

    threads = set()
    comps = dict(tiny_model.sampler_components())
    video_unet = comps["video_unet"]

    def spy(**kw):
        threads.add(threading.get_ident())
        return video_unet(**kw)

    comps["video_unet"] = spy
    plain = _run(tiny_model, 3, comps=comps)
    assert threads == {threading.get_ident()}
    with ThreadPoolExecutor(1) as pool:
        conc = _run(tiny_model, 3, comps=comps, pool=pool)
    assert len(threads) == 2  # the video U-Net really ran in the pool's thread
    assert torch.equal(plain.video, conc.video) and torch.equal(plain.audio, conc.audio)
    assert conc.calls == plain.calls
    assert 0 < conc.network_seconds <= conc.total_seconds  # overlapping calls are not counted twice


@torch.no_grad()
def test_grid_video_connector_keeps_where_things_are():
    """A global mean over space cannot tell a blob at the top of the frame from the same blob at the bottom
    (up to border effects); the grid-pooled connector must. Both give one vector per frame."""
    from avcli.models.connectors import VideoConnector

    torch.manual_seed(0)
    top = torch.zeros(1, 4, 3, 16, 16)
    top[:, :, :, 6:8, 6:8] = 3.0
    bottom = torch.zeros(1, 4, 3, 16, 16)
    bottom[:, :, :, 8:10, 6:8] = 3.0  # same blob, two rows down; both far from the zero-padded border
    zero = torch.zeros_like(top)
    mean_c, grid_c = VideoConnector(4, 16, 8, grid=0).eval(), VideoConnector(4, 16, 8, grid=4).eval()
    assert grid_c(top, zero).shape == mean_c(top, zero).shape == (1, 3, 8)
    d_mean = (mean_c(top, zero) - mean_c(bottom, zero)).abs().max()
    d_grid = (grid_c(top, zero) - grid_c(bottom, zero)).abs().max()
    assert d_mean < 1e-5 < d_grid
    assert d_grid > 1e-3 and d_grid > 1000 * d_mean


@torch.no_grad()
def test_fresh_connectors_see_content_not_just_their_biases():
    """Latents like the demo's (unit spread, per-channel offsets): a fresh connector's per-frame features must vary
    with the content. With PyTorch's default bias init the bias-driven constant dominated (spread ~0.04)."""
    from avcli.models.connectors import AudioConnector, VideoConnector

    torch.manual_seed(0)
    offset_v = torch.tensor([0.7, 0.0, 1.5, -0.2]).view(1, 4, 1, 1, 1)
    v = torch.randn(8, 4, 16, 8, 8) + offset_v
    a = torch.randn(8, 8, 40, 16) + 0.5
    for conn, x in ((VideoConnector(4, 64, 64, grid=4), v), (VideoConnector(4, 64, 64), v),
                    (AudioConnector(8, 64, 64), a)):
        f = conn(x, x)  # (B, T, D), LayerNorm'd: unit spread per vector
        assert f.std(dim=1).mean() > 0.1, type(conn).__name__  # varies along time
        assert f.std(dim=0).mean() > 0.1, type(conn).__name__  # and across clips


@torch.no_grad()
def test_decoded_audio_fades_out_to_silence_and_keeps_its_length(tiny_model):
    from avcli.pipelines.common import FADE_OUT_S, decode_audio, torch_components

    geo = tiny_model.geometry()
    latent = torch.randn((1,) + geo.audio_latent, generator=torch.Generator().manual_seed(0))
    samples = int(round(geo.duration * geo.sample_rate))
    comps = torch_components(tiny_model)
    wav = decode_audio(tiny_model, comps, latent, samples)[0]
    assert wav.shape == (samples,)
    assert wav[-1] == 0.0  # the raised cosine ends at zero
    n = int(round(FADE_OUT_S * geo.sample_rate))
    mel = comps["audio_vae_decoder"](latent=latent)
    raw = comps["vocoder"](mel=tiny_model.denormalize_mel(mel[:, 0].float()))[0, :samples].clamp(-1, 1).numpy()
    assert (wav[:-n] == raw[:-n]).all()  # untouched before the fade
    assert abs(wav[-n // 2]) <= abs(raw[-n // 2]) + 1e-7


@torch.no_grad()
def test_attentive_pool_adds_the_softmax_weighted_clip_feature_and_starts_as_a_no_op(tiny_model, tmp_path):
    """seed 003's global feature: out = x + W (sum_f softmax_f(s(x_f)) x_f) + b, recomputed by hand; zero W at first,
    so a bundle that gains it generates what it did; the export still matches torch (onnxruntime)."""
    import copy

    from avcli.models.bundle import load_bundle, save_bundle
    from avcli.training.joint_stage import add_global_pool
    from export.onnx_export import export_all

    model = copy.deepcopy(tiny_model)
    g = torch.Generator().manual_seed(0)
    lat = torch.randn(2, 4, *tiny_model.geometry().video_latent[1:], generator=g)
    before = model.video_connector(latent=lat, x0_hat=lat)
    path = tmp_path / "b"
    save_bundle(model, path)
    assert add_global_pool(model, path) and not add_global_pool(model, path)
    assert torch.equal(model.video_connector(latent=lat, x0_hat=lat), before)  # zero projection: a no-op
    pool = model.video_connector.global_pool
    pool.proj.weight.normal_(generator=g)
    pool.proj.bias.normal_(generator=g)
    x = _frames_through(model.video_connector, lat)  # the per-frame features, without the pool
    s = x @ pool.score.weight.T + pool.score.bias  # (B, F, 1)
    w = torch.exp(s - s.max(1, keepdim=True).values)
    w = w / w.sum(1, keepdim=True)
    want = x + ((w * x).sum(1) @ pool.proj.weight.T + pool.proj.bias)[:, None]
    torch.testing.assert_close(model.video_connector(latent=lat, x0_hat=lat), want, rtol=1e-5, atol=1e-5)
    reloaded = load_bundle(path)  # the bundle recorded the pooled connector and still verifies
    assert reloaded.manifest["joint"]["video_global_pool"] and reloaded.video_connector.global_pool is not None
    assert torch.equal(reloaded.video_connector(latent=lat, x0_hat=lat), before)
    recs = export_all(model, tmp_path / "onnx", ["video_connector"])
    assert recs[0].status == "ok" and recs[0].max_error < 1e-4


def _frames_through(conn, lat):
    """The connector's per-frame features before any global pooling (its own layers, called one by one)."""
    b, _, f, h, w = lat.shape
    x = torch.cat([lat, lat], dim=1).permute(0, 2, 1, 3, 4).reshape(b * f, -1, h, w)
    x = conn.frame_net(x)
    if conn.grid:
        n, c, hh, ww = x.shape
        x = conn.pool_proj(x.reshape(n, c, conn.grid, hh // conn.grid, conn.grid, ww // conn.grid)
                           .mean(dim=(3, 5)).flatten(1))
    else:
        x = x.mean(dim=(2, 3))
    return conn.head(x.reshape(b, f, -1))


def test_guidance_interval_guides_only_its_steps(tiny_model):
    """Text guidance in a limited interval: inside it the U-Net sees the CFG batch [negative; positive], outside it
    one positive-only call. Steps k/K = 0, .2, .4, .6, .8 for K = 5."""
    seen = {"video_unet": [], "audio_unet": []}
    comps = dict(tiny_model.sampler_components())
    for name in seen:
        def call(_fn=comps[name], _name=name, **kw):
            seen[_name].append(kw["sample"].shape[0])
            return _fn(**kw)
        comps[name] = call
    cfg = SamplerConfig(steps=5, gamma=1.0, cfg_video=3.0, cfg_audio=2.0, cfg_video_interval=(0.2, 1.0),
                        cfg_audio_interval=(0.0, 0.6))
    _run(tiny_model, 1, cfg=cfg, comps=comps)
    assert seen == {"video_unet": [1, 2, 2, 2, 2], "audio_unet": [2, 2, 2, 1, 1]}


def test_empty_guidance_interval_is_guidance_off_and_full_interval_is_the_default(tiny_model):
    base = dict(steps=3, gamma=1.5, cfg_video=3.0, cfg_audio=2.0)
    full = _run(tiny_model, 2, cfg=SamplerConfig(**base))
    same = _run(tiny_model, 2, cfg=SamplerConfig(**base, cfg_video_interval=(0, 1), cfg_audio_interval=(0, 1)))
    assert torch.equal(full.video, same.video) and torch.equal(full.audio, same.audio)
    off = _run(tiny_model, 2, cfg=SamplerConfig(**base, cfg_video_interval=(0, 0), cfg_audio_interval=(0, 0)))
    plain = _run(tiny_model, 2, cfg=SamplerConfig(steps=3, gamma=1.5, cfg_video=1.0, cfg_audio=1.0))
    assert torch.equal(off.video, plain.video) and torch.equal(off.audio, plain.audio)
    assert not torch.allclose(off.audio, full.audio)


def test_guidance_interval_from_a_bundle_and_refused_when_backwards(tiny_manifest):
    from avcli.errors import UsageError
    from avcli.pipelines.common import parse_interval, sampler_config

    m = copy.deepcopy(tiny_manifest)
    m["sampling"]["cfg_audio_interval"] = [0, 0.6]  # bundle.json holds a list
    cfg = sampler_config(m)
    assert cfg.cfg_audio_interval == (0.0, 0.6) and cfg.cfg_video_interval == (0.0, 1.0)
    assert sampler_config(m, cfg_audio_interval=(0.2, 0.8)).cfg_audio_interval == (0.2, 0.8)
    with pytest.raises(ValueError):
        SamplerConfig(cfg_video_interval=(0.7, 0.3))
    assert parse_interval("0:0.6", "--x") == (0.0, 0.6) and parse_interval(None, "--x") is None
    for bad in ("0.6", "a:b", "0.7:0.3", "0:1.5"):
        with pytest.raises(UsageError):
            parse_interval(bad, "--x")


def _audio_unet_sees_video(model):
    """A copy whose audio U-Net's cross-modal blocks have weight, so its output depends on the video features (a
    fresh model's zero-initialised blocks would make any guidance over them a no-op)."""
    m = copy.deepcopy(model)
    for blk in m.audio_unet.cross_blocks:
        torch.nn.init.normal_(blk.out.weight, std=0.2)
    return m


def test_video_guidance_on_the_audio_unet_is_seed_004s_formula(tiny_model):
    """Foley with video guidance eta: every step's audio prediction is eps(null video) + eta (eps(video) - eps(null)),
    the null being zero connector features. Checked against the same sampler given an audio U-Net that applies the
    formula itself, from two separate calls, with the guidance off."""
    m = _audio_unet_sees_video(tiny_model)
    geo = m.geometry()
    known = torch.randn((1,) + geo.video_latent, generator=torch.Generator().manual_seed(4))
    cfg = SamplerConfig(steps=4, gamma=1.5, cfg_audio=1.0)
    comps = m.sampler_components()
    unet = comps["audio_unet"]

    def by_hand(**kw):
        null = unet(**{**kw, "cross_features": torch.zeros_like(kw["cross_features"])})
        return null + 3.0 * (unet(**kw) - null)

    guided = _run(m, 0, task="foley", known_video=known, cfg=replace(cfg, video_guidance=3.0))
    reference = _run(m, 0, task="foley", known_video=known, cfg=cfg, comps={**comps, "audio_unet": by_hand})
    plain = _run(m, 0, task="foley", known_video=known, cfg=cfg)
    assert torch.allclose(guided.audio, reference.audio, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(guided.audio, plain.audio, atol=1e-2)
    # eta 1 is the plain prediction, with no extra pass
    assert torch.equal(_run(m, 0, task="foley", known_video=known, cfg=replace(cfg, video_guidance=1.0)).audio,
                       plain.audio)


def test_video_guidance_batches_with_text_guidance_skipped_on_equal_prompts(tiny_model):
    """Foley with no prompt: text guidance between two equal embeddings is the conditional prediction itself and is
    skipped (batch 1, the same latents as guidance 1); video guidance then puts its two passes in one call of batch
    2, [null; video], only inside its interval. With a real negative prompt text guidance runs as before."""
    m = _audio_unet_sees_video(tiny_model)
    geo = m.geometry()
    known = torch.randn((1,) + geo.video_latent, generator=torch.Generator().manual_seed(5))
    t = _text(m)
    same = TextConditioning(t.video, t.audio, t.video.clone(), t.audio.clone())
    seen = []
    comps = dict(m.sampler_components())
    unet = comps["audio_unet"]

    def recording(**kw):
        seen.append([bool(torch.count_nonzero(r) == 0) for r in kw["cross_features"]])
        return unet(**kw)

    comps["audio_unet"] = recording
    vspec, aspec = modality_specs(m, geo)

    def run(cfg, text=same):
        seen.clear()
        with torch.no_grad():
            return sample(comps, vspec, aspec, text, cfg, torch.Generator().manual_seed(0), task="foley",
                          known_video=known)

    skipped = run(SamplerConfig(steps=5, gamma=1.0, cfg_audio=2.5))
    assert seen == [[False]] * 5
    off = run(SamplerConfig(steps=5, gamma=1.0, cfg_audio=1.0))
    assert torch.allclose(skipped.audio, off.audio, atol=1e-6)
    run(SamplerConfig(steps=5, gamma=1.0, cfg_audio=2.5, video_guidance=3.0, video_guidance_interval=(0.0, 0.6)))
    assert seen == [[True, False]] * 3 + [[False]] * 2
    run(SamplerConfig(steps=5, gamma=1.0, cfg_audio=2.5, video_guidance=3.0), text=t)  # prompts differ
    assert seen == [[False, False], [True, True]] * 5  # text-guided cond, then text-guided null


def test_video_guidance_settings_from_a_bundle(tiny_manifest):
    from avcli.pipelines.common import sampler_config
    from avcli.pipelines.foley import FoleyRequest, foley_video_guidance
    from avcli.training.stages import shipping_manifest

    m = copy.deepcopy(tiny_manifest)
    assert sampler_config(m).video_guidance == 1.0 and foley_video_guidance(m, FoleyRequest()) == 1.0
    m["sampling"].update(shipping_manifest(m, None, video_guidance=2.0, video_guidance_interval=(0.0, 0.5),
                                           foley_video_guidance=3.0)["sampling"])
    cfg = sampler_config(m)
    assert cfg.video_guidance == 2.0 and cfg.video_guidance_interval == (0.0, 0.5)
    assert foley_video_guidance(m, FoleyRequest()) == 3.0
    assert foley_video_guidance(m, FoleyRequest(video_guidance=1.0)) == 1.0
    with pytest.raises(ValueError):
        SamplerConfig(video_guidance=-1.0)


def test_guidance_rescale_is_diffusers_and_applies_to_its_modality_only(tiny_model):
    """Guidance rescale (Lin et al. 2024) equals diffusers' own `rescale_noise_cfg`, and in the sampler it acts on
    the audio's text guidance only when cfg_audio_rescale is set: checked against the same sampler given an audio
    U-Net that applies plain guidance then diffusers' rescale itself."""
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

    from avcli.sampling.joint import rescale_guided

    g = torch.Generator().manual_seed(0)
    guided, pos = 3 * torch.randn(2, 4, 5, 6, generator=g), torch.randn(2, 4, 5, 6, generator=g)
    for phi in (0.0, 0.3, 0.7, 1.0):
        assert torch.allclose(rescale_guided(guided, pos, phi), rescale_noise_cfg(guided, pos, phi), atol=1e-6)
    out = rescale_guided(guided, pos, 1.0)
    assert torch.allclose(out.flatten(1).std(1), pos.flatten(1).std(1), atol=1e-5)  # spread of the positive

    base = SamplerConfig(steps=4, gamma=1.5, cfg_video=3.0, cfg_audio=4.0)
    comps = tiny_model.sampler_components()
    unet = comps["audio_unet"]

    def by_hand(**kw):  # the CFG batch [negative; positive] in, plain guidance, then diffusers' rescale
        neg, p = unet(**kw).chunk(2)
        guided = rescale_noise_cfg(neg + 4.0 * (p - neg), p, 0.7)
        return torch.cat([guided, guided])  # the sampler forms neg + 4 (pos - neg) of equal halves: guided itself

    rescaled = _run(tiny_model, 0, cfg=replace(base, cfg_audio_rescale=0.7))
    reference = _run(tiny_model, 0, cfg=base, comps={**comps, "audio_unet": by_hand})
    plain = _run(tiny_model, 0, cfg=base)
    assert torch.allclose(rescaled.audio, reference.audio, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(rescaled.audio, plain.audio, atol=1e-3)
    assert torch.equal(rescaled.video, plain.video)  # the video's guidance is untouched
    assert torch.equal(_run(tiny_model, 0, cfg=replace(base, cfg_audio_rescale=0.0)).audio, plain.audio)
    with pytest.raises(ValueError, match="cfg-audio-rescale"):
        SamplerConfig(cfg_audio_rescale=1.5)
