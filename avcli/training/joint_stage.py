"""`avgen train joint`: connectors + CMC-PE blocks on paired video, bases frozen (seed 000 eqs. 9-10, appendix A.2).

Data: a folder of real or synthetic files, cut into windows of the bundle's duration; latents and caption
embeddings are cached on disk after the first run (avcli/training/latents.py). One process or many (accelerate,
DDP): each process encodes and trains on its own share of the files with its own random stream. Optional: EMA of
the trained weights (what the bundle gets), mixed precision, the motion layers unfrozen, the contrastive term
of seed 001 (eq. 6), seed 003's onset loss kept on as an auxiliary term (`--onset-weight`; its head starts from
the onset stage's in the same work folder and is not part of the bundle) and seed 004's concat augmentation
(`--concat-p`, augment.py), and seed 003's attentive-pooled global video feature (`--attentive-pool`, added to
the bundle's video connector at zero, so training starts from what the bundle did), and seed 002's first-frame
attention in the video U-Net (`--first-frame-attn`, no new weights; recorded in the bundle's manifest) and its
first-frame conditioning (`--first-frame-p`: frame 0 given clean for a share of the samples, as animate gives a
picture; recorded as `joint.video_first_frame_given`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avcli.errors import UsageError
from avcli.models.bundle import load_bundle, update_bundle
from avcli.models.joint import Geometry, JointModel
from avcli.sampling.schedules import NoiseSchedule
from avcli.training.augment import concat_augment
from avcli.training.contrastive import NEGATIVE_KINDS, contrastive_joint_loss, shift_frames
from avcli.training.dataset import draw_windows, uniform_or, weighted_windows
from avcli.training.loop import LoopConfig, _trainable, train
from avcli.training.objective import OnsetAux, drop_text, joint_loss
from avcli.training.onset import OnsetHead

JOINT_COMPONENTS = ("video_connector", "audio_connector", "video_unet", "audio_unet")


class JointObjective(nn.Module):
    """The joint loss as one module, so DDP sees a forward (accelerate wraps this, never the whole JointModel).

    It holds only what the loss runs, under the JointModel's attribute names, so its parameter names (those of
    the checkpoint) are the JointModel's. VAEs, vocoder and text encoders stay out: the latents are cached."""

    def __init__(self, model: JointModel, geo: Geometry, self_condition_p: float = 0.5,
                 contrastive_weight: float = 0.0, contrastive_shift: tuple[float, float] = (0.2, 0.4),
                 known_p: float = 0.0, high_noise_weight: float = 1.0, audio_dropout: float = 0.0,
                 onset_head: OnsetHead | None = None, onset_weight: float = 0.0, onset_pos_weight: float = 1.0,
                 first_frame_p: float = 0.0, video_dropout: float = 0.0):
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
        self.onset_head = onset_head  # trained beside the connectors; write_joint leaves it out of the bundle
        self.onset_weight, self.onset_pos_weight = onset_weight, onset_pos_weight
        self.first_frame_p = first_frame_p
        self.video_dropout = video_dropout

    def forward(self, video0, audio0, text_v, text_a, generator, other_v=None, other_a=None, onset_labels=None):
        if other_v is None:
            onset = None
            if self.onset_head is not None and onset_labels is not None:
                onset = OnsetAux(self.onset_head, onset_labels, self.onset_weight, self.onset_pos_weight)
            return joint_loss(self, video0, audio0, text_v, text_a, self.sv, self.sa, self.abar_v, self.abar_a,
                              generator, self.self_condition_p, self.known_p, self.high_noise_weight,
                              self.audio_dropout, onset, self.first_frame_p, self.video_dropout)
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


def add_global_pool(model: JointModel, bundle: Path | None) -> bool:
    """Give the video connector seed 003's attentive-pooled global feature (connectors.AttentivePool). Its projection
    starts at zero, so the model computes what it did before; the bundle (when given) records the change and keeps
    loading. False when the connector already has it."""
    from avcli.models.connectors import VideoConnector

    if model.manifest["joint"].get("video_global_pool"):
        return False
    old = model.video_connector
    c = old.config
    new = VideoConnector(c["latent_channels"], c["hidden"], c["dim"], c["grid"], global_pool=True)
    result = new.load_state_dict(old.state_dict(), strict=False)
    if result.unexpected_keys or any(not k.startswith("global_pool.") for k in result.missing_keys):
        raise ValueError("the video connector's weights do not fit the pooled connector")
    model.video_connector = new.to(next(old.parameters()).device)
    model.manifest["joint"]["video_global_pool"] = True
    if bundle is not None:
        update_bundle(model, bundle, ["video_connector"], [("joint", "video_global_pool")])
    return True


def add_first_frame_attn(model: JointModel, bundle: Path | None) -> bool:
    """Switch seed 002's FF-Attn on in the video U-Net and (when given) record it in the bundle's manifest, so that
    every later load samples with it. False when the bundle already has it."""
    if model.manifest["joint"].get("video_first_frame_attn"):
        return False
    model.video_unet.set_first_frame_attn(True)
    model.manifest["joint"]["video_first_frame_attn"] = True
    if bundle is not None:
        update_bundle(model, bundle, [], [("joint", "video_first_frame_attn")])
    return True


def add_first_frame_conv(model: JointModel, bundle: Path | None) -> bool:
    """Give the video U-Net seed 002's FF-Conv (zero-initialised: the model computes what it did before) and (when
    given) write it into the bundle with its manifest flag. False when the bundle already has it."""
    if model.manifest["joint"].get("video_first_frame_conv"):
        return False
    model.video_unet.add_first_frame_conv()
    model.manifest["joint"]["video_first_frame_conv"] = True
    if bundle is not None:
        update_bundle(model, bundle, ["video_unet"], [("joint", "video_first_frame_conv")])
    return True


def mark_first_frame_given(model: JointModel, bundle: Path | None) -> bool:
    """Record that the video U-Net was trained with a clean first frame (`--first-frame-p`): animate then gives the
    picture's latent clean at every step instead of re-noising it (mode b). False when already recorded."""
    if model.manifest["joint"].get("video_first_frame_given"):
        return False
    model.manifest["joint"]["video_first_frame_given"] = True
    if bundle is not None:
        update_bundle(model, bundle, [], [("joint", "video_first_frame_given")])
    return True


def onset_head_from(work: Path, dim: int) -> tuple[OnsetHead, str | None]:
    """The onset head of the onset stage run in this work folder (its checkpoint's `head.*`), else a fresh one."""
    from safetensors.torch import load_file

    head, ckpt = OnsetHead(dim), work / "runs" / "onset" / "ckpt.safetensors"
    if not ckpt.is_file():
        return head, None
    state = {k[len("head."):]: v for k, v in load_file(str(ckpt)).items() if k.startswith("head.")}
    head.load_state_dict(state)
    return head, str(ckpt)


def window_weights(items, owner: torch.Tensor) -> torch.Tensor | None:
    """Each window's sampling weight, its file's captions.jsonl "weight"; None when every file weighs 1 (the
    uniform draw)."""
    return uniform_or(torch.tensor([it.weight for it in items], dtype=torch.float64)[owner])


def stage_joint(opts, cfg: LoopConfig) -> dict:
    from avcli.data.folder import read_folder
    from avcli.training.distributed import (PRECISION_DTYPES, close_process_group, hold_frozen_in, make_accelerator,
                                           shard)
    from avcli.training.ema import EMA
    from avcli.training.latents import cached_latents

    if not opts.data.is_dir():
        raise UsageError(f"{opts.data}: data folder not found")
    if opts.onset_weight > 0 and opts.contrastive_weight > 0:
        raise UsageError("--onset-weight and --contrastive-weight cannot be combined yet; train with one of them")
    if opts.first_frame_p > 0 and opts.contrastive_weight > 0:
        raise UsageError("--first-frame-p and --contrastive-weight cannot be combined yet; train with one of them")
    if opts.train_side == "audio" and (opts.unfreeze_video or opts.unfreeze_motion or opts.first_frame_conv):
        raise UsageError("--train-side audio keeps the video U-Net frozen; drop --unfreeze-video, --unfreeze-motion "
                         "and --first-frame-conv")
    if opts.train_side == "video" and (opts.unfreeze_audio or opts.attentive_pool or opts.onset_weight > 0
                                       or opts.video_dropout > 0):
        raise UsageError("--train-side video keeps the audio U-Net and the video connector frozen; drop "
                         "--unfreeze-audio, --attentive-pool, --onset-weight and --video-dropout")
    if opts.video_dropout > 0 and opts.contrastive_weight > 0:
        raise UsageError("--video-dropout and --contrastive-weight cannot be combined yet; train with one of them")
    items = read_folder(opts.data)[: opts.limit or None]  # bad captions/weights fail before any work
    accel = make_accelerator(opts.mixed_precision)
    main = accel.is_main_process
    model = load_bundle(opts.bundle, verify=False)
    if opts.attentive_pool:  # every process changes its model; one writes the bundle
        add_global_pool(model, opts.bundle if main else None)
    if opts.first_frame_attn:
        add_first_frame_attn(model, opts.bundle if main else None)
    if opts.first_frame_conv:
        add_first_frame_conv(model, opts.bundle if main else None)
    if opts.first_frame_p > 0:
        mark_first_frame_given(model, opts.bundle if main else None)
    geo = model.geometry()
    mine, disjoint = shard(items, accel.process_index, accel.num_processes)
    data = cached_latents(model, mine, geo, opts.work / "cache", accel.device, opts.progress and main)
    weights = window_weights(mine, data.owner)
    labels, head, head_from, pos_weight = None, None, None, 1.0
    if opts.onset_weight > 0:
        from avcli.training.onset import balanced_pos_weight, labels_from_latents

        labels = labels_from_latents(model, data.audio)  # the onset stage's pseudo-labels, from the cached audio
        pos_weight = balanced_pos_weight(labels)
        head, head_from = onset_head_from(opts.work, model.manifest["joint"]["connector_dim"])
    model.freeze_bases(unfreeze_motion=opts.unfreeze_motion, unfreeze_audio=opts.unfreeze_audio,
                       unfreeze_video=opts.unfreeze_video, side=opts.train_side)
    objective = JointObjective(model, geo, opts.self_condition_p, opts.contrastive_weight, opts.contrastive_shift,
                               opts.known_p, opts.high_noise_weight, opts.audio_dropout, head, opts.onset_weight,
                               pos_weight, opts.first_frame_p, opts.video_dropout)
    if len(data) < 2:
        objective.negative_kinds = ("shift",)  # segment and swap negatives need another clip
    del model  # VAEs, vocoder and text encoders are not needed any more
    if accel.mixed_precision in PRECISION_DTYPES:
        hold_frozen_in(objective, PRECISION_DTYPES[accel.mixed_precision])
    prepared = accel.prepare_model(objective)  # DDP across processes; autocast for mixed precision
    n, dev = len(data), accel.device

    def loss_fn(step, gen):
        idx = draw_windows(weights, n, opts.batch, gen)
        own = data.owner[idx]
        tv = drop_text(data.text_video[own], data.empty_video, opts.cfg_dropout, gen)
        ta = drop_text(data.text_audio[own], data.empty_audio, opts.cfg_dropout, gen)
        v0, a0 = data.video[idx], data.audio[idx]
        lab = labels[idx] if labels is not None else None
        if opts.concat_p > 0:  # seed 004: two clips cut at one instant; the mixed window gets the empty prompt
            j = _others(idx, n, gen)
            v0, a0, lab, mixed = concat_augment(v0, a0, data.video[j], data.audio[j], opts.concat_p, gen, lab,
                                                labels[j] if labels is not None else None)
            tv = torch.where(mixed.view(-1, 1, 1), data.empty_video.expand_as(tv), tv)
            ta = torch.where(mixed.view(-1, 1, 1), data.empty_audio.expand_as(ta), ta)
        if opts.contrastive_weight > 0:
            others = [data.video[_others(idx, n, gen)].to(dev), data.audio[_others(idx, n, gen)].to(dev)]
            return prepared(v0.to(dev), a0.to(dev), tv.to(dev), ta.to(dev), gen, *others)
        return prepared(v0.to(dev), a0.to(dev), tv.to(dev), ta.to(dev), gen,
                        onset_labels=lab.to(dev) if lab is not None else None)

    ema = EMA(opts.ema_decay) if opts.ema_decay > 0 and main else None
    result = train("joint", objective, loss_fn, opts.work / "runs" / "joint", cfg, progress=opts.progress,
                   accel=accel, ema=ema)
    total = torch.tensor(n, device=dev)
    result["clips"] = int(accel.reduce(total, "sum")) if disjoint and accel.num_processes > 1 else n
    result.update(processes=accel.num_processes, mixed_precision=accel.mixed_precision, ema_decay=opts.ema_decay,
                  known_p=opts.known_p, high_noise_weight=opts.high_noise_weight, audio_dropout=opts.audio_dropout,
                  onset_weight=opts.onset_weight, onset_head_from=head_from, concat_p=opts.concat_p,
                  attentive_pool=opts.attentive_pool, first_frame_attn=opts.first_frame_attn,
                  first_frame_conv=opts.first_frame_conv, first_frame_p=opts.first_frame_p,
                  unfreeze_audio=opts.unfreeze_audio, unfreeze_video=opts.unfreeze_video, train_side=opts.train_side,
                  cfg_dropout=opts.cfg_dropout, video_dropout=opts.video_dropout,
                  weighted_windows=weighted_windows(weights))
    if main:
        weights = ema.shadow if ema is not None else _trainable(objective)
        write_joint(opts.bundle, {k: v for k, v in weights.items() if not k.startswith("onset_head.")})
    accel.wait_for_everyone()
    close_process_group()
    return result
