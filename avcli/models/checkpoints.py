"""Reading diffusers / transformers checkpoint folders without running their loaders.

Where a component's config and weights are (pipeline folders, Hugging Face cache folders, sharded files), and the
pickle policy: safetensors always; pickled files (.ckpt .bin .pt .pth) only when the caller allows them, and then only
through `torch.load(weights_only=True)`, which unpickles tensors and plain containers and nothing else.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from avcli.errors import UsageError

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")
SAFE_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
              "model.fp16.safetensors")
PICKLE_NAMES = ("diffusion_pytorch_model.bin", "pytorch_model.bin", "diffusion_pytorch_model.fp16.bin",
                "pytorch_model.fp16.bin")
# buffers a checkpoint may carry or lack depending on the library version that wrote it
OPTIONAL_SUFFIXES = ("position_ids", "token_type_ids")


def resolve_folder(path: Path) -> Path:
    """A pipeline (or component) folder from a path, an HF-cache repo folder (models--org--name) or a snapshot."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if not (path / "snapshots").is_dir():
        return path
    ref = path / "refs" / "main"
    if ref.is_file() and (path / "snapshots" / ref.read_text().strip()).is_dir():
        return path / "snapshots" / ref.read_text().strip()
    snaps = sorted(p for p in (path / "snapshots").iterdir() if p.is_dir())
    if len(snaps) == 1:
        return snaps[0]
    raise UsageError(f"{path}: Hugging Face cache folder with {len(snaps)} snapshots and no refs/main; "
                     f"pass one of its snapshots/<hash> folders")


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object")
    return data


def refuse_pickle(path: Path, allow_pickle: bool) -> None:
    if Path(path).suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise UsageError(f"{path}: pickled checkpoint; unpickling can run arbitrary code, so avgen does not load it "
                         f"by default. Convert it to .safetensors, or pass --allow-pickle to read it with "
                         f"torch.load(weights_only=True) (tensors only)")


def _shards(index: Path) -> list[Path]:
    weight_map = read_json(index).get("weight_map", {})
    if not weight_map:
        raise UsageError(f"{index}: no weight_map")
    return [index.parent / f for f in dict.fromkeys(weight_map.values())]


def weight_files(folder: Path, allow_pickle: bool) -> list[Path]:
    """The weight file(s) of one component folder: safetensors first (plain, fp16 variant or sharded), else a
    pickled file (refused unless allowed)."""
    for name in SAFE_NAMES:
        if (folder / name).is_file():
            return [folder / name]
    for index in sorted(folder.glob("*.safetensors.index.json")):
        return _shards(index)
    safe = sorted(folder.glob("*.safetensors"))
    if safe:
        return safe[:1]
    pickled = [folder / n for n in PICKLE_NAMES if (folder / n).is_file()]
    pickled += sorted(p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p not in pickled)
    indexes = sorted(folder.glob("*.bin.index.json"))
    files = _shards(indexes[0]) if indexes else pickled[:1]
    if not files:
        raise UsageError(f"{folder}: no weights (.safetensors) in this folder")
    refuse_pickle(files[0], allow_pickle)
    return files


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: not a plain tensor checkpoint (torch.load weights_only=True: {first})") from None
    for key in ("state_dict", "module"):  # training checkpoints wrap the weights
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UsageError(f"{path}: does not hold a flat dict of tensors")
    return obj


def load_weights(files: list[Path], allow_pickle: bool) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) checkpoint, keyed as written."""
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        if not Path(f).is_file():
            raise UsageError(f"{f}: weights file not found")
        if Path(f).suffix.lower() == ".safetensors":
            try:
                sd.update(load_file(str(f)))
            except (SafetensorError, OSError, ValueError) as exc:
                raise UsageError(f"{f}: not a readable safetensors file ({exc})") from None
        else:
            refuse_pickle(f, allow_pickle)
            if Path(f).suffix.lower() not in PICKLE_SUFFIXES:
                raise UsageError(f"{f}: unknown weights format (expected .safetensors)")
            sd.update(_torch_load(f))
    return sd


def _align_prefix(sd: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Checkpoints of one class differ by a leading 'text_model.' across transformers versions: pick the keying
    that matches the module best."""
    best, hits = sd, len(expected & sd.keys())
    for prefix in ("text_model.", "model."):
        for cand in ({(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()},
                     {prefix + k: v for k, v in sd.items()}):
            n = len(expected & cand.keys())
            if n > hits:
                best, hits = cand, n
    return best


def load_into(module: nn.Module, sd: dict[str, torch.Tensor], what: str) -> int:
    """Copy a checkpoint's tensors into a module built from its config; every mismatch named. Returns the number
    of tensors loaded."""
    if any(k.startswith("model.diffusion_model.") for k in sd):
        raise UsageError(f"{what}: an original (LDM/CompVis) checkpoint, not diffusers format; convert it first "
                         f"(e.g. diffusers' from_single_file, then save_pretrained)")
    target = module.state_dict()
    sd = _align_prefix(sd, set(target))
    if hasattr(module, "_fix_state_dict_keys_on_load"):  # diffusers: pre-0.14 attention key names
        sd = module._fix_state_dict_keys_on_load(dict(sd))
    missing = [k for k in target if k not in sd and not k.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [k for k in sd if k not in target and not k.endswith(OPTIONAL_SUFFIXES)]
    wrong = [k for k in target if k in sd and tuple(sd[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                parts.append(f"{label} {keys[0]}" + (f" (+{len(keys) - 1} more)" if len(keys) > 1 else ""))
        if wrong:
            k = wrong[0]
            parts.append(f"{k} is {tuple(sd[k].shape)}, the config needs {tuple(target[k].shape)}")
        raise UsageError(f"{what}: weights do not fit its config: {'; '.join(parts)}")
    module.load_state_dict({k: sd[k] for k in target if k in sd}, strict=False)
    return sum(1 for k in target if k in sd)
