"""The two exportable U-Net components: a diffusers base U-Net plus its four cross-modal blocks.

Blocks sit after each of the last two down blocks and the first two up blocks (seed 000 A.2). They are attached
with forward hooks, so the base U-Net's own modules and state dict stay exactly those of the base model.
"""

from __future__ import annotations

import functools

import torch
from diffusers import UNet2DConditionModel, UNetMotionModel
from torch import nn

from avcli.models.cmcpe import make_block


def _insert_channels(block_out_channels: tuple[int, ...]) -> tuple[list[int], list[int], list[int], list[int]]:
    """Indices and channel widths of the down/up blocks that get a cross-modal block."""
    n = len(block_out_channels)
    down_idx = list(range(max(0, n - 2), n))
    up_idx = list(range(min(2, n)))
    rev = list(reversed(block_out_channels))
    return down_idx, [block_out_channels[i] for i in down_idx], up_idx, [rev[i] for i in up_idx]


class _JointUNetBase(nn.Module):
    """Shared hook plumbing. Subclasses say how a block's feature map becomes (B, C, T, S)."""

    def __init__(self, unet: nn.Module, cond_dim: int, mode: str, heads: int):
        super().__init__()
        self.unet = unet
        self.mode = mode
        down_idx, down_ch, up_idx, up_ch = _insert_channels(tuple(unet.config.block_out_channels))
        self.cross_blocks = nn.ModuleList([make_block(mode, c, cond_dim, heads) for c in down_ch + up_ch])
        self._ctx: tuple[torch.Tensor, int] | None = None
        for k, i in enumerate(down_idx):
            unet.down_blocks[i].register_forward_hook(self._make_hook(k, is_down=True))
        for k, i in enumerate(up_idx):
            unet.up_blocks[i].register_forward_hook(self._make_hook(len(down_idx) + k, is_down=False))

    def _make_hook(self, k: int, is_down: bool):
        # a partial of a bound method (not a closure) so copy.deepcopy re-binds the hook to the copy
        return functools.partial(self._hook, k, is_down)

    def _hook(self, k: int, is_down: bool, module, args, output):
        if self._ctx is None:
            raise RuntimeError("joint U-Net blocks called outside JointUNet.forward")
        cond, frames = self._ctx
        if is_down:
            h, res = output
            return self._apply_block(k, h, cond, frames), res
        return self._apply_block(k, output, cond, frames)

    def _apply_block(self, k: int, h: torch.Tensor, cond: torch.Tensor, frames: int) -> torch.Tensor:
        raise NotImplementedError

    def base_parameters(self):
        return self.unet.parameters()

    def joint_parameters(self):
        return self.cross_blocks.parameters()


class JointVideoUNet(_JointUNetBase):
    """video_unet: sample (B, C, F, h, w), timestep (B,), text_embeds (B, L, D), cross_features (B, T_a, D_a)."""

    def __init__(self, unet: UNetMotionModel, cond_dim: int, mode: str = "cmcpe", heads: int = 4):
        super().__init__(unet, cond_dim, mode, heads)

    def _apply_block(self, k, h, cond, frames):
        bf, c, hh, ww = h.shape  # (B*F, C, H, W)
        x = h.reshape(bf // frames, frames, c, hh * ww).permute(0, 2, 1, 3)  # (B, C, F, H*W)
        x = self.cross_blocks[k](x, cond)
        return x.permute(0, 2, 1, 3).reshape(bf, c, hh, ww)

    def forward(self, sample, timestep, text_embeds, cross_features):
        frames = sample.shape[2]
        # UNetMotionModel wants text repeated per frame (batch * frames), as diffusers' AnimateDiff pipeline does
        ehs = text_embeds.repeat_interleave(frames, dim=0)
        self._ctx = (cross_features, frames)
        try:
            return self.unet(sample, timestep, encoder_hidden_states=ehs).sample
        finally:
            self._ctx = None

    def motion_parameters(self):
        return (p for n, p in self.unet.named_parameters() if "motion_modules" in n)


class JointAudioUNet(_JointUNetBase):
    """audio_unet: sample (B, C, T, m) mel latent (time on axis 2), timestep (B,), text_embeds (B, L, D),
    cross_features (B, F, D_v). text_mode 'cross_attention' feeds token embeddings to cross-attention;
    'class_embedding' (AudioLDM) feeds the first (pooled) vector as class_labels."""

    def __init__(self, unet: UNet2DConditionModel, cond_dim: int, mode: str = "cmcpe", heads: int = 4,
                 text_mode: str = "cross_attention"):
        super().__init__(unet, cond_dim, mode, heads)
        if text_mode not in ("cross_attention", "class_embedding"):
            raise ValueError(f"unknown text_mode {text_mode!r}")
        self.text_mode = text_mode

    def _apply_block(self, k, h, cond, frames):
        return self.cross_blocks[k](h, cond)  # (B, C, T, m) is already (B, C, T, S)

    def forward(self, sample, timestep, text_embeds, cross_features):
        self._ctx = (cross_features, sample.shape[2])
        try:
            if self.text_mode == "class_embedding":
                return self.unet(sample, timestep, encoder_hidden_states=None,
                                 class_labels=text_embeds[:, 0]).sample
            return self.unet(sample, timestep, encoder_hidden_states=text_embeds).sample
        finally:
            self._ctx = None
