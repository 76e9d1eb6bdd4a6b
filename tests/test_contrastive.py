"""Contrastive term of seed 001 (eq. 6, Algorithm 1) on constructed cases with stand-in models."""

import pytest
import torch

from avcli.models.presets import get_preset
from avcli.sampling.schedules import NoiseSchedule
from avcli.training.contrastive import contrastive_joint_loss, make_negatives

B, T = 6, 10


def _ramp():
    x = torch.arange(T, dtype=torch.float32).view(1, 1, T, 1).expand(B, 2, T, 3).clone()  # (B, C, T, m)
    return x, -1.0 - x  # positives and clips "from elsewhere", never equal to them


def test_shift_negatives_roll_by_the_drawn_frames():
    x, other = _ramp()
    neg = make_negatives(x, other, torch.Generator().manual_seed(0), (2, 3), kinds=("shift",))
    for i in range(B):
        assert any(torch.equal(neg[i], torch.roll(x[i], s, dims=1)) for s in (-3, -2, 2, 3))
        assert not torch.equal(neg[i], x[i])


def test_segment_negatives_join_two_clips_at_one_split():
    x, other = _ramp()
    neg = make_negatives(x, other, torch.Generator().manual_seed(1), (1, 1), kinds=("segment",))
    for i in range(B):
        from_other = (neg[i, 0, :, 0] < 0).int()  # 1 where the frame came from the other clip
        switches = (from_other[1:] != from_other[:-1]).sum()
        assert switches == 1, from_other  # one split point, both sides non-empty
        assert torch.equal(torch.where(from_other.bool().view(1, T, 1), other[i], x[i]), neg[i])


def test_swap_negatives_are_the_other_clip_and_unknown_kinds_fail():
    x, other = _ramp()
    assert torch.equal(make_negatives(x, other, None, (1, 1), kinds=("swap",)), other)
    with pytest.raises(ValueError, match="unknown negative kind"):
        make_negatives(x, other, None, (1, 1), kinds=("reverse",))


class _StandIn:
    """Connectors return zeros; U-Nets return eps = x_t / sqrt(1 - abar_t) (exact when x0 = 0) and record inputs."""

    def __init__(self, abar_v, abar_a):
        self.calls = []
        self.video_connector = self.audio_connector = lambda latent, x0_hat: torch.zeros(latent.shape[0], 4, 8)
        self.video_unet = lambda **kw: self._unet(abar_v, **kw)
        self.audio_unet = lambda **kw: self._unet(abar_a, **kw)

    def _unet(self, abar, sample, timestep, text_embeds, cross_features):
        self.calls.append((sample, timestep))
        return sample / (1 - abar[timestep]).sqrt().view(-1, *[1] * (sample.dim() - 1))


def _run(model, v0, a0, weight, seed=0):
    m = get_preset("tiny")
    sv, sa = NoiseSchedule.from_dict(m["video"]["schedule"]), NoiseSchedule.from_dict(m["audio"]["schedule"])
    text = torch.zeros(v0.shape[0], 3, 5)
    return contrastive_joint_loss(model, v0, a0, v0.flip(0), a0.flip(0), text, text, sv, sa, sv.alphas_cumprod(),
                                  sa.alphas_cumprod(), torch.Generator().manual_seed(seed), weight, (1, 2), (2, 4),
                                  self_condition_p=0.0)


def _schedules():
    m = get_preset("tiny")
    return (NoiseSchedule.from_dict(m["video"]["schedule"]).alphas_cumprod(),
            NoiseSchedule.from_dict(m["audio"]["schedule"]).alphas_cumprod())


def test_contrastive_loss_is_zero_for_a_perfect_denoiser():
    v0, a0 = torch.zeros(3, 4, 6, 2, 2), torch.zeros(3, 4, 12, 4)
    loss, parts = _run(_StandIn(*_schedules()), v0, a0, weight=0.5)
    assert abs(float(loss)) < 1e-6 and parts["loss_neg_audio"] < 1e-6 and parts["loss_neg_video"] < 1e-6


def test_contrastive_loss_follows_algorithm_1():
    g = torch.Generator().manual_seed(3)
    v0, a0 = torch.randn(3, 4, 6, 2, 2, generator=g), torch.randn(3, 4, 12, 4, generator=g)
    model = _StandIn(*_schedules())
    loss, parts = _run(model, v0, a0, weight=0.25)
    # L_cont = L(a, v) - eta * [L(a-, v) + L(a, v-)]
    expected = parts["loss_pos"] - 0.25 * (parts["loss_neg_audio"] + parts["loss_neg_video"])
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert parts["loss_pos"] == pytest.approx(parts["loss_video"] + parts["loss_audio"], rel=1e-6)
    # one pass over [positive; (v, a-); (v-, a)]: shared timesteps, the unchanged modality keeps its noisy input
    (xv, tv), (xa, ta) = model.calls
    b = 3
    assert torch.equal(tv[:b], tv[b:2 * b]) and torch.equal(tv[:b], tv[2 * b:])
    assert torch.equal(ta[:b], ta[b:2 * b]) and torch.equal(ta[:b], ta[2 * b:])
    assert torch.equal(xv[:b], xv[b:2 * b]) and not torch.equal(xv[:b], xv[2 * b:])
    assert torch.equal(xa[:b], xa[2 * b:]) and not torch.equal(xa[:b], xa[b:2 * b])
    zero, parts0 = _run(_StandIn(*_schedules()), v0, a0, weight=0.0)
    assert float(zero) == pytest.approx(parts0["loss_pos"], rel=1e-6)
