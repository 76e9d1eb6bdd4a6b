"""Connectors: a modality's noisy latent x_t and its self-conditioning estimate x0_hat -> per-time-frame features.

They read latents only (not the other U-Net's hidden states), which is what lets one joint step run the two U-Nets
independently (DESIGN.md).
"""

from __future__ import annotations

import torch
from torch import nn


def _zero_biases(module: nn.Module) -> None:
    """Start every convolution/linear bias at zero. With PyTorch's default uniform biases the bias-driven
    constant dominated the pooled features (their spread across clips and frames was ~2-5 % of the constant after
    the LayerNorm), so the connectors started out nearly blind to the content and the timing they must carry."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and m.bias is not None:
            nn.init.zeros_(m.bias)


class _TemporalHead(nn.Module):
    """(B, T, hidden) -> (B, T, dim) with a little temporal context (two 1-D convs along time)."""

    def __init__(self, hidden: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(hidden, dim, 3, padding=1), nn.SiLU(), nn.Conv1d(dim, dim, 3, padding=1))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.net(x.transpose(1, 2)).transpose(1, 2))


class AttentivePool(nn.Module):
    """Seed 003's global semantic feature (STA-V2A sec. II-B2) beside the local ones: a learned score per frame,
    softmax over the frames, the weighted mean of the frame features, projected and added to every frame.

    The projection starts at zero, so a connector that gains this block computes exactly what it did before."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, dim) -> (B, F, dim)
        w = torch.softmax(self.score(x), dim=1)  # (B, F, 1)
        return x + self.proj((w * x).sum(dim=1, keepdim=True))


class VideoConnector(nn.Module):
    """(B, C, F, h, w) latent + x0_hat -> (B, F, dim): one feature vector per video frame.

    grid = 0 averages each frame's feature map over space (any frame size). grid = g > 0 average-pools it to a
    g x g grid and projects the flattened grid, so *where* things are survives (a ball touching a surface is a
    spatial arrangement that a global mean washes out); the frame size must then be a multiple of g after the
    stride-2 convolution. global_pool adds the attentive-pooled clip feature to every frame (`AttentivePool`).
    """

    def __init__(self, latent_channels: int = 4, hidden: int = 64, dim: int = 64, grid: int = 0,
                 global_pool: bool = False):
        super().__init__()
        self.config = {"latent_channels": latent_channels, "hidden": hidden, "dim": dim, "grid": grid,
                       "global_pool": global_pool}
        self.grid = grid
        self.frame_net = nn.Sequential(
            nn.Conv2d(2 * latent_channels, hidden, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
        )
        self.pool_proj = nn.Linear(hidden * grid * grid, hidden) if grid else None
        self.head = _TemporalHead(hidden, dim)
        _zero_biases(self)
        self.global_pool = AttentivePool(dim) if global_pool else None

    def forward(self, latent: torch.Tensor, x0_hat: torch.Tensor) -> torch.Tensor:
        b, _, f, h, w = latent.shape
        x = torch.cat([latent, x0_hat], dim=1)  # (B, 2C, F, h, w)
        x = x.permute(0, 2, 1, 3, 4).reshape(b * f, -1, h, w)  # (B*F, 2C, h, w)
        x = self.frame_net(x)  # (B*F, hidden, h', w')
        if self.grid:
            n, c, hh, ww = x.shape
            g = self.grid
            if not torch.jit.is_tracing() and (hh % g or ww % g):
                raise ValueError(f"video connector grid {g} does not divide its {hh}x{ww} feature map; "
                                 f"choose a grid that divides it (or 0)")
            x = x.reshape(n, c, g, hh // g, g, ww // g).mean(dim=(3, 5))  # average-pool to g x g (exports as Reshape)
            x = self.pool_proj(x.flatten(1))  # (B*F, hidden)
        else:
            x = x.mean(dim=(2, 3))  # (B*F, hidden)
        out = self.head(x.reshape(b, f, -1))  # (B, F, dim)
        return self.global_pool(out) if self.global_pool is not None else out


class AudioConnector(nn.Module):
    """(B, C, T, m) mel latent + x0_hat -> (B, T, dim): one feature vector per latent time frame."""

    def __init__(self, latent_channels: int = 8, hidden: int = 64, dim: int = 64):
        super().__init__()
        self.config = {"latent_channels": latent_channels, "hidden": hidden, "dim": dim}
        self.net = nn.Sequential(
            nn.Conv2d(2 * latent_channels, hidden, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, stride=(1, 2), padding=1), nn.SiLU(),  # pool frequency, keep time
            nn.Conv2d(hidden, hidden, 3, padding=1),
        )
        self.head = _TemporalHead(hidden, dim)
        _zero_biases(self)

    def forward(self, latent: torch.Tensor, x0_hat: torch.Tensor) -> torch.Tensor:
        x = torch.cat([latent, x0_hat], dim=1)  # (B, 2C, T, m)
        x = self.net(x).mean(dim=3)  # (B, hidden, T)
        return self.head(x.transpose(1, 2))  # (B, T, dim)
