"""Text -> sounding video: encode the prompt, run the joint sampler, decode both latents.

An empty prompt (and no negative prompt) generates unconditionally: text guidance is switched off (scale 1, one
U-Net call per step instead of two), since guiding "" against "" changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from avcli.pipelines.common import Timings, decode_audio, decode_video, modality_specs, sampler_config
from avcli.sampling.joint import TextConditioning, sample
from avcli.sampling.noise import seeded


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
    cfg_video_interval: tuple[float, float] | None = None  # text guidance only in this part of the steps
    cfg_audio_interval: tuple[float, float] | None = None
    audio_guidance: float | None = None  # seed 002's eta on the video U-Net (None: the bundle's, else 1 = off)
    audio_guidance_interval: tuple[float, float] | None = None  # that eta only in this part of the steps
    video_guidance: float | None = None  # seed 004's eta over the visual condition, on the audio U-Net
    video_guidance_interval: tuple[float, float] | None = None
    cfg_video_rescale: float | None = None  # guidance rescale phi on each text guidance (None: the bundle's)
    cfg_audio_rescale: float | None = None
    timestep_spacing: str | None = None  # leading / trailing / linspace (None: the bundle's)

    @property
    def unconditional(self) -> bool:
        return not self.prompt.strip() and not self.negative_prompt.strip()


@dataclass
class GeneratedClip:
    frames: np.ndarray  # (F, H, W, 3) uint8
    audio: np.ndarray  # (N,) float32
    fps: float
    sample_rate: int
    seed: int
    video_latent: torch.Tensor
    audio_latent: torch.Tensor


@dataclass
class GenerateOutput:
    clips: list[GeneratedClip]
    timings: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, i: int) -> GeneratedClip:  # out[0] is the first clip
        return self.clips[i]

    def __len__(self) -> int:
        return len(self.clips)


def audio_guidance_untrained(manifest: dict, eta: float) -> str | None:
    """A warning when audio guidance (eta != 1) is asked of a bundle whose training record has no joint stage with
    --audio-dropout: its video U-Net never saw the null audio the guidance contrasts with. None when fine."""
    if eta == 1.0:
        return None
    if any((r.get("audio_dropout") or 0) > 0 for r in manifest.get("training") or [] if r.get("stage") == "joint"):
        return None
    return (f"audio guidance {eta:g}: this bundle's training record has no joint stage with --audio-dropout, so its "
            f"video U-Net never saw null audio and the guidance may only add noise")


def _config(pipe, req: GenerateRequest):
    cfg = sampler_config(pipe.manifest, steps=req.steps, solver=req.solver, gamma=req.gamma,
                         cfg_video=req.cfg_video, cfg_audio=req.cfg_audio, eta=req.eta,
                         cfg_video_interval=req.cfg_video_interval, cfg_audio_interval=req.cfg_audio_interval,
                         audio_guidance=req.audio_guidance, audio_guidance_interval=req.audio_guidance_interval,
                         video_guidance=req.video_guidance, video_guidance_interval=req.video_guidance_interval,
                         cfg_video_rescale=req.cfg_video_rescale, cfg_audio_rescale=req.cfg_audio_rescale,
                         timestep_spacing=req.timestep_spacing)
    return replace(cfg, cfg_video=1.0, cfg_audio=1.0) if req.unconditional else cfg


def resolved_sampling(pipe, req: GenerateRequest) -> dict:
    """The sampler settings a request runs with (its own, else the bundle's), as JSON-ready values."""
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(_config(pipe, req)).items()}


def generate(pipe, req: GenerateRequest, on_step: Callable[[int, int], None] | None = None,
             timings: Timings | None = None,
             initial_noise: tuple[torch.Tensor | None, torch.Tensor | None] | None = None) -> GenerateOutput:
    """`initial_noise` (video, audio latents, batch 1) starts the sampler from given noise instead of the seed's
    draw, e.g. to compare with a diffusers pipeline started from the same latents; one sample only."""
    timings = timings if timings is not None else Timings()
    if initial_noise is not None and req.num_samples != 1:
        raise ValueError("initial_noise is one starting point: use num_samples=1")
    if initial_noise is not None:
        geo, cfg = pipe.checked_geometry(req.duration, req.fps), _config(pipe, req)
        with timings.stage("text"):
            text = pipe.prompts.conditioning([req.prompt], [req.negative_prompt])
        vspec, aspec = modality_specs(pipe.manifest, geo)
        with timings.stage("denoise"), torch.no_grad():
            res = sample(pipe.components, vspec, aspec, text, cfg, torch.Generator().manual_seed(req.seed),
                         on_step=on_step, initial_noise=initial_noise, pool=pipe.unet_pool)
        clips = [_decode(pipe, geo, res.video, res.audio, req.seed, timings)]
        return GenerateOutput(clips, dict(timings.stages))
    clips = generate_batch(pipe, [req], 1, on_step=on_step, timings=timings)
    return GenerateOutput(clips, dict(timings.stages))


def _rows(requests: list[GenerateRequest]) -> list[tuple[int, GenerateRequest]]:
    """One row per clip: (request index, request with num_samples 1 and the sample's seed)."""
    return [(i, replace(r, seed=r.seed + k, num_samples=1)) for i, r in enumerate(requests)
            for k in range(r.num_samples)]


def generate_batch(pipe, requests: list[GenerateRequest], batch_size: int = 1,
                   on_step: Callable[[int, int], None] | None = None, timings: Timings | None = None,
                   on_clip: Callable[[int, GeneratedClip], None] | None = None) -> list[GeneratedClip]:
    """Clips for many requests, in order (num_samples expanded). Rows with the same geometry and sampler settings
    go through the networks `batch_size` at a time; each row draws its noise from its own seed's generator, so a
    row is the clip a single run with that seed makes. `on_clip(request_index, clip)` sees each clip as it is
    decoded (a batch writes its files while the next one samples)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    timings = timings if timings is not None else Timings()
    rows = _rows(requests)
    keyed = []
    for i, r in rows:  # every request is checked before any compute
        geo, cfg = pipe.checked_geometry(r.duration, r.fps), _config(pipe, r)
        keyed.append(((geo, cfg), i, r))
    out: list[GeneratedClip | None] = [None] * len(rows)
    order = {id(r): n for n, (_, _, r) in enumerate(keyed)}
    groups: dict = {}
    for key, i, r in keyed:
        groups.setdefault(key, []).append((i, r))
    for (geo, cfg), members in groups.items():
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            with timings.stage("text"):
                text = _conditioning(pipe, [r for _, r in chunk])
            vspec, aspec = modality_specs(pipe.manifest, geo, batch=len(chunk))
            with timings.stage("denoise"), torch.no_grad():
                res = sample(pipe.components, vspec, aspec, text, cfg, seeded([r.seed for _, r in chunk]),
                             on_step=on_step, pool=pipe.unet_pool)
            for b, (i, r) in enumerate(chunk):
                clip = _decode(pipe, geo, res.video[b:b + 1], res.audio[b:b + 1], r.seed, timings)
                out[order[id(r)]] = clip
                if on_clip is not None:
                    on_clip(i, clip)
    return out  # type: ignore[return-value]


def _conditioning(pipe, reqs: list[GenerateRequest]) -> TextConditioning:
    return pipe.prompts.conditioning([r.prompt for r in reqs], [r.negative_prompt for r in reqs])


def _decode(pipe, geo, video_latent, audio_latent, seed: int, timings: Timings) -> GeneratedClip:
    with timings.stage("decode"):
        frames = decode_video(pipe.components, video_latent)[0]
    with timings.stage("vocode"):
        audio = decode_audio(pipe.manifest, pipe.components, audio_latent,
                             int(round(geo.duration * geo.sample_rate)))[0]
    return GeneratedClip(frames, audio, geo.fps, geo.sample_rate, seed, video_latent, audio_latent)
