"""One pipeline object per bundle: the runtime is chosen once, at load time, and every task runs on it.

    pipe = JointPipeline.from_bundle("hits-demo", backend="auto")       # torch, ort or trt, resolved here
    out = pipe.generate(GenerateRequest("a red ball bouncing on a metal plate"))
    out.clips[0].frames, out.clips[0].audio, out.timings
    pipe.foley("clip.mp4", FoleyRequest()).audio
    pipe.animate("hit.wav", AnimateRequest(prompt="a red ball hits a metal plate")).frames

A weights bundle (bundle.json + .safetensors) builds the torch modules (diffusers, transformers) and, on ort/trt,
exports them once into a cache. An exported engine folder (`avgen export --onnx --out DIR`: graphs, tokenizer,
bundle.json, export_manifest.json) runs on ONNX Runtime or TensorRT without building any model: that process
never imports diffusers or transformers. The CLI, `avgen bench`, the benchmarks and Ray workers all call this.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avcli.errors import UsageError
from avcli.manifest import is_engine_folder, read_manifest, resolve_bundle
from avcli.pipelines.common import PromptEncoder, resolve_geometry
from export.geometry import Geometry, geometry

@dataclass(frozen=True)
class LoadSpec:
    """How to load a pipeline, as plain data: a batch worker (in this process or a Ray actor on another machine)
    receives this and calls `.load()` once, so every worker runs the same bundle on the same backend."""

    bundle: str | None = None
    backend: str = "auto"
    device: str | None = None
    precision: str = "fp32"
    needs_grad: bool = False
    quiet: bool = False

    def load(self) -> "JointPipeline":
        return JointPipeline.from_bundle(self.bundle, backend=self.backend, device=self.device,
                                         precision=self.precision, needs_grad=self.needs_grad, quiet=self.quiet)


class JointPipeline:
    """A loaded bundle on one backend: `manifest`, `components` (name -> callable of named tensors), `backend`,
    `precision`, `device`, and `model` (the JointModel, or None for an engine folder)."""

    def __init__(self, manifest: dict, components: dict[str, Callable], backend: str, bundle_path: Path | None,
                 model=None, precision: str = "fp32", device: str = "cpu", engine_folder: bool = False,
                 load_seconds: float = 0.0):
        self.manifest = manifest
        self.components = components
        self.backend = backend
        self.bundle_path = bundle_path
        self.model = model
        self.precision = precision
        self.device = device
        self.engine_folder = engine_folder
        self.load_seconds = load_seconds
        self._prompts = None
        self._pool = None

    # --- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_bundle(cls, bundle: str | Path | None = None, backend: str = "auto", device: str | None = None,
                    precision: str = "fp32", export_dir: str | Path | None = None, quiet: bool = False,
                    needs_grad: bool = False, names=None) -> "JointPipeline":
        """Resolve the bundle and the backend (once, here), then load every component once."""
        from avcli.pipelines.backends import check_precision, engine_folder_components, load_components, \
            resolve_backend

        t0 = time.perf_counter()
        path = resolve_bundle(bundle)
        engines = is_engine_folder(path)
        chosen = resolve_backend(backend, engine_folder=engines, needs_grad=needs_grad)
        device = _device(device, chosen)
        check_precision(precision, chosen, device)
        fp16 = precision == "fp16"
        if engines:
            manifest = read_manifest(path)
            comps = engine_folder_components(path, manifest, chosen, names, fp16=fp16, quiet=quiet)
            return cls(manifest, comps, chosen, path, None, precision, device, True, time.perf_counter() - t0)
        from avcli.models.bundle import load_bundle  # builds torch modules: diffusers, transformers

        model = load_bundle(path)
        comps = load_components(model, chosen, export_dir=export_dir, names=names, fp16=fp16, quiet=quiet,
                                device=device if chosen == "torch" else None)
        return cls(model.manifest, comps, chosen, path, model, precision, device, False, time.perf_counter() - t0)

    @classmethod
    def from_model(cls, model, backend: str = "torch", **kw) -> "JointPipeline":
        """A pipeline around a JointModel already in memory (training, tests, benchmarks of fresh models)."""
        from avcli.pipelines.backends import load_components, resolve_backend

        from avcli.pipelines.backends import check_precision

        t0 = time.perf_counter()
        chosen = resolve_backend(backend, needs_grad=kw.pop("needs_grad", False))
        if kw.get("device") is None:
            kw.pop("device", None)
        check_precision("fp16" if kw.get("fp16") else "fp32", chosen, kw.get("device") or "cpu")
        comps = load_components(model, chosen, **kw)
        return cls(model.manifest, comps, chosen, getattr(model, "bundle_path", None), model,
                   "fp16" if kw.get("fp16") else "fp32", kw.get("device") or "cpu", False, time.perf_counter() - t0)

    # --- shared state -------------------------------------------------------------------------------------------
    @property
    def prompts(self) -> PromptEncoder:
        """The prompt encoder (tokenizers + text encoder callables), built on first use, cached per prompt."""
        if self._prompts is None:
            self._prompts = PromptEncoder(self.manifest, self.components, self.bundle_path)
        return self._prompts

    @property
    def unet_pool(self):
        """A one-worker executor that runs the video U-Net beside the audio U-Net in each generate step, where that
        wins: ONNX Runtime on the CPU (its calls release the GIL; benchmarks/ort_tuning.py "pair": 1.12x per step
        quiet, 1.06x with a core busy). None elsewhere: torch's own thread pool would oversubscribe the cores, and
        on a GPU the two engines share one stream. AVGEN_CONCURRENT_UNETS=0 or 1 overrides (benchmarks compare)."""
        want = os.environ.get("AVGEN_CONCURRENT_UNETS")
        on = (self.backend == "ort" and self.device == "cpu") if want is None else want == "1"
        if not on:
            return None
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="avgen-video-unet")
        return self._pool

    def geometry(self, duration: float | None = None, fps: float | None = None) -> Geometry:
        return geometry(self.manifest, duration, fps)

    def checked_geometry(self, duration: float | None = None, fps: float | None = None) -> Geometry:
        """The geometry of a request, refused with a one-line error when the bundle (or its engines) can't make it."""
        geo = resolve_geometry(self.manifest, duration, fps)
        if self.backend == "trt":
            _check_profile(self.manifest, geo)
        return geo

    @property
    def default_steps(self) -> int:
        return int(self.manifest["sampling"]["steps"])

    # --- tasks --------------------------------------------------------------------------------------------------
    def generate(self, request, on_step=None, timings=None, initial_noise=None):
        """Text -> sounding video: a GenerateOutput (clips with frames, audio and latents; timings)."""
        from avcli.pipelines.generate import generate

        return generate(self, request, on_step=on_step, timings=timings, initial_noise=initial_noise)

    def generate_batch(self, requests, batch_size: int = 1, on_step=None, timings=None, on_clip=None):
        """Many prompts with the model loaded once: rows of equal geometry and settings share network calls,
        `batch_size` at a time. Returns one GeneratedClip per request, in order."""
        from avcli.pipelines.generate import generate_batch

        return generate_batch(self, requests, batch_size, on_step=on_step, timings=timings, on_clip=on_clip)

    def foley(self, video_path, request, on_step=None, timings=None):
        """Video file -> its synchronized soundtrack: a FoleyOutput (audio at the bundle's rate, timings)."""
        from avcli.pipelines.foley import foley

        return foley(self, video_path, request, on_step=on_step, timings=timings)

    def animate(self, audio_path, request, on_step=None, timings=None):
        """Audio file -> a video moving with it: an AnimateOutput (frames, the original audio, timings)."""
        from avcli.pipelines.animate import animate

        return animate(self, audio_path, request, on_step=on_step, timings=timings)


def _device(device: str | None, backend: str) -> str:
    if device:
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            raise UsageError(f"unknown device {device!r}; choose cpu or cuda[:N]")
        return device
    if backend == "trt":
        return "cuda"
    if backend == "ort":
        from engines.ort_engine import choose_providers

        return "cuda" if choose_providers()[0] != "CPUExecutionProvider" else "cpu"
    return "cpu"


def _check_profile(manifest: dict, geo: Geometry) -> None:
    """TensorRT engines accept only the shapes of their optimisation profile: check the request against it first
    (a one-line error, instead of a failed set_input_shape deep inside the first step)."""
    from export.descriptions import limits

    lim = limits(manifest)
    frames, audio_t = geo.video_latent[1], geo.audio_latent[1]
    if not lim.frames[0] <= frames <= lim.frames[2] or not lim.audio_latent_t[0] <= audio_t <= lim.audio_latent_t[2]:
        media = manifest["media"]
        lo = media.get("min_duration", lim.frames[0] / float(media["fps"]))
        hi = media.get("max_duration", media["duration"])
        raise UsageError(f"--duration {geo.duration:g} s is outside what the TensorRT engines were built for "
                         f"({float(lo):g}-{float(hi):g} s); use --backend ort or torch for this length")
