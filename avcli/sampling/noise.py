"""Gaussian noise for the sampler, drawn on the CPU: from one torch.Generator, or one generator per batch row.

Per-row generators make a batch of prompts draw exactly what each prompt alone would draw with its own seed, so
a batched run and a single run of the same seed start from the same noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator]


def randn(generator: Generators | None, shape: tuple[int, ...], dtype=torch.float32) -> torch.Tensor:
    """(B, ...) standard normal noise. A sequence of generators must have one per row of `shape`."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, dtype=dtype)
    gens = list(generator)
    if len(gens) == 1:
        return torch.randn(shape, generator=gens[0], dtype=dtype)
    if len(gens) != shape[0]:
        raise ValueError(f"{len(gens)} generators for a batch of {shape[0]}")
    return torch.cat([torch.randn((1,) + tuple(shape[1:]), generator=g, dtype=dtype) for g in gens])


def seeded(seeds: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]
