"""Joint contrastive diffusion loss (seed 001 eq. 6 and its appendix Algorithm 1):

    L_cont = L_jdiff(a, v) - eta * [ L_jdiff(a-, v) + L_jdiff(a, v-) ]

L_jdiff is our joint loss (video + audio terms, eqs. 9-10 of seed 000). Negatives are made from the positive pair
by data augmentation (seed 001 sec. 2.2), one kind drawn per sample:
  shift    the signal moved forward or backward in time by 0.2-0.4 s (appendix B.2: 2-4 frames at 10 fps);
  segment  a split point; one side from another clip a_d: concat(a_d_left, a_right) or concat(a_left, a_d_right);
  swap     the whole signal replaced by another clip a_d.
Negatives are built in latent space along the time axis (dim 2 of both latents); shifts roll circularly, so a
negative keeps the statistics of a real latent. As in Algorithm 1, a negative pair shares the timesteps and the
positive modality's noise with the positive pair, and the negative modality gets fresh noise.
"""

from __future__ import annotations

import torch

from avcli.sampling.schedules import NoiseSchedule
from avcli.training.objective import add_noise, joint_predict

NEGATIVE_KINDS = ("shift", "segment", "swap")


def make_negatives(x: torch.Tensor, other: torch.Tensor, generator: torch.Generator | None,
                   shift_frames: tuple[int, int], kinds: tuple[str, ...] = NEGATIVE_KINDS) -> torch.Tensor:
    """x, other: (B, C, T, ...) positives and clips drawn from elsewhere in the data; returns (B, C, T, ...)."""
    b, t = x.shape[0], x.shape[2]
    kind = torch.randint(0, len(kinds), (b,), generator=generator)
    lo, hi = max(1, shift_frames[0]), max(1, shift_frames[1])
    sign = torch.randint(0, 2, (b,), generator=generator) * 2 - 1
    shift = torch.randint(lo, hi + 1, (b,), generator=generator) * sign
    cut = torch.randint(1, max(2, t), (b,), generator=generator)
    other_left = torch.rand(b, generator=generator) < 0.5
    out = []
    for i in range(b):
        k = kinds[int(kind[i])]
        if k == "shift":
            out.append(torch.roll(x[i], int(shift[i]), dims=1))
        elif k == "segment":
            left, right = (other[i], x[i]) if other_left[i] else (x[i], other[i])
            c = int(cut[i])
            out.append(torch.cat([left[:, :c], right[:, c:]], dim=1))
        elif k == "swap":
            out.append(other[i])
        else:
            raise ValueError(f"unknown negative kind {k!r}; choose from {', '.join(NEGATIVE_KINDS)}")
    return torch.stack(out)


def _per_sample(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred.float() - target).pow(2).flatten(1).mean(1)  # (B,)


def contrastive_joint_loss(model, video0: torch.Tensor, audio0: torch.Tensor, other_v: torch.Tensor,
                           other_a: torch.Tensor, text_v: torch.Tensor, text_a: torch.Tensor,
                           video_schedule: NoiseSchedule, audio_schedule: NoiseSchedule, abar_v: torch.Tensor,
                           abar_a: torch.Tensor, generator: torch.Generator | None, weight: float,
                           shift_v: tuple[int, int], shift_a: tuple[int, int], self_condition_p: float = 0.5,
                           kinds: tuple[str, ...] = NEGATIVE_KINDS) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 6 with eta = weight. One forward pass over [positive; (v, a-); (v-, a)] (3B samples)."""
    b = video0.shape[0]
    neg_a = make_negatives(audio0, other_a, generator, shift_a, kinds)
    neg_v = make_negatives(video0, other_v, generator, shift_v, kinds)
    t_v = torch.randint(0, video_schedule.num_train_timesteps, (b,), generator=generator).repeat(3)
    t_a = torch.randint(0, audio_schedule.num_train_timesteps, (b,), generator=generator).repeat(3)
    eps_v, eps_a = torch.randn(video0.shape, generator=generator), torch.randn(audio0.shape, generator=generator)
    eps_v_neg = torch.randn(video0.shape, generator=generator)
    eps_a_neg = torch.randn(audio0.shape, generator=generator)
    nv = add_noise(torch.cat([video0, video0, neg_v]), video_schedule, abar_v, t=t_v,
                   noise=torch.cat([eps_v, eps_v, eps_v_neg]))
    na = add_noise(torch.cat([audio0, neg_a, audio0]), audio_schedule, abar_a, t=t_a,
                   noise=torch.cat([eps_a, eps_a_neg, eps_a]))
    pv, pa = joint_predict(model, nv, na, text_v.repeat(3, 1, 1), text_a.repeat(3, 1, 1), video_schedule,
                           audio_schedule, generator, self_condition_p)
    lv, la = _per_sample(pv, nv.target), _per_sample(pa, na.target)
    pos = lv[:b].mean() + la[:b].mean()  # = joint_loss's L_v + L_a (equal-size samples)
    neg_audio = lv[b:2 * b].mean() + la[b:2 * b].mean()  # L_jdiff(a-, v)
    neg_video = lv[2 * b:].mean() + la[2 * b:].mean()  # L_jdiff(a, v-)
    loss = pos - weight * (neg_audio + neg_video)
    return loss, {"loss_video": float(lv[:b].mean().detach()), "loss_audio": float(la[:b].mean().detach()),
                  "loss_pos": float(pos.detach()), "loss_neg_audio": float(neg_audio.detach()),
                  "loss_neg_video": float(neg_video.detach())}


def shift_frames(seconds: tuple[float, float], frames_per_second: float) -> tuple[int, int]:
    """The shift range in latent frames (at least one frame)."""
    return (max(1, round(seconds[0] * frames_per_second)), max(1, round(seconds[1] * frames_per_second)))
