"""Video -> synchronized audio (the foley task of the joint model), for clips of any length.

A video longer than the model's window is processed in overlapping windows. Each window after the first is
conditioned on the tail of the previous one (its audio latent over the overlap is known, by replacement), and the
decoded waveforms are joined with an equal-power crossfade over the overlap, so the result has no seams. Frames
are read per window (ffmpeg seeks), so memory stays flat in the video's duration.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from avcli.errors import UsageError
from avcli.pipelines.common import (Timings, WindowedRequest, decode_audio, encode_video, modality_specs,
                                    sampler_config)
from avcli.sampling.joint import sample


@dataclass(frozen=True)
class FoleyRequest(WindowedRequest):
    recon_guidance: float = 0.0
    video_guidance: float | None = None  # seed 004's eta over the visual condition (None: the bundle's, 1 = off)


@dataclass
class FoleyOutput:
    audio: np.ndarray  # (N,) float32 at `sample_rate`, covering the selected segment exactly
    sample_rate: int
    windows: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class WindowPlan:
    starts: list[float]  # window start times (s), relative to the segment start
    window: float
    overlap: float
    total: float


def foley_video_guidance(manifest: dict, req: FoleyRequest) -> float:
    """The eta foley uses: the request's, else the bundle's `sampling.foley_video_guidance` (a key of its own, as
    animate's audio guidance has: generate's `video_guidance` contrasts generated pictures, foley's real ones),
    else 1 (off)."""
    if req.video_guidance is not None:
        return float(req.video_guidance)
    return float(manifest.get("sampling", {}).get("foley_video_guidance", 1.0))


def foley_cfg_audio(manifest: dict, req: FoleyRequest) -> float:
    """The audio text guidance foley uses with a prompt: the request's, else the bundle's `sampling.foley_cfg_audio`,
    else its `cfg_audio` (shared with generate). Foley guides every step: generate's `cfg_audio_interval` is not its
    own. Without a prompt text guidance is skipped whatever this says."""
    if req.cfg is not None:
        return float(req.cfg)
    own = manifest.get("sampling", {}).get("foley_cfg_audio")
    return float(own) if own is not None else sampler_config(manifest).cfg_audio


def plan_windows(total: float, window: float, overlap: float) -> WindowPlan:
    if total <= 0:
        raise UsageError("nothing to do: the selected segment has zero length")
    if not 0 <= overlap < window / 2 + 1e-9:
        raise UsageError(f"--overlap must be in [0, {window / 2:g}] s for a {window:g} s model window")
    hop = window - overlap
    n = 1 if total <= window else 1 + math.ceil((total - window) / hop - 1e-9)
    return WindowPlan([k * hop for k in range(n)], window, overlap, total)


def crossfade_into(out: np.ndarray, piece: np.ndarray, at: int, fade: int) -> None:
    """Write `piece` into `out` at sample `at`; the first `fade` samples blend with what is there (equal power)."""
    end = min(len(out), at + len(piece))
    piece = piece[: end - at]
    f = min(fade, len(piece))
    if f > 0:
        ramp = np.sin(np.linspace(0, np.pi / 2, f, dtype=np.float64)) ** 2
        out[at:at + f] = (np.sqrt(1 - ramp) * out[at:at + f] + np.sqrt(ramp) * piece[:f]).astype(out.dtype)
    out[at + f:end] = piece[f:]


def foley(pipe, video_path, req: FoleyRequest, on_step: Callable[[int, int], None] | None = None,
          timings: Timings | None = None) -> FoleyOutput:
    """Generate audio (float32, the bundle's sample rate) covering the selected segment of `video_path` exactly."""
    from avcli.media.ffmpeg import probe, read_video

    timings = timings if timings is not None else Timings()
    if req.recon_guidance > 0 and pipe.backend != "torch":
        raise UsageError("--recon-guidance needs gradients through the U-Net: use it with --backend torch")
    comps = pipe.components
    info = probe(video_path)
    if not info.has_video:
        raise UsageError(f"{video_path}: no video stream")
    avail = info.duration_s - req.start
    if req.start < 0 or avail <= 0:
        raise UsageError(f"{video_path}: --start {req.start:g} s is outside the video ({info.duration_s:.2f} s)")
    total = min(avail, req.duration) if req.duration else avail
    geo = pipe.geometry()
    sr = geo.sample_rate
    overlap = min(1.0, geo.duration / 2) if req.overlap is None else req.overlap
    plan = plan_windows(total, geo.duration, overlap)
    cfg = sampler_config(pipe.manifest, steps=req.steps, solver=req.solver, gamma=req.gamma,
                         cfg_audio=foley_cfg_audio(pipe.manifest, req), recon_guidance=req.recon_guidance,
                         video_guidance=foley_video_guidance(pipe.manifest, req),
                         # generate's intervals and rescale are not foley's: every step, plain guidance
                         video_guidance_interval=(0.0, 1.0), cfg_audio_interval=(0.0, 1.0), cfg_audio_rescale=0.0,
                         timestep_spacing=req.timestep_spacing)
    with timings.stage("text"):
        text = pipe.prompts.conditioning([req.prompt], [req.negative_prompt])
    vspec, aspec = modality_specs(pipe.manifest, geo)
    lat_T = geo.audio_latent[1]
    lat_per_s = geo.audio_latent_per_s  # the true rate: mel frames are padded up to the down-sampling
    out = np.zeros(int(round(total * sr)), dtype=np.float32)
    prev_latent, prev_start = None, 0.0
    for k, start in enumerate(plan.starts):
        with timings.stage("decode-video"):
            frames = read_video(video_path, geo.fps, geo.frame_size, req.fit, req.start + start,
                                min(geo.duration, total - start))
            if len(frames) == 0:
                raise UsageError(f"{video_path}: no frames could be decoded at {req.start + start:.2f} s")
            if len(frames) < geo.frames:  # the last window runs past the end: hold the last frame
                frames = np.concatenate([frames, np.repeat(frames[-1:], geo.frames - len(frames), 0)])
            frames = frames[: geo.frames]
        with timings.stage("encode"):
            known_v = encode_video(comps, frames)
        known_a, mask = None, None
        if prev_latent is not None and plan.overlap > 0:
            shift = int(round((start - prev_start) * lat_per_s))
            keep = lat_T - shift
            known_a = torch.zeros_like(prev_latent)
            known_a[:, :, :keep] = prev_latent[:, :, shift:]
            mask = torch.zeros(1, 1, lat_T, 1)
            mask[:, :, :keep] = 1.0
        with timings.stage("denoise"), torch.no_grad():
            res = sample(comps, vspec, aspec, text, cfg, torch.Generator().manual_seed(req.seed + 1000 * k),
                         task="foley", known_video=known_v, known_audio=known_a, audio_mask=mask, on_step=on_step)
        with timings.stage("vocode"):
            wav = decode_audio(pipe.manifest, comps, res.audio, int(round(geo.duration * sr)))[0]
        at = int(round(start * sr))
        fade = int(round(plan.overlap * sr)) if k > 0 else 0
        crossfade_into(out, wav, at, fade)
        prev_latent, prev_start = res.audio, start
    return FoleyOutput(out, sr, len(plan.starts), dict(timings.stages))
