"""Pieces every pipeline shares: tokenising and encoding prompts, building sampler inputs, decoding latents."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from avcli.errors import UsageError
from avcli.models.joint import Geometry, JointModel, tokenizer_dir
from avcli.sampling.joint import ModalitySpec, SamplerConfig, TextConditioning
from avcli.sampling.schedules import NoiseSchedule

TORCH_COMPONENTS = ("text_encoder_video", "text_encoder_audio", "video_connector", "audio_connector", "video_unet",
                    "audio_unet", "video_vae_encoder", "video_vae_decoder", "audio_vae_encoder",
                    "audio_vae_decoder", "vocoder")


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


def torch_components(model: JointModel) -> dict[str, Callable]:
    return {name: getattr(model, name) for name in TORCH_COMPONENTS}


def get_components(model: JointModel, backend: str = "torch") -> dict[str, Callable]:
    """Named callables for every component on a backend (torch here; others through pipelines.backends)."""
    if backend not in ("torch", "ort", "trt", "auto"):
        raise UsageError(f"unknown backend {backend!r}; choose torch, ort, trt or auto")
    if backend == "torch":
        return torch_components(model)
    try:
        from avcli.pipelines.backends import load_components
    except ModuleNotFoundError:
        raise UsageError(f"backend {backend!r} is not available in this build; use --backend torch") from None
    return load_components(model, backend=backend)


class PromptEncoder:
    """Tokenises with each modality's tokenizer and runs its text encoder (cached per prompt)."""

    def __init__(self, model: JointModel, components: Mapping[str, Callable]):
        from transformers import AutoTokenizer

        text = model.manifest["text"]
        bundle_dir = getattr(model, "bundle_path", None)
        video_spec = text["video"]
        audio_spec = video_spec if "shared_with" in text["audio"] else text["audio"]
        # a spec's own max_length (imported bundles: CLIP pads to 77, CLAP to its tokenizer's length) wins
        self.max_length = {m: int(s.get("max_length", text["max_length"]))
                           for m, s in (("video", video_spec), ("audio", audio_spec))}
        self.tokenizers = {"video": AutoTokenizer.from_pretrained(str(tokenizer_dir(video_spec, bundle_dir))),
                           "audio": AutoTokenizer.from_pretrained(str(tokenizer_dir(audio_spec, bundle_dir)))}
        self.encoders = {"video": components["text_encoder_video"], "audio": components["text_encoder_audio"]}
        self.shared = "shared_with" in text["audio"]
        self._cache: dict[tuple[str, str], torch.Tensor] = {}

    def tokenize(self, prompts: list[str], modality: str) -> dict[str, torch.Tensor]:
        tok = self.tokenizers[modality](prompts, padding="max_length", truncation=True,
                                        max_length=self.max_length[modality], return_tensors="pt")
        return {"input_ids": tok["input_ids"].long(), "attention_mask": tok["attention_mask"].long()}

    @torch.no_grad()
    def encode(self, prompts: list[str], modality: str) -> torch.Tensor:
        """(B, L, D) token embeddings."""
        key_mod = "video" if self.shared else modality
        missing = [p for p in dict.fromkeys(prompts) if (key_mod, p) not in self._cache]
        if missing:
            out = self.encoders[key_mod](**self.tokenize(missing, key_mod)).float()
            for p, e in zip(missing, out):
                self._cache[(key_mod, p)] = e
        return torch.stack([self._cache[(key_mod, p)] for p in prompts])

    def conditioning(self, prompts: list[str], negatives: list[str]) -> TextConditioning:
        return TextConditioning(self.encode(prompts, "video"), self.encode(prompts, "audio"),
                                self.encode(negatives, "video"), self.encode(negatives, "audio"))


def modality_specs(model: JointModel, geo: Geometry, batch: int = 1) -> tuple[ModalitySpec, ModalitySpec]:
    return (ModalitySpec(NoiseSchedule.from_dict(model.manifest["video"]["schedule"]), (batch,) + geo.video_latent),
            ModalitySpec(NoiseSchedule.from_dict(model.manifest["audio"]["schedule"]), (batch,) + geo.audio_latent))


def sampler_config(model: JointModel, **overrides) -> SamplerConfig:
    """The bundle's sampling defaults, with the caller's non-None overrides."""
    d = dict(model.manifest["sampling"])
    d.update({k: v for k, v in overrides.items() if v is not None})
    names = SamplerConfig.__dataclass_fields__.keys()
    try:
        return SamplerConfig(**{k: v for k, v in d.items() if k in names})
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def resolve_geometry(model: JointModel, duration: float | None, fps: float | None) -> Geometry:
    media = model.manifest["media"]
    max_d = float(media.get("max_duration", media["duration"]))
    if duration is not None and not 0 < duration <= max_d:
        raise UsageError(f"--duration must be in (0, {max_d:g}] s for this bundle (one window); got {duration:g}")
    native = float(media["fps"])
    if fps is not None and not native / 2 <= fps <= native * 2:
        raise UsageError(f"--fps must be between {native / 2:g} and {native * 2:g} for this bundle "
                         f"(trained at {native:g} fps); got {fps:g}")
    geo = model.geometry(duration, fps)
    max_frames = model.manifest["components"]["video_unet"]["config"].get("motion_max_seq_length", 32)
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
def decode_audio(model: JointModel, components: Mapping[str, Callable], latent: torch.Tensor,
                 samples: int) -> np.ndarray:
    """(B, C, T, m) latent -> (B, samples) float32 waveform in [-1, 1].

    The last FADE_OUT_S fade out (raised cosine): the vocoder's final frames see zero padding and often end in a
    click, the loudest sample of a whole demo clip in practice."""
    mel = components["audio_vae_decoder"](latent=latent)  # (B, 1, T, M) normalised log-mel
    wav = components["vocoder"](mel=model.denormalize_mel(mel[:, 0].float()))  # (B, N)
    wav = wav.float()
    if wav.shape[-1] < samples:
        wav = torch.nn.functional.pad(wav, (0, samples - wav.shape[-1]))
    wav = wav[:, :samples].clamp(-1, 1)
    n = min(samples, int(round(FADE_OUT_S * model.manifest["media"]["sample_rate"])))
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


@torch.no_grad()
def encode_audio(model: JointModel, components: Mapping[str, Callable], wav: np.ndarray, mel_frames: int) -> torch.Tensor:
    """(N,) float32 waveform -> (1, C, T, m) latent, padded/trimmed to `mel_frames` mel frames."""
    need = mel_frames * model.manifest["media"]["hop_length"]
    w = torch.from_numpy(np.asarray(wav, dtype=np.float32))[:need]
    w = torch.nn.functional.pad(w, (0, need - w.shape[0]))
    mel = model.normalize_mel(model.logmel(w[None]))[:, None]  # (1, 1, T, M)
    return components["audio_vae_encoder"](mel=mel).float()
