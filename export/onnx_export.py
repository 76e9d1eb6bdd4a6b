"""torch -> ONNX for every component, validated against PyTorch at two dynamic shapes, with a manifest.

    export_component(model, "video_unet", out_dir)  -> ExportRecord (file, sha256, max error, status)
    export_all(model, out_dir, names, fp16=..)      -> [ExportRecord], and out_dir/export_manifest.json

Legacy TorchScript exporter (`dynamo=False`), opset 18 by default: it is the path checked on diffusers' motion
U-Net (DESIGN.md). fp16 keeps normalisations, softmax and the timestep embedding in fp32 (optimum / demoDiffusion
practice) and is validated with a looser tolerance. Models over 2 GB are written with external data.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from export.files import sha256_file  # noqa: F401  (re-exported)
from export.descriptions import COMPONENTS, ExportDescription, Tolerance, descriptions

MANIFEST_NAME = "export_manifest.json"
DEFAULT_OPSET = 18
MIN_OPSET = 17
TWO_GB = 2 * 1024**3
# ops kept in fp32 by the fp16 conversion: normalisations, softmax, and what the timestep embedding is made of
FP16_OP_BLOCK_LIST = ("LayerNormalization", "GroupNormalization", "InstanceNormalization", "BatchNormalization",
                      "Softmax", "LogSoftmax", "ReduceMean", "ReduceSum", "Pow", "Sqrt", "Exp", "Sin", "Cos",
                      "Range", "Erf", "Resize")


class ExportError(Exception):
    """An export that failed (torch.onnx, checker, shape inference)."""


class ExportValidationError(ExportError):
    """An exported model whose outputs differ from PyTorch beyond the component's tolerance."""

    def __init__(self, component: str, report: list["OutputReport"]):
        self.component = component
        self.report = report
        worst = max(report, key=lambda r: r.max_abs)
        super().__init__(f"{component}: ONNX output {worst.output!r} at {worst.shape_point} shape differs from "
                         f"PyTorch (max abs {worst.max_abs:.3g}, max rel {worst.max_rel:.3g}; tolerance "
                         f"atol {worst.atol:.3g} rtol {worst.rtol:.3g})")


@dataclass
class OutputReport:
    output: str
    shape_point: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    ok: bool


@dataclass
class ExportRecord:
    component: str
    file: str
    sha256: str
    size: int
    opset: int
    precision: str
    export_seconds: float
    max_error: float
    status: str  # "ok" | "cached" | "failed: ..."
    external_data: bool = False
    validation: list[dict] = field(default_factory=list)


def onnx_content_sha256(path: Path) -> str:
    """sha256 over the model file and its external-data files (the content an engine is built from)."""
    path = Path(path)
    h = hashlib.sha256(bytes.fromhex(sha256_file(path)))
    for ext in sorted(path.parent.glob(path.name + ".data*")):
        h.update(bytes.fromhex(sha256_file(ext)))
    return h.hexdigest()


def onnx_path(out_dir: Path, name: str, precision: str = "fp32") -> Path:
    return Path(out_dir) / (f"{name}.onnx" if precision == "fp32" else f"{name}.{precision}.onnx")


def _param_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _torch_export(desc: ExportDescription, module: torch.nn.Module, inputs: dict, path: Path, opset: int) -> None:
    args = tuple(inputs[n] for n in desc.input_names)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python bools/shapes are expected on diffusers
        torch.onnx.export(module, args, str(path), input_names=desc.input_names, output_names=desc.output_names,
                          dynamic_axes=desc.dynamic_axes, opset_version=opset, do_constant_folding=True,
                          dynamo=False)


def _finalize(path: Path, external: bool) -> None:
    """checker + shape inference; rewrite with external data when the model is too big for one protobuf."""
    import onnx

    if external:
        onnx.shape_inference.infer_shapes_path(str(path), str(path))
        onnx.checker.check_model(str(path))
        return
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.save(model, str(path))


def _to_external(path: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    for f in path.parent.glob(path.name + ".data*"):
        f.unlink()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=1024)


def _initializer_bytes(model) -> int:
    return sum(len(t.raw_data) if t.raw_data else 4 * max(1, len(t.float_data)) for t in model.graph.initializer)


def _topological_sort(graph) -> None:
    """Reorder nodes so each comes after the producers of its inputs (the ONNX checker requires it)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:  # a cycle or a dangling input: leave the rest as it was, the checker will name it
            ordered += pending
            break
        ids = {id(n) for n in ready}
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        pending = [n for n in pending if id(n) not in ids]
    del graph.node[:]
    graph.node.extend(ordered)


def _inline_identity_initializers(model) -> int:
    """Drop Identity nodes that only rename a weight (the exporter writes them for shared parameters): the fp16
    converter turns the weight to fp16 but leaves the Identity's output typed float, so a normalisation kept in
    fp32 reads an fp16 tensor and ORT refuses the graph ("Type (tensor(float16)) of output arg ... does not match").
    Consumers read the initializer directly instead. Returns how many were inlined."""
    inits = {i.name for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    alias, keep = {}, []
    for n in model.graph.node:
        if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs:
            alias[n.output[0]] = n.input[0]
        else:
            keep.append(n)
    if not alias:
        return 0
    for n in keep:
        for i, name in enumerate(n.input):
            if name in alias:
                n.input[i] = alias[name]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    kept_vi = [v for v in model.graph.value_info if v.name not in alias]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept_vi)
    return len(alias)


def convert_fp16(src: Path, dst: Path, op_block_list: tuple[str, ...] = FP16_OP_BLOCK_LIST,
                 external_threshold: int = TWO_GB // 2) -> bool:
    """fp16 weights/compute with fp32 inputs/outputs; blocked ops (norms, softmax, timestep embedding) stay fp32.
    Graphs whose fp16 weights exceed `external_threshold` are written with external data (`dst.data`): the real
    video U-Net (~1.4 B parameters, ~2.9 GB in fp16) does not fit one 2 GB protobuf. Returns whether it did."""
    try:  # onnxruntime's fork of the converter: it keeps Cast nodes and shared weights feeding fp32 ops consistent
        from onnxruntime.transformers import float16
    except ImportError:
        try:
            from onnxconverter_common import float16
        except ImportError as exc:
            raise ExportError("fp16 conversion needs onnxruntime (or onnxconverter-common)") from exc
    import onnx

    model = onnx.load(str(src))
    _inline_identity_initializers(model)
    blocked_nodes = [n.name for n in model.graph.node if "time_embed" in n.name or "time_proj" in n.name]
    model16 = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=list(op_block_list),
                                               node_block_list=blocked_nodes)
    _topological_sort(model16.graph)  # the converter appends its input casts at the end
    for f in dst.parent.glob(dst.name + ".data*"):
        f.unlink()
    external = _initializer_bytes(model16) > external_threshold
    if external:
        onnx.save_model(model16, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=dst.name + ".data", size_threshold=1024)
    else:
        onnx.save(model16, str(dst))
    return external


def _ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def compare(ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> tuple[float, float, bool]:
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    if ref64.shape != got64.shape:
        return float("inf"), float("inf"), False
    diff = np.abs(ref64 - got64)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / (np.abs(ref64) + 1e-6)).max()) if diff.size else 0.0
    ok = bool(np.all(diff <= tol.atol + tol.rtol * np.abs(ref64))) and np.isfinite(got64).all()
    return max_abs, max_rel, ok


def validate(desc: ExportDescription, model, path: Path, tolerance: Tolerance,
             points: tuple[str, ...] | None = None) -> list[OutputReport]:
    """Run the ONNX model and the torch module on the same inputs at two dynamic shapes; one report per output."""
    sess = _ort_session(path)
    module = desc.module(model)
    reports: list[OutputReport] = []
    for i, point in enumerate(points or desc.validate_points):
        inputs = desc.sample_inputs(model, point, seed=100 + i)
        with torch.no_grad():
            ref = module(**inputs)
        refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        got = sess.run(desc.output_names, {k: v.numpy() for k, v in inputs.items()})
        for name, r, g in zip(desc.output_names, refs, got):
            max_abs, max_rel, ok = compare(r.float().numpy(), g, tolerance)
            reports.append(OutputReport(name, point, tuple(r.shape), max_abs, max_rel, tolerance.atol,
                                        tolerance.rtol, ok))
    return reports


def export_component(model, name: str, out_dir: str | os.PathLike, opset: int = DEFAULT_OPSET, fp16: bool = False,
                     validate_outputs: bool = True, force: bool = False,
                     previous: dict | None = None) -> ExportRecord:
    """Export one component (fp32, then optionally fp16 from it). Raises ExportValidationError when out of
    tolerance, ExportError when the exporter or checker fails."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}, got {opset}")
    desc = descriptions(model.manifest)[name]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    precision = "fp16" if fp16 else "fp32"
    path = onnx_path(out_dir, name, precision)
    if not force and previous and path.exists() and previous.get("sha256") == sha256_file(path) \
            and previous.get("opset") == opset and str(previous.get("status", "")).startswith(("ok", "cached")):
        return ExportRecord(**{**previous, "status": "cached"})
    t0 = time.perf_counter()
    module = desc.module(model).eval()
    fp32_path = onnx_path(out_dir, name, "fp32")
    external = _param_bytes(module) > TWO_GB // 2  # fp32 params near 2 GB leave no room for the graph
    try:
        if not fp16 or force or not fp32_path.exists():
            _torch_export(desc, module, desc.sample_inputs(model, "opt"), fp32_path, opset)
            if external:
                _to_external(fp32_path)
            _finalize(fp32_path, external)
        if fp16:
            external16 = convert_fp16(fp32_path, path)
            _finalize(path, external16)
            external = external16
    except ExportError:
        raise
    except Exception as exc:  # the exporter raises many types; name the component and the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{name}: ONNX export failed ({type(exc).__name__}: {first})") from exc
    seconds = time.perf_counter() - t0
    reports: list[OutputReport] = []
    if validate_outputs:
        tol = desc.fp16_tolerance if fp16 else desc.tolerance
        reports = validate(desc, model, path, tol)
    max_err = max((r.max_abs for r in reports), default=float("nan"))
    record = ExportRecord(name, path.name, sha256_file(path), path.stat().st_size + sum(
        f.stat().st_size for f in path.parent.glob(path.name + ".data*")), opset, precision, round(seconds, 3),
        max_err, "ok", external, [asdict(r) for r in reports])
    if reports and not all(r.ok for r in reports):
        record.status = "failed: out of tolerance"
        err = ExportValidationError(name, reports)
        err.record = record
        raise err
    return record


def read_manifest(out_dir: str | os.PathLike) -> dict:
    p = Path(out_dir) / MANIFEST_NAME
    if not p.exists():
        return {"components": {}}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return {"components": {}}


def write_manifest(out_dir: str | os.PathLike, records: list[ExportRecord], extra: dict | None = None) -> Path:
    out_dir = Path(out_dir)
    data = read_manifest(out_dir)
    comps = data.get("components", {})
    for r in records:
        comps[f"{r.component}:{r.precision}"] = asdict(r)
    data = {"format": "avgen-export", "version": 1, "torch": torch.__version__, **(extra or {}),
            "components": comps}
    tmp = out_dir / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=float) + "\n")
    os.replace(tmp, out_dir / MANIFEST_NAME)
    return out_dir / MANIFEST_NAME


def export_all(model, out_dir: str | os.PathLike, names: tuple[str, ...] | list[str] = COMPONENTS,
               opset: int = DEFAULT_OPSET, fp16: bool = False, force: bool = False, raise_on_error: bool = False,
               extra: dict | None = None, on_component=None, validate_outputs: bool = True) -> list[ExportRecord]:
    """Export several components; each failure is recorded (status) and, with raise_on_error, raised."""
    previous = read_manifest(out_dir).get("components", {})
    records = []
    for name in names:
        if name not in COMPONENTS:
            raise ValueError(f"unknown component {name!r}; choose from {', '.join(COMPONENTS)}")
        if on_component:
            on_component(name)
        precision = "fp16" if fp16 else "fp32"
        try:
            rec = export_component(model, name, out_dir, opset, fp16, validate_outputs, force=force,
                                   previous=previous.get(f"{name}:{precision}"))
        except ExportError as exc:
            rec = getattr(exc, "record", None) or ExportRecord(name, onnx_path(Path(out_dir), name, precision).name,
                                                               "", 0, opset, precision, 0.0, float("nan"),
                                                               f"failed: {exc}")
            records.append(rec)
            write_manifest(out_dir, records, extra)
            if raise_on_error:
                raise
            continue
        records.append(rec)
    write_manifest(out_dir, records, extra)
    return records
