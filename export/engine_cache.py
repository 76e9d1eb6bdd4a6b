"""TensorRT engine cache: a plan is reused only if everything it was built from is unchanged.

Key = sha256 over (ONNX content sha256, optimisation profile, precision, TensorRT version, GPU name, compute
capability). Beside each `<name>.<key16>.plan` lies `meta.json`-style `<name>.<key16>.meta.json` with the full
key, its parts and the plan's own sha256: a plan whose bytes changed, whose meta is missing or names another key
(stale, foreign, tampered) is rebuilt. Pure functions: testable without TensorRT or a GPU.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from export.files import sha256_file

CACHE_FORMAT = 1


@dataclass(frozen=True)
class EngineKeyParts:
    onnx_sha256: str
    profile: str  # canonical JSON of {input: [min, opt, max]}
    precision: str
    trt_version: str
    gpu_name: str
    compute_capability: str
    format: int = CACHE_FORMAT


def canonical_profile(profile: dict) -> str:
    return json.dumps({k: [list(s) for s in v] for k, v in sorted(profile.items())}, sort_keys=True,
                      separators=(",", ":"))


def key_parts(onnx_sha256: str, profile: dict, precision: str, trt_version: str, gpu_name: str,
              compute_capability: str | tuple[int, int]) -> EngineKeyParts:
    if isinstance(compute_capability, tuple):
        compute_capability = f"{compute_capability[0]}.{compute_capability[1]}"
    return EngineKeyParts(onnx_sha256, canonical_profile(profile), precision, str(trt_version), str(gpu_name),
                          str(compute_capability))


def engine_key(parts: EngineKeyParts) -> str:
    return hashlib.sha256(json.dumps(asdict(parts), sort_keys=True).encode()).hexdigest()


_sha256 = sha256_file


@dataclass(frozen=True)
class CacheEntry:
    plan: Path
    meta: Path


def entry_paths(cache_dir: str | os.PathLike, name: str, key: str) -> CacheEntry:
    # names built by appending: Path.with_suffix would replace the ".<key16>" part and collapse every key
    # (fp16 and fp32, two profiles) onto one "<name>.plan"
    base = Path(cache_dir) / f"{name}.{key[:16]}"
    return CacheEntry(Path(str(base) + ".plan"), Path(str(base) + ".meta.json"))


def check_entry(entry: CacheEntry, key: str) -> tuple[bool, str]:
    """(valid, reason). Valid only when the plan exists, the meta names this key, and the plan's sha matches."""
    if not entry.plan.exists():
        return False, "no plan"
    if not entry.meta.exists():
        return False, "plan without meta.json (foreign or interrupted build)"
    try:
        meta = json.loads(entry.meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False, "unreadable meta.json"
    if meta.get("key") != key:
        return False, "stale: built from a different ONNX, profile, precision, TensorRT or GPU"
    if meta.get("plan_sha256") != _sha256(entry.plan):
        return False, "tampered: plan bytes do not match meta.json"
    return True, "cached"


def write_entry(entry: CacheEntry, key: str, parts: EngineKeyParts, plan_bytes: bytes, extra: dict | None = None
                ) -> None:
    entry.plan.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(entry.plan) + ".tmp")
    tmp.write_bytes(plan_bytes)
    os.replace(tmp, entry.plan)
    meta = {"key": key, "parts": asdict(parts), "plan_sha256": hashlib.sha256(plan_bytes).hexdigest(),
            "plan_bytes": len(plan_bytes), **(extra or {})}
    tmp = Path(str(entry.meta) + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, entry.meta)


def lookup(cache_dir, name: str, parts: EngineKeyParts, force: bool = False) -> tuple[CacheEntry, str, bool, str]:
    """(entry, key, valid, reason): whether a build is needed for these parts."""
    key = engine_key(parts)
    entry = entry_paths(cache_dir, name, key)
    if force:
        return entry, key, False, "forced rebuild"
    valid, reason = check_entry(entry, key)
    return entry, key, valid, reason
