"""Eager PyTorch engine: the reference backend. Optional torch.compile; autocast fp16/bf16 when on CUDA."""

from __future__ import annotations

import contextlib
import inspect

import torch

from engines.base import Capabilities, Engine


class TorchEngine(Engine):
    backend = "torch"

    def __init__(self, name: str, module: torch.nn.Module, output_names: list[str] | None = None,
                 input_names: list[str] | None = None, device: str | torch.device | None = None,
                 dtype: str | None = None, compile: bool = False):
        if dtype not in (None, "fp32", "fp16", "bf16"):
            raise ValueError(f"dtype must be fp32, fp16 or bf16, got {dtype!r}")
        self.device = torch.device(device or "cpu")
        self.module = module.eval()
        first = next(iter(module.parameters()), None)
        if first is not None and first.device != self.device:
            # move parameters and buffers tensor by tensor: a module may shadow nn.Module._apply/.to
            for t in list(module.parameters()) + list(module.buffers()):
                t.data = t.data.to(self.device)
        if input_names is None:
            input_names = [p for p in inspect.signature(module.forward).parameters if p not in ("self",)]
        self.autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(dtype or "fp32")
        if self.autocast_dtype is not None and self.device.type != "cuda":
            self.autocast_dtype = None  # CPU autocast is slower than fp32 for these convs: keep fp32
        self._fn = torch.compile(self.module) if compile else self.module
        super().__init__(name, input_names, output_names or ["output"],
                         Capabilities(self.device.type, self.autocast_dtype is not None, True, False, False))

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.check_inputs(inputs)
        src_device = next(iter(inputs.values())).device if inputs else self.device
        kw = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad(), self._autocast():
            out = self._fn(**kw)
        outs = [out] if isinstance(out, torch.Tensor) else list(out)
        return {n: o.float().to(src_device) for n, o in zip(self.output_names, outs)}
