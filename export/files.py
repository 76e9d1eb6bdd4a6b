"""File helpers shared by export, engines' caches and bundles (one sha256 helper for the whole project)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inside(root: str | os.PathLike, name: str) -> Path | None:
    """`root / name` when `name` is a plain relative path that stays inside `root` (symlinks resolved), else None.
    Bundles and engine folders name their files; a crafted manifest must not reach outside its folder."""
    if not isinstance(name, str) or not name or "\x00" in name:
        return None
    p = Path(name)
    if p.is_absolute() or ".." in p.parts:
        return None
    base = Path(root).resolve()
    full = (base / p).resolve()
    if full != base and base not in full.parents:
        return None
    return base / p
