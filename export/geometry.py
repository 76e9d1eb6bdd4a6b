"""Sequence lengths and latent shapes of a bundle, derived in one place from its manifest.

Pure Python on purpose: the export descriptions, the engine-only runtime (no torch modules built) and the joint
model all read the geometry from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Geometry:
    fps: float
    frame_size: tuple[int, int]
    sample_rate: int
    hop_length: int
    n_mels: int
    duration: float
    frames: int
    mel_frames: int
    video_latent: tuple[int, int, int, int]  # (C, F, h, w)
    audio_latent: tuple[int, int, int]  # (C, T, m)
    video_factor: int
    audio_factor: int

    @property
    def samples(self) -> int:
        return self.mel_frames * self.hop_length

    @property
    def audio_latent_per_s(self) -> float:
        """Audio latent frames per second of audio: the true rate (mel frames are padded to a multiple of the
        down-sampling, so latent frames / duration is not it)."""
        return self.sample_rate / self.hop_length / self.audio_factor


def geometry(manifest: dict, duration: float | None = None, fps: float | None = None) -> Geometry:
    media = manifest["media"]
    comps = manifest["components"]
    fps = float(fps or media["fps"])
    duration = float(duration or media["duration"])
    vcfg, acfg = comps["video_vae"]["config"], comps["audio_vae"]["config"]
    fv = 2 ** (len(vcfg["block_out_channels"]) - 1)
    fa = 2 ** (len(acfg["block_out_channels"]) - 1)
    ua = 2 ** (len(comps["audio_unet"]["config"]["block_out_channels"]) - 1)
    frames = max(1, int(round(duration * fps)))
    mel_per_s = media["sample_rate"] / media["hop_length"]
    step = fa * ua  # mel frames must divide through the VAE and the U-Net down-sampling
    mel_frames = max(step, int(math.ceil(duration * mel_per_s / step)) * step)
    h, w = media["frame_size"]
    return Geometry(fps, (h, w), media["sample_rate"], media["hop_length"], media["n_mels"], duration, frames,
                    mel_frames, (vcfg["latent_channels"], frames, h // fv, w // fv),
                    (acfg["latent_channels"], mel_frames // fa, media["n_mels"] // fa), fv, fa)
