"""Latent cache for joint training: each data file's windows encoded once through the VAEs, and its caption once
through the text encoders, stored as safetensors under <cache>/latents/.

A cache entry's name hashes the file's identity and the geometry (as the decoded-frames cache does), its caption,
and a fingerprint of everything the encoding depends on: the sha256 of the VAE encoder and text encoder weights
listed in bundle.json, the VAE configs (scaling factor included), the media section (mel normalisation) and the
text section. Retraining a VAE therefore re-encodes; joint training, which changes none of these, never does.
Later runs read only these files: no ffmpeg, no VAE, no text encoder.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from avcli.data.folder import Item
from avcli.models.joint import Geometry, JointModel
from avcli.training.dataset import clip_key, decode_file

ENCODERS = ("video_vae_encoder", "audio_vae_encoder", "text_encoder_video", "text_encoder_audio")


@dataclass
class LatentSet:
    video: torch.Tensor  # (N, C, F, h, w)
    audio: torch.Tensor  # (N, C, T, m)
    text_video: torch.Tensor  # (files, L, D) one caption per file
    text_audio: torch.Tensor  # (files, L, D)
    owner: torch.Tensor  # (N,) int64: the file (row of text_*) each window comes from
    empty_video: torch.Tensor  # (1, L, D) the empty prompt, for CFG dropout
    empty_audio: torch.Tensor
    files: list[str]

    def __len__(self) -> int:
        return len(self.files)


def frames_tensor(frames: np.ndarray) -> torch.Tensor:
    """(N, F, H, W, 3) uint8 -> (N, 3, F, H, W) float in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def mels(model: JointModel, audio: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.normalize_mel(model.logmel(torch.from_numpy(audio[i:i + 32])))
                          for i in range(0, len(audio), 32)])[:, None]  # (N, 1, T, M)


def encoder_fingerprint(manifest: dict) -> str:
    files, comps = manifest.get("files", {}), manifest["components"]
    parts = {"weights": {n: files[n].get("sha256") for n in ENCODERS if n in files},
             "video_vae": comps["video_vae"]["config"], "audio_vae": comps["audio_vae"]["config"],
             "media": manifest["media"], "text": manifest["text"]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def entry_path(root: Path, item: Item, geo: Geometry, fingerprint: str) -> Path:
    raw = json.dumps([clip_key(Path(item.path), geo), item.caption, fingerprint])
    return root / f"{hashlib.sha256(raw.encode()).hexdigest()[:24]}.safetensors"


def _save(tensors: dict[str, torch.Tensor], path: Path, **metadata: str) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")  # unique: several processes may encode one file
    save_file({k: v.detach().cpu().float().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)


@torch.no_grad()
def _encode(model: JointModel, todo: list[tuple[Item, Path]], empty: Path, geo: Geometry, cache: Path,
            device: torch.device, progress: bool) -> None:
    from rich.progress import track

    from avcli.pipelines.common import PromptEncoder, torch_components

    prompts = PromptEncoder(model, torch_components(model))
    if not empty.exists():
        _save({"text_video": prompts.encode([""], "video"), "text_audio": prompts.encode([""], "audio")}, empty)
    encoders = (model.video_vae_encoder, model.audio_vae_encoder)
    for enc in encoders:
        enc.to(device)
    try:
        for item, out in track(todo, description="encoding latents", disable=not progress, transient=True):
            fr, au, _ = decode_file(Path(item.path), geo, cache)
            video = torch.cat([model.video_vae_encoder(frames=frames_tensor(fr[i:i + 4]).to(device))
                               for i in range(0, len(fr), 4)])
            mel = mels(model, au)
            audio = torch.cat([model.audio_vae_encoder(mel=mel[i:i + 16].to(device))
                               for i in range(0, len(mel), 16)])
            _save({"video": video, "audio": audio, "text_video": prompts.encode([item.caption], "video"),
                   "text_audio": prompts.encode([item.caption], "audio")}, out,
                  file=str(item.path), caption=item.caption)
    finally:
        for enc in encoders:
            enc.to("cpu")


def cached_latents(model: JointModel, items: list[Item], geo: Geometry, cache: Path,
                   device: torch.device | str = "cpu", progress: bool = True) -> LatentSet:
    """Latents and text embeddings of every window of `items`, encoding only what the cache lacks."""
    fingerprint = encoder_fingerprint(model.manifest)
    root = cache / "latents"
    root.mkdir(parents=True, exist_ok=True)
    paths = [entry_path(root, it, geo, fingerprint) for it in items]
    empty = root / f"empty-{fingerprint}.safetensors"
    todo = [(it, p) for it, p in zip(items, paths) if not p.exists()]
    if todo or not empty.exists():
        _encode(model, todo, empty, geo, cache, torch.device(device), progress)
    entries = [load_file(str(p)) for p in paths]
    windows = [len(e["video"]) for e in entries]
    e0 = load_file(str(empty))
    return LatentSet(
        video=torch.cat([e["video"] for e in entries]), audio=torch.cat([e["audio"] for e in entries]),
        text_video=torch.cat([e["text_video"] for e in entries]),
        text_audio=torch.cat([e["text_audio"] for e in entries]),
        owner=torch.repeat_interleave(torch.arange(len(entries)), torch.tensor(windows)),
        empty_video=e0["text_video"], empty_audio=e0["text_audio"],
        files=[str(it.path) for it, n in zip(items, windows) for _ in range(n)])
