"""Prompt batches for `avgen generate --prompts FILE`: read rows, plan one output per clip, refuse collisions
before any work, skip finished outputs, batch rows through the networks, isolate failures, report.

    rows = read_prompts("shots.csv")                    # txt: a prompt a line; csv/jsonl: columns below
    items = plan_items(rows, out_dir, defaults)          # one Item per clip, outputs inside out_dir
    outcome = run_prompt_items(pipe, items, batch_size=4, write=...)

Columns: prompt, negative (or negative_prompt), seed, duration, output (a file name inside the output folder).
The run is resumable: an item is done when its output exists (writers are atomic), exactly as foley batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from avcli.errors import AvgenError, UsageError
from avcli.pipelines.batch import (STATUS_FAILED, STATUS_NOT_RUN, STATUS_OK, STATUS_SKIPPED, BatchOutcome,
                                   ItemResult, table_rows)
from avcli.pipelines.generate import GenerateRequest

PROMPT_FIELDS = ("prompt", "negative", "seed", "duration", "output")
_ALIASES = {"negative_prompt": "negative", "caption": "prompt", "text": "prompt"}


@dataclass
class PromptItem:
    row: int  # 1-based row (line) in the prompts file
    request: GenerateRequest  # num_samples 1, the clip's own seed
    output: Path
    error: str | None = None


def _coerce(raw: dict, where: str) -> dict:
    out: dict = {}
    for k, v in raw.items():
        if k is None:
            raise UsageError(f"{where}: more values than columns")
        key = _ALIASES.get(k.strip().lower(), k.strip().lower())
        if key not in PROMPT_FIELDS:
            raise UsageError(f"{where}: unknown column {k!r} (known: {', '.join(PROMPT_FIELDS)})")
        if v is None or (isinstance(v, str) and not v.strip() and key != "prompt"):
            continue
        out[key] = v
    if "prompt" not in out:
        raise UsageError(f"{where}: missing 'prompt' (an empty prompt is allowed: write \"\")")
    return out


def read_prompts(path: Path) -> list[tuple[int, dict]]:
    """(row number, raw row) pairs. Values are checked per row later (a bad value fails that row only)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: prompts file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the prompts file ({exc})") from None
    suffix = path.suffix.lower()
    rows: list[tuple[int, dict]] = []
    if suffix in (".jsonl", ".csv"):
        rows = [(i, _coerce(raw, f"{path}:{i}")) for i, raw in table_rows(path, text)]
    elif suffix in (".txt", ""):
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                rows.append((i, {"prompt": line.strip()}))
    else:
        raise UsageError(f"{path}: prompts file must be .txt, .csv or .jsonl")
    if not rows:
        raise UsageError(f"{path}: no prompts in the file")
    return rows


def _number(raw: dict, key: str, kind, default):
    if key not in raw:
        return default
    try:
        return kind(raw[key])
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"{key} must be {what}, got {raw[key]!r}") from None


def default_name(row: int, prompt: str, seed: int) -> str:
    """<row>_<prompt slug>_s<seed>.mp4: the row number keeps long prompts that share a beginning apart."""
    from avcli.cli.common import slug

    return f"{row:04d}_{slug(prompt or 'unconditional')}_s{seed}.mp4"


def plan_items(rows: list[tuple[int, dict]], out_dir: Path, base: GenerateRequest, num_samples: int = 1
               ) -> list[PromptItem]:
    """One item per clip (num_samples per row: seed, seed + 1, ...). A row whose values are wrong becomes an item
    with an error (reported, the others run); two items writing one file refuse the whole batch up front."""
    items: list[PromptItem] = []
    for n, raw in rows:
        err, req = None, base
        try:
            seed = _number(raw, "seed", int, base.seed)
            duration = _number(raw, "duration", float, base.duration)
            if duration is not None and not duration > 0:
                raise ValueError(f"duration must be > 0, got {duration:g}")
            req = replace(base, prompt=str(raw["prompt"]), negative_prompt=str(raw.get("negative", base.negative_prompt)),
                          seed=seed, duration=duration, num_samples=1)
        except (TypeError, ValueError) as exc:
            err = f"row {n}: {exc}"
        for k in range(num_samples):
            r = replace(req, seed=req.seed + k)
            name = raw.get("output")
            if name:
                p = Path(str(name))
                if p.is_absolute() or ".." in p.parts:
                    err = err or f"row {n}: output {name!r} must be a file name inside the output folder"
                    p = Path(f"row{n}.mp4")
                if p.suffix.lower() != ".mp4":
                    err = err or f"row {n}: output {name!r} must end in .mp4"
                out = out_dir / (p if num_samples == 1 else p.with_name(f"{p.stem}_{k + 1}{p.suffix}"))
            else:
                out = out_dir / default_name(n, r.prompt, r.seed)
            items.append(PromptItem(n, r, out, err))
    seen: dict[Path, int] = {}
    for it in items:
        key = it.output.resolve()
        if key in seen:
            raise UsageError(f"rows {seen[key]} and {it.row} both write {it.output.name}; give distinct 'output' "
                             f"names or seeds (nothing was run)")
        seen[key] = it.row
    return items


def preflight(check: Callable, items: list[PromptItem]) -> None:
    """Per-item checks before any compute: `check(duration, fps)` raises for a geometry the bundle (or its
    engines) cannot make (`pipe.checked_geometry`, or the manifest's geometry on a Ray driver)."""
    for it in items:
        if it.error is None:
            try:
                check(it.request.duration, it.request.fps)
            except AvgenError as exc:
                it.error = f"row {it.row}: {exc}"


def sidecars(save_wav: bool, save_latents: bool) -> tuple[str, ...]:
    return tuple(ext for on, ext in ((save_wav, ".wav"), (save_latents, ".latents.safetensors")) if on)


def side_path(path: Path, ext: str) -> Path:
    return path.with_name(path.stem + ext)


def refuse_sidecars(items: list[PromptItem], exts: tuple[str, ...], overwrite: bool) -> None:
    """An existing side file of a pending clip is never replaced without --overwrite: that row is refused."""
    for it in items:
        for ext in exts:
            side = side_path(it.output, ext)
            if it.error is None and side.exists() and not overwrite and not it.output.exists():
                it.error = f"row {it.row}: {side.name} already exists (use --overwrite to replace it)"


def write_clip(path: Path, clip, exts: tuple[str, ...], overwrite: bool) -> None:
    """Side files first, the video last (each atomic): an existing video means the clip is complete."""
    from avcli.media.ffmpeg import atomic_path, write_video, write_wav

    for ext in exts:
        if ext == ".wav":
            write_wav(side_path(path, ext), clip.audio, clip.sample_rate, overwrite=overwrite)
        else:
            from safetensors.torch import save_file

            with atomic_path(side_path(path, ext), overwrite=overwrite) as tmp:
                save_file({"video_latent": clip.video_latent.contiguous(),
                           "audio_latent": clip.audio_latent.contiguous()}, str(tmp), metadata={"seed": str(clip.seed)})
    write_video(path, clip.frames, clip.fps, clip.audio, clip.sample_rate, overwrite=overwrite)


class GenerateWorker:
    """A loaded pipeline for a prompts batch: `write(item, clip)` and `run(chunk)` are what the local batch and
    every Ray actor call, so a clip is the same bytes wherever it was made."""

    def __init__(self, spec, exts: tuple[str, ...] = (), overwrite: bool = False, timings=None):
        from avcli.pipelines.common import Timings

        self.exts, self.overwrite = exts, overwrite
        self.timings = timings if timings is not None else Timings()
        with self.timings.stage("load"):
            self.pipe = spec.load()

    def write(self, it: PromptItem, clip) -> dict:
        with self.timings.stage("mux"):
            write_clip(it.output, clip, self.exts, self.overwrite)
        return {"prompt": it.request.prompt, "seed": clip.seed, "bytes": it.output.stat().st_size}

    def run(self, chunk: list[PromptItem]) -> list[ItemResult]:
        """One network batch (the local batch's chunk): results in the chunk's order."""
        preflight(self.pipe.checked_geometry, chunk)  # the engines' own limits (TensorRT profiles) are known here
        got: dict[int, ItemResult] = {}
        todo = []
        for i, it in enumerate(chunk):
            if it.error is not None:
                got[i] = ItemResult(str(it.row), str(it.output), STATUS_FAILED, 0.0, it.error)
            elif it.output.exists() and not self.overwrite:
                got[i] = ItemResult(str(it.row), str(it.output), STATUS_SKIPPED, 0.0, "output exists")
            else:
                todo.append(i)
        if todo:
            _run_chunk(self.pipe, chunk, todo, self.write, None, self.timings, got.__setitem__)
        return [got[i] for i in range(len(chunk))]

    def describe(self) -> dict:
        return {"backend": self.pipe.backend, "bundle": str(self.pipe.bundle_path or "")}


def settled(items: list[PromptItem], chunks: list[list[int]]) -> dict[int, ItemResult]:
    """The rows that need no network: refused ones (failed) and finished ones (skipped), by index."""
    pending = {i for c in chunks for i in c}
    out = {}
    for idx, it in enumerate(items):
        if it.error is not None:
            out[idx] = ItemResult(str(it.row), str(it.output), STATUS_FAILED, 0.0, it.error)
        elif idx not in pending:
            out[idx] = ItemResult(str(it.row), str(it.output), STATUS_SKIPPED, 0.0, "output exists")
    return out


def pending_chunks(items: list[PromptItem], batch_size: int, overwrite: bool) -> list[list[int]]:
    """Indices of the items to make, in network batches: the same chunks locally and on Ray."""
    pending = [i for i, it in enumerate(items) if it.error is None and (overwrite or not it.output.exists())]
    return [pending[k:k + batch_size] for k in range(0, len(pending), batch_size)]


def run_prompt_items(pipe, items: list[PromptItem], write: Callable[[PromptItem, object], dict],
                     batch_size: int = 1, overwrite: bool = False, on_step=None, timings=None,
                     on_result: Callable[[ItemResult, BatchOutcome], None] | None = None) -> BatchOutcome:
    """Generate every pending item, `batch_size` clips per network call, and `write(item, clip)` each one.
    A failing chunk is retried one item at a time, so one bad row never costs its neighbours their clips."""
    outcome = BatchOutcome([])
    results: dict[int, ItemResult] = {}

    def done(idx: int, res: ItemResult) -> None:
        results[idx] = res
        outcome.results = [results[i] for i in sorted(results)]
        if on_result is not None:
            on_result(res, outcome)

    chunks = pending_chunks(items, batch_size, overwrite)
    pending = {i for c in chunks for i in c}
    for idx, res in settled(items, chunks).items():
        done(idx, res)
    try:
        for chunk in chunks:
            _run_chunk(pipe, items, chunk, write, on_step, timings, done)
    except KeyboardInterrupt:
        outcome.interrupted = True
        for idx in sorted(pending):
            if idx not in results:
                results[idx] = ItemResult(str(items[idx].row), str(items[idx].output), STATUS_NOT_RUN, 0.0,
                                          "interrupted")
        outcome.results = [results[i] for i in sorted(results)]
    return outcome


def _run_chunk(pipe, items, chunk, write, on_step, timings, done) -> None:
    t0 = time.perf_counter()
    try:
        clips = pipe.generate_batch([items[i].request for i in chunk], batch_size=len(chunk), on_step=on_step,
                                    timings=timings)
    except (AvgenError, OSError) as exc:
        if len(chunk) > 1:  # find the row that fails; the others still get their clips
            for i in chunk:
                _run_chunk(pipe, items, [i], write, on_step, timings, done)
            return
        done(chunk[0], ItemResult(str(items[chunk[0]].row), str(items[chunk[0]].output), STATUS_FAILED,
                                  time.perf_counter() - t0, str(exc)))
        return
    per = (time.perf_counter() - t0) / len(chunk)
    for i, clip in zip(chunk, clips):
        it = items[i]
        t1 = time.perf_counter()
        try:
            extra = write(it, clip) or {}
        except (AvgenError, OSError) as exc:
            done(i, ItemResult(str(it.row), str(it.output), STATUS_FAILED, per, str(exc)))
            continue
        done(i, ItemResult(str(it.row), str(it.output), STATUS_OK, round(per + time.perf_counter() - t1, 3), "",
                           extra))
