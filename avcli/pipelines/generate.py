"""Text -> sounding video: encode the prompt, run the joint sampler, decode both latents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from avcli.models.joint import JointModel
from avcli.pipelines.common import (PromptEncoder, Timings, decode_audio, decode_video, get_components,
                                    modality_specs, resolve_geometry, sampler_config)
from avcli.sampling.joint import sample


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    negative_prompt: str = ""
    duration: float | None = None
    fps: float | None = None
    steps: int | None = None
    solver: str | None = None
    gamma: float | None = None
    cfg_video: float | None = None
    cfg_audio: float | None = None
    eta: float | None = None
    seed: int = 0
    num_samples: int = 1
    backend: str = "torch"


@dataclass
class GeneratedClip:
    frames: np.ndarray  # (F, H, W, 3) uint8
    audio: np.ndarray  # (N,) float32
    fps: float
    sample_rate: int
    seed: int
    video_latent: torch.Tensor
    audio_latent: torch.Tensor


def generate(model: JointModel, req: GenerateRequest, on_step: Callable[[int, int], None] | None = None,
             timings: Timings | None = None,
             initial_noise: tuple[torch.Tensor | None, torch.Tensor | None] | None = None) -> list[GeneratedClip]:
    """`initial_noise` (video, audio latents, batch 1) starts the sampler from given noise instead of the seed's
    draw, e.g. to compare with a diffusers pipeline started from the same latents; one sample only."""
    timings = timings if timings is not None else Timings()
    if initial_noise is not None and req.num_samples != 1:
        raise ValueError("initial_noise is one starting point: use num_samples=1")
    geo = resolve_geometry(model, req.duration, req.fps)
    cfg = sampler_config(model, steps=req.steps, solver=req.solver, gamma=req.gamma, cfg_video=req.cfg_video,
                         cfg_audio=req.cfg_audio, eta=req.eta)
    with timings.stage("load"):
        comps = get_components(model, req.backend)
        prompts = PromptEncoder(model, comps)
    with timings.stage("text"):
        text = prompts.conditioning([req.prompt], [req.negative_prompt])
    vspec, aspec = modality_specs(model, geo)
    clips = []
    for i in range(req.num_samples):
        seed = req.seed + i
        with timings.stage("denoise"), torch.no_grad():
            res = sample(comps, vspec, aspec, text, cfg, torch.Generator().manual_seed(seed), on_step=on_step,
                         initial_noise=initial_noise)
        with timings.stage("decode"):
            frames = decode_video(comps, res.video)[0]
        with timings.stage("vocode"):
            audio = decode_audio(model, comps, res.audio, int(round(geo.duration * geo.sample_rate)))[0]
        clips.append(GeneratedClip(frames, audio, geo.fps, geo.sample_rate, seed, res.video, res.audio))
    return clips
