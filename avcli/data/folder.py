"""The data-folder format that training reads (for synthetic and real data alike):

    DIR/*.mp4|mov|mkv|webm     paired video + sound
    DIR/captions.jsonl         optional: {"file": "clip.mp4", "caption": "...", "weight": 2.0} per line; the
                               optional weight (> 0, default 1) makes `train joint`, `unet-video` and
                               `unet-audio` draw that file's windows that many times as often (e.g. to
                               up-weight a rare class of sound)
    DIR/events.jsonl           optional: {"file": "clip.mp4", "events": [seconds...], "attrs": {...}} per line

Without a caption line, a file's caption is its stem with _ and - read as spaces.
"""

from __future__ import annotations

import math
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
    weight: float = 1.0  # relative sampling weight in training (captions.jsonl "weight")


def _jsonl(path: Path) -> dict[str, dict]:
    return {r["file"]: r for r in read_file_rows(path, path.name, missing_ok=True)}


def read_folder(data_dir: str | Path, weights: bool = True) -> list[Item]:
    """The folder's video files with their captions, events and weights (weights=False: every weight 1, a bad one
    not checked)."""
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
        items.append(Item(f, str(cap), ev.get("events"), ev.get("attrs"),
                          _weight(caps.get(f.name, {}), d) if weights else 1.0))
    return items


def _weight(row: dict, folder: Path) -> float:
    w = row.get("weight", 1.0)
    ok = isinstance(w, (int, float)) and not isinstance(w, bool)
    try:
        ok = ok and math.isfinite(float(w)) and w > 0
    except OverflowError:  # an integer too large for a float
        ok = False
    if not ok:
        raise UsageError(f"{folder / 'captions.jsonl'}: {row.get('file')!r}: weight must be a positive number, "
                         f"got {w!r}")
    return float(w)


def parse_weight_rule(text: str) -> tuple[str, float]:
    """'REGEX=WEIGHT' -> (REGEX, WEIGHT); the last '=' splits, so a regex may hold one."""
    import re

    pattern, sep, w = text.rpartition("=")
    try:
        weight = float(w)
    except ValueError:
        weight = float("nan")
    if not sep or not pattern or not math.isfinite(weight) or weight <= 0:
        raise UsageError(f"--match {text!r}: expected REGEX=WEIGHT with a positive weight, e.g. 'metal|steel=3'")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--match {text!r}: not a regular expression ({exc})") from None
    return pattern, weight


def set_weights(data_dir: str | Path, rules: list[tuple[str, float]], dry_run: bool = False) -> list[dict]:
    """Give each video file of a data folder the weight of the first rule whose regex matches its caption as whole
    words (case-insensitive), and weight 1 (the key dropped) where none does: captions.jsonl is rewritten in place,
    atomically, with every other field and the rows of absent files kept (a file captioned by its name gets a row).
    Returns one row per rule, then the unmatched: {"match", "weight", "files"}."""
    import json
    import re

    from avcli.media.ffmpeg import atomic_path

    d = Path(data_dir)
    items = read_folder(d, weights=False)  # a bad weight already there is replaced, not refused
    path = d / "captions.jsonl"
    rows = {r["file"]: r for r in read_file_rows(path, path.name, missing_ok=True)}
    compiled = [(re.compile(rf"\b(?:{p})\b", re.IGNORECASE), w) for p, w in rules]
    counts = [0] * (len(rules) + 1)
    for it in items:
        k = next((i for i, (rx, _) in enumerate(compiled) if rx.search(it.caption)), len(rules))
        counts[k] += 1
        row = dict(rows.get(it.path.name) or {"file": it.path.name, "caption": it.caption})
        row.pop("weight", None)
        if k < len(rules) and compiled[k][1] != 1:
            row["weight"] = compiled[k][1]
        rows[it.path.name] = row
    if not dry_run:
        with atomic_path(path, overwrite=True) as tmp:
            tmp.write_text("".join(json.dumps(rows[k]) + "\n" for k in sorted(rows)))
    return ([{"match": p, "weight": w, "files": n} for (p, w), n in zip(rules, counts)]
            + [{"match": None, "weight": 1.0, "files": counts[-1]}])
