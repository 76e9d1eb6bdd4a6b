"""Cross-modal conditioning blocks inserted into a base U-Net (seed 000 section 3.3).

Both variants see a feature map laid out as (B, C, T, S): T = time frames, S = the remaining (spatial or
frequency) positions flattened. Attention runs along time for every position (tokens (B*S, T, C)), which keeps
the cost linear in S.

- CMCPEBlock: the other modality's features, interpolated to T and broadcast over S, are added like a positional
  encoding, then a self-attention transformer block runs.
- CrossAttnBlock: the seed's baseline (CoDi-style): the features pooled to one vector are the key/value of a
  cross-attention.
Both end in a zero-initialised projection added to the input, so a freshly joined model equals its bases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from torch import nn

MODES = ("cmcpe", "xattn")


def _heads(channels: int, heads: int) -> tuple[int, int]:
    heads = max(1, min(heads, channels // 8))
    while channels % heads:
        heads -= 1
    return heads, channels // heads


class _CrossModalBlock(nn.Module):
    def __init__(self, channels: int, cond_dim: int, heads: int):
        super().__init__()
        self.channels = channels
        self.cond_proj = nn.Linear(cond_dim, channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def to_tokens(h: torch.Tensor) -> torch.Tensor:
        b, c, t, s = h.shape
        return h.permute(0, 3, 2, 1).reshape(b * s, t, c)  # (B*S, T, C)

    @staticmethod
    def from_tokens(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        b, c, t, s = shape
        return x.reshape(b, s, t, c).permute(0, 3, 2, 1)  # (B, C, T, S)


class CMCPEBlock(_CrossModalBlock):
    def __init__(self, channels: int, cond_dim: int, heads: int = 4):
        super().__init__(channels, cond_dim, heads)
        n, d = _heads(channels, heads)
        self.block = BasicTransformerBlock(channels, n, d, cross_attention_dim=None)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, c, t, s = h.shape
        pe = F.interpolate(cond.transpose(1, 2), size=t, mode="linear", align_corners=False)  # (B, D, T)
        pe = self.cond_proj(pe.transpose(1, 2))  # (B, T, C)
        pe = pe.unsqueeze(1).expand(b, s, t, c).reshape(b * s, t, c)  # broadcast over S
        y = self.block(self.to_tokens(h) + pe)
        return h + self.from_tokens(self.out(y), h.shape)


class CrossAttnBlock(_CrossModalBlock):
    def __init__(self, channels: int, cond_dim: int, heads: int = 4):
        super().__init__(channels, cond_dim, heads)
        n, d = _heads(channels, heads)
        self.block = BasicTransformerBlock(channels, n, d, cross_attention_dim=channels, only_cross_attention=True)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, c, t, s = h.shape
        pooled = self.cond_proj(cond.mean(dim=1))  # (B, C): one vector for the whole clip
        kv = pooled[:, None, None, :].expand(b, s, 1, c).reshape(b * s, 1, c)
        y = self.block(self.to_tokens(h), encoder_hidden_states=kv)
        return h + self.from_tokens(self.out(y), h.shape)


def make_block(mode: str, channels: int, cond_dim: int, heads: int) -> nn.Module:
    if mode == "cmcpe":
        return CMCPEBlock(channels, cond_dim, heads)
    if mode == "xattn":
        return CrossAttnBlock(channels, cond_dim, heads)
    raise ValueError(f"unknown cross-modal mode {mode!r}; expected one of {MODES}")
