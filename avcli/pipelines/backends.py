"""Component callables on a backend: torch (eager), ort (ONNX Runtime) or trt (TensorRT), or auto.

    comps = load_components(model, backend="ort")        # {name: fn(**tensors) -> tensor}
    sample(comps, ...)                                     # the same sampler on any backend

ONNX files (and TensorRT plans) are exported on demand into a cache keyed by the bundle's weights:
`$AVGEN_CACHE/exports/<bundle sha>` (default `~/.cache/avgen`), or `export_dir` when given.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from avcli.errors import BackendUnavailable, UsageError
from export.descriptions import COMPONENTS, descriptions
from export.onnx_export import ExportError, export_all, onnx_path, read_manifest

BACKENDS = ("torch", "ort", "trt", "auto")


def cache_root() -> Path:
    return Path(os.environ.get("AVGEN_CACHE") or Path.home() / ".cache" / "avgen").expanduser()


def bundle_sha(model) -> str:
    """A short content id of the model's weights: the bundle's file hashes, else a hash of the tensors."""
    files = model.manifest.get("files")
    h = hashlib.sha256()
    if files and all("sha256" in e for e in files.values()):
        h.update(json.dumps({k: v["sha256"] for k, v in sorted(files.items())}).encode())
    else:
        for k, v in sorted(model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().float().contiguous().numpy().tobytes())
    h.update(json.dumps({k: model.manifest[k] for k in ("media", "text", "joint", "components")},
                        sort_keys=True).encode())
    return h.hexdigest()[:16]


def default_export_dir(model) -> Path:
    return cache_root() / "exports" / bundle_sha(model)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def _names(names: Iterable[str] | None) -> list[str]:
    names = list(names or COMPONENTS)
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise UsageError(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}")
    return names


def ensure_onnx(model, names: list[str], export_dir: Path, fp16: bool = False, quiet: bool = False) -> dict[str, Path]:
    """ONNX files of these components in export_dir, exporting (and validating) the missing ones."""
    precision = "fp16" if fp16 else "fp32"
    known = read_manifest(export_dir).get("components", {})
    missing = [n for n in names if not onnx_path(export_dir, n, precision).exists()
               or not str(known.get(f"{n}:{precision}", {}).get("status", "")).startswith(("ok", "cached"))]
    if missing:
        if not quiet:
            _say(f"exporting {', '.join(missing)} to ONNX in {export_dir} (once per bundle)")
        try:
            export_all(model, export_dir, missing, fp16=fp16, raise_on_error=True)
        except ExportError as exc:
            raise BackendUnavailable(f"ONNX export failed: {exc}") from None
    return {n: onnx_path(export_dir, n, precision) for n in names}


def _torch_callables(model, names: list[str], device: str | None = None, dtype: str | None = None) -> dict:
    from engines.base import as_callable
    from engines.torch_engine import TorchEngine

    descs = descriptions(model.manifest)
    return {n: as_callable(TorchEngine(n, descs[n].module(model), descs[n].output_names, descs[n].input_names,
                                       device=device, dtype=dtype)) for n in names}


def _ort_callables(model, names: list[str], export_dir: Path, fp16: bool, quiet: bool) -> dict:
    from engines.base import as_callable
    from engines.ort_engine import OrtEngine

    paths = ensure_onnx(model, names, export_dir, fp16, quiet)
    threads = int(os.environ.get("AVGEN_ORT_THREADS") or 0) or None  # default: physical cores
    return {n: as_callable(OrtEngine(paths[n], name=n, intra_op_threads=threads)) for n in names}


def _trt_callables(model, names: list[str], export_dir: Path, fp16: bool, quiet: bool, force: bool = False) -> dict:
    from engines.base import as_callable
    from engines.trt_engine import TrtEngine
    from export.trt_build import TrtUnavailable, build_engine

    descs = descriptions(model.manifest)
    paths = ensure_onnx(model, names, export_dir, False, quiet)  # TensorRT makes its own fp16 from the fp32 graph
    out = {}
    for n in names:
        try:
            res = build_engine(paths[n], n, descs[n].profile(model.manifest), export_dir / "trt", fp16=fp16,
                               force=force)
        except TrtUnavailable as exc:
            raise BackendUnavailable(f"backend 'trt' is unavailable: {exc}") from None
        if res.built and not quiet:
            _say(f"built TensorRT engine {res.plan.name} in {res.seconds:.1f} s ({res.reason})")
        out[n] = as_callable(TrtEngine(res.plan, name=n))
    return out


def resolve_backend(backend: str) -> str:
    """'auto' -> trt if usable, else ort if usable, else torch; anything else is checked for usability."""
    from engines.registry import available_backends

    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")
    avail = available_backends()
    if backend == "auto":
        for b in ("trt", "ort"):
            if avail[b][0]:
                return b
        return "torch"
    usable, reason = avail[backend]
    if not usable:
        raise BackendUnavailable(f"backend {backend!r} is unavailable: {reason}")
    return backend


def load_components(model, backend: str = "torch", export_dir: str | os.PathLike | None = None,
                    names: Iterable[str] | None = None, fp16: bool = False, quiet: bool = False,
                    device: str | None = None) -> dict[str, Callable]:
    """{component: fn(**named tensors) -> tensor} on a backend, for the sampler and the other stages."""
    names = _names(names)
    chosen = resolve_backend(backend)
    export_dir = Path(export_dir) if export_dir else default_export_dir(model)
    if chosen == "torch":
        return _torch_callables(model, names, device, "fp16" if fp16 else None)
    if chosen == "ort":
        try:
            return _ort_callables(model, names, export_dir, fp16, quiet)
        except BackendUnavailable:
            if backend != "auto":
                raise
            return _torch_callables(model, names, device)
    try:
        return _trt_callables(model, names, export_dir, fp16, quiet)
    except BackendUnavailable:
        if backend != "auto":
            raise
        # auto: TensorRT importable but engines cannot be built here -> fall back to ONNX Runtime, then torch
        try:
            return _ort_callables(model, names, export_dir, fp16, quiet)
        except BackendUnavailable:
            return _torch_callables(model, names, device)
