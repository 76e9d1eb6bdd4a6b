"""Helpers shared by the CLI commands: consoles, progress bars, output-path planning, human sizes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from avcli.errors import UsageError

console = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)


def warn(message) -> None:
    """One yellow `warning:` line on stderr; the message is text, never Rich markup (file names stay literal)."""
    from rich.markup import escape

    console.print(f"[yellow]warning:[/] {escape(str(message))}", soft_wrap=True)


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def step_progress(description: str, enabled: bool = True, unit: str = "steps") -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
                    disable=not enabled or not console.is_terminal)


def slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^a-zA-Z0-9]+", "_", text.lower()).strip("_")
    return s[:limit].rstrip("_") or "clip"


def plan_outputs(out: Path | None, n: int, default_stem: str, suffix: str = ".mp4") -> list[Path]:
    """Output files for n results: a file (n == 1), file_1..file_n, or files inside a directory."""
    if out is None:
        out = Path(f"{default_stem}{suffix}")
    is_dir = out.is_dir() or str(out).endswith(("/", "\\"))
    if is_dir:
        out.mkdir(parents=True, exist_ok=True)
        return [out / (f"{default_stem}{suffix}" if n == 1 else f"{default_stem}_{i + 1}{suffix}") for i in range(n)]
    if out.suffix.lower() != suffix:
        raise UsageError(f"{out}: output must end in {suffix} (or be a directory)")
    if not out.parent.exists():
        raise UsageError(f"{out.parent}: output directory does not exist")
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i + 1}{suffix}") for i in range(n)]


def refuse_existing(paths: list[Path], overwrite: bool) -> None:
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise UsageError(f"{existing[0]}: already exists (use --overwrite to replace it)")


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


RAY_HELP = ("Run the batch on Ray: no value starts a local Ray instance; auto joins the cluster this machine is "
            "part of; ray://HOST:PORT or HOST:PORT a remote head. Outputs must be on storage every node shares.")
WORKERS_HELP = "Ray actors, each loading the model once (default: one per GPU, else one per --cpus-per-worker CPUs)."
GPUS_HELP = "GPUs per Ray actor (default: 1 on a cluster with GPUs, else 0)."
CPUS_HELP = "CPUs per Ray actor (its torch/ONNX threads)."
RETRIES_HELP = "Times an item is retried on a fresh actor after its worker died; then it is reported failed."


def ray_options(address: str | None, workers: int | None, gpus_per_worker: float | None, cpus_per_worker: float,
                retries: int):
    """RayOptions from the CLI flags, checked before any compute (None: no --ray, run locally)."""
    if address is None:
        return None
    from avcli.pipelines.ray_runner import RayOptions, check_options

    opts = RayOptions(address, workers, gpus_per_worker, cpus_per_worker, retries)
    check_options(opts)
    return opts


def expand_optional_values(argv: list[str]) -> list[str]:
    """`--ray` takes an optional value (click options cannot): a bare `--ray` (followed by an option, an input
    path or nothing) becomes `--ray local`."""
    if "--ray" not in argv:
        return argv
    from avcli.pipelines.ray_runner import is_address

    out = []
    for i, a in enumerate(argv):
        out.append(a)
        if a == "--ray":
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if nxt is None or nxt.startswith("-") or not is_address(nxt):
                out.append("local")
    return out
