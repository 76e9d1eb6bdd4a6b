"""An image-audio contrastive model for our domain: the stand-in for ImageBind in seed 002's AlignSync.

ImageBind cannot be downloaded here, so AlignSync's semantic term P(Align) (seed 002 supplement eqs. 6-9) comes from
a small model trained the way ImageBind is: normalized image embeddings k and audio embeddings q, CLIP's symmetric
contrastive loss over the (image, audio) pairs of a batch with a learned temperature (eq. 6). Negatives here are
*other* clips, the opposite of the sync classifier's, because this term is about what is seen and heard (the
object, the surface's material), not when.

    image: one 64 x 64 frame, four stride-2 convolutions, global mean, linear          -> k (DIM, unit norm)
    audio: the sync classifier's per-frame audio features of the clip (mean log-mel and its rise, (F, 128)),
           three 1-D convolutions, mean over time, linear                                -> q (DIM, unit norm)

IA(a, image) = q_a . k_image, the plain dot product of the unit vectors, as the seed's eq. 8 uses it (no
temperature): P_Align(a, v_i, v_1) = exp(IA(a, v_i)) / (exp(IA(a, v_i)) + exp(IA(a, v_1))).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

DIM = 64


class ImageAudioModel(nn.Module):
    def __init__(self, hidden: int = 64, dim: int = DIM):
        super().__init__()
        self.hidden, self.dim = hidden, dim
        chans = [3, 16, 32, 64, hidden]
        layers: list[nn.Module] = []
        for a, b in zip(chans, chans[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.GELU()]
        self.image = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(hidden, dim))
        self.audio = nn.Sequential(nn.Conv1d(128, hidden, 3, padding=1), nn.GELU(),
                                   nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU(),
                                   nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU())
        self.audio_out = nn.Linear(hidden, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's start

    def embed_images(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 or float in [0, 255] -> (N, dim) unit vectors."""
        x = frames.float().permute(0, 3, 1, 2) / 127.5 - 1.0
        return nn.functional.normalize(self.image(x), dim=-1)

    def embed_audio(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, F, 128) sync audio features -> (B, dim) unit vectors."""
        h = self.audio(feats.transpose(1, 2)).mean(dim=2)
        return nn.functional.normalize(self.audio_out(h), dim=-1)

    @torch.no_grad()
    def ia(self, audio_feats: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """IA of one audio against each frame: (F, 128), (N, H, W, 3) -> (N,) dot products in [-1, 1]."""
        self.eval()
        q = self.embed_audio(torch.from_numpy(np.ascontiguousarray(audio_feats))[None])
        k = self.embed_images(torch.from_numpy(np.ascontiguousarray(frames)))
        return (k @ q[0]).numpy()


def p_align(model: ImageAudioModel, audio_feats: np.ndarray, gen_frames: np.ndarray,
            ref_first_frame: np.ndarray) -> float:
    """Seed 002 eq. 9: P_Align averaged over the generated frames 2..b (the first, a copy of the given picture, is
    left out), each against the real first frame v_1."""
    future = gen_frames[1:] if len(gen_frames) > 1 else gen_frames
    ia = model.ia(audio_feats, np.concatenate([ref_first_frame[None], future]))
    ref, gen = float(ia[0]), ia[1:].astype(np.float64)
    return float(np.mean(1.0 / (1.0 + np.exp(ref - gen))))


def train(clips: list[tuple[np.ndarray, np.ndarray]], steps: int = 600, batch: int = 32, lr: float = 2e-3,
          seed: int = 0, hidden: int = 64) -> ImageAudioModel:
    """clips: (audio features (F, 128), frames (F, H, W, 3) uint8) per clip. Each step pairs a random frame of
    each of `batch` clips with that clip's audio; eq. 6 both ways (image -> audio and audio -> image)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ImageAudioModel(hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    batch = min(batch, len(clips))
    target = torch.arange(batch)
    for _ in range(steps):
        pick = rng.choice(len(clips), batch, replace=False)
        frames = torch.from_numpy(np.stack([clips[k][1][rng.integers(0, len(clips[k][1]))] for k in pick]))
        n = min(len(clips[k][0]) for k in pick)
        audio = torch.from_numpy(np.stack([clips[k][0][:n] for k in pick]))
        k_img, q_aud = model.embed_images(frames), model.embed_audio(audio)
        logits = model.logit_scale.clamp(max=math.log(100.0)).exp() * q_aud @ k_img.T
        loss = nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def retrieval_accuracy(model: ImageAudioModel, clips: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Held-out audio -> image top-1 among the held-out clips (each clip's middle frame); chance = 1 / n."""
    if len(clips) < 2:
        return {"accuracy": float("nan"), "chance": float("nan"), "clips": len(clips)}
    n = min(len(a) for a, _ in clips)
    q = model.eval().embed_audio(torch.from_numpy(np.stack([a[:n] for a, _ in clips])))
    k = model.embed_images(torch.from_numpy(np.stack([f[len(f) // 2] for _, f in clips])))
    hits = (q @ k.T).argmax(dim=1) == torch.arange(len(clips))
    return {"accuracy": float(hits.float().mean()), "chance": 1.0 / len(clips), "clips": len(clips)}
