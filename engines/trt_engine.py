"""TensorRT engine: device buffers from torch tensors, shapes set per call, execute_async_v3 on a torch stream.

tensorrt is imported lazily; CUDA comes through torch (no pycuda). With `cuda_graph=True` and fixed shapes, the
first call at a shape captures a CUDA graph that later calls at that shape replay.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engines.base import Capabilities, Engine

_TRT_TO_TORCH = {"FLOAT": torch.float32, "HALF": torch.float16, "INT64": torch.int64, "INT32": torch.int32,
                 "BOOL": torch.bool, "BF16": torch.bfloat16}


class TrtEngine(Engine):
    backend = "trt"

    def __init__(self, plan: str | os.PathLike, name: str | None = None, cuda_graph: bool = False,
                 device: int = 0):
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
        self.cuda_graph = cuda_graph
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, dict, dict]] = {}
        fp16 = any(d == torch.float16 for d in self._dtypes.values())
        super().__init__(name or Path(plan).name.split(".")[0], ins, outs,
                         Capabilities("cuda", fp16, True, True, cuda_graph))

    def _bind(self, inputs: dict[str, torch.Tensor]) -> tuple[dict, dict]:
        feeds = {k: v.detach().to(self.device, self._dtypes[k]).contiguous() for k, v in inputs.items()}
        for k, t in feeds.items():
            self.context.set_input_shape(k, tuple(t.shape))
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
        if self.cuda_graph:
            outs = self._run_graph(inputs)
        else:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.stream):
                _feeds, outs = self._bind(inputs)
                if not self.context.execute_async_v3(self.stream.cuda_stream):
                    raise RuntimeError(f"{self.name}: TensorRT execution failed")
            torch.cuda.current_stream(self.device).wait_stream(self.stream)
        return {n: o.float().to(src) for n, o in outs.items()}

    def _run_graph(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        key = tuple((k, tuple(v.shape)) for k, v in sorted(inputs.items()))
        if key not in self._graphs:
            with torch.cuda.stream(self.stream):
                feeds, outs = self._bind(inputs)
                self.context.execute_async_v3(self.stream.cuda_stream)  # warm-up outside the capture
                self.stream.synchronize()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self.stream):
                    self.context.execute_async_v3(self.stream.cuda_stream)
            self._graphs[key] = (graph, feeds, outs)
        graph, feeds, outs = self._graphs[key]
        for k, v in inputs.items():  # copy into the captured input buffers
            feeds[k].copy_(v.to(self.device, self._dtypes[k]))
        graph.replay()
        return {n: o.clone() for n, o in outs.items()}
