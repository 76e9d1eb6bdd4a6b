"""Audio (+ a first frame, + text) -> a video that moves with the sound (the animate task of the joint model).

The audio latent is known (re-noised to n(t) each step; seed 000's conditional mode), so only the audio connector
and the video U-Net run. Audio longer than the model's window goes through overlapping windows: each window after
the first knows the previous window's last frames (their latents, by replacement), so motion carries across
without a seam, and the output has exactly round(duration * fps) frames.

A given first frame (`image`, seed 002's setting) is training-free here: its latent is known at frame 0 of the
first window and re-noised to m(t) each step, the replacement trick that foley uses, applied along time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from avcli.errors import UsageError
from avcli.pipelines.common import (Timings, decode_video, encode_audio, encode_video, modality_specs,
                                    sampler_config)
from avcli.pipelines.foley import plan_windows
from avcli.sampling.joint import sample

FITS = ("crop", "pad", "stretch")


def first_frame_mode(manifest: dict, has_image: bool) -> str | None:
    """How a given first frame conditions the video: seed 002's mode (a) (its latent known, re-noised each step),
    plus mode (b)'s first-frame attention when the bundle was trained with it (`joint.video_first_frame_attn`)."""
    if not has_image:
        return None
    if manifest.get("joint", {}).get("video_first_frame_attn"):
        return "mode a + b (latent known, FF-Attn)"
    return "mode a (latent known)"


@dataclass(frozen=True)
class AnimateRequest:
    prompt: str = ""
    negative_prompt: str = ""
    steps: int | None = None
    solver: str | None = None
    gamma: float | None = None
    cfg: float | None = None
    seed: int = 0
    start: float = 0.0
    duration: float | None = None  # seconds of audio to animate (default: to the end)
    overlap: float | None = None  # seconds shared by consecutive windows (None: 1 s, at most half a window)
    image: str | None = None  # the first frame: an image file, fitted to the bundle's frame size
    fit: str = "crop"
    audio_guidance: float | None = None  # seed 002's eta (None: the bundle's, else 1 = off)


@dataclass
class AnimateOutput:
    frames: np.ndarray  # (F, H, W, 3) uint8, F = round(duration * fps)
    fps: float
    audio: np.ndarray  # the ORIGINAL audio of the segment, (N,) or (N, channels), at `sample_rate`
    sample_rate: int
    duration: float
    windows: int
    video_latent: torch.Tensor  # (1, C, F, h, w) the whole clip
    first_frame: np.ndarray | None = None  # the fitted image, when one was given
    timings: dict[str, float] = field(default_factory=dict)


def check_request(pipe, audio_path, req: AnimateRequest):
    """Everything that can be checked before compute: the audio, the segment, the image. Returns (info, seconds)."""
    from avcli.media.ffmpeg import probe, read_image

    if req.fit not in FITS:
        raise UsageError(f"--fit must be one of {', '.join(FITS)}, got {req.fit!r}")
    info = probe(audio_path)
    if not info.has_audio:
        raise UsageError(f"{audio_path}: no audio stream")
    if req.start < 0 or req.start >= info.duration_s:
        raise UsageError(f"{audio_path}: --start {req.start:g} s is outside the audio ({info.duration_s:.2f} s)")
    if req.duration is not None and req.duration <= 0:
        raise UsageError(f"--duration must be > 0 seconds, got {req.duration:g}")
    seconds = info.duration_s - req.start
    if req.duration is not None:
        seconds = min(seconds, req.duration)
    geo = pipe.geometry()
    overlap = _overlap(geo.duration, req.overlap)
    plan_windows(seconds, geo.duration, overlap)
    if req.image is not None:
        read_image(req.image, geo.frame_size, req.fit)  # a bad or unfittable image fails here, before compute
    return info, seconds


def _overlap(window: float, overlap: float | None) -> float:
    return min(1.0, window / 2) if overlap is None else float(overlap)


def animate(pipe, audio_path, req: AnimateRequest, on_step: Callable[[int, int], None] | None = None,
            timings: Timings | None = None) -> AnimateOutput:
    from avcli.media.ffmpeg import read_audio, read_image

    timings = timings if timings is not None else Timings()
    info, seconds = check_request(pipe, audio_path, req)
    geo = pipe.geometry()
    sr, fps = geo.sample_rate, geo.fps
    plan = plan_windows(seconds, geo.duration, _overlap(geo.duration, req.overlap))
    total_frames = max(1, int(round(seconds * fps)))
    cfg = sampler_config(pipe.manifest, steps=req.steps, solver=req.solver, gamma=req.gamma, cfg_video=req.cfg,
                         audio_guidance=req.audio_guidance)
    with timings.stage("decode-audio"):
        wav = read_audio(audio_path, sr, req.start, seconds, required=True)  # the model's view (mono, its rate)
        orig_sr = info.audio_sample_rate or sr
        original = read_audio(audio_path, orig_sr, req.start, seconds, mono=False, required=True)
    with timings.stage("text"):
        text = pipe.prompts.conditioning([req.prompt], [req.negative_prompt])
    first = None
    if req.image is not None:
        with timings.stage("encode"):
            first = read_image(req.image, geo.frame_size, req.fit)
            first_latent = encode_video(pipe.components, first[None])  # (1, C, 1, h, w)
    vspec, aspec = modality_specs(pipe.manifest, geo)
    F = geo.video_latent[1]
    starts = frame_starts(total_frames, F, plan)
    buf = torch.zeros((1, geo.video_latent[0], starts[-1] + F) + tuple(geo.video_latent[2:]))  # (1, C, F*, h, w)
    for k, f0 in enumerate(starts):
        with timings.stage("encode"):
            a0 = int(round(f0 / fps * sr))  # windows start on a frame, and their audio with it
            piece = wav[a0:a0 + int(round(geo.duration * sr))]  # the last window is padded with silence
            known_a = encode_audio(pipe.manifest, pipe.components, piece, geo.mel_frames)
        keep = (starts[k - 1] + F - f0) if k > 0 else 0  # frames the previous window already made
        known_v = buf[:, :, f0:f0 + F].clone() if keep > 0 else None
        if k == 0 and first is not None:
            known_v, keep = torch.zeros((1,) + geo.video_latent), 1
            known_v[:, :, :1] = first_latent
        mask = None
        if known_v is not None:
            mask = torch.zeros(1, 1, F, 1, 1)
            mask[:, :, :keep] = 1.0
        with timings.stage("denoise"), torch.no_grad():
            res = sample(pipe.components, vspec, aspec, text, cfg, torch.Generator().manual_seed(req.seed + 1000 * k),
                         task="animate", known_audio=known_a, known_video=known_v, video_mask=mask,
                         on_step=on_step)
        buf[:, :, f0:f0 + F] = res.video  # known frames come back unchanged (replacement)
    video_latent = buf[:, :, :total_frames]
    with timings.stage("decode"):
        frames = np.concatenate([decode_video(pipe.components, video_latent[:, :, i:i + F])[0]
                                 for i in range(0, video_latent.shape[2], F)])
    return AnimateOutput(frames, fps, original, orig_sr, seconds, len(starts), video_latent, first,
                         dict(timings.stages))


def frame_starts(total_frames: int, window_frames: int, plan) -> list[int]:
    """First frame of each window: a hop of (window - overlap) seconds in whole frames, until the clip is covered."""
    fps = window_frames / plan.window
    hop = max(1, window_frames - int(round(plan.overlap * fps)))
    starts = [0]
    while starts[-1] + window_frames < total_frames:
        starts.append(starts[-1] + hop)
    return starts


def window_count(pipe, seconds: float, overlap: float | None = None) -> int:
    """How many model windows animate runs for `seconds` of audio (for progress bars)."""
    geo = pipe.geometry()
    plan = plan_windows(seconds, geo.duration, _overlap(geo.duration, overlap))
    return len(frame_starts(max(1, int(round(seconds * geo.fps))), geo.frames, plan))
