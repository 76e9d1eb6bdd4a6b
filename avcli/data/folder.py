"""The data-folder format that training reads (for synthetic and real data alike):

    DIR/*.mp4|mov|mkv|webm     paired video + sound
    DIR/captions.jsonl         optional: {"file": "clip.mp4", "caption": "..."} per line
    DIR/events.jsonl           optional: {"file": "clip.mp4", "events": [seconds...], "attrs": {...}} per line

Without a caption line, a file's caption is its stem with _ and - read as spaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avcli.errors import UsageError
from avcli.jsonl import read_file_rows
from avcli.media.container import VIDEO_EXTS


@dataclass(frozen=True)
class Item:
    path: Path
    caption: str
    events: list[float] | None = None
    attrs: dict | None = None


def _jsonl(path: Path) -> dict[str, dict]:
    return {r["file"]: r for r in read_file_rows(path, path.name, missing_ok=True)}


def read_folder(data_dir: str | Path) -> list[Item]:
    d = Path(data_dir)
    if not d.is_dir():
        raise UsageError(f"{d}: data folder not found")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in VIDEO_EXTS and not p.name.startswith("."))
    if not files:
        raise UsageError(f"{d}: no video files ({', '.join(VIDEO_EXTS)})")
    caps, evs = _jsonl(d / "captions.jsonl"), _jsonl(d / "events.jsonl")
    items = []
    for f in files:
        cap = caps.get(f.name, {}).get("caption") or f.stem.replace("_", " ").replace("-", " ")
        ev = evs.get(f.name, {})
        items.append(Item(f, str(cap), ev.get("events"), ev.get("attrs")))
    return items
