"""TensorRT engine: device buffers from torch tensors, shapes set per call, execute_async_v3 on a torch stream.

tensorrt is imported lazily; CUDA comes through torch (no pycuda). Every input shape is checked against the
engine's optimisation profile before it is set (a clear error instead of a failed enqueue), and outputs come back
as float32 on the inputs' device, like every other engine. CUDA-graph capture was removed: it was never wired to
a caller and could not be verified without a GPU (see README "Limits").
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engines.base import Capabilities, Engine

_TRT_TO_TORCH = {"FLOAT": torch.float32, "HALF": torch.float16, "INT64": torch.int64, "INT32": torch.int32,
                 "BOOL": torch.bool, "BF16": torch.bfloat16}


class ShapeOutsideProfile(ValueError):
    """An input shape the engine was not built for (outside its min..max optimisation profile)."""


def check_profile(engine, name: str, shape: tuple[int, ...], profile_index: int = 0) -> None:
    """Raise ShapeOutsideProfile when `shape` lies outside the engine's profile for input `name`."""
    mn, _opt, mx = (tuple(s) for s in engine.get_tensor_profile_shape(name, profile_index))
    if len(mn) != len(shape) or any(not lo <= d <= hi for lo, d, hi in zip(mn, shape, mx)):
        raise ShapeOutsideProfile(f"input {name!r} has shape {tuple(shape)}, the engine accepts {mn} .. {mx} "
                                  f"(rebuild the engine with a wider profile, or use --backend ort/torch)")


class TrtEngine(Engine):
    backend = "trt"

    def __init__(self, plan: str | os.PathLike, name: str | None = None, device: int = 0):
        import tensorrt as trt

        if not torch.cuda.is_available():
            raise RuntimeError("TensorRT engines need a CUDA device")
        self.device = torch.device("cuda", device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{plan}: TensorRT could not deserialize the plan (other TensorRT version/GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        ins = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dtypes = {n: _TRT_TO_TORCH[self.engine.get_tensor_dtype(n).name] for n in names}
        self.stream = torch.cuda.Stream(self.device)
        fp16 = any(d == torch.float16 for d in self._dtypes.values())
        super().__init__(name or Path(plan).name.split(".")[0], ins, outs,
                         Capabilities("cuda", fp16, True, True, False))

    def _bind(self, inputs: dict[str, torch.Tensor]) -> tuple[dict, dict]:
        feeds = {k: v.detach().to(self.device, self._dtypes[k]).contiguous() for k, v in inputs.items()}
        for k, t in feeds.items():
            check_profile(self.engine, k, tuple(t.shape))
            if not self.context.set_input_shape(k, tuple(t.shape)):
                raise ShapeOutsideProfile(f"{self.name}: TensorRT refused shape {tuple(t.shape)} for input {k!r}")
            self.context.set_tensor_address(k, t.data_ptr())
        outs = {}
        for n in self.output_names:
            shape = tuple(self.context.get_tensor_shape(n))
            outs[n] = torch.empty(shape, dtype=self._dtypes[n], device=self.device)
            self.context.set_tensor_address(n, outs[n].data_ptr())
        return feeds, outs

    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_inputs(inputs)
        src = next(iter(inputs.values())).device
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            feeds, outs = self._bind(inputs)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"{self.name}: TensorRT execution failed")
        current.wait_stream(self.stream)
        for t in list(feeds.values()) + list(outs.values()):
            t.record_stream(current)  # allocated on the side stream, used on the caller's: keep them alive for it
        return {n: o.to(src, torch.float32 if o.is_floating_point() else o.dtype) for n, o in outs.items()}
