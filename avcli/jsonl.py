"""JSON Lines, read in one place: the per-clip files of a data folder (captions.jsonl, events.jsonl: one object a
line with a "file" key) and the row files of batches (foley jobs, generate prompts). Errors name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

from avcli.errors import UsageError


def parse_jsonl(text: str, where, *, comments: bool = False, tolerant: bool = False) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line of `text` (and not a # line when `comments`). A line that is
    not a JSON object is a UsageError naming `where`:line, or skipped when `tolerant` (a file an interrupted run
    may have left half written)."""
    rows: list[tuple[int, dict]] = []
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or (comments and s.startswith("#")):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if tolerant:
                continue
            raise UsageError(f"{where}:{i}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            if tolerant:
                continue
            raise UsageError(f"{where}:{i}: each line must be a JSON object")
        rows.append((i, obj))
    return rows


def read_file_rows(path, what: str, *, missing_ok: bool = False, tolerant: bool = False) -> list[dict]:
    """The rows of a per-clip file (captions.jsonl, events.jsonl), each an object with a "file" key. A missing file
    is a UsageError naming `what`, or no rows when `missing_ok`."""
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return []
        raise UsageError(f"{path}: {what} file not found")
    rows = []
    for i, obj in parse_jsonl(path.read_text(encoding="utf-8"), path, tolerant=tolerant):
        if "file" not in obj:
            if tolerant:
                continue
            raise UsageError(f"{path}:{i}: each line must be a JSON object with a \"file\" key")
        rows.append(obj)
    return rows
