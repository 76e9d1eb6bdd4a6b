"""Batch machinery for media-in/media-out commands (foley first): input discovery, job files, output naming,
resumable runs that skip finished outputs, per-item failures that do not stop the batch, and a JSON report.

Nothing here knows about the model: `run_items` takes a `process(item)` callable. An item is "done" when its
output exists, so a re-run (or a run after Ctrl-C) resumes where the last one stopped; writers are atomic, so an
existing output is always a complete one.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from avcli.errors import AvgenError, UsageError

from avcli.media.container import CONTAINERS, VIDEO_EXTS

OUTPUT_EXTS = tuple(CONTAINERS)  # the containers foley can write
JOB_FIELDS = ("input", "output", "prompt", "negative_prompt", "seed", "start", "duration")

STATUS_OK, STATUS_SKIPPED, STATUS_FAILED, STATUS_NOT_RUN = "ok", "skipped", "failed", "not run"


@dataclass
class Item:
    """One output to produce. `input_error` is set when the input was refused before any work (preflight)."""

    input: Path
    output: Path
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    start: float = 0.0
    duration: float | None = None
    sample: int = 0  # 0-based variation index (seed offset)
    input_error: str | None = None
    plan: object = None  # how the output is muxed (foley: avcli.media.container.MuxPlan), set by the preflight


@dataclass
class ItemResult:
    input: str
    output: str
    status: str
    seconds: float = 0.0
    reason: str = ""
    extra: dict = field(default_factory=dict)


def _is_own_output(p: Path, tag: str) -> bool:
    """`clip.foley.mp4` / `clip.foley_2.mp4`: results of an earlier run, never inputs of a directory scan."""
    return re.search(rf"\.{re.escape(tag)}(_\d+)?$", p.stem) is not None


def discover_inputs(inputs: Iterable[Path], recursive: bool = False, tag: str = "foley",
                    exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """Expand files and folders into (video file, folder it is relative to) pairs, sorted within each folder.

    Named files are taken as given (checked later, one by one); folders contribute files with a video extension
    (descending with `recursive`), except earlier outputs (`*.<tag>.mp4`) and anything under `exclude`."""
    found: list[tuple[Path, Path]] = []
    for raw in inputs:
        p = Path(raw)
        if not p.is_dir():
            found.append((p, p.parent))
            continue
        try:
            entries = sorted(p.rglob("*") if recursive else p.iterdir())
        except PermissionError:
            raise UsageError(f"{p}: directory is not readable (permission denied)") from None
        except OSError as exc:
            raise UsageError(f"{p}: directory is not readable ({exc.strerror or exc})") from None
        ex = exclude.resolve() if exclude is not None else None
        videos = [f for f in entries if f.suffix.lower() in VIDEO_EXTS and f.is_file() and not f.name.startswith(".")
                  and not _is_own_output(f, tag) and not (ex is not None and ex in f.resolve().parents)]
        if not videos:
            hint = "" if recursive else " (use --recursive to look in sub-folders)"
            raise UsageError(f"{p}: no video files ({', '.join(e[1:] for e in VIDEO_EXTS)}) in this directory{hint}")
        found += [(f, p) for f in videos]
    return found


FOLEY_TAG = "foley"  # avgen foley's outputs: shot.avi -> shot.foley.avi (output_name)


def output_name(stem: str, tag: str, sample: int, num_samples: int, suffix: str = ".mp4") -> str:
    return f"{stem}.{tag}{suffix}" if num_samples == 1 else f"{stem}.{tag}_{sample + 1}{suffix}"


def source_stem(stem: str, tag: str) -> str:
    """The input's stem of an output named by `output_name` (shot.foley, shot.foley_2 -> shot); else `stem`."""
    return re.sub(rf"\.{re.escape(tag)}(_\d+)?$", "", stem)


def numbered(path: Path, sample: int, num_samples: int) -> Path:
    """An explicit output name for variation `sample`: x.mp4 -> x_1.mp4, x_2.mp4 (unchanged when only one)."""
    return path if num_samples == 1 else path.with_name(f"{path.stem}_{sample + 1}{path.suffix}")


def check_output_path(out: Path) -> None:
    if out.suffix.lower() not in OUTPUT_EXTS:
        raise UsageError(f"{out}: output must end in {', '.join(OUTPUT_EXTS)}")
    if out.is_dir():
        raise UsageError(f"{out}: is a directory; give a file name (or use --out-dir)")


def check_writable_dir(d: Path, create: bool = False) -> None:
    """A folder we may write into: exists (or can be created when `create`) and is writable."""
    probe_dir = d
    while not probe_dir.exists():
        if not create:
            raise UsageError(f"{d}: output directory does not exist")
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise UsageError(f"{probe_dir}: output location is not a directory")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UsageError(f"{probe_dir}: output directory is not writable (permission denied)")


def _coerce(row: dict, where: str) -> dict:
    out: dict = {}
    for k, v in row.items():
        if k is None:
            raise UsageError(f"{where}: more values than columns")
        key = k.strip().lower().replace("-", "_")
        if key not in JOB_FIELDS:
            raise UsageError(f"{where}: unknown column {k!r} (known: {', '.join(JOB_FIELDS)})")
        if v is None or (isinstance(v, str) and not v.strip()):
            continue
        try:
            if key == "seed":
                out[key] = int(v)
            elif key in ("start", "duration"):
                out[key] = float(v)
            else:
                out[key] = str(v).strip() if key in ("input", "output") else str(v)
        except (TypeError, ValueError):
            raise UsageError(f"{where}: {key} must be a number, got {v!r}") from None
    if "input" not in out:
        raise UsageError(f"{where}: missing 'input'")
    return out


def table_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    """(line number, raw row) of a .jsonl (one JSON object a line; blank and # lines skipped) or .csv (a header
    row; blank rows skipped) file: the one reader of row files (foley jobs, generate prompts)."""
    rows: list[tuple[int, dict]] = []
    if path.suffix.lower() == ".jsonl":
        from avcli.jsonl import parse_jsonl

        rows = parse_jsonl(text, path, comments=True)
    else:
        for i, row in enumerate(csv.DictReader(text.splitlines()), 2):
            if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                rows.append((i, row))
    return rows


def read_jobs(path: Path) -> list[dict]:
    """Rows of a jobs file (.jsonl: one JSON object a line; .csv: a header row). Relative paths in it are taken
    relative to the jobs file's folder, so a jobs file can travel with its media."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: jobs file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the jobs file ({exc})") from None
    if path.suffix.lower() in (".jsonl", ".csv"):
        rows = [_coerce(raw, f"{path}:{i}") for i, raw in table_rows(path, text)]
    else:
        raise UsageError(f"{path}: jobs file must be .jsonl or .csv")
    if not rows:
        raise UsageError(f"{path}: no jobs in the file")
    base = path.parent
    for r in rows:
        for key in ("input", "output"):
            if key in r and not Path(r[key]).is_absolute():
                r[key] = str(base / r[key])
    return rows


def mark_collisions(items: list[Item]) -> None:
    """Two items writing the same file (clip.mp4 and clip.mov in one folder): the later ones are refused."""
    seen: dict[Path, Path] = {}
    for it in items:
        key = it.output.resolve()
        if key in seen and it.input_error is None:
            it.input_error = f"output {it.output} is also the output of {seen[key]}; give distinct names (--jobs)"
        elif it.output.resolve() == it.input.resolve():
            it.input_error = "output would overwrite the input"
        else:
            seen.setdefault(key, it.input)


@contextlib.contextmanager
def _ctrl_c_deferred():
    """Hold a Ctrl-C that arrives inside the block until the block is done, then deliver it as it would have been
    (main thread only: Python runs signal handlers there). A batch's report is rewritten after every item, so a
    Ctrl-C often lands inside that write; deferred, it can neither leave the temp file behind nor lose the write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)


def write_report(path: Path, report: dict) -> None:
    """Atomic JSON write (temp file in the same folder, then rename): a report on disk is always complete, and a
    Ctrl-C during the write takes effect once it is done."""
    path = Path(path)
    with _ctrl_c_deferred():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2, default=str)
                f.write("\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


@dataclass
class BatchOutcome:
    results: list[ItemResult]
    interrupted: bool = False

    def counts(self) -> dict[str, int]:
        c = {s: 0 for s in (STATUS_OK, STATUS_SKIPPED, STATUS_FAILED, STATUS_NOT_RUN)}
        for r in self.results:
            c[r.status] = c.get(r.status, 0) + 1
        return c

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if any(r.status in (STATUS_FAILED, STATUS_NOT_RUN) for r in self.results) else 0

    def to_dict(self) -> dict:
        return {"items": [{**{k: v for k, v in asdict(r).items() if k != "extra"}, **r.extra} for r in self.results],
                "counts": self.counts(), "interrupted": self.interrupted, "exit_code": self.exit_code}


def run_items(items: list[Item], process: Callable[[Item], dict | None], overwrite: bool = False,
              on_result: Callable[[ItemResult, BatchOutcome], None] | None = None,
              on_start: Callable[[Item], None] | None = None, raise_errors: bool = False) -> BatchOutcome:
    """Run `process` on every item whose output is missing (or all, with overwrite).

    A user-facing error (AvgenError, or an OSError from the file system) fails that item and the batch goes on;
    Ctrl-C stops at the current item: it and every later one are reported "not run" (the writers leave no
    partial file), and the outcome is marked interrupted. With `raise_errors` (a single input) errors propagate."""
    outcome = BatchOutcome([])
    for i, it in enumerate(items):
        t0 = time.perf_counter()
        if it.input_error is not None:
            res = ItemResult(str(it.input), str(it.output), STATUS_FAILED, 0.0, it.input_error)
        elif it.output.exists() and not overwrite:
            res = ItemResult(str(it.input), str(it.output), STATUS_SKIPPED, 0.0, "output exists")
        else:
            try:
                if on_start is not None:
                    on_start(it)
                extra = process(it) or {}
                res = ItemResult(str(it.input), str(it.output), STATUS_OK, time.perf_counter() - t0, "", extra)
            except KeyboardInterrupt:
                outcome.interrupted = True
                outcome.results += [ItemResult(str(r.input), str(r.output), STATUS_NOT_RUN, 0.0, "interrupted")
                                    for r in items[i:]]
                outcome.results[-len(items[i:])].seconds = round(time.perf_counter() - t0, 3)
                if on_result is not None:
                    on_result(outcome.results[-1], outcome)
                return outcome
            except AvgenError as exc:
                if raise_errors:
                    raise
                res = ItemResult(str(it.input), str(it.output), STATUS_FAILED, time.perf_counter() - t0,
                                 _strip_name(str(exc), it.input))
            except OSError as exc:
                if raise_errors:
                    raise UsageError(f"{it.input}: {exc.strerror or exc}") from None
                res = ItemResult(str(it.input), str(it.output), STATUS_FAILED, time.perf_counter() - t0,
                                 f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        res.seconds = round(res.seconds, 3)
        outcome.results.append(res)
        if on_result is not None:
            on_result(res, outcome)
    return outcome


def _strip_name(msg: str, path: Path) -> str:
    """Errors start with the file name; the report has its own input column, so keep only the reason."""
    for prefix in (f"{path}: ", f"{path.resolve()}: "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg

