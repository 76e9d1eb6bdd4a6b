"""ONNX Runtime engine. onnxruntime is imported lazily, so `engines` imports without it.

Providers: TensorRT EP -> CUDA EP -> CPU EP, as available (or as asked). On CUDA, inputs and outputs stay on the
device through IO binding. On CPU the session is tuned: intra-op threads = physical cores, full graph optimisation,
and the optimised graph is saved next to the ONNX file so later sessions skip the optimisation passes.
`fusion=` (CPU EP, fp32 graphs) first applies one of onnxruntime's transformer fusions (engines/ort_fusions.py);
the saved graph's name carries the variant (`video_unet.cpu.attention.opt.onnx`), so a plain and a fused session
never read each other's file.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import torch

from engines.base import Capabilities, Engine

_NP_TO_TORCH = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16, "tensor(int64)": torch.int64,
                "tensor(int32)": torch.int32, "tensor(double)": torch.float64, "tensor(bool)": torch.bool}
PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def physical_cores() -> int:
    """Physical cores available to this process (hyper-threads share the FPUs these kernels saturate)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    try:
        import psutil

        phys = psutil.cpu_count(logical=False) or usable
    except ImportError:
        phys = usable
        try:  # Linux: count distinct (physical id, core id) pairs
            ids, cur = set(), {}
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if ":" in line:
                    k, v = (s.strip() for s in line.split(":", 1))
                    cur[k] = v
                elif cur:
                    ids.add((cur.get("physical id"), cur.get("core id")))
                    cur = {}
            if ids and None not in {i[1] for i in ids}:
                phys = len(ids)
        except OSError:
            pass
    return max(1, min(usable, phys))


def choose_providers(requested: list[str] | None = None) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    order = requested or list(PREFERRED)
    chosen = [p for p in order if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def optimized_path(path: Path, provider: str, fusion: str | None = None) -> Path:
    tag = provider.replace("ExecutionProvider", "").lower()
    return path.with_name(f"{path.stem}.{tag}{'.' + fusion if fusion else ''}.opt.onnx")


def _has_external_data(path: Path) -> bool:
    return any(path.parent.glob(path.name + ".data*"))


class OrtEngine(Engine):
    backend = "ort"

    def __init__(self, path: str | os.PathLike, name: str | None = None, providers: list[str] | None = None,
                 intra_op_threads: int | None = None, save_optimized: bool = True, device_id: int = 0,
                 fusion: str | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such ONNX file")
        self.path = path
        self.providers = choose_providers(providers)
        first = self.providers[0]
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if first == "CPUExecutionProvider":
            so.intra_op_num_threads = intra_op_threads or physical_cores()
            so.inter_op_num_threads = 1
            if os.environ.get("AVGEN_ORT_SPIN", "0") != "1":
                # ORT's pool threads spin for a while after each run; between runs the sampler works in torch on the
                # same cores, so spinning threads steal them (measured: +45 ms per U-Net call on 2 cores)
                so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # the fusions are CPU-EP rewrites of fp32 graphs (their fp16 attention has no CPU kernel); elsewhere: plain
        cpu_plain = first == "CPUExecutionProvider" and not _has_external_data(path)
        self.fusion = fusion if fusion and cpu_plain and ".fp16" not in path.name else None
        load_from = path
        opt = optimized_path(path, first, self.fusion)
        # only the CPU EP can serialise its optimised graph: with the TensorRT EP ORT refuses compiled nodes, falls
        # back to CUDA, prints a banner on stdout (corrupting --json) and drops device_id
        fresh = save_optimized and cpu_plain and opt.exists() and opt.stat().st_mtime >= path.stat().st_mtime
        if fresh:
            load_from = opt  # already optimised for this provider: skip the passes
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        tmp = None
        if not fresh and save_optimized and cpu_plain and os.access(path.parent, os.W_OK):  # read-only: each time
            # written under a name of this process's own, then renamed: several workers starting on one folder (a
            # Ray node) never read a half-written graph
            tmp = opt.with_name(f".{opt.name}.{os.getpid()}-{threading.get_ident()}.tmp")
            so.optimized_model_filepath = str(tmp)
        source: str | bytes = str(load_from)
        if self.fusion and not fresh:
            from engines.ort_fusions import fused_model

            source = fused_model(path, self.fusion)[0].SerializeToString()
        provider_options = [{"device_id": device_id} if p in PREFERRED[:2] else {} for p in self.providers]
        try:
            self.session = ort.InferenceSession(source, so, providers=self.providers,
                                                provider_options=provider_options)
            if tmp is not None and tmp.exists():
                os.replace(tmp, opt)
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        self.loaded_from = load_from
        on_gpu = self.session.get_providers()[0] != "CPUExecutionProvider"
        self.device = torch.device("cuda", device_id) if on_gpu else torch.device("cpu")
        self._in_types = {i.name: _NP_TO_TORCH.get(i.type, torch.float32) for i in self.session.get_inputs()}
        self._out_types = {o.name: _NP_TO_TORCH.get(o.type, torch.float32) for o in self.session.get_outputs()}
        fp16 = any(t == torch.float16 for t in self._in_types.values()) or ".fp16" in path.name
        super().__init__(name or path.stem.split(".")[0], [i.name for i in self.session.get_inputs()],
                         [o.name for o in self.session.get_outputs()],
                         Capabilities(self.device.type, fp16, True, on_gpu, False))

    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_inputs(inputs)
        if self.capabilities.io_binding:
            src = next(iter(inputs.values())).device if inputs else torch.device("cpu")
            # outputs go back where the inputs came from (the sampler keeps its latents on the CPU), as float32
            return {n: o.to(src, torch.float32 if o.is_floating_point() else o.dtype)
                    for n, o in self._run_bound(inputs).items()}
        feeds = {k: v.detach().to("cpu", self._in_types[k]).contiguous().numpy() for k, v in inputs.items()}
        outs = self.session.run(self.output_names, feeds)
        return {n: torch.from_numpy(np.ascontiguousarray(o)) for n, o in zip(self.output_names, outs)}

    def _run_bound(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """IO binding: ORT reads torch memory in place and allocates its outputs on the engine's device (CUDA on
        a GPU: no host round trip); the outputs come back as torch tensors through DLPack. Works on the CPU too
        (tests exercise it there)."""
        binding = self.session.io_binding()
        kind, index = self.device.type, self.device.index or 0
        keep = []
        for k, v in inputs.items():
            t = v.detach().to(self.device, self._in_types[k]).contiguous()
            keep.append(t)  # alive until the run is over
            binding.bind_input(k, kind, index, _np_dtype(t.dtype), tuple(t.shape), t.data_ptr())
        for n in self.output_names:
            binding.bind_output(n, kind, index)
        if kind == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # inputs written on torch's stream are ready
        self.session.run_with_iobinding(binding)
        return {n: _ortvalue_to_torch(o, self.device) for n, o in zip(self.output_names, binding.get_outputs())}


def _np_dtype(dtype: torch.dtype):
    return {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64, torch.int32: np.int32,
            torch.float64: np.float64, torch.bool: np.bool_}[dtype]


def _ortvalue_to_torch(value, device: torch.device) -> torch.Tensor:
    """Zero-copy through DLPack: onnxruntime 1.32's OrtValue has `__dlpack__` (there is no `to_dlpack()`). Builds
    without DLPack support copy through the host."""
    if hasattr(value, "__dlpack__"):
        return torch.from_dlpack(value)
    return torch.from_numpy(value.numpy()).to(device)
