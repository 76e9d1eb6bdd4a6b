"""The two exportable U-Net components: a diffusers base U-Net plus its four cross-modal blocks.

Blocks sit after each of the last two down blocks and the first two up blocks (seed 000 A.2). They are attached
with forward hooks, so the base U-Net's own modules and state dict stay exactly those of the base model.

The video U-Net can also run seed 002's first-frame attention (FF-Attn, `first_frame_attn`): every frame's spatial
self-attention takes its keys and values from its own tokens *and* the first frame's, through the base's own
projections (no new weights; the motion modules are what training adapts to it). And seed 002's FF-Conv
(`first_frame_conv`): the first frame's input latent joins every frame's input, as if concatenated to its channels
ahead of `conv_in`; the new input channels' weights (`ff_conv`) start at zero, so the U-Net computes what it did
before until training moves them.
"""

from __future__ import annotations

import functools

import torch
from diffusers import UNet2DConditionModel, UNetMotionModel
from diffusers.models.attention_processor import AttnProcessor2_0
from torch import nn

from avcli.models.cmcpe import make_block


def _insert_channels(block_out_channels: tuple[int, ...]) -> tuple[list[int], list[int], list[int], list[int]]:
    """Indices and channel widths of the down/up blocks that get a cross-modal block."""
    n = len(block_out_channels)
    down_idx = list(range(max(0, n - 2), n))
    up_idx = list(range(min(2, n)))
    rev = list(reversed(block_out_channels))
    return down_idx, [block_out_channels[i] for i in down_idx], up_idx, [rev[i] for i in up_idx]


class _FrameCount:
    """The frame count of the current video U-Net call, shared by its first-frame attention processors."""

    n = 1


class FirstFrameAttnProcessor(AttnProcessor2_0):
    """Seed 002's FF-Attn for a spatial self-attention over one frame's tokens, (B*F, N, C): the key/value set K is
    the frame's own N tokens plus the first frame's N tokens. For frame 0 the set is its own tokens twice, which
    gives exactly its plain self-attention."""

    def __init__(self, frames: _FrameCount):
        super().__init__()
        self.frames = frames

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        f = self.frames.n
        if encoder_hidden_states is None and f > 1 and hidden_states.ndim == 3:
            bf, n, c = hidden_states.shape
            first = hidden_states.reshape(bf // f, f, n, c)[:, :1].expand(-1, f, -1, -1).reshape(bf, n, c)
            encoder_hidden_states = torch.cat([hidden_states, first], dim=1)
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)


def _is_spatial_self_attention(name: str) -> bool:
    """attn1 of the spatial transformers (`...attentions.i...`), not of the motion modules (temporal attention)."""
    return ".attentions." in f".{name}" and name.endswith("attn1.processor")


class FirstFrameConv(nn.Module):
    """Seed 002's FF-Conv beside a U-Net's `conv_in`: conv_in(x_f) + ff(x_0) for every frame f, which is conv_in
    applied to [x_f, x_0] concatenated along channels with the extra input channels' weights in `ff`. Zero at
    first (the base's prediction is unchanged), and without a bias (conv_in keeps its own)."""

    def __init__(self, conv_in: nn.Conv2d):
        super().__init__()
        self.conv = nn.Conv2d(conv_in.in_channels, conv_in.out_channels, conv_in.kernel_size,
                              stride=conv_in.stride, padding=conv_in.padding, bias=False)
        nn.init.zeros_(self.conv.weight)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x: conv_in's input (B*F, C, h, w), frame-major per sample; returns ff(x_0) for each of the B*F rows."""
        bf = x.shape[0]
        first = x.reshape(bf // frames, frames, *x.shape[1:])[:, :1].expand(-1, frames, *([-1] * (x.dim() - 1)))
        return self.conv(first.reshape(x.shape))


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

    def __init__(self, unet: UNetMotionModel, cond_dim: int, mode: str = "cmcpe", heads: int = 4,
                 first_frame_attn: bool = False, first_frame_conv: bool = False):
        super().__init__(unet, cond_dim, mode, heads)
        self._frames = _FrameCount()
        self.first_frame_attn = False
        if first_frame_attn:
            self.set_first_frame_attn(True)
        self.ff_conv: FirstFrameConv | None = None
        if first_frame_conv:
            self.add_first_frame_conv()

    @property
    def first_frame_conv(self) -> bool:
        return self.ff_conv is not None

    def add_first_frame_conv(self) -> None:
        """Give the video U-Net seed 002's FF-Conv (zero-initialised, so its prediction is unchanged)."""
        if self.ff_conv is not None:
            return
        conv_in = self.unet.conv_in
        self.ff_conv = FirstFrameConv(conv_in).to(conv_in.weight.device, conv_in.weight.dtype)
        conv_in.register_forward_hook(self._ff_conv_hook)

    def _ff_conv_hook(self, module, args, output):
        return output + self.ff_conv(args[0], self._frames.n)

    def set_first_frame_attn(self, on: bool) -> None:
        """Switch seed 002's FF-Attn on (or back to plain spatial self-attention) in every spatial transformer."""
        procs = {}
        for name, proc in self.unet.attn_processors.items():
            if _is_spatial_self_attention(name):
                proc = FirstFrameAttnProcessor(self._frames) if on else AttnProcessor2_0()
            procs[name] = proc
        self.unet.set_attn_processor(procs)
        self.first_frame_attn = on

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
        self._frames.n = frames
        try:
            return self.unet(sample, timestep, encoder_hidden_states=ehs).sample
        finally:
            self._ctx = None

    def joint_parameters(self):
        yield from self.cross_blocks.parameters()
        if self.ff_conv is not None:
            yield from self.ff_conv.parameters()

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
