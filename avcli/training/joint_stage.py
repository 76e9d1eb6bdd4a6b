"""`avgen train joint`: connectors + CMC-PE blocks on paired video, bases frozen (seed 000 eqs. 9-10, appendix A.2).

Data: a folder of real or synthetic files, cut into windows of the bundle's duration; latents and caption
embeddings are cached on disk after the first run (avcli/training/latents.py). One process or many (accelerate,
DDP): each process encodes and trains on its own share of the files with its own random stream. Optional: EMA of
the trained weights (what the bundle gets), mixed precision, the motion layers unfrozen, and the contrastive term
of seed 001 (eq. 6).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avcli.errors import UsageError
from avcli.models.bundle import load_bundle, update_bundle
from avcli.models.joint import Geometry, JointModel
from avcli.sampling.schedules import NoiseSchedule
from avcli.training.contrastive import NEGATIVE_KINDS, contrastive_joint_loss, shift_frames
from avcli.training.loop import LoopConfig, _trainable, train
from avcli.training.objective import drop_text, joint_loss

JOINT_COMPONENTS = ("video_connector", "audio_connector", "video_unet", "audio_unet")


class JointObjective(nn.Module):
    """The joint loss as one module, so DDP sees a forward (accelerate wraps this, never the whole JointModel).

    It holds only what the loss runs, under the JointModel's attribute names, so its parameter names (those of
    the checkpoint) are the JointModel's. VAEs, vocoder and text encoders stay out: the latents are cached."""

    def __init__(self, model: JointModel, geo: Geometry, self_condition_p: float = 0.5,
                 contrastive_weight: float = 0.0, contrastive_shift: tuple[float, float] = (0.2, 0.4),
                 known_p: float = 0.0, high_noise_weight: float = 1.0, audio_dropout: float = 0.0):
        super().__init__()
        for name in JOINT_COMPONENTS:
            setattr(self, name, getattr(model, name))
        self.sv = NoiseSchedule.from_dict(model.manifest["video"]["schedule"])
        self.sa = NoiseSchedule.from_dict(model.manifest["audio"]["schedule"])
        self.abar_v, self.abar_a = self.sv.alphas_cumprod(), self.sa.alphas_cumprod()
        self.self_condition_p = self_condition_p
        self.contrastive_weight = contrastive_weight
        self.shift_v = shift_frames(contrastive_shift, geo.fps)
        self.shift_a = shift_frames(contrastive_shift, geo.audio_latent[1] / geo.duration)
        self.negative_kinds = NEGATIVE_KINDS
        self.known_p, self.high_noise_weight, self.audio_dropout = known_p, high_noise_weight, audio_dropout

    def forward(self, video0, audio0, text_v, text_a, generator, other_v=None, other_a=None):
        if other_v is None:
            return joint_loss(self, video0, audio0, text_v, text_a, self.sv, self.sa, self.abar_v, self.abar_a,
                              generator, self.self_condition_p, self.known_p, self.high_noise_weight,
                              self.audio_dropout)
        return contrastive_joint_loss(self, video0, audio0, other_v, other_a, text_v, text_a, self.sv, self.sa,
                                      self.abar_v, self.abar_a, generator, self.contrastive_weight, self.shift_v,
                                      self.shift_a, self.self_condition_p, self.negative_kinds)


def _others(idx: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """Another window for each sample (never itself): the a_d / v_d of the segment and swap negatives."""
    if n < 2:
        return idx
    return (idx + torch.randint(1, n, idx.shape, generator=gen)) % n


def write_joint(bundle: Path, weights: dict[str, torch.Tensor]) -> None:
    """Trained weights into the bundle. Everything else is re-read from disk, so the base weights written back
    are bit-identical whatever precision or device they were held in during training."""
    fresh = load_bundle(bundle, verify=False)
    result = fresh.load_state_dict({k: v.detach().float().cpu() for k, v in weights.items()}, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{bundle}: trained tensor {result.unexpected_keys[0]} does not belong to this bundle")
    update_bundle(fresh, bundle, list(JOINT_COMPONENTS))


def stage_joint(opts, cfg: LoopConfig) -> dict:
    from avcli.data.folder import read_folder
    from avcli.training.distributed import (PRECISION_DTYPES, close_process_group, hold_frozen_in, make_accelerator,
                                           shard)
    from avcli.training.ema import EMA
    from avcli.training.latents import cached_latents

    if not opts.data.is_dir():
        raise UsageError(f"{opts.data}: data folder not found")
    accel = make_accelerator(opts.mixed_precision)
    main = accel.is_main_process
    model = load_bundle(opts.bundle, verify=False)
    geo = model.geometry()
    items = read_folder(opts.data)[: opts.limit or None]
    mine, disjoint = shard(items, accel.process_index, accel.num_processes)
    data = cached_latents(model, mine, geo, opts.work / "cache", accel.device, opts.progress and main)
    model.freeze_bases(unfreeze_motion=opts.unfreeze_motion)
    objective = JointObjective(model, geo, opts.self_condition_p, opts.contrastive_weight, opts.contrastive_shift,
                               opts.known_p, opts.high_noise_weight, opts.audio_dropout)
    if len(data) < 2:
        objective.negative_kinds = ("shift",)  # segment and swap negatives need another clip
    del model  # VAEs, vocoder and text encoders are not needed any more
    if accel.mixed_precision in PRECISION_DTYPES:
        hold_frozen_in(objective, PRECISION_DTYPES[accel.mixed_precision])
    prepared = accel.prepare_model(objective)  # DDP across processes; autocast for mixed precision
    n, dev = len(data), accel.device

    def loss_fn(step, gen):
        idx = torch.randint(0, n, (opts.batch,), generator=gen)
        own = data.owner[idx]
        tv = drop_text(data.text_video[own], data.empty_video, opts.cfg_dropout, gen)
        ta = drop_text(data.text_audio[own], data.empty_audio, opts.cfg_dropout, gen)
        others = []
        if opts.contrastive_weight > 0:
            others = [data.video[_others(idx, n, gen)].to(dev), data.audio[_others(idx, n, gen)].to(dev)]
        return prepared(data.video[idx].to(dev), data.audio[idx].to(dev), tv.to(dev), ta.to(dev), gen, *others)

    ema = EMA(opts.ema_decay) if opts.ema_decay > 0 and main else None
    result = train("joint", objective, loss_fn, opts.work / "runs" / "joint", cfg, progress=opts.progress,
                   accel=accel, ema=ema)
    total = torch.tensor(n, device=dev)
    result["clips"] = int(accel.reduce(total, "sum")) if disjoint and accel.num_processes > 1 else n
    result.update(processes=accel.num_processes, mixed_precision=accel.mixed_precision, ema_decay=opts.ema_decay,
                  known_p=opts.known_p, high_noise_weight=opts.high_noise_weight, audio_dropout=opts.audio_dropout)
    if main:
        write_joint(opts.bundle, ema.shadow if ema is not None else _trainable(objective))
    accel.wait_for_everyone()
    close_process_group()
    return result
