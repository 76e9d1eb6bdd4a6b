"""Joint-training options beyond seed 000's plain loss: known-modality samples and high-noise weighting."""

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from avcli.models.presets import get_preset
from avcli.sampling.schedules import NoiseSchedule
from avcli.training.objective import high_noise_weights, joint_loss, known_modality


def test_high_noise_weights_are_clamped_inverse_snr_of_diffusers_schedule():
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                        beta_end=0.012).alphas_cumprod  # independent reference for abar
    t = torch.tensor([0, 100, 300, 500, 700, 900, 999])
    w = high_noise_weights(ref[t], "epsilon", cap=20.0)
    inv_snr = ((1 - ref[t]) / ref[t]).numpy()
    np.testing.assert_allclose(w.numpy(), np.clip(inv_snr, 1, 20), rtol=1e-5)
    assert w[0] == 1.0 and w[-1] == 20.0  # low noise keeps weight 1, the noisiest steps hit the cap
    assert torch.all(w[1:] >= w[:-1])  # more noise never weighs less
    assert torch.equal(high_noise_weights(ref[t], "epsilon", cap=1.0), torch.ones(len(t)))
    v = high_noise_weights(ref[t], "v_prediction", cap=50.0)  # v error -> x0 error: factor 1 / (1 - abar)
    np.testing.assert_allclose(v.numpy(), np.clip(1 / (1 - ref[t].numpy()), 1, 50), rtol=1e-5)


def test_known_modality_replaces_self_conditioning_by_the_clean_latent():
    b = 4000
    sc_v, sc_a = torch.zeros(b, 2, 3, 2, 2), torch.zeros(b, 3, 5, 2)
    v0, a0 = torch.ones_like(sc_v), torch.full_like(sc_a, 2.0)
    nv, na = known_modality(sc_v, sc_a, v0, a0, 0.6, torch.Generator().manual_seed(0))
    kv = nv.flatten(1).eq(1).all(1)
    ka = na.flatten(1).eq(2).all(1)
    assert torch.all(kv | nv.flatten(1).eq(0).all(1)) and torch.all(ka | na.flatten(1).eq(0).all(1))  # whole samples
    assert not torch.any(kv & ka)  # one task per sample: foley (video known) or animate (audio known)
    assert kv.float().mean() == pytest.approx(0.3, abs=0.03) and ka.float().mean() == pytest.approx(0.3, abs=0.03)
    same_v, same_a = known_modality(sc_v, sc_a, v0, a0, 0.0, None)
    assert torch.equal(same_v, sc_v) and torch.equal(same_a, sc_a)


class _Recorder:
    """Connectors record what they are given; U-Nets record (sample, timestep) and predict zeros, so each
    sample's epsilon loss is mean(eps^2), with eps recoverable from x_t, x0 and t."""

    def __init__(self):
        self.seen, self.unet_calls = {}, []
        self.video_connector = lambda latent, x0_hat: self._conn("v", x0_hat)
        self.audio_connector = lambda latent, x0_hat: self._conn("a", x0_hat)
        self.video_unet = self.audio_unet = self._unet

    def _conn(self, k, x0_hat):
        self.seen[k] = x0_hat
        return torch.zeros(x0_hat.shape[0], 4, 8)

    def _unet(self, sample, timestep, **kw):
        self.unet_calls.append((sample, timestep))
        return torch.zeros_like(sample)


def _schedules():
    m = get_preset("tiny")
    sv, sa = NoiseSchedule.from_dict(m["video"]["schedule"]), NoiseSchedule.from_dict(m["audio"]["schedule"])
    assert sv.prediction_type == sa.prediction_type == "epsilon"
    return sv, sa


def _loss(model, v0, a0, **kw):
    sv, sa = _schedules()
    text = torch.zeros(v0.shape[0], 3, 5)
    return joint_loss(model, v0, a0, text, text, sv, sa, sv.alphas_cumprod(), sa.alphas_cumprod(),
                      torch.Generator().manual_seed(7), self_condition_p=0.0, **kw)


def _expected(rec, x0s, schedules, cap):
    """Recompute the weighted loss from what the U-Nets were given: eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar),
    per-sample mean(eps^2) weighted by clamp((1 - abar) / abar, 1, cap)."""
    total = 0.0
    for (x_t, t), x0, sched in zip(rec.unet_calls, x0s, schedules):
        abar = sched.alphas_cumprod()[t].double().view(-1, *[1] * (x0.dim() - 1))
        eps = (x_t.double() - abar.sqrt() * x0.double()) / (1 - abar).sqrt()
        per = eps.pow(2).flatten(1).mean(1)
        w = ((1 - abar.flatten()) / abar.flatten()).clamp(1.0, cap)
        total += float((w * per).sum() / w.sum())
    return total


def test_joint_loss_options_reach_the_connectors_and_the_loss():
    g = torch.Generator().manual_seed(1)
    v0, a0 = torch.randn(64, 4, 6, 2, 2, generator=g), torch.randn(64, 4, 12, 4, generator=g)
    sv, sa = _schedules()
    for cap in (1.0, 20.0):  # cap 1 = the seed's plain mean; 20 = noisy samples weigh more
        rec = _Recorder()
        loss, parts = _loss(rec, v0, a0, high_noise_weight=cap)
        (_, tv), (_, ta) = rec.unet_calls
        assert float(tv.max()) > 500 and float(tv.min()) < 100  # both regimes present in the draw
        assert float(loss) == pytest.approx(_expected(rec, (v0, a0), (sv, sa), cap), rel=1e-4)
        assert float(rec.seen["v"].abs().sum()) == 0  # no self-conditioning, nothing known
    plain, _ = _loss(_Recorder(), v0, a0)
    weighted, _ = _loss(_Recorder(), v0, a0, high_noise_weight=20.0)
    assert float(weighted) != pytest.approx(float(plain), rel=1e-3)
    rec = _Recorder()
    _loss(rec, v0, a0, known_p=1.0)
    known_v = rec.seen["v"].flatten(1).ne(0).any(1)
    known_a = rec.seen["a"].flatten(1).ne(0).any(1)
    assert torch.all(known_v ^ known_a)  # p = 1: every sample is foley or animate
    assert torch.equal(rec.seen["v"][known_v], v0[known_v]) and torch.equal(rec.seen["a"][known_a], a0[known_a])


def test_close_process_group_tears_down_an_initialised_group(tmp_path):
    import torch.distributed as dist

    from avcli.training.distributed import close_process_group

    close_process_group()  # nothing initialised: a no-op
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        close_process_group()
        assert not dist.is_initialized()  # destroyed before interpreter exit, not left to gloo's destructors
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


class _FeatureRecorder(_Recorder):
    """Connectors give fixed random per-frame features (B, F, D), so the onset head's input is known."""

    def __init__(self, b, f, d):
        super().__init__()
        self.f_v = torch.randn(b, f, d, generator=torch.Generator().manual_seed(3))
        self.video_connector = lambda latent, x0_hat: self.f_v
        self.audio_connector = lambda latent, x0_hat: torch.zeros(x0_hat.shape[0], 4, d)


def test_onset_aux_adds_weight_times_the_bce_of_the_head_on_the_video_features():
    from avcli.training.objective import OnsetAux
    from avcli.training.onset import OnsetHead

    g = torch.Generator().manual_seed(1)
    b, f, t, d = 6, 6, 12, 8
    v0, a0 = torch.randn(b, 4, f, 2, 2, generator=g), torch.randn(b, 4, t, 4, generator=g)
    labels = (torch.rand(b, t, generator=g) < 0.2).float()
    head = OnsetHead(d)
    plain, _ = _loss(_FeatureRecorder(b, f, d), v0, a0)
    rec = _FeatureRecorder(b, f, d)
    loss, logs = _loss(rec, v0, a0, onset=OnsetAux(head, labels, 0.5, 4.0))
    # by hand: features stretched to t frames by linear interpolation (half-pixel centres), one linear layer, BCE
    x = rec.f_v.double().numpy()
    pos = np.clip((np.arange(t) + 0.5) * f / t - 0.5, 0, f - 1)
    stretched = np.stack([[np.interp(pos, np.arange(f), x[i, :, k]) for k in range(d)] for i in range(b)])  # b,d,t
    z = np.einsum("bdt,d->bt", stretched, head.proj.weight.detach().double().numpy()[0]) + float(head.proj.bias.detach())
    y = labels.double().numpy()
    bce = -(4.0 * y * np.log(1 / (1 + np.exp(-z))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-z)))).mean()
    assert logs["loss_onset"] == pytest.approx(bce, rel=1e-5)
    assert float(loss) == pytest.approx(float(plain) + 0.5 * bce, rel=1e-5)
    assert float(_loss(_FeatureRecorder(b, f, d), v0, a0, onset=OnsetAux(head, labels, 0.0, 4.0))[0]) == float(plain)


def test_concat_augment_cuts_both_modalities_at_one_instant():
    from avcli.training.augment import concat_augment, cut_points

    assert cut_points(32, 100) == [(8, 25), (16, 50), (24, 75)]  # 1 s, 2 s, 3 s of a 4 s window: whole in both
    assert cut_points(6, 12) == [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]
    b = 400
    v, a = torch.zeros(b, 2, 32, 2, 2), torch.zeros(b, 3, 100, 4)
    ov, oa = torch.ones_like(v), torch.ones_like(a)
    lab, olab = torch.zeros(b, 100), torch.ones(b, 100)
    mv, ma, ml, mixed = concat_augment(v, a, ov, oa, 0.3, torch.Generator().manual_seed(0), lab, olab)
    assert mixed.float().mean() == pytest.approx(0.3, abs=0.06)
    for i in range(b):
        fv = mv[i, 0, :, 0, 0].nonzero()[:, 0]
        fa = ma[i, 0, :, 0].nonzero()[:, 0]
        if not mixed[i]:
            assert len(fv) == len(fa) == 0 and not ml[i].any()
            continue
        cv, ca = int(fv[0]), int(fa[0])
        assert cv / 32 == ca / 100  # the same instant in seconds
        assert torch.equal(fv, torch.arange(cv, 32)) and torch.equal(fa, torch.arange(ca, 100))
        assert torch.equal(ml[i].nonzero()[:, 0], fa)  # the onset labels follow the audio
    assert float(v.abs().sum()) == 0  # inputs untouched
    same = concat_augment(v, a, ov, oa, 0.0, torch.Generator().manual_seed(0))
    assert same[0] is v and same[1] is a and not same[3].any()


def test_first_frame_given_puts_the_clean_frame_in_and_leaves_it_out_of_the_loss():
    """--first-frame-p (seed 002's conditioning): p = 1 gives every sample's video U-Net its clean frame 0 (the
    other frames as noised as ever), and the video loss is recomputed by hand over frames 1.. only; p = 0.5 gives
    about half the samples; the audio side is untouched."""
    g = torch.Generator().manual_seed(3)
    v0, a0 = torch.randn(400, 4, 6, 2, 2, generator=g), torch.randn(400, 4, 12, 4, generator=g)
    sv, sa = _schedules()
    rec = _Recorder()
    loss, parts = _loss(rec, v0, a0, first_frame_p=1.0)
    (xv, tv), (xa, ta) = rec.unet_calls
    assert torch.equal(xv[:, :, :1], v0[:, :, :1])  # clean, at whatever t the sample drew
    assert not torch.equal(xv[:, :, 1:], v0[:, :, 1:])
    abar = sv.alphas_cumprod()[tv].double().view(-1, 1, 1, 1, 1)
    eps = (xv[:, :, 1:].double() - abar.sqrt() * v0[:, :, 1:].double()) / (1 - abar).sqrt()
    assert parts["loss_video"] == pytest.approx(float(eps.pow(2).mean()), rel=1e-4)  # frames 1.. only
    ref = _Recorder()
    _, plain = _loss(ref, v0, a0)  # the same draws without the option: frames 1.. and the audio as before
    assert torch.equal(ref.unet_calls[0][0][:, :, 1:], xv[:, :, 1:]) and plain["loss_audio"] == parts["loss_audio"]
    rec = _Recorder()
    _loss(rec, v0, a0, first_frame_p=0.5)
    given = rec.unet_calls[0][0][:, :, :1].eq(v0[:, :, :1]).flatten(1).all(1)
    assert float(given.float().mean()) == pytest.approx(0.5, abs=0.08)
