"""Exportable component modules with fixed tensor signatures (names identical everywhere, see DESIGN.md).

    text_encoder_*    input_ids (B, L) int64, attention_mask (B, L) int64 -> text_embeds (B, L, D)
                      (CLAP, as AudioLDM uses it: the L2-normalised projected embedding, (B, 1, D))
    video_vae_encoder frames (B, 3, F, H, W) in [-1, 1]                 -> latent (B, C, F, h, w) (scaled)
    video_vae_decoder latent (B, C, F, h, w)                              -> frames (B, 3, F, H, W)
    audio_vae_encoder mel (B, 1, T, M) normalised log-mel                -> latent (B, C, T/f, M/f)
    audio_vae_decoder latent                                              -> mel (B, 1, T, M)
    vocoder           mel (B, T, M) natural-log mel                       -> waveform (B, T * hop)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import nn

COMPONENT_NAMES = (
    "text_encoder_video", "text_encoder_audio", "video_connector", "audio_connector", "video_unet", "audio_unet",
    "video_vae_encoder", "video_vae_decoder", "audio_vae_encoder", "audio_vae_decoder", "vocoder",
)
# which sub-state-dict of an AutoencoderKL each VAE component owns
VAE_PREFIXES = {"encoder": ("encoder.", "quant_conv."), "decoder": ("decoder.", "post_quant_conv.")}


TEXT_OUTPUTS = ("last_hidden_state", "text_embeds_normalized")


class TextEncoder(nn.Module):
    """`output` 'last_hidden_state': token embeddings (Stable Diffusion / AnimateDiff read CLIP this way);
    'text_embeds_normalized': the projected embedding, L2-normalised, as one token (AudioLDM reads CLAP this way).
    `use_attention_mask` False ignores the mask, as diffusers' SD/AnimateDiff pipelines do for CLIP (whose causal
    attention makes the padded positions' outputs part of the conditioning)."""

    def __init__(self, model: nn.Module, output: str = "last_hidden_state", use_attention_mask: bool = True):
        super().__init__()
        if output not in TEXT_OUTPUTS:
            raise ValueError(f"unknown text encoder output {output!r}; expected one of {TEXT_OUTPUTS}")
        self.model = model
        self.output = output
        self.use_attention_mask = use_attention_mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # "no mask" as all ones rather than None keeps attention_mask an input of the exported graph
        mask = attention_mask if self.use_attention_mask else torch.ones_like(attention_mask)
        out = self.model(input_ids=input_ids, attention_mask=mask)
        if self.output == "text_embeds_normalized":
            return F.normalize(out.text_embeds, dim=-1)[:, None]  # (B, 1, D)
        return out.last_hidden_state


class VideoVAEEncoder(nn.Module):
    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.encoder, self.quant_conv = vae.encoder, vae.quant_conv
        self.scaling = float(vae.config.scaling_factor)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = frames.shape
        x = frames.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)  # (B*F, 3, H, W)
        moments = self.quant_conv(self.encoder(x))
        mean = moments.chunk(2, dim=1)[0] * self.scaling  # the posterior mean: deterministic encoding
        return mean.reshape(b, f, *mean.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, C, F, h, w)


class VideoVAEDecoder(nn.Module):
    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.decoder, self.post_quant_conv = vae.decoder, vae.post_quant_conv
        self.scaling = float(vae.config.scaling_factor)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = latent.shape
        z = latent.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w) / self.scaling
        x = self.decoder(self.post_quant_conv(z))  # (B*F, 3, H, W)
        return x.reshape(b, f, *x.shape[1:]).permute(0, 2, 1, 3, 4)


class AudioVAEEncoder(nn.Module):
    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.encoder, self.quant_conv = vae.encoder, vae.quant_conv
        self.scaling = float(vae.config.scaling_factor)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(mel)).chunk(2, dim=1)[0] * self.scaling


class AudioVAEDecoder(nn.Module):
    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.decoder, self.post_quant_conv = vae.decoder, vae.post_quant_conv
        self.scaling = float(vae.config.scaling_factor)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(latent / self.scaling))


class Vocoder(nn.Module):
    """The bundle's mel to its waveform. `adapter` (avcli.models.mel_adapter.MelAdapter) runs a vocoder trained on
    another mel front end (the pretrained HiFi-GAN universal) behind the bundle's: same signature, same length."""

    def __init__(self, model: nn.Module, adapter: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.adapter = adapter

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if self.adapter is None:
            return self.model(mel)
        return self.adapter.wave_out(self.model(self.adapter.mel_in(mel)), mel.shape[1])
