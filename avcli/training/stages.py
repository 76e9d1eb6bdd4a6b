"""The training recipe of seed 000 at small scale, one stage per command:

  vae-video, vae-audio, vocoder   the single-modality autoencoders and the vocoder (from data)
  unet-video, unet-audio          the two base diffusion models, each alone (cross-modal blocks stay zero)
  onset                           the video connector alone, on an onset pretext task (seed 003); see onset.py
  joint                           connectors + CMC-PE blocks only, bases frozen (eqs. 9-10); see joint_stage.py

Every stage reads a bundle folder, trains one part, and writes the bundle back (always a valid, loadable bundle).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avcli.errors import UsageError
from avcli.models.bundle import load_bundle, update_bundle
from avcli.models.joint import JointModel
from avcli.sampling.schedules import NoiseSchedule
from avcli.training.dataset import draw_windows, uniform_or, weighted_windows
from avcli.training.distributed import is_main_process
from avcli.training.latents import frames_tensor as _frames_tensor
from avcli.training.latents import mels as _mels
from avcli.training.loop import LoopConfig, train
from avcli.training.objective import base_loss, drop_text

STAGES = ("vae-video", "vae-audio", "vocoder", "unet-video", "unet-audio", "onset", "joint")
FOREGROUND_BOOST = {"vae-video": 20.0, "unet-video": 0.0}  # each stage's default; the others have no such weight


def foreground_boost(opts: "StageOptions", stage: str) -> float:
    """The foreground boost a stage trains with: the option where given, else the stage's default."""
    return FOREGROUND_BOOST[stage] if opts.foreground_boost is None else float(opts.foreground_boost)


@dataclass(frozen=True)
class StageOptions:
    bundle: Path
    data: Path
    work: Path
    batch: int = 8
    limit: int | None = None
    cfg_dropout: float = 0.1
    unfreeze_motion: bool = False
    unfreeze_audio: bool = False  # joint stage: fine-tune the audio base U-Net with the connectors
    unfreeze_video: bool = False  # joint stage: fine-tune the video base U-Net with the connectors
    train_side: str = "both"  # joint stage: "audio"/"video" trains only that side's connector and cross blocks
    self_condition_p: float = 0.5
    progress: bool = True
    foreground_boost: float | None = None  # vae-video / unet-video: extra loss weight on what moves (FOREGROUND_BOOST)
    decoder_only: bool = False  # vae-video: train the decoder alone; the encoder and so the latent space stay fixed
    mse_weight: float = 0.0  # vae-video: a squared-error term beside the L1 (what PSNR measures)
    vocoder_arch: str | None = None  # vocoder: "istft" starts a fresh avgen.ISTFTVocoder in place of the bundle's
    # joint stage only
    ema_decay: float = 0.999
    mixed_precision: str = "auto"
    contrastive_weight: float = 0.0
    contrastive_shift: tuple[float, float] = (0.2, 0.4)
    known_p: float = 0.0
    high_noise_weight: float = 1.0
    audio_dropout: float = 0.0  # seed 002: null audio features for the video U-Net, for --audio-guidance
    video_dropout: float = 0.0  # the mirror: null video features for the audio U-Net, for --video-guidance
    onset_weight: float = 0.0  # seed 003: the onset pretext's BCE kept on during joint training, this weight
    concat_p: float = 0.0  # seed 004: share of samples made of two clips cut at one instant
    attentive_pool: bool = False  # seed 003: the video connector gains an attentive-pooled global feature
    first_frame_attn: bool = False  # seed 002: FF-Attn in the video U-Net's spatial attention (animate mode b)
    first_frame_conv: bool = False  # seed 002: FF-Conv, frame 0's input latent joins every frame's (animate mode b)
    first_frame_p: float = 0.0  # seed 002: share of samples whose frame 0 is given clean (animate with a picture)


def run_name(stage: str, opts: StageOptions) -> str:
    """The folder under WORK/runs that holds a stage's checkpoints and logs (a decoder-only leg has its own, so
    it neither resumes nor overwrites a full autoencoder run)."""
    return f"{stage}-decoder" if stage == "vae-video" and opts.decoder_only else stage


def _prep(opts: StageOptions):
    from avcli.training.dataset import load_clips

    if not opts.data.is_dir():
        raise UsageError(f"{opts.data}: data folder not found")
    model = load_bundle(opts.bundle, verify=False)
    geo = model.geometry()
    clips = load_clips(opts.data, geo, opts.work / "cache", limit=opts.limit, progress=opts.progress)
    return model, geo, clips


def _save(model: JointModel, opts: StageOptions, components: list[str], manifest_paths=()) -> None:
    """Write back only what this stage trained, so stages of different components can run side by side."""
    update_bundle(model, opts.bundle, components, list(manifest_paths))


def _vae_step(vae, x: torch.Tensor, gen: torch.Generator, kl_weight: float = 1e-6,
              weight: torch.Tensor | None = None, decoder_only: bool = False, mse_weight: float = 0.0):
    """One autoencoder loss: (weighted) L1 of the reconstruction of a posterior sample, plus the KL term. With
    decoder_only the encoder runs without gradients and there is no KL term (the latent space is not trained)."""
    with torch.set_grad_enabled(not decoder_only and torch.is_grad_enabled()):
        post = vae.encode(x).latent_dist
    z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
    rec = vae.decode(z).sample
    err = (rec - x).abs()
    l1 = err.mean()
    rec_loss = l1 if weight is None else (err * weight).sum() / (weight.sum() * x.shape[1])
    logs = {"loss_l1": float(l1.detach())}
    if weight is not None:
        logs["loss_weighted"] = float(rec_loss.detach())
    if mse_weight > 0:
        mse = (err ** 2).mean()
        logs["loss_mse"] = float(mse.detach())
        rec_loss = rec_loss + mse_weight * mse
    if decoder_only:
        return rec_loss, logs
    kl = post.kl().mean() / x[0].numel()
    logs["loss_kl"] = float(kl.detach())
    return rec_loss + kl_weight * kl * x[0].numel() / 1000.0, logs


def moving_share(frames: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """How much each pixel belongs to what moves, 0..1: its distance from its clip's temporal median, saturating at
    0.2 (summed over RGB in [-1, 1] units). Frames and background (B, 3, H, W); returns (B, 1, H, W)."""
    return ((frames - background).abs().sum(1, keepdim=True) * 5.0).clamp(max=1.0)


def foreground_weight(frames: torch.Tensor, background: torch.Tensor, boost: float) -> torch.Tensor:
    """Per-pixel loss weight 1 + boost * (how far a pixel is from its clip's temporal median).

    Frames are in [-1, 1], (B, 3, H, W); background is each frame's clip median, same shape. Moving objects
    (a ball a few pixels wide) cover ~2 % of a frame: with a plain L1 the autoencoder learns the static scene
    and drops them, which is exactly what the sound has to follow. The weight makes them count."""
    return 1.0 + boost * moving_share(frames, background)


def latent_foreground_weight(frames: np.ndarray, latent_hw: tuple[int, int], boost: float) -> torch.Tensor:
    """The same weight on the video latent's grid, for the video U-Net's denoising loss: each latent position's
    1 + boost * (the share of its pixel cell that moves). frames uint8 (N, F, H, W, 3) -> float32 (N, 1, F, h, w).

    The object a prompt colours covers one or two of the 8 x 8 latent positions of a 64 px frame; under a plain
    mean the static scene is almost all of the loss."""
    n, f = frames.shape[:2]
    out = torch.empty((n, 1, f) + tuple(latent_hw), dtype=torch.float32)
    for i in range(n):
        x = torch.from_numpy(frames[i]).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (F, 3, H, W)
        bg = torch.from_numpy(np.median(frames[i], axis=0).astype(np.uint8)).permute(2, 0, 1).float() / 127.5 - 1.0
        share = torch.nn.functional.adaptive_avg_pool2d(moving_share(x, bg.expand_as(x)), latent_hw)  # (F,1,h,w)
        out[i, 0] = 1.0 + boost * share[:, 0]
    return out


def latent_clip_range(scaled: torch.Tensor, q: float = 0.999) -> float:
    """The x0 clamp for the sampler (schedule clip_sample_range): the q-quantile of |latent| over a sample of
    scaled training latents, rounded up to a multiple of 0.5."""
    flat = scaled.detach().abs().flatten().float()
    if flat.numel() > 4_000_000:  # torch.quantile's input limit; a strided subsample is plenty
        flat = flat[:: flat.numel() // 4_000_000 + 1]
    return math.ceil(float(torch.quantile(flat, q)) * 2) / 2


def _set_scaling(model: JointModel, part: str, latents: torch.Tensor) -> float:
    """Record 1/std of the unscaled latents as the VAE's scaling_factor (SD's 0.18215 recipe), and in the
    modality's schedule an x0 clamp at the range the scaled latents occupy (clip_sample, as diffusers' DDIM):
    an epsilon model whose schedule ends near zero SNR otherwise drifts to latents several times too large."""
    scale = float(1.0 / latents.flatten().std().clamp(min=1e-4))
    model.manifest["components"][part]["config"]["scaling_factor"] = scale
    schedule = model.manifest["video" if part == "video_vae" else "audio"]["schedule"]
    schedule["clip_sample"] = True
    schedule["clip_sample_range"] = latent_clip_range(latents * scale)
    return scale


def stage_vae_video(opts: StageOptions, cfg: LoopConfig) -> dict:
    model, geo, clips = _prep(opts)
    vae = model.video_vae
    for p in model.parameters():
        p.requires_grad_(False)
    trained = (vae.decoder, vae.post_quant_conv) if opts.decoder_only else (vae,)
    for part in trained:
        for p in part.parameters():
            p.requires_grad_(True)
    n_frames = clips.frames.shape[1]
    frames = clips.frames.reshape(-1, *clips.frames.shape[2:])  # (N*F, H, W, 3)
    background = np.median(clips.frames, axis=1).astype(np.uint8)  # (N, H, W, 3): each clip's static scene
    boost = foreground_boost(opts, "vae-video")

    def to_x(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    def loss_fn(step, gen):
        idx = torch.randint(0, len(frames), (opts.batch,), generator=gen).numpy()
        x = to_x(frames[idx])
        w = foreground_weight(x, to_x(background[idx // n_frames]), boost)
        return _vae_step(vae, x, gen, weight=w if boost > 0 else None,
                         decoder_only=opts.decoder_only, mse_weight=opts.mse_weight)

    run = run_name("vae-video", opts)
    result = train(run, vae, loss_fn, opts.work / "runs" / run, cfg, progress=opts.progress)
    result["clips"] = len(clips)
    result["foreground_boost"] = boost
    result["mse_weight"] = opts.mse_weight
    if opts.decoder_only:
        # the encoder, the scaling factor and the x0 clamp are untouched, so the U-Nets' latent space is the same
        result["decoder_only"] = True
        _save(model, opts, ["video_vae_decoder"])
        return result
    with torch.no_grad():
        x = torch.from_numpy(frames[:: max(1, len(frames) // 256)]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        result["scaling_factor"] = _set_scaling(model, "video_vae", vae.encode(x).latent_dist.mean)
        result["clip_sample_range"] = model.manifest["video"]["schedule"]["clip_sample_range"]
    _save(model, opts, ["video_vae_encoder", "video_vae_decoder"],
          [("components", "video_vae", "config", "scaling_factor"), ("video", "schedule")])
    return result


def stage_vae_audio(opts: StageOptions, cfg: LoopConfig) -> dict:
    model, geo, clips = _prep(opts)
    vae = model.audio_vae
    for p in model.parameters():
        p.requires_grad_(False)
    for p in vae.parameters():
        p.requires_grad_(True)
    mels = _mels(model, clips.audio)
    crop = min(mels.shape[2], 4 * geo.audio_factor * 8 * 4)  # a multiple of the down-sampling

    def loss_fn(step, gen):
        idx = torch.randint(0, len(mels), (opts.batch,), generator=gen)
        start = int(torch.randint(0, mels.shape[2] - crop + 1, (1,), generator=gen))
        return _vae_step(vae, mels[idx, :, start:start + crop], gen)

    result = train("vae-audio", vae, loss_fn, opts.work / "runs" / "vae-audio", cfg, progress=opts.progress)
    result["clips"] = len(clips)
    with torch.no_grad():
        result["scaling_factor"] = _set_scaling(model, "audio_vae", vae.encode(mels[:64]).latent_dist.mean)
        result["clip_sample_range"] = model.manifest["audio"]["schedule"]["clip_sample_range"]
    _save(model, opts, ["audio_vae_encoder", "audio_vae_decoder"],
          [("components", "audio_vae", "config", "scaling_factor"), ("audio", "schedule")])
    return result


def _stft_mag(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    return torch.stft(x, n_fft, hop, n_fft, torch.hann_window(n_fft), return_complex=True).abs().clamp(min=1e-7)


def mr_stft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss: spectral convergence + log-magnitude L1 at three resolutions."""
    total = 0.0
    for n_fft, hop in ((256, 64), (512, 128), (1024, 256)):
        p, t = _stft_mag(pred, n_fft, hop), _stft_mag(target, n_fft, hop)
        total = total + torch.norm(t - p) / torch.norm(t) + (p.log() - t.log()).abs().mean()
    return total / 3


VOCODER_ARCHS = {"istft": "avgen.ISTFTVocoder"}


def use_vocoder_arch(model: JointModel, arch: str) -> bool:
    """Give the model a freshly initialised vocoder of another class (its manifest entry follows); False where the
    bundle's vocoder already is that class (then it trains on from its weights)."""
    from avcli.models.joint import build_vocoder
    from avcli.models.presets import istft_vocoder_config

    if arch not in VOCODER_ARCHS:
        raise UsageError(f"--arch must be one of {', '.join(VOCODER_ARCHS)}; got {arch!r}")
    if model.manifest["components"]["vocoder"]["class"] == VOCODER_ARCHS[arch]:
        return False
    media = model.manifest["media"]
    spec = {"class": VOCODER_ARCHS[arch], "config": istft_vocoder_config(media)}
    model.vocoder = build_vocoder(spec, media)
    model.manifest["components"]["vocoder"] = spec
    return True


def _refuse_other_vocoder_checkpoint(run_dir: Path, vocoder) -> None:
    """A resumed `--arch` run must find its own class's checkpoint (an interrupted run of the same --arch), not the
    one a run of the bundle's previous vocoder left in the same work folder."""
    from safetensors import safe_open

    ckpt = run_dir / "ckpt.safetensors"
    if not (run_dir / "state.json").exists() or not ckpt.exists():
        return
    with safe_open(str(ckpt), "pt") as f:
        keys = set(f.keys())
    if not {name for name, _ in vocoder.named_parameters()} <= keys:
        raise UsageError(f"{run_dir}: holds a checkpoint of another vocoder class; add --restart to start this one "
                         f"afresh there, or use another --work")


def stage_vocoder(opts: StageOptions, cfg: LoopConfig) -> dict:
    model, geo, clips = _prep(opts)
    run_dir = opts.work / "runs" / "vocoder"
    if opts.vocoder_arch and use_vocoder_arch(model, opts.vocoder_arch) and cfg.resume:
        _refuse_other_vocoder_checkpoint(run_dir, model.vocoder)
    istft = model.manifest["components"]["vocoder"]["class"] == VOCODER_ARCHS["istft"]
    voc = model.vocoder
    for p in model.parameters():
        p.requires_grad_(False)
    for p in voc.parameters():
        p.requires_grad_(True)
    hop = geo.hop_length
    audio = torch.from_numpy(clips.audio)
    # mel frames per training segment (the ISTFT vocoder is cheap: longer context), within the clips' length
    seg = min(64 if istft else 32, audio.shape[1] // hop - 1)

    def loss_fn(step, gen):
        idx = torch.randint(0, len(audio), (opts.batch,), generator=gen)
        starts = torch.randint(0, audio.shape[1] // hop - seg, (opts.batch,), generator=gen) * hop
        wav = torch.stack([audio[i, s:s + seg * hop] for i, s in zip(idx.tolist(), starts.tolist())])
        mel = model.logmel(wav)  # (B, seg, M)
        out = voc(mel=mel)[:, : wav.shape[1]]
        mel_l1 = (model.logmel(out) - mel).abs().mean()
        stft = mr_stft_loss(out, wav)
        return mel_l1 + 2.0 * stft, {"loss_mel": float(mel_l1.detach()), "loss_stft": float(stft.detach())}

    result = train("vocoder", voc, loss_fn, run_dir, cfg, progress=opts.progress)
    result["clips"] = len(clips)
    result["vocoder_class"] = model.manifest["components"]["vocoder"]["class"]
    _save(model, opts, ["vocoder"], [("components", "vocoder")])
    return result


@torch.no_grad()
def _latents(model: JointModel, clips, geo, which: str) -> torch.Tensor:
    out = []
    if which == "video":
        for i in range(0, len(clips), 4):
            out.append(model.video_vae_encoder(frames=_frames_tensor(clips.frames[i:i + 4])))
    else:
        mels = _mels(model, clips.audio)
        for i in range(0, len(mels), 16):
            out.append(model.audio_vae_encoder(mel=mels[i:i + 16]))
    return torch.cat(out)


@torch.no_grad()
def _text(model: JointModel, captions: list[str], modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    from avcli.pipelines.common import PromptEncoder, torch_components

    enc = PromptEncoder(model, torch_components(model))
    uniq = list(dict.fromkeys(captions))
    table = {}
    for i in range(0, len(uniq), 64):
        for c, e in zip(uniq[i:i + 64], enc.encode(uniq[i:i + 64], modality)):
            table[c] = e
    return torch.stack([table[c] for c in captions]), enc.encode([""], modality)


def _base_stage(opts: StageOptions, cfg: LoopConfig, which: str) -> dict:
    model, geo, clips = _prep(opts)
    unet = model.video_unet if which == "video" else model.audio_unet
    for p in model.parameters():
        p.requires_grad_(False)
    for p in unet.unet.parameters():
        p.requires_grad_(True)
    lat = _latents(model, clips, geo, which)
    text, empty = _text(model, clips.captions, which)
    schedule = NoiseSchedule.from_dict(model.manifest[which]["schedule"])
    abar = schedule.alphas_cumprod()
    dim = model.manifest["joint"]["connector_dim"]
    cross_len = geo.audio_latent[1] if which == "video" else geo.frames

    weights = uniform_or(torch.tensor(clips.weights, dtype=torch.float64))  # captions.jsonl "weight"
    boost = foreground_boost(opts, "unet-video") if which == "video" else 0.0
    fg = latent_foreground_weight(clips.frames, tuple(lat.shape[-2:]), boost) if boost > 0 else None

    def loss_fn(step, gen):
        idx = draw_windows(weights, len(lat), opts.batch, gen)
        t = drop_text(text[idx], empty, opts.cfg_dropout, gen)
        return base_loss(unet, lat[idx], t, schedule, abar, (cross_len, dim), gen,
                         weight=None if fg is None else fg[idx]), {}

    result = train(f"unet-{which}", unet, loss_fn, opts.work / "runs" / f"unet-{which}", cfg,
                   progress=opts.progress)
    result["clips"] = len(clips)
    result["weighted_windows"] = weighted_windows(weights)
    if which == "video":
        result["foreground_boost"] = boost
    _save(model, opts, [f"{which}_unet"])
    return result


def stage_onset(opts: StageOptions, cfg: LoopConfig) -> dict:
    """The video connector learns when sounds start (seed 003 sec. II-B1): BCE between onset logits from its
    features and onset pseudo-labels found in the audio. The last tenth of the windows is held out and scored."""
    from avcli.data.folder import read_folder
    from avcli.training.latents import cached_latents
    from avcli.training.objective import add_noise
    from avcli.training.onset import OnsetHead, balanced_pos_weight, labels_from_latents, onset_f1, onset_loss

    if not opts.data.is_dir():
        raise UsageError(f"{opts.data}: data folder not found")
    model = load_bundle(opts.bundle, verify=False)
    geo = model.geometry()
    data = cached_latents(model, read_folder(opts.data)[: opts.limit or None], geo, opts.work / "cache",
                          progress=opts.progress)
    if len(data) < 2:
        raise UsageError(f"{opts.data}: the onset stage needs at least 2 windows of video, found {len(data)}")
    labels = labels_from_latents(model, data.audio)
    rate = float(labels.mean())
    if rate == 0:
        raise UsageError(f"{opts.data}: no onsets found in the audio; the onset stage has nothing to learn")
    pos_weight = balanced_pos_weight(labels)
    n_val = max(1, len(data) // 10)
    train_idx, val_idx = torch.arange(len(data) - n_val), torch.arange(len(data) - n_val, len(data))
    schedule = NoiseSchedule.from_dict(model.manifest["video"]["schedule"])
    abar = schedule.alphas_cumprod()
    frames = geo.audio_latent[1]
    net = torch.nn.ModuleDict({"video_connector": model.video_connector,
                               "head": OnsetHead(model.manifest["joint"]["connector_dim"])})

    def logits(idx, gen):
        v0 = data.video[idx].float()
        x_t = add_noise(v0, schedule, abar, gen).x_t  # the known video at a random noise level, as foley gives it
        return net["head"](net["video_connector"](latent=x_t, x0_hat=v0), frames)

    def loss_fn(step, gen):
        idx = train_idx[torch.randint(0, len(train_idx), (opts.batch,), generator=gen)]
        return onset_loss(logits(idx, gen), labels[idx], pos_weight), {}

    result = train("onset", net, loss_fn, opts.work / "runs" / "onset", cfg, progress=opts.progress)
    net.eval()
    with torch.no_grad():
        scores = onset_f1(logits(val_idx, torch.Generator().manual_seed(0)), labels[val_idx])
        shuffled = onset_f1(logits(val_idx, torch.Generator().manual_seed(0)), labels[val_idx.roll(1)])
    result.update(clips=len(data), onset_rate=rate, heldout_windows=n_val, heldout_f1=scores["f1"],
                  heldout_precision=scores["precision"], heldout_recall=scores["recall"],
                  heldout_f1_other_clip=shuffled["f1"])
    _save(model, opts, ["video_connector"])
    return result


def stage_joint(opts: StageOptions, cfg: LoopConfig) -> dict:
    from avcli.training.joint_stage import stage_joint as run  # imports accelerate only when joint training

    return run(opts, cfg)


def run_stage(stage: str, opts: StageOptions, cfg: LoopConfig) -> dict:
    """Run one stage; its record (data, clips, steps, wall time, final loss) goes to <work>/records/<stage>.json."""
    fns = {"vae-video": stage_vae_video, "vae-audio": stage_vae_audio, "vocoder": stage_vocoder,
           "unet-video": lambda o, c: _base_stage(o, c, "video"), "unet-audio": lambda o, c: _base_stage(o, c, "audio"),
           "onset": stage_onset, "joint": stage_joint}
    if stage not in fns:
        raise UsageError(f"unknown training stage {stage!r}; choose one of {', '.join(STAGES)}")
    torch.manual_seed(cfg.seed)
    result = fns[stage](opts, cfg)
    if not is_main_process():
        return result
    record = opts.work / "records" / f"{stage}.json"  # one file per stage: parallel stages never collide
    record.parent.mkdir(parents=True, exist_ok=True)
    history = json.loads(record.read_text()) if record.exists() else []
    history.append({"stage": stage, "data": str(opts.data), "batch": opts.batch, "clips_limit": opts.limit,
                    "clips": result.pop("clips", None), "steps": cfg.steps, "lr": cfg.lr, "seed": cfg.seed,
                    **{k: v for k, v in result.items()}})
    record.write_text(json.dumps(history, indent=1))
    return result


def shipping_manifest(manifest: dict, work: Path | None, name: str | None = None, steps: int | None = None,
                      solver: str | None = None, animate_audio_guidance: float | None = None,
                      noise_fill: str | None = None, noise_fill_peak: str | None = None, cfg_video: float | None = None,
                      cfg_audio: float | None = None, cfg_video_interval: tuple[float, float] | None = None,
                      cfg_audio_interval: tuple[float, float] | None = None,
                      audio_guidance: float | None = None,
                      audio_guidance_interval: tuple[float, float] | None = None,
                      video_guidance: float | None = None,
                      video_guidance_interval: tuple[float, float] | None = None,
                      foley_video_guidance: float | None = None, cfg_video_rescale: float | None = None,
                      cfg_audio_rescale: float | None = None, foley_cfg_audio: float | None = None,
                      timestep_spacing: str | None = None) -> dict:
    """The manifest keys `avgen train finalize` changes: the training record (the bundle's own, then the work
    folder's stages not already in it: a bundle trained further keeps its history) and the sampling defaults."""
    from avcli.errors import UsageError
    from avcli.sampling.solvers import SOLVERS

    extra: dict = {}
    if work is not None:
        history = list(manifest.get("training") or [])
        extra["training"] = history + [r for r in training_record(work) if r not in history]
    if name:
        extra["name"] = name
    if solver is not None and solver not in SOLVERS:
        raise UsageError(f"--solver must be one of {', '.join(SOLVERS)}; got {solver!r}")
    sampling = dict(manifest["sampling"])
    for key, value in (("steps", steps), ("solver", solver), ("animate_audio_guidance", animate_audio_guidance),
                       ("cfg_video", cfg_video), ("cfg_audio", cfg_audio),
                       ("cfg_video_interval", cfg_video_interval and list(cfg_video_interval)),
                       ("cfg_audio_interval", cfg_audio_interval and list(cfg_audio_interval)),
                       ("audio_guidance", audio_guidance),
                       ("audio_guidance_interval", audio_guidance_interval and list(audio_guidance_interval)),
                       ("video_guidance", video_guidance),
                       ("video_guidance_interval", video_guidance_interval and list(video_guidance_interval)),
                       ("foley_video_guidance", foley_video_guidance), ("cfg_video_rescale", cfg_video_rescale),
                       ("cfg_audio_rescale", cfg_audio_rescale), ("foley_cfg_audio", foley_cfg_audio),
                       ("timestep_spacing", timestep_spacing)):
        if value is not None:
            sampling[key] = value
    for key, value, flag, ok, what in (
            ("noise_fill_below_dbfs", noise_fill, "--noise-fill-below-dbfs", lambda x: x <= 0,
             "a level in dBFS (<= 0)"),
            ("noise_fill_below_peak_db", noise_fill_peak, "--noise-fill-below-peak-db", lambda x: x > 0,
             "a number of dB (> 0)")):
        if value == "off":
            sampling.pop(key, None)
        elif value is not None:
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if not ok(number):  # nan fails both
                raise UsageError(f"{flag} must be {what} or 'off'; got {value!r}")
            sampling[key] = number
    if sampling != manifest["sampling"]:
        extra["sampling"] = sampling
    return extra


def training_record(work: Path) -> list[dict]:
    """All stages' records of a work folder, in the recipe's order."""
    out = []
    for stage in STAGES:
        f = work / "records" / f"{stage}.json"
        if f.exists():
            out += json.loads(f.read_text())
    return out
