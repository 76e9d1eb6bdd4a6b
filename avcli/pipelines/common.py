"""Pieces every pipeline shares: sampler inputs, geometry checks, encoding and decoding latents.

Each helper takes the bundle's manifest, or anything that carries one (a JointModel, a JointPipeline), and named
component callables: nothing here builds a model, so the engine-only runtime uses the same functions."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from avcli.errors import UsageError
from avcli.manifest import manifest_of
from avcli.pipelines.text import PromptEncoder  # noqa: F401  (re-exported)
from avcli.sampling.joint import ModalitySpec, SamplerConfig, config_timesteps
from avcli.sampling.schedules import SPACINGS, NoiseSchedule, local_timesteps
from export.geometry import Geometry, geometry

TORCH_COMPONENTS = ("text_encoder_video", "text_encoder_audio", "video_connector", "audio_connector", "video_unet",
                    "audio_unet", "video_vae_encoder", "video_vae_decoder", "audio_vae_encoder",
                    "audio_vae_decoder", "vocoder")


@dataclass(frozen=True)
class WindowedRequest:
    """What foley and animate share: the text condition, sampling, and the segment of a long input that goes
    through overlapping windows. None takes the bundle's default."""
    prompt: str = ""
    negative_prompt: str = ""
    steps: int | None = None
    solver: str | None = None
    gamma: float | None = None
    cfg: float | None = None
    seed: int = 0
    start: float = 0.0
    duration: float | None = None  # seconds of the input (default: to the end)
    overlap: float | None = None  # seconds shared by consecutive windows (None: 1 s, at most half a window)
    fit: str = "crop"  # how a picture (animate's first frame, foley's frames) meets the bundle's frame size
    timestep_spacing: str | None = None  # leading / trailing / linspace (None: the bundle's)


@dataclass
class Timings:
    """Wall seconds per stage, in the order stages ran."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - t0

    @property
    def total(self) -> float:
        return sum(self.stages.values())


def torch_components(model) -> dict[str, Callable]:
    return {name: getattr(model, name) for name in TORCH_COMPONENTS}


def modality_specs(source, geo: Geometry, batch: int = 1) -> tuple[ModalitySpec, ModalitySpec]:
    m = manifest_of(source)
    return (ModalitySpec(NoiseSchedule.from_dict(m["video"]["schedule"]), (batch,) + geo.video_latent),
            ModalitySpec(NoiseSchedule.from_dict(m["audio"]["schedule"]), (batch,) + geo.audio_latent))


def sampler_config(source, **overrides) -> SamplerConfig:
    """The bundle's sampling defaults, with the caller's non-None overrides."""
    d = dict(manifest_of(source)["sampling"])
    d.update({k: v for k, v in overrides.items() if v is not None})
    names = SamplerConfig.__dataclass_fields__.keys()
    m = manifest_of(source)
    try:
        cfg = SamplerConfig(**{k: v for k, v in d.items() if k in names})
        # the step schedule itself (too many steps for a schedule, a gamma that leaves no distinct local steps):
        # refused here, a usage error before sampling, not an internal error in the first step
        sv, sa = (NoiseSchedule.from_dict(m[k]["schedule"]) for k in ("video", "audio"))
        T = max(sv.num_train_timesteps, sa.num_train_timesteps)
        local_timesteps(config_timesteps(cfg, sv, T), T,
                        sv.num_train_timesteps, sa.num_train_timesteps, cfg.gamma)
        return replace(cfg, timestep_spacing=cfg.timestep_spacing or sv.timestep_spacing)  # says what runs
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def parse_interval(text: str | None, flag: str) -> tuple[float, float] | None:
    """'START:END' (fractions of the sampling steps, noisiest first) -> (start, end); None stays None. A bad value
    is a one-line usage error, before anything loads."""
    if text is None:
        return None
    parts = text.split(":")
    try:
        lo, hi = (float(x) for x in parts)
    except ValueError:
        raise UsageError(f"{flag} takes START:END, two fractions of the steps such as 0:0.6; got {text!r}") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise UsageError(f"{flag} needs 0 <= START <= END <= 1; got {text!r}")
    return lo, hi


def parse_spacing(text: str | None) -> str | None:
    """--timestep-spacing's value checked before anything loads: None stays None."""
    if text is not None and text not in SPACINGS:
        raise UsageError(f"--timestep-spacing must be one of {', '.join(SPACINGS)}; got {text!r}")
    return text


def resolve_geometry(source, duration: float | None, fps: float | None) -> Geometry:
    manifest = manifest_of(source)
    media = manifest["media"]
    max_d = float(media.get("max_duration", media["duration"]))
    if duration is not None and not 0 < duration <= max_d:
        raise UsageError(f"--duration must be in (0, {max_d:g}] s for this bundle (one window); got {duration:g}")
    native = float(media["fps"])
    if fps is not None and not native / 2 <= fps <= native * 2:
        raise UsageError(f"--fps must be between {native / 2:g} and {native * 2:g} for this bundle "
                         f"(trained at {native:g} fps); got {fps:g}")
    geo = geometry(manifest, duration, fps)
    max_frames = manifest["components"]["video_unet"]["config"].get("motion_max_seq_length", 32)
    if geo.frames > max_frames:
        raise UsageError(f"{geo.frames} frames exceed the video model's limit of {max_frames} "
                         f"(lower --duration or --fps)")
    return geo


@torch.no_grad()
def decode_video(components: Mapping[str, Callable], latent: torch.Tensor) -> np.ndarray:
    """(B, C, F, h, w) latent -> (B, F, H, W, 3) uint8 frames."""
    frames = components["video_vae_decoder"](latent=latent)  # (B, 3, F, H, W) in [-1, 1]
    frames = ((frames.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return frames.permute(0, 2, 3, 4, 1).cpu().numpy()


FADE_OUT_S = 0.01


@torch.no_grad()
def decode_audio(source, components: Mapping[str, Callable], latent: torch.Tensor,
                 samples: int) -> np.ndarray:
    """(B, C, T, m) latent -> (B, samples) float32 waveform in [-1, 1].

    The last FADE_OUT_S fade out (raised cosine): the vocoder's final frames see zero padding and often end in a
    click, the loudest sample of a whole demo clip in practice. A bundle with `sampling.noise_fill_below_dbfs`
    has its quiet frames noise-filled (avcli.models.noise_fill: the vocoder's hop-periodic buzz replaced by
    noise of the mel's shape and level); `sampling.noise_fill_below_peak_db` also fills background frames that lie
    that many dB under the clip's loudest frame."""
    mel = components["audio_vae_decoder"](latent=latent)  # (B, 1, T, M) normalised log-mel
    logmel = denormalize_mel(source, mel[:, 0].float())
    return finish_audio(source, components["vocoder"](mel=logmel), logmel, samples)


def finish_audio(source, wav: torch.Tensor, logmel: torch.Tensor, samples: int) -> np.ndarray:
    """The vocoder's (B, N) output for the (B, T, M) log-mel it was given -> the (B, samples) soundtrack that
    `decode_audio` returns: noise-filled as the bundle's sampling says, cut or padded to `samples`, faded out."""
    wav = wav.float()
    sampling = manifest_of(source).get("sampling", {})
    below, below_peak = sampling.get("noise_fill_below_dbfs"), sampling.get("noise_fill_below_peak_db")
    if below is not None or below_peak is not None:
        from avcli.models.noise_fill import noise_fill

        wav = noise_fill(wav.clamp(-1, 1).cpu(), logmel.cpu(), log_mel(source),
                         float(below) if below is not None else float("-inf"),
                         float(below_peak) if below_peak is not None else None)
    if wav.shape[-1] < samples:
        wav = torch.nn.functional.pad(wav, (0, samples - wav.shape[-1]))
    wav = wav[:, :samples].clamp(-1, 1)
    n = min(samples, int(round(FADE_OUT_S * manifest_of(source)["media"]["sample_rate"])))
    if n > 1:
        ramp = 0.5 * (1 + torch.cos(torch.linspace(0, torch.pi, n, device=wav.device)))  # 1 -> 0
        wav = torch.cat([wav[:, :-n], wav[:, -n:] * ramp], dim=1)
    return wav.cpu().numpy()


@torch.no_grad()
def encode_video(components: Mapping[str, Callable], frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (1, C, F, h, w) latent."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1.0
    x = x.permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, F, H, W)
    return components["video_vae_encoder"](frames=x).float()


def normalize_mel(source, logmel: torch.Tensor) -> torch.Tensor:
    m = manifest_of(source)["media"]
    return (logmel - m["mel_mean"]) / m["mel_std"]


def denormalize_mel(source, mel: torch.Tensor) -> torch.Tensor:
    m = manifest_of(source)["media"]
    return mel * m["mel_std"] + m["mel_mean"]


def log_mel(source):
    """The bundle's mel front end (a torch module; avcli.models.mel needs no diffusers)."""
    from avcli.models.mel import LogMel

    logmel = getattr(source, "logmel", None)
    if logmel is not None:
        return logmel
    media = manifest_of(source)["media"]
    return LogMel(media["sample_rate"], media["n_fft"], media["hop_length"], media["win_length"], media["n_mels"],
                  media.get("f_min", 0.0), media.get("f_max"), media.get("mel_scale", "htk"), media.get("log_floor", 1e-5))


@torch.no_grad()
def encode_audio(source, components: Mapping[str, Callable], wav: np.ndarray, mel_frames: int) -> torch.Tensor:
    """(N,) float32 waveform -> (1, C, T, m) latent, padded/trimmed to `mel_frames` mel frames."""
    need = mel_frames * manifest_of(source)["media"]["hop_length"]
    w = torch.from_numpy(np.asarray(wav, dtype=np.float32))[:need]
    w = torch.nn.functional.pad(w, (0, need - w.shape[0]))
    mel = normalize_mel(source, log_mel(source)(w[None]))[:, None]  # (1, 1, T, M)
    return components["audio_vae_encoder"](mel=mel).float()
