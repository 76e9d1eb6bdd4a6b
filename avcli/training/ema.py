"""Exponential moving average of the trainable parameters: what joint training writes into the bundle.

The decay ramps up as min(decay, (1 + n) / (10 + n)) after n updates (as diffusers' EMAModel does), so a short run
is not dominated by the initial (zero-output) weights. The shadow weights are kept in float32 and saved next to
the checkpoint as ema.safetensors (same tensor names as ckpt.safetensors).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


class EMA:
    def __init__(self, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {}

    def start(self, params: dict[str, torch.Tensor], path: Path | None = None) -> None:
        """Resume from `path` if it exists (a run checkpointed before EMA existed starts from the weights)."""
        saved = load_file(str(path)) if path is not None and path.exists() else {}
        missing = set(params) - set(saved)
        if saved and missing:
            raise ValueError(f"{path}: EMA weights do not match the model being trained (lack {sorted(missing)[0]})")
        self.shadow = {k: (saved[k] if saved else p.detach()).float().to(p.device).clone()
                       for k, p in params.items()}

    @torch.no_grad()
    def update(self, params: dict[str, torch.Tensor], step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, p in params.items():
            self.shadow[k].lerp_(p.detach().float(), 1.0 - d)

    def save(self, path: Path) -> None:
        save_file({k: v.detach().cpu().contiguous() for k, v in self.shadow.items()}, str(path))
