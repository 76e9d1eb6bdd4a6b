"""Model bundles: a directory with a versioned `bundle.json` manifest and one `.safetensors` file per component.

Loading never unpickles: weights come through safetensors only, and the manifest may only name classes from a
fixed allow-list. A wrong, partial or corrupt bundle fails with a BundleError naming what is wrong.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from avcli.errors import BundleError
from avcli.manifest import MANIFEST_FORMAT
from avcli.models.joint import JointModel, tokenizer_dir

# re-exported: the manifest side lives in avcli.manifest (no torch there)
from avcli.manifest import (BUNDLES_DIR, DEFAULT_BUNDLE, KNOWN_CLASSES, MANIFEST, REQUIRED_KEYS,  # noqa: F401
                            REQUIRED_MEDIA, bundle_file, read_manifest, resolve_bundle, validate_manifest)
from export.files import sha256_file


def _vae_part(vae_sd: dict, prefixes: tuple[str, ...]) -> dict:
    return {k: v for k, v in vae_sd.items() if k.startswith(prefixes)}


def component_state_dicts(model: JointModel) -> dict[str, dict[str, torch.Tensor]]:
    """Each stored component's tensors, keyed as they load back into that component's module."""
    text = model.manifest["text"]
    out: dict[str, dict[str, torch.Tensor]] = {}
    if text["video"].get("source") == "bundle":
        out["text_encoder_video"] = model.text_encoder_video.state_dict()
    if text["audio"].get("source") == "bundle" and "shared_with" not in text["audio"]:
        out["text_encoder_audio"] = model.text_encoder_audio.state_dict()
    for name in ("video_connector", "audio_connector", "video_unet", "audio_unet", "vocoder"):
        out[name] = getattr(model, name).state_dict()
    vsd, asd = model.video_vae.state_dict(), model.audio_vae.state_dict()
    out["video_vae_encoder"] = _vae_part(vsd, ("encoder.", "quant_conv."))
    out["video_vae_decoder"] = _vae_part(vsd, ("decoder.", "post_quant_conv."))
    out["audio_vae_encoder"] = _vae_part(asd, ("encoder.", "quant_conv."))
    out["audio_vae_decoder"] = _vae_part(asd, ("decoder.", "post_quant_conv."))
    return out


_sha256 = sha256_file


def component_metadata(name: str) -> dict[str, str]:
    """The safetensors metadata of a bundle file: ONE key. safetensors keeps metadata in a hash map, so two keys
    are written in either order, and the same weights would get another sha256 on every save (the latent cache
    and the export cache key on those hashes)."""
    return {MANIFEST_FORMAT: name}


def _bundle_folders(model: JointModel, folders: dict[str, Path] | None) -> dict[str, Path]:
    """Folders a bundle carries beside its weights (tokenizers named by a text spec, relative to the bundle):
    from `folders` if given there, else from the model's own bundle."""
    text, out = model.manifest["text"], {}
    for key in ("video", "audio"):
        tok = text[key].get("tokenizer")
        if not tok or tok.startswith("package:"):
            continue
        if Path(tok).is_absolute() or ".." in Path(tok).parts:
            raise BundleError(f"tokenizer folder {tok!r} must be a plain name inside the bundle")
        src = (folders or {}).get(tok) or tokenizer_dir(text[key], getattr(model, "bundle_path", None))
        if not Path(src).is_dir():
            raise BundleError(f"tokenizer folder {tok!r} of text_encoder_{key} not found (looked in {src})")
        out[tok] = Path(src)
    return out


def _copy_folder(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)  # follows symlinks (HF-cache snapshots link into blobs/)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def save_bundle(model: JointModel, path: str | os.PathLike, dtype: str = "float32", extra: dict | None = None,
                folders: dict[str, Path] | None = None) -> Path:
    """Write the bundle to `path` (created, or replaced atomically if it is an existing bundle). `folders` maps
    bundle-relative folder names (a text spec's tokenizer) to where their files are now."""
    if dtype not in ("float32", "float16"):
        raise ValueError("dtype must be float32 or float16")
    carried = _bundle_folders(model, folders)
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not (path / MANIFEST).exists():
        raise BundleError(f"{path}: exists and is not a bundle; refusing to write into it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o755)
    manifest = copy.deepcopy(model.manifest)
    manifest.update(extra or {})
    manifest["files"] = {}
    for name, sd in component_state_dicts(model).items():
        tensors = {k: (v.half() if dtype == "float16" and v.is_floating_point() else v).contiguous()
                   for k, v in sd.items()}
        file = tmp / f"{name}.safetensors"
        save_file(tensors, str(file), metadata=component_metadata(name))
        file.chmod(0o644)
        manifest["files"][name] = {"file": file.name, "bytes": file.stat().st_size, "sha256": _sha256(file),
                                   "dtype": dtype}
    for name, src in carried.items():
        _copy_folder(src, tmp / name)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)
    return path


STAGE_COMPONENTS = {
    "video_vae": ("video_vae_encoder", "video_vae_decoder"), "audio_vae": ("audio_vae_encoder", "audio_vae_decoder"),
}


def update_bundle(model: JointModel, path: str | os.PathLike, components: list[str],
                  manifest_paths: list[tuple[str, ...]] = ()) -> None:
    """Rewrite only some components' weights (and some manifest values) of an existing bundle, under a file lock,
    so training stages of different components can run in parallel on one bundle."""
    import fcntl

    path = Path(path)
    sds = component_state_dicts(model)
    with open(path / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = json.loads((path / MANIFEST).read_text())
        for name in components:
            entry = manifest["files"][name]
            dtype = entry.get("dtype", "float32")
            tensors = {k: (v.half() if dtype == "float16" and v.is_floating_point() else v).detach().contiguous()
                       for k, v in sds[name].items()}
            tmp = path / f".{name}.tmp.safetensors"
            save_file(tensors, str(tmp), metadata=component_metadata(name))
            tmp.chmod(0o644)
            os.replace(tmp, path / entry["file"])
            f = path / entry["file"]
            manifest["files"][name] = {**entry, "bytes": f.stat().st_size, "sha256": _sha256(f)}
        for keys in manifest_paths:  # copy selected values from the in-memory manifest
            src, dst = model.manifest, manifest
            for k in keys[:-1]:
                src, dst = src[k], dst[k]
            dst[keys[-1]] = copy.deepcopy(src[keys[-1]])
        tmp = path / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path / MANIFEST)


def _load_tensors(path: Path, name: str, entry: dict, verify: bool) -> dict[str, torch.Tensor]:
    file = bundle_file(path, entry["file"], f"component {name}")
    if verify and not entry.get("sha256"):
        raise BundleError(f"{path}: component {name} has no sha256 in the manifest (refused: its weights cannot be "
                          f"checked; re-save the bundle with avgen)")
    if not file.exists():
        raise BundleError(f"{path}: component {name} is missing its weights file {entry['file']}")
    if file.stat().st_size != entry.get("bytes", file.stat().st_size):
        raise BundleError(f"{file}: size {file.stat().st_size} bytes, manifest says {entry['bytes']} (truncated?)")
    if verify and _sha256(file) != entry["sha256"]:
        raise BundleError(f"{file}: checksum mismatch (corrupt or modified weights)")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{file}: not a readable safetensors file ({exc})") from None


def _target(model: JointModel, name: str):
    return {"video_vae_encoder": model.video_vae, "video_vae_decoder": model.video_vae,
            "audio_vae_encoder": model.audio_vae, "audio_vae_decoder": model.audio_vae}.get(name) or getattr(model, name)


def load_bundle(name_or_path: str | os.PathLike | None = None, verify: bool = True) -> JointModel:
    """Build the joint model of a bundle and load its weights (float32 in memory)."""
    path = resolve_bundle(name_or_path)
    manifest = read_manifest(path)
    try:
        model = JointModel(manifest)
    except ModuleNotFoundError as exc:
        raise BundleError(f"{path}: {exc}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise BundleError(f"{path}: component config is invalid ({type(exc).__name__}: {exc})") from None
    expected = set(component_state_dicts(model))
    files = manifest["files"]
    absent = sorted(expected - set(files))
    if absent:
        raise BundleError(f"{path}: partial bundle, no weights listed for {', '.join(absent)}")
    loaded: dict[int, set[str]] = {}
    for name in sorted(expected):
        tensors = {k: v.float() if v.is_floating_point() else v
                   for k, v in _load_tensors(path, name, files[name], verify).items()}
        target = _target(model, name)
        try:
            result = target.load_state_dict(tensors, strict=False)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise BundleError(f"{path}: weights of {name} do not fit its config ({first[-1].strip()})") from None
        if result.unexpected_keys:
            raise BundleError(f"{path}: {name} has unexpected tensors, e.g. {result.unexpected_keys[0]}")
        loaded.setdefault(id(target), set()).update(tensors)
    for name in sorted(expected):
        target = _target(model, name)
        need = set(target.state_dict())
        lacking = need - loaded.get(id(target), set())
        if lacking:
            raise BundleError(f"{path}: {name} lacks tensors, e.g. {sorted(lacking)[0]}")
    model.bundle_path = path
    return model.eval()
