"""Training objectives (seed 000 eqs. 9-10): independent uniform local timesteps per modality.

`joint_loss` trains the joined model; `base_loss` trains one base U-Net alone (its cross-modal blocks are zero, so
the joint U-Net is exactly the base). Targets follow each base's prediction type (epsilon or v).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from avcli.sampling.schedules import NoiseSchedule
from avcli.sampling.solvers import predict_x0_eps
from avcli.training.onset import onset_loss


@dataclass(frozen=True)
class NoisedBatch:
    x_t: torch.Tensor
    t: torch.Tensor  # (B,) int64 local timestep indices
    target: torch.Tensor
    abar: torch.Tensor  # (B, 1, ...) broadcastable


@dataclass(frozen=True)
class OnsetAux:
    """Seed 003's onset pretext kept as an auxiliary loss during joint training: BCE between the onset head's logits
    from the video connector's features (the audio U-Net's cross-modal input) and this batch's onset labels."""
    head: nn.Module
    labels: torch.Tensor  # (B, T) {0, 1} on the audio latent's frames
    weight: float
    pos_weight: float


def add_noise(x0: torch.Tensor, schedule: NoiseSchedule, alphas_cumprod: torch.Tensor,
              generator: torch.Generator | None = None, t: torch.Tensor | None = None,
              noise: torch.Tensor | None = None) -> NoisedBatch:
    """Draw t ~ U{0..T-1} per sample and the noise (unless given) and noise x0 to x_t (eq. 2); return the training
    target. Random draws come from the (CPU) generator whatever x0's device, so runs are reproducible anywhere."""
    b = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.num_train_timesteps, (b,), generator=generator)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator)
    t, noise = t.to(x0.device), noise.to(x0.device)
    abar = alphas_cumprod.to(x0.device)[t].view(b, *([1] * (x0.dim() - 1)))
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    if schedule.prediction_type == "epsilon":
        target = noise
    elif schedule.prediction_type == "v_prediction":
        target = abar.sqrt() * noise - (1 - abar).sqrt() * x0
    else:
        target = x0
    return NoisedBatch(x_t, t, target, abar)


def drop_text(text: torch.Tensor, empty: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Classifier-free-guidance dropout: replace each sample's text embedding by the empty prompt's with prob p."""
    if p <= 0:
        return text
    keep = (torch.rand(text.shape[0], generator=generator) >= p).view(-1, 1, 1).to(text.device)
    return torch.where(keep, text, empty.to(text.device).expand_as(text))


def base_loss(unet, x0: torch.Tensor, text: torch.Tensor, schedule: NoiseSchedule, alphas_cumprod: torch.Tensor,
              cross_shape: tuple[int, ...], generator: torch.Generator | None = None,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Single-modality loss (eq. 7) through a joint U-Net whose cross-modal input is zero.

    weight: a per-position loss weight broadcastable to x0 (e.g. (B, 1, F, h, w) for video, `latent_foreground_weight`);
    the loss is then the weighted mean of the squared error, sum(w * e^2) / sum(w), so its scale stays that of the
    plain mean."""
    nb = add_noise(x0, schedule, alphas_cumprod, generator)
    cross = torch.zeros((x0.shape[0],) + tuple(cross_shape), device=x0.device)
    pred = unet(sample=nb.x_t, timestep=nb.t, text_embeds=text, cross_features=cross)
    if weight is None:
        return F.mse_loss(pred.float(), nb.target)
    se = (pred.float() - nb.target) ** 2
    w = weight.to(se.device, se.dtype).expand_as(se)
    return (w * se).sum() / w.sum()


def joint_loss(model, video0: torch.Tensor, audio0: torch.Tensor, text_v: torch.Tensor, text_a: torch.Tensor,
               video_schedule: NoiseSchedule, audio_schedule: NoiseSchedule, abar_v: torch.Tensor,
               abar_a: torch.Tensor, generator: torch.Generator | None = None, self_condition_p: float = 0.5,
               known_p: float = 0.0, high_noise_weight: float = 1.0, audio_dropout: float = 0.0,
               onset: OnsetAux | None = None, first_frame_p: float = 0.0,
               video_dropout: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 9-10: L_v + L_a with t_v, t_a drawn independently, so any gamma works at inference.

    Self-conditioning (Chen et al. 2022): with probability p a first pass without gradient estimates x0 for both
    modalities, and the connectors see it; otherwise they see zeros, as at the first sampling step.
    known_p and high_noise_weight (both off by default, = the seed's recipe): see `known_modality` and
    `high_noise_weights`. audio_dropout: the share of samples whose video U-Net sees null (zero) audio features,
    so that sampling can guide by the audio (seed 002, `--audio-guidance`); video_dropout: the mirror, null video
    features for the audio U-Net, so that seed 004's guidance over the picture contrasts with a trained null
    (`--video-guidance`). onset: the auxiliary onset loss
    (`OnsetAux`), added with its weight. first_frame_p: the share of samples whose frame 0 is given clean
    (`first_frame_given`, animate with a picture).
    """
    nv = add_noise(video0, video_schedule, abar_v, generator)
    na = add_noise(audio0, audio_schedule, abar_a, generator)
    mask_v = None
    if first_frame_p > 0:
        nv, mask_v = first_frame_given(nv, video0, first_frame_p, generator)
    pv, pa, f_v = joint_predict(model, nv, na, text_v, text_a, video_schedule, audio_schedule, generator,
                                self_condition_p, known=(video0, audio0, known_p), audio_dropout=audio_dropout,
                                features=True, video_dropout=video_dropout)
    lv = _weighted_mse(pv, nv, video_schedule, high_noise_weight, mask_v)
    la = _weighted_mse(pa, na, audio_schedule, high_noise_weight)
    logs = {"loss_video": float(lv.detach()), "loss_audio": float(la.detach())}
    loss = lv + la
    if onset is not None and onset.weight > 0:
        lo = onset_loss(onset.head(f_v.float(), onset.labels.shape[1]), onset.labels.to(f_v.device),
                        onset.pos_weight)
        loss = loss + onset.weight * lo
        logs["loss_onset"] = float(lo.detach())
    return loss, logs


def high_noise_weights(abar: torch.Tensor, prediction_type: str, cap: float) -> torch.Tensor:
    """Per-sample loss weights clamp(w_x0, 1, cap), w_x0 = the factor that turns this target's squared error into
    the x0 (clean latent) squared error: 1/SNR for epsilon, 1/(1 - abar) for v, 1 for sample.

    With cap > 1, the noisy steps, where the clean signal is scarcely visible in x_t and only the *other* modality
    can tell where the events are, weigh up to cap times more; the low-noise steps keep weight 1. With the plain
    epsilon loss they weigh almost nothing in x0 terms, and cross-modal timing went unlearned in our demo (see
    benchmarks/joint_probe.py). cap = 1 is the plain loss.
    """
    abar = abar.flatten().float()
    if cap <= 1:
        return torch.ones_like(abar)
    if prediction_type == "epsilon":
        w = (1 - abar) / abar
    elif prediction_type == "v_prediction":
        w = 1 / (1 - abar).clamp_min(1e-8)
    else:
        w = torch.ones_like(abar)
    return w.clamp(1.0, cap)


def first_frame_given(nv: NoisedBatch, video0: torch.Tensor, p: float,
                      generator: torch.Generator | None) -> tuple[NoisedBatch, torch.Tensor]:
    """Seed 002's first-frame conditioning as animate gives it: with probability p a sample's frame 0 in x_t is its
    clean latent (the picture), whatever t the other frames are at, and its loss counts frames 1.. only (there is
    nothing to predict on a given frame). Returns the batch and the loss mask (B, 1, F, 1, 1): 0 on given frames."""
    b, f = video0.shape[0], video0.shape[2]
    given = (torch.rand(b, generator=generator) < p).to(video0.device, video0.dtype).view(b, 1, 1, 1, 1)
    frame0 = torch.zeros(1, 1, f, 1, 1, device=video0.device, dtype=video0.dtype)
    frame0[:, :, 0] = 1.0
    m = given * frame0
    x_t = m * video0 + (1 - m) * nv.x_t
    return NoisedBatch(x_t, nv.t, nv.target, nv.abar), 1 - m


def _weighted_mse(pred: torch.Tensor, nb: NoisedBatch, schedule: NoiseSchedule, cap: float,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """The (high-noise weighted) MSE; with a mask (broadcastable, 1 = counted), each sample's mean runs over its
    counted elements only."""
    if cap <= 1 and mask is None:
        return F.mse_loss(pred.float(), nb.target)
    sq = (pred.float() - nb.target).pow(2)
    if mask is None:
        per = sq.flatten(1).mean(1)
    else:
        m = mask.float().expand_as(sq)
        per = (sq * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1.0)
    if cap <= 1:
        return per.mean()
    w = high_noise_weights(nb.abar, schedule.prediction_type, cap).to(per.device)
    return (w * per).sum() / w.sum()


def joint_predict(model, nv: NoisedBatch, na: NoisedBatch, text_v, text_a, video_schedule: NoiseSchedule,
                  audio_schedule: NoiseSchedule, generator: torch.Generator | None, self_condition_p: float,
                  known: tuple[torch.Tensor, torch.Tensor, float] | None = None, audio_dropout: float = 0.0,
                  features: bool = False, video_dropout: float = 0.0):
    """Both U-Nets' predictions for noised batches, with self-conditioning drawn with probability p.
    features=True also returns the video connector's output f_v (before any video dropout: the onset head reads
    it)."""
    sc_v, sc_a = torch.zeros_like(nv.x_t), torch.zeros_like(na.x_t)
    if self_condition_p > 0 and float(torch.rand((), generator=generator)) < self_condition_p:
        with torch.no_grad():
            pv, pa, _ = _joint_forward(model, nv, na, sc_v, sc_a, text_v, text_a)
            sc_v = predict_x0_eps(pv.float(), nv.x_t, nv.abar, video_schedule.prediction_type)[0]
            sc_a = predict_x0_eps(pa.float(), na.x_t, na.abar, audio_schedule.prediction_type)[0]
    if known is not None and known[2] > 0:
        sc_v, sc_a = known_modality(sc_v, sc_a, known[0], known[1], known[2], generator)
    keep_a = None
    if audio_dropout > 0:  # 1 keeps a sample's audio features for the video U-Net, 0 replaces them by the null
        keep_a = (torch.rand(nv.x_t.shape[0], generator=generator) >= audio_dropout).float()
    keep_v = None  # drawn only when on, so that runs without it keep their random stream
    if video_dropout > 0:  # 1 keeps a sample's video features for the audio U-Net, 0 replaces them by the null
        keep_v = (torch.rand(na.x_t.shape[0], generator=generator) >= video_dropout).float()
    pv, pa, f_v = _joint_forward(model, nv, na, sc_v, sc_a, text_v, text_a, keep_a, keep_v)
    return (pv, pa, f_v) if features else (pv, pa)


def known_modality(sc_v: torch.Tensor, sc_a: torch.Tensor, video0: torch.Tensor, audio0: torch.Tensor, p: float,
                   generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The conditional tasks as the sampler runs them (seed 001 sec. 2.1): with probability p/2 a sample's video is
    "known" (foley: its connector's x0_hat is the clean video, as `sample(task='foley')` gives it), with p/2 its
    audio (animate); the rest stay joint. Both U-Nets are still trained on every sample."""
    b = sc_v.shape[0]
    u = torch.rand(b, generator=generator)
    kv = (u < p / 2).to(sc_v.device).view(b, *([1] * (sc_v.dim() - 1)))
    ka = ((u >= p / 2) & (u < p)).to(sc_a.device).view(b, *([1] * (sc_a.dim() - 1)))
    return torch.where(kv, video0.to(sc_v.dtype), sc_v), torch.where(ka, audio0.to(sc_a.dtype), sc_a)


def _joint_forward(model, nv: NoisedBatch, na: NoisedBatch, sc_v, sc_a, text_v, text_a, keep_a=None, keep_v=None):
    f_v = model.video_connector(latent=nv.x_t, x0_hat=sc_v)
    f_a = model.audio_connector(latent=na.x_t, x0_hat=sc_a)
    if keep_a is not None:
        f_a = f_a * keep_a.to(f_a.device, f_a.dtype).view(-1, *([1] * (f_a.dim() - 1)))
    seen_v = f_v if keep_v is None else f_v * keep_v.to(f_v.device, f_v.dtype).view(-1, *([1] * (f_v.dim() - 1)))
    pv = model.video_unet(sample=nv.x_t, timestep=nv.t, text_embeds=text_v, cross_features=f_a)
    pa = model.audio_unet(sample=na.x_t, timestep=na.t, text_embeds=text_a, cross_features=seen_v)
    return pv, pa, f_v
