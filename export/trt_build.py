"""ONNX -> TensorRT engine with the Python builder API (no shell, no trtexec), cached by content.

fp16 engines are built **strongly typed** from the fp16 ONNX graph (export.onnx_export.convert_fp16, which keeps
normalisations, softmax and the timestep embedding in fp32): TensorRT then runs each layer in the type the graph
gives it, instead of the deprecated BuilderFlag.FP16 (TensorRT >= 10.12), which lets the builder pick fp16 for
norms and softmax too. A TensorRT without strong typing gets FP16 + OBEY_PRECISION_CONSTRAINTS with every
normalisation, softmax and reduction layer pinned to fp32.

tensorrt is imported lazily: this module imports (and its cache logic tests run) on machines without it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from export.engine_cache import key_parts, lookup, write_entry
from export.onnx_export import onnx_content_sha256


class TrtUnavailable(RuntimeError):
    """TensorRT or a CUDA device is missing."""


class TrtBuildError(RuntimeError):
    """The ONNX parser or the builder failed."""


@dataclass
class BuildResult:
    name: str
    plan: Path
    key: str
    built: bool  # False: reused from the cache
    reason: str
    seconds: float


def trt_environment() -> tuple[object, str, str]:
    """(tensorrt module, GPU name, compute capability) or TrtUnavailable with the reason."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TrtUnavailable("tensorrt is not installed (pip install tensorrt; needs an NVIDIA GPU)") from exc
    import torch

    if not torch.cuda.is_available():
        raise TrtUnavailable("no CUDA device visible (TensorRT engines need an NVIDIA GPU)")
    major, minor = torch.cuda.get_device_capability(0)
    return trt, torch.cuda.get_device_name(0), f"{major}.{minor}"


def build_engine(onnx_file: str | os.PathLike, name: str, profile: dict, cache_dir: str | os.PathLike,
                 fp16: bool = False, force: bool = False, timing_cache: str | os.PathLike | None = None,
                 workspace_gb: float = 4.0) -> BuildResult:
    """Build (or reuse) the engine of one component for one optimisation profile {input: (min, opt, max)}."""
    trt, gpu, cc = trt_environment()
    onnx_file = Path(onnx_file)
    precision = "fp16" if fp16 else "fp32"
    parts = key_parts(onnx_content_sha256(onnx_file), profile, precision, trt.__version__, gpu, cc)
    entry, key, valid, reason = lookup(cache_dir, name, parts, force)
    if valid:
        return BuildResult(name, entry.plan, key, False, reason, 0.0)
    t0 = time.perf_counter()
    plan = _build_plan(trt, onnx_file, profile, fp16, Path(timing_cache or Path(cache_dir) / "timing.cache"),
                       workspace_gb)
    write_entry(entry, key, parts, plan, {"component": name, "onnx": onnx_file.name})
    return BuildResult(name, entry.plan, key, True, reason, time.perf_counter() - t0)


def _build_plan(trt, onnx_file: Path, profile: dict, fp16: bool, timing_cache: Path, workspace_gb: float) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    strongly_typed = fp16 and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):  # from file: external data next to it is found
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TrtBuildError(f"{onnx_file.name}: ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16 and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        pin_fp32_layers(trt, network)
    opt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        if inp.name not in profile:
            raise TrtBuildError(f"{onnx_file.name}: input {inp.name!r} has no profile entry")
        mn, op, mx = profile[inp.name]
        opt_profile.set_shape(inp.name, tuple(mn), tuple(op), tuple(mx))
    config.add_optimization_profile(opt_profile)
    # a persistent timing cache makes rebuilds (new ONNX, same layers) much faster
    cache_bytes = timing_cache.read_bytes() if timing_cache.exists() else b""
    tcache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(tcache, ignore_mismatch=True)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TrtBuildError(f"{onnx_file.name}: TensorRT builder failed (see the log above)")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = timing_cache.with_suffix(".tmp")
    tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    os.replace(tmp, timing_cache)
    return bytes(serialized)


FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")


def pin_fp32_layers(trt, network) -> int:
    """Keep normalisations, softmax and reductions in fp32 under BuilderFlag.FP16; returns how many were pinned."""
    kinds = {getattr(trt.LayerType, k) for k in FP32_LAYER_TYPES if hasattr(trt.LayerType, k)}
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in kinds:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned += 1
    return pinned
