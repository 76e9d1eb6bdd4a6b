"""Trained joint weights (connectors + cross-modal blocks) on their own: save, read from a file or a bundle, load.

A connectors file is safetensors with keys as in the joint model's state dict (`video_connector.*`,
`audio_connector.*`, `video_unet.cross_blocks.*`, `audio_unet.cross_blocks.*`) and the manifest's `joint` section in
its metadata, so the same trained weights can be put onto re-imported bases.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from avcli.errors import UsageError
from avcli.models.checkpoints import PICKLE_SUFFIXES, load_weights
from avcli.models.joint import JointModel

CONNECTORS_FORMAT = "avgen-connectors"
PARTS = ("video_connector", "audio_connector", "video_unet.cross_blocks", "audio_unet.cross_blocks")


def _modules(model: JointModel) -> dict[str, torch.nn.Module]:
    return {"video_connector": model.video_connector, "audio_connector": model.audio_connector,
            "video_unet.cross_blocks": model.video_unet.cross_blocks,
            "audio_unet.cross_blocks": model.audio_unet.cross_blocks}


def joint_state_dict(model: JointModel) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v for name, m in _modules(model).items() for k, v in m.state_dict().items()}


def save_connectors(model: JointModel, path: str | Path) -> Path:
    path = Path(path)
    tensors = {k: v.detach().contiguous() for k, v in joint_state_dict(model).items()}
    save_file(tensors, str(path), metadata={"format": CONNECTORS_FORMAT, "joint": json.dumps(model.manifest["joint"]),
                                            "gamma": str(model.manifest["sampling"].get("gamma", 1.0))})
    return path


def _from_bundle(path: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    from avcli.models.bundle import read_manifest

    manifest = read_manifest(path)
    files = manifest["files"]
    out: dict[str, torch.Tensor] = {}
    for name, keep in (("video_connector", ""), ("audio_connector", ""), ("video_unet", "cross_blocks."),
                       ("audio_unet", "cross_blocks.")):
        file = path / files[name]["file"]
        try:
            with safe_open(str(file), framework="pt") as f:  # read only the cross blocks of a U-Net file
                for k in f.keys():
                    if k.startswith(keep):
                        out[f"{name}.{k}"] = f.get_tensor(k)
        except (SafetensorError, OSError) as exc:
            raise UsageError(f"{file}: not a readable safetensors file ({exc})") from None
    return out, manifest["joint"], manifest.get("sampling", {})


def read_connectors(path: str | Path, allow_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict | None,
                                                                           dict]:
    """(tensors keyed as joint_state_dict, the joint section they were trained with or None, sampling hints)."""
    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / "bundle.json").is_file():
            raise UsageError(f"{path}: --connectors takes a bundle folder or a .safetensors file")
        return _from_bundle(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such connectors file")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return load_weights([path], allow_pickle), None, {}
    if path.suffix.lower() != ".safetensors":
        raise UsageError(f"{path}: --connectors takes a bundle folder or a .safetensors file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise UsageError(f"{path}: not a readable safetensors file ({exc})") from None
    joint = json.loads(meta["joint"]) if "joint" in meta else None
    sampling = {"gamma": float(meta["gamma"])} if "gamma" in meta else {}
    return tensors, joint, sampling


def load_connectors(model: JointModel, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Put trained joint weights into a model whose bases are already loaded; any mismatch is named."""
    expected = joint_state_dict(model)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        k, more = (missing or extra)[0], len(missing) + len(extra) - 1
        what = "lacks" if missing else "has an unexpected tensor"
        raise UsageError(f"connectors from {source}: {what} {k}" + (f" (+{more} more)" if more else "")
                         + "; were they trained with another --mode or connector size?")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise UsageError(f"connectors from {source}: {k} is {tuple(tensors[k].shape)}, this model needs "
                             f"{tuple(v.shape)} (trained for other base models?)")
    for name, module in _modules(model).items():
        prefix = name + "."
        module.load_state_dict({k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)})
