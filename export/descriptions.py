"""One export description per component: names, dtypes, dynamic axes, shape profile, sample inputs, tolerance.

The same description drives `torch.onnx.export(dynamic_axes=...)`, the TensorRT min/opt/max optimisation profile
and the validation of an export against PyTorch. Shapes come from the bundle's limits:

    batch       1 .. 2 * max_batch          (classifier-free guidance doubles the batch of the U-Nets)
    frames/time geometry(min_duration) .. geometry(max_duration)   (opt = the bundle's default duration)
    text length 1 .. each modality's max_length (opt = max: the tokenizer pads to it); a text encoder that gives one
                embedding (CLAP, as AudioLDM reads it) has a static length 1 at its output and its U-Net's input

This module reads a manifest dict and a model object by attribute name; it imports nothing from avcli so that
`export/` stays usable on any object with the component attributes (DESIGN.md names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from export.geometry import geometry

SHAPE_POINTS = ("min", "opt", "max")
DEFAULT_MAX_BATCH = 2  # prompts per call; CFG doubles it for the U-Nets


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float

    def scaled(self, factor: float) -> "Tolerance":
        return Tolerance(self.atol * factor, self.rtol * factor)


@dataclass(frozen=True)
class Limits:
    """Shape ranges of one bundle, per shape point (min, opt, max)."""

    batch: tuple[int, int, int]
    frames: tuple[int, int, int]  # video frames F (= video latent frames)
    video_hw: tuple[int, int]  # latent h, w
    frame_hw: tuple[int, int]  # pixel H, W
    video_channels: int
    audio_latent_t: tuple[int, int, int]  # audio latent time frames T
    audio_latent_m: int
    audio_channels: int
    mel_t: tuple[int, int, int]  # mel frames
    n_mels: int
    text_len: tuple[int, int, int]  # video tokens
    audio_text_len: tuple[int, int, int]  # audio tokens (the text_encoder_audio input)
    text_dim_video: int
    text_dim_audio: int
    connector_dim: int


def _geometry(manifest: dict, duration: float) -> dict:
    """The latent geometry of a duration as the axis sizes the descriptions use (export.geometry is the source)."""
    g = geometry(manifest, duration)
    (vc, frames, h, w), (ac, audio_t, audio_m) = g.video_latent, g.audio_latent
    H, W = g.frame_size
    return {"frames": frames, "mel": g.mel_frames, "audio_t": audio_t, "audio_m": audio_m, "h": h, "w": w,
            "H": H, "W": W, "vc": vc, "ac": ac}


def _text_spec(manifest: dict, key: str) -> dict:
    text = manifest["text"]
    return text["video"] if "shared_with" in text[key] else text[key]


def _text_dim(manifest: dict, key: str) -> int:
    spec = _text_spec(manifest, key)
    return int(spec.get("dim") or spec.get("config", {}).get("hidden_size"))


def _text_len(manifest: dict, key: str) -> int:
    return int(_text_spec(manifest, key).get("max_length", manifest["text"]["max_length"]))


def _pooled(manifest: dict, key: str) -> bool:
    """The text encoder gives one embedding per prompt (B, 1, D) instead of per-token embeddings."""
    return _text_spec(manifest, key).get("output") == "text_embeds_normalized"


def _vocab(manifest: dict, key: str) -> int:
    return int(_text_spec(manifest, key).get("config", {}).get("vocab_size", 30522))


def limits(manifest: dict, max_batch: int | None = None) -> Limits:
    media = manifest["media"]
    max_batch = int(max_batch or manifest.get("export", {}).get("max_batch", DEFAULT_MAX_BATCH))
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    dur = float(media["duration"])
    max_dur = float(media.get("max_duration", dur))
    # the shortest clip the engines accept: half the default, at least two video frames
    min_dur = float(media.get("min_duration", max(2.0 / float(media["fps"]), min(dur, max_dur) / 2)))
    g = [_geometry(manifest, d) for d in (min_dur, dur, max_dur)]
    lv, la = _text_len(manifest, "video"), _text_len(manifest, "audio")
    return Limits(
        batch=(1, 2, 2 * max_batch), frames=tuple(x["frames"] for x in g), video_hw=(g[1]["h"], g[1]["w"]),
        frame_hw=(g[1]["H"], g[1]["W"]), video_channels=g[1]["vc"], audio_latent_t=tuple(x["audio_t"] for x in g),
        audio_latent_m=g[1]["audio_m"], audio_channels=g[1]["ac"], mel_t=tuple(x["mel"] for x in g),
        n_mels=int(media["n_mels"]), text_len=(1, lv, lv), audio_text_len=(1, la, la),
        text_dim_video=_text_dim(manifest, "video"), text_dim_audio=_text_dim(manifest, "audio"),
        connector_dim=int(manifest["joint"]["connector_dim"]))


# A symbolic dimension: the name of an axis (dynamic) or an int (static), resolved per shape point by `_dim`.
Dim = str | int


def _dim(lim: Limits, d: Dim, point: int) -> int:
    if isinstance(d, int):
        return d
    table = {"batch": lim.batch, "frames": lim.frames, "audio_time": lim.audio_latent_t, "mel_time": lim.mel_t,
             "text_len": lim.text_len, "audio_text_len": lim.audio_text_len}
    if d == "samples":
        raise ValueError("'samples' is an output-only axis")
    return table[d][point]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # "float32" | "int64"
    shape: tuple[Dim, ...]  # symbolic: axis names are dynamic

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}


@dataclass(frozen=True)
class ExportDescription:
    """Everything export, validation and engine builds need to know about one component."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    tolerance: Tolerance = Tolerance(1e-4, 1e-3)
    fp16_tolerance: Tolerance = Tolerance(5e-2, 5e-2)
    # shape points at which an export is validated: two different dynamic shapes
    validate_points: tuple[str, str] = ("min", "opt")
    attribute: str = field(default="")

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def input_dtypes(self) -> dict[str, str]:
        return {t.name: t.dtype for t in self.inputs}

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {t.name: t.dynamic_axes for t in self.inputs + self.outputs if t.dynamic_axes}

    def module(self, model) -> torch.nn.Module:
        return getattr(model, self.attribute or self.name)

    def shapes(self, manifest: dict, point: str = "opt", max_batch: int | None = None) -> dict[str, tuple[int, ...]]:
        if point not in SHAPE_POINTS:
            raise ValueError(f"shape point must be one of {SHAPE_POINTS}, got {point!r}")
        lim = _resolve_limits(manifest, self.name, max_batch)
        i = SHAPE_POINTS.index(point)
        return {t.name: tuple(_dim(lim, d, i) for d in t.shape) for t in self.inputs}

    def profile(self, manifest: dict, max_batch: int | None = None) -> dict[str, tuple[tuple[int, ...], ...]]:
        """{input: (min_shape, opt_shape, max_shape)}: a TensorRT optimisation profile."""
        pts = [self.shapes(manifest, p, max_batch) for p in SHAPE_POINTS]
        return {n: (pts[0][n], pts[1][n], pts[2][n]) for n in self.input_names}

    def sample_inputs(self, model, shape_point: str = "opt", seed: int = 0,
                      max_batch: int | None = None) -> dict[str, torch.Tensor]:
        shapes = self.shapes(model.manifest, shape_point, max_batch)
        g = torch.Generator().manual_seed(seed)
        return {spec.name: _sample(self.name, spec, shapes[spec.name], g, model.manifest) for spec in self.inputs}


def _default_sample(spec: TensorSpec, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    if spec.dtype == "int64":
        return torch.randint(0, 1000, shape, generator=g, dtype=torch.int64)
    return torch.randn(shape, generator=g, dtype=torch.float32)


def _token_ids(shape, g, vocab: int = 30522):
    return torch.randint(min(1000, vocab // 2), min(2000, vocab), shape, generator=g, dtype=torch.int64)


def _mask(shape, g):
    m = torch.ones(shape, dtype=torch.int64)
    if shape[-1] > 2:
        m[:, -1] = 0  # some padding, as the tokenizer produces
    return m


def _frames(shape, g):
    return torch.rand(shape, generator=g) * 2 - 1


def _mel_log(shape, g):
    return torch.randn(shape, generator=g) - 5.0  # natural-log mel around the bundle's mel_mean


_SAMPLERS: dict[tuple[str, str], Callable] = {
    ("text_encoder_video", "attention_mask"): _mask, ("text_encoder_audio", "attention_mask"): _mask,
    ("video_vae_encoder", "frames"): _frames, ("vocoder", "mel"): _mel_log,
}


def _sample(component: str, spec: TensorSpec, shape: tuple[int, ...], g: torch.Generator,
            manifest: dict) -> torch.Tensor:
    if spec.name == "input_ids":  # token ids inside the text encoder's vocabulary
        return _token_ids(shape, g, _vocab(manifest, component.rsplit("_", 1)[-1]))
    sampler = _SAMPLERS.get((component, spec.name))
    return sampler(shape, g) if sampler else _default_sample(spec, shape, g)


def _resolve_limits(manifest: dict, name: str, max_batch: int | None) -> Limits:
    return limits(manifest, max_batch)


def _descriptions_for(manifest: dict) -> dict[str, ExportDescription]:
    lim = limits(manifest)
    vc, ac, (h, w), (H, W) = lim.video_channels, lim.audio_channels, lim.video_hw, lim.frame_hw
    am, d = lim.audio_latent_m, lim.connector_dim
    f32 = "float32"
    vlat = ("batch", vc, "frames", h, w)  # (B, C, F, h, w)
    alat = ("batch", ac, "audio_time", am)  # (B, C, T, m)
    lv = 1 if _pooled(manifest, "video") else "text_len"  # the text axis the U-Nets see
    la = 1 if _pooled(manifest, "audio") else "audio_text_len"
    descs = [
        ExportDescription("text_encoder_video", (TensorSpec("input_ids", "int64", ("batch", "text_len")),
                                                 TensorSpec("attention_mask", "int64", ("batch", "text_len"))),
                          (TensorSpec("text_embeds", f32, ("batch", lv, lim.text_dim_video)),)),
        ExportDescription("text_encoder_audio", (TensorSpec("input_ids", "int64", ("batch", "audio_text_len")),
                                                 TensorSpec("attention_mask", "int64", ("batch", "audio_text_len"))),
                          (TensorSpec("text_embeds", f32, ("batch", la, lim.text_dim_audio)),)),
        ExportDescription("video_connector", (TensorSpec("latent", f32, vlat), TensorSpec("x0_hat", f32, vlat)),
                          (TensorSpec("features", f32, ("batch", "frames", d)),)),
        ExportDescription("audio_connector", (TensorSpec("latent", f32, alat), TensorSpec("x0_hat", f32, alat)),
                          (TensorSpec("features", f32, ("batch", "audio_time", d)),)),
        ExportDescription("video_unet", (TensorSpec("sample", f32, vlat), TensorSpec("timestep", "int64", ("batch",)),
                                         TensorSpec("text_embeds", f32, ("batch", lv, lim.text_dim_video)),
                                         TensorSpec("cross_features", f32, ("batch", "audio_time", d))),
                          (TensorSpec("noise_pred", f32, vlat),), Tolerance(2e-4, 2e-3)),
        ExportDescription("audio_unet", (TensorSpec("sample", f32, alat), TensorSpec("timestep", "int64", ("batch",)),
                                         TensorSpec("text_embeds", f32, ("batch", la, lim.text_dim_audio)),
                                         TensorSpec("cross_features", f32, ("batch", "frames", d))),
                          (TensorSpec("noise_pred", f32, alat),), Tolerance(2e-4, 2e-3)),
        ExportDescription("video_vae_encoder", (TensorSpec("frames", f32, ("batch", 3, "frames", H, W)),),
                          (TensorSpec("latent", f32, vlat),)),
        ExportDescription("video_vae_decoder", (TensorSpec("latent", f32, vlat),),
                          (TensorSpec("frames", f32, ("batch", 3, "frames", H, W)),)),
        ExportDescription("audio_vae_encoder", (TensorSpec("mel", f32, ("batch", 1, "mel_time", lim.n_mels)),),
                          (TensorSpec("latent", f32, alat),)),
        ExportDescription("audio_vae_decoder", (TensorSpec("latent", f32, alat),),
                          (TensorSpec("mel", f32, ("batch", 1, "mel_time", lim.n_mels)),)),
        ExportDescription("vocoder", (TensorSpec("mel", f32, ("batch", "mel_time", lim.n_mels)),),
                          (TensorSpec("waveform", f32, ("batch", "samples")),)),
    ]
    return {x.name: x for x in descs}


COMPONENTS = ("text_encoder_video", "text_encoder_audio", "video_connector", "audio_connector", "video_unet",
              "audio_unet", "video_vae_encoder", "video_vae_decoder", "audio_vae_encoder", "audio_vae_decoder",
              "vocoder")
SAMPLER_COMPONENTS = ("video_connector", "audio_connector", "video_unet", "audio_unet")
# onnxruntime transformer fusion per component for the CPU EP (engines/ort_fusions.py; benchmarks/ort_tuning.py:
# attention fusion 1.05x quiet, 1.11x/1.25x with a core busy on the demo's U-Nets; the norm fusions lose)
CPU_FUSION = {"video_unet": "attention", "audio_unet": "attention"}


def descriptions(manifest: dict) -> dict[str, ExportDescription]:
    """The export description of every component of a bundle (static dims come from its configs)."""
    return _descriptions_for(manifest)


def get_description(manifest: dict, name: str) -> ExportDescription:
    descs = descriptions(manifest)
    if name not in descs:
        raise ValueError(f"unknown component {name!r}; choose from {', '.join(COMPONENTS)}")
    return descs[name]


def inputs_at(desc: ExportDescription, model, duration: float, batch: int = 1, seed: int = 0,
              cfg: bool = True) -> dict[str, torch.Tensor]:
    """Sample inputs for a concrete clip duration and prompt batch (U-Nets get the CFG-doubled batch)."""
    manifest = model.manifest
    g = _geometry(manifest, duration)
    b = 2 * batch if cfg and desc.name in ("video_unet", "audio_unet") else batch
    table = {"batch": b, "frames": g["frames"], "audio_time": g["audio_t"], "mel_time": g["mel"],
             "text_len": _text_len(manifest, "video"), "audio_text_len": _text_len(manifest, "audio")}
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for spec in desc.inputs:
        shape = tuple(d if isinstance(d, int) else table[d] for d in spec.shape)
        out[spec.name] = _sample(desc.name, spec, shape, gen, manifest)
    return out
