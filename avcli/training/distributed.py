"""One or many processes for joint training, through HuggingFace accelerate (DDP underneath).

Launch with `accelerate launch --multi_gpu --num_processes N -m avcli train joint ...` (also on CPU) or
`torchrun --nproc_per_node N -m avcli train joint ...` (multi-node: torchrun's --nnodes/--node_rank/--master_addr,
or accelerate's --num_machines/--machine_rank/--main_process_ip); a plain `avgen train joint` is a single
process. Nothing here launches processes.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
from torch import nn

from avcli.errors import UsageError

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")


def resolve_mixed_precision(value: str) -> str:
    if value not in MIXED_PRECISION:
        raise UsageError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}, got {value!r}")
    cuda = torch.cuda.is_available()
    if value == "auto":
        return "bf16" if cuda else "no"
    if value == "fp16" and not cuda:
        raise UsageError("--mixed-precision fp16 needs a CUDA GPU (use bf16 or no on CPU)")
    return value


def make_accelerator(mixed_precision: str = "auto"):
    from accelerate import Accelerator

    # cpu=True without CUDA is what makes torchrun on CPU use the gloo backend (MULTI_CPU)
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=resolve_mixed_precision(mixed_precision))


def close_process_group(timeout_s: float = 120.0) -> None:
    """Tear down the process group before the interpreter exits.

    Left to interpreter shutdown, gloo's worker threads can be destroyed while still joinable, and a rank then dies
    with "terminate called without an active exception" (SIGABRT) after its work is done, failing the whole launch.
    On gloo the last barrier is a monitored one: a rank that never arrives is an error naming it after `timeout_s`,
    not a hang.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timedelta(seconds=timeout_s))
        else:
            dist.barrier()
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Rank 0 of a torchrun/accelerate launch, or a plain single process (no accelerate import needed)."""
    return int(os.environ.get("RANK", "0")) == 0


def shard(items: list, rank: int, world: int) -> tuple[list, bool]:
    """This process's share of the data files (every world-th), and whether the shares are disjoint."""
    if world <= 1 or len(items) < world:
        return list(items), world <= 1
    return list(items[rank::world]), True


def hold_frozen_in(module: nn.Module, dtype: torch.dtype) -> None:
    """Frozen (base) weights in the autocast dtype: half the memory; trainable ones stay float32 for AdamW."""
    for p in module.parameters():
        if not p.requires_grad and p.is_floating_point():
            p.data = p.data.to(dtype)


PRECISION_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
