"""One runtime interface: named tensors in -> named tensors out, whatever runs them (torch, ONNX Runtime, TensorRT).

Generic on purpose: nothing here knows avgen. `as_callable` adapts an engine to the sampler's calling convention
(`fn(**named_tensors) -> tensor`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Capabilities:
    device: str = "cpu"  # "cpu" | "cuda"
    fp16: bool = False
    dynamic_shapes: bool = True
    io_binding: bool = False
    cuda_graphs: bool = False


class Engine:
    """Base class. Subclasses set `name`, `input_names`, `output_names`, `capabilities` and implement `run`."""

    backend = "base"

    def __init__(self, name: str, input_names: list[str], output_names: list[str], capabilities: Capabilities):
        self.name = name
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.capabilities = capabilities

    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def check_inputs(self, inputs: dict[str, torch.Tensor]) -> None:
        missing = [n for n in self.input_names if n not in inputs]
        extra = [n for n in inputs if n not in self.input_names]
        if missing or extra:
            raise ValueError(f"{self.name}: inputs {sorted(inputs)} do not match {self.input_names} "
                             f"(missing {missing}, unexpected {extra})")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, inputs={self.input_names}, outputs={self.output_names})"


def as_callable(engine: Engine, output: str | None = None) -> Callable[..., torch.Tensor]:
    """`fn(**tensors) -> tensor`: the named output (default: the only/first one), on the inputs' device."""
    out_name = output or engine.output_names[0]
    if out_name not in engine.output_names:
        raise ValueError(f"{engine.name}: no output {out_name!r} (has {engine.output_names})")

    def fn(**inputs: torch.Tensor) -> torch.Tensor:
        return engine.run(inputs)[out_name]

    fn.engine = engine  # type: ignore[attr-defined]
    fn.__name__ = f"{engine.backend}_{engine.name}"
    return fn
