"""Audio (+ a first frame, + text) -> a video that moves with the sound (the animate task of the joint model).

The audio latent is known (re-noised to n(t) each step; seed 000's conditional mode), so only the audio connector
and the video U-Net run. Audio longer than the model's window goes through overlapping windows: each window after
the first knows the previous window's last frames (their latents, by replacement), so motion carries across
without a seam, and the output has exactly round(duration * fps) frames.

A given first frame (`image`, seed 002's setting) is training-free here: its latent is known at frame 0 of the
first window and re-noised to m(t) each step, the replacement trick that foley uses, applied along time. That latent
is the encoder's, then fitted to the picture through the video VAE decoder (`fit_first_latent`: L-BFGS on the decoded
frame's squared error), because the output's first frame is the decoder's view of it: the encoder's latent alone
decodes to ~26.5 dB of the picture on the demo, the fitted one to ~28.6 dB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from avcli.errors import UsageError
from avcli.pipelines.common import (Timings, WindowedRequest, decode_video, encode_audio, encode_video, modality_specs,
                                    sampler_config)
from avcli.pipelines.foley import plan_windows
from avcli.sampling.joint import sample

FITS = ("crop", "pad", "stretch")
FIRST_FRAME_STEPS = 50  # L-BFGS iterations of the first frame's latent fit. Demo, 20 held-out first frames
# (benchmarks/results/animate_sync.json, first_frame_fit): encoder 26.5 dB, 10 -> 27.9, 25 -> 28.4, 50 -> 28.6
# (~2.5 s on one CPU core at 64 px), 100 -> 28.8, 200 -> 28.9 (about the decoder's limit); Adam (lr 0.1) reached
# ~0.5 dB less than L-BFGS at 50 steps on a smaller sample


def first_frame_mode(manifest: dict, has_image: bool) -> str | None:
    """How a given first frame conditions the video: seed 002's mode (a) (its latent known, re-noised each step),
    plus mode (b)'s first-frame lookups when the bundle was trained with them (`joint.video_first_frame_attn`,
    `joint.video_first_frame_conv`)."""
    if not has_image:
        return None
    joint = manifest.get("joint", {})
    lookups = [name for key, name in (("video_first_frame_conv", "FF-Conv"), ("video_first_frame_attn", "FF-Attn"))
               if joint.get(key)]
    if joint.get("video_first_frame_given"):
        return "mode b (latent given clean" + "".join(f", {n}" for n in lookups) + ")"
    if lookups:
        return f"mode a + b (latent known, {' + '.join(lookups)})"
    return "mode a (latent known)"


@dataclass(frozen=True)
class AnimateRequest(WindowedRequest):  # duration: seconds of audio to animate; fit: how `image` is fitted
    image: str | None = None  # the first frame: an image file, fitted to the bundle's frame size
    audio_guidance: float | None = None  # seed 002's eta (None: the bundle's animate default, else 1 = off)
    first_frame_steps: int | None = None  # the first latent's fit (None: FIRST_FRAME_STEPS where it can run; 0: off)


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
    first_frame_fit_steps: int = 0  # L-BFGS iterations the first latent was fitted for (0: the encoder's latent)
    audio_guidance: float = 1.0  # the eta used
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def first_frame_psnr_db(self) -> float | None:
        """The output's first frame against the given picture at the bundle's resolution (None: no picture)."""
        if self.first_frame is None:
            return None
        from avcli.metrics.psnr import psnr_db

        return psnr_db(self.frames[0], self.first_frame)


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
        if req.first_frame_steps is not None and req.first_frame_steps < 0:
            raise UsageError(f"--first-frame-steps must be >= 0, got {req.first_frame_steps}")
        if req.first_frame_steps and getattr(pipe, "model", None) is None:
            raise UsageError("--first-frame-steps needs the torch video decoder, which an exported engine folder "
                             "does not hold: give the weights bundle, or --first-frame-steps 0")
    return info, seconds


def audio_guidance(manifest: dict, req: AnimateRequest) -> float:
    """The eta animate uses: the request's, else the bundle's `sampling.animate_audio_guidance` (set on a bundle
    trained with --audio-dropout, to the eta its sweep chose), else 1 (off). Animate only: generate's audio is
    generated, not given, and foley never runs the video U-Net."""
    if req.audio_guidance is not None:
        return float(req.audio_guidance)
    return float(manifest.get("sampling", {}).get("animate_audio_guidance", 1.0))


def first_frame_fit_steps(pipe, req: AnimateRequest) -> int:
    """The fit runs where the bundle's torch decoder is loaded (a weights bundle on any backend), by default."""
    if req.image is None or getattr(pipe, "model", None) is None:
        return 0
    return FIRST_FRAME_STEPS if req.first_frame_steps is None else int(req.first_frame_steps)


def fit_first_latent(decoder: torch.nn.Module, image: np.ndarray, latent: torch.Tensor, steps: int) -> torch.Tensor:
    """The latent whose decoded frame is closest to `image` (H, W, 3 uint8): L-BFGS (strong Wolfe line search) on
    ||D(z) - x||^2 from the encoder's latent `latent` (1, C, 1, h, w), `steps` iterations. Only z moves (the
    decoder's weights get no gradients)."""
    if steps <= 0:
        return latent
    p = next(decoder.parameters())
    x = torch.from_numpy(np.ascontiguousarray(image)).to(p.device, p.dtype).permute(2, 0, 1)[None, :, None]
    x = x / 127.5 - 1.0  # (1, 3, 1, H, W), the decoder's output range
    z = latent.detach().to(p.device, p.dtype).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([z], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def loss_and_grad():
        loss = (decoder(z).clamp(-1, 1) - x).pow(2).mean()
        (z.grad,) = torch.autograd.grad(loss, z)
        return loss

    with torch.enable_grad():
        opt.step(loss_and_grad)
    return z.detach().to(latent.device, latent.dtype)


def _first_latent(pipe, first: np.ndarray, steps: int) -> torch.Tensor:
    """Encode (and fit) the first frame once per picture: --num-samples reuses it."""
    import hashlib

    key = (hashlib.sha256(first.tobytes()).hexdigest(), steps)
    cached = getattr(pipe, "_first_latent_cache", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    latent = encode_video(pipe.components, first[None])  # (1, C, 1, h, w)
    if steps > 0:
        from avcli.pipelines.backends import descriptions

        decoder = descriptions(pipe.manifest)["video_vae_decoder"].module(pipe.model)
        latent = fit_first_latent(decoder, first, latent, steps)
    pipe._first_latent_cache = (key, latent)
    return latent


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
                         audio_guidance=audio_guidance(pipe.manifest, req),
                         audio_guidance_interval=(0.0, 1.0),  # generate's interval is not animate's: eta on every step
                         timestep_spacing=req.timestep_spacing)
    with timings.stage("decode-audio"):
        wav = read_audio(audio_path, sr, req.start, seconds, required=True)  # the model's view (mono, its rate)
        orig_sr = info.audio_sample_rate or sr
        original = read_audio(audio_path, orig_sr, req.start, seconds, mono=False, required=True)
    with timings.stage("text"):
        text = pipe.prompts.conditioning([req.prompt], [req.negative_prompt])
    first, fit_steps = None, first_frame_fit_steps(pipe, req)
    if req.image is not None:
        with timings.stage("encode"):
            first = read_image(req.image, geo.frame_size, req.fit)
            first_latent = _first_latent(pipe, first, fit_steps)  # (1, C, 1, h, w)
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
        mask = given = None
        if known_v is not None:
            mask = torch.zeros(1, 1, F, 1, 1)
            mask[:, :, :keep] = 1.0
        if k == 0 and first is not None and pipe.manifest["joint"].get("video_first_frame_given"):
            given = torch.zeros(1, 1, F, 1, 1)  # trained with the picture clean: it goes in clean every step
            given[:, :, :1] = 1.0
        with timings.stage("denoise"), torch.no_grad():
            res = sample(pipe.components, vspec, aspec, text, cfg, torch.Generator().manual_seed(req.seed + 1000 * k),
                         task="animate", known_audio=known_a, known_video=known_v, video_mask=mask,
                         video_given=given, on_step=on_step)
        buf[:, :, f0:f0 + F] = res.video  # known frames come back unchanged (replacement)
    video_latent = buf[:, :, :total_frames]
    with timings.stage("decode"):
        frames = np.concatenate([decode_video(pipe.components, video_latent[:, :, i:i + F])[0]
                                 for i in range(0, video_latent.shape[2], F)])
    return AnimateOutput(frames, fps, original, orig_sr, seconds, len(starts), video_latent, first, fit_steps,
                         cfg.audio_guidance, dict(timings.stages))


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
