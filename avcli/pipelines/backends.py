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

from avcli.errors import BackendUnavailable, BundleError, UsageError
from export.descriptions import COMPONENTS, CPU_FUSION, descriptions
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


def graph_of(manifest: dict, name: str) -> str:
    """The graph a component runs: a text encoder shared by both modalities is one graph (exported once)."""
    shared = "shared_with" in manifest["text"]["audio"]
    return "text_encoder_video" if shared and name == "text_encoder_audio" else name


def graph_names(manifest: dict, names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(graph_of(manifest, n) for n in names))


def cpu_fusion(graph: str) -> str | None:
    """The onnxruntime fusion a graph gets on the CPU EP (export.descriptions.CPU_FUSION); AVGEN_ORT_FUSION=0 turns
    the fusions off (benchmarks compare both)."""
    return None if os.environ.get("AVGEN_ORT_FUSION") == "0" else CPU_FUSION.get(graph)


def _ort_callables(model, names: list[str], export_dir: Path, fp16: bool, quiet: bool) -> dict:
    from engines.base import as_callable
    from engines.ort_engine import OrtEngine

    graphs = graph_names(model.manifest, names)
    paths = ensure_onnx(model, graphs, export_dir, fp16, quiet)
    threads = int(os.environ.get("AVGEN_ORT_THREADS") or 0) or None  # default: physical cores
    engines = {g: OrtEngine(paths[g], name=g, intra_op_threads=threads, fusion=cpu_fusion(g)) for g in graphs}
    return {n: as_callable(engines[graph_of(model.manifest, n)]) for n in names}


def _trt_callables(model, names: list[str], export_dir: Path, fp16: bool, quiet: bool, force: bool = False) -> dict:
    from engines.base import as_callable
    from engines.trt_engine import TrtEngine
    from export.trt_build import TrtUnavailable, build_engine

    descs = descriptions(model.manifest)
    graphs = graph_names(model.manifest, names)
    # fp16: the fp16 graph (norms and softmax kept fp32), built strongly typed (export.trt_build)
    paths = ensure_onnx(model, graphs, export_dir, fp16, quiet)
    out = {}
    for n in graphs:
        try:
            res = build_engine(paths[n], n, descs[n].profile(model.manifest), export_dir / "trt", fp16=fp16,
                               force=force)
        except TrtUnavailable as exc:
            raise BackendUnavailable(f"backend 'trt' is unavailable: {exc}") from None
        if res.built and not quiet:
            _say(f"built TensorRT engine {res.plan.name} in {res.seconds:.1f} s ({res.reason})")
        out[n] = as_callable(TrtEngine(res.plan, name=n))
    return {n: out[graph_of(model.manifest, n)] for n in names}


PRECISIONS = ("fp32", "fp16")


def resolve_backend(backend: str, engine_folder: bool = False, needs_grad: bool = False) -> str:
    """The one place a backend is chosen (JointPipeline.from_bundle calls it; nothing else decides).

    auto: an exported engine folder runs on TensorRT if usable, else ONNX Runtime; a weights bundle runs on
    TensorRT if usable (a CUDA machine with tensorrt), else on PyTorch (no export needed: ONNX Runtime for a
    weights bundle exports every component once, ~45 s for the demo, so it is chosen explicitly with
    --backend ort, or by exporting once with `avgen export --out DIR` and running `--bundle DIR`).
    `needs_grad` (reconstruction guidance) needs PyTorch."""
    from engines.registry import available_backends

    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")
    if needs_grad and backend not in ("torch", "auto"):
        raise UsageError("--recon-guidance needs gradients through the U-Net: use it with --backend torch")
    avail = available_backends()
    if backend == "auto":
        if engine_folder:
            if needs_grad:
                raise UsageError("--recon-guidance needs gradients through the U-Net, which an exported engine folder "
                                 "cannot give: use the weights bundle with --backend torch")
            for b in ("trt", "ort"):
                if avail[b][0]:
                    return b
            raise BackendUnavailable(f"an exported engine folder runs on onnxruntime or tensorrt: "
                                     f"{avail['ort'][1]}")
        return "trt" if avail["trt"][0] and not needs_grad else "torch"
    if backend == "torch" and engine_folder:
        raise UsageError("this is an exported engine folder (ONNX graphs, no torch weights): run it with --backend "
                         "ort or trt, or give the weights bundle for --backend torch")
    usable, reason = avail[backend]
    if not usable:
        raise BackendUnavailable(f"backend {backend!r} is unavailable: {reason}")
    return backend


def check_precision(precision: str, backend: str, device: str) -> None:
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    if precision == "fp16" and backend == "torch" and device != "cuda":
        raise UsageError("--precision fp16 on the CPU needs --backend ort (fp16 graphs); PyTorch runs fp16 on CUDA")


def load_components(model, backend: str = "torch", export_dir: str | os.PathLike | None = None,
                    names: Iterable[str] | None = None, fp16: bool = False, quiet: bool = False,
                    device: str | None = None) -> dict[str, Callable]:
    """{component: fn(**named tensors) -> tensor} for a weights bundle on a backend that resolve_backend chose
    (no fallbacks here: a backend that cannot load is an error the user sees)."""
    names = _names(names)
    if backend == "auto":
        backend = resolve_backend(backend)
    export_dir = Path(export_dir) if export_dir else default_export_dir(model)
    if backend == "torch":
        if not fp16 and (device or "cpu") == "cpu":
            return {n: getattr(model, n) for n in names}  # plain modules: gradients (recon guidance) flow
        return _torch_callables(model, names, device, "fp16" if fp16 else None)
    if backend == "ort":
        return _ort_callables(model, names, export_dir, fp16, quiet)
    return _trt_callables(model, names, export_dir, fp16, quiet)


def engine_folder_components(folder: Path, manifest: dict, backend: str, names: Iterable[str] | None = None,
                             fp16: bool = False, quiet: bool = False, device_id: int = 0) -> dict[str, Callable]:
    """Component callables from an exported folder's graphs (no torch modules are built). A shared text encoder
    (`text.audio.shared_with`) is one graph and one session."""
    from engines.base import as_callable

    names = _names(names)
    precision = "fp16" if fp16 else "fp32"  # TensorRT builds fp16 engines strongly typed from the fp16 graph
    graph = {n: graph_of(manifest, n) for n in names}
    paths = {}
    for n, g in graph.items():
        p = onnx_path(folder, g, precision)
        if not p.is_file():
            hint = " (export with --fp16)" if precision == "fp16" else ""
            raise BundleError(f"{folder}: engine folder lacks {p.name}{hint}")
        paths[g] = p
    engines = {}
    if backend == "ort":
        from engines.ort_engine import OrtEngine

        threads = int(os.environ.get("AVGEN_ORT_THREADS") or 0) or None
        for g, p in paths.items():
            engines[g] = OrtEngine(p, name=g, intra_op_threads=threads, device_id=device_id,
                                   fusion=cpu_fusion(g))
    else:
        from engines.trt_engine import TrtEngine
        from export.descriptions import descriptions
        from export.trt_build import TrtUnavailable, build_engine

        descs = descriptions(manifest)
        for g, p in paths.items():
            try:
                res = build_engine(p, g, descs[g].profile(manifest), folder / "trt", fp16=fp16)
            except TrtUnavailable as exc:
                raise BackendUnavailable(f"backend 'trt' is unavailable: {exc}") from None
            if res.built and not quiet:
                _say(f"built TensorRT engine {res.plan.name} in {res.seconds:.1f} s ({res.reason})")
            engines[g] = TrtEngine(res.plan, name=g, device=device_id)
    return {n: as_callable(engines[g]) for n, g in graph.items()}


TOKENIZER_SKIP = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".ckpt")


def write_engine_folder(model, out: Path) -> Path:
    """Make an export folder self-contained: its own bundle.json (the manifest; no torch weights listed) and the
    tokenizer files, so `--bundle OUT` runs it on ONNX Runtime / TensorRT without the original bundle, torch
    modules, diffusers or transformers."""
    import copy
    import shutil

    from avcli.manifest import MANIFEST, tokenizer_dir

    out = Path(out)
    manifest = copy.deepcopy(model.manifest)
    text = manifest["text"]
    for key in ("video", "audio"):
        spec = text[key]
        if "shared_with" in spec:
            continue
        src = tokenizer_dir(spec, getattr(model, "bundle_path", None))
        name = f"tokenizer_{key}"
        dst = out / name
        tmp = out / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in sorted(Path(src).iterdir()):
            if f.is_file() and not f.name.endswith(TOKENIZER_SKIP) and f.stat().st_size < 64 * 1024**2:
                shutil.copyfile(f, tmp / f.name)
        shutil.rmtree(dst, ignore_errors=True)
        tmp.replace(dst)
        spec["tokenizer"] = name
    manifest["files"] = {}  # the graphs are listed (with sha256) in export_manifest.json
    manifest["engine_folder"] = {"from_bundle": str(getattr(model, "bundle_path", "") or ""),
                                 "bundle_sha": bundle_sha(model)}
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.replace(out / MANIFEST)
    return out / MANIFEST
