"""The `avgen` entry point: one Typer app; each command lives in its own module and registers itself.

User-facing errors (AvgenError) become one line on stderr and their exit code; a traceback only with --debug.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from avcli import __version__
from avcli.errors import AvgenError

# One module per command; each defines `register(app)`. Order = order in --help.
COMMAND_MODULES = (
    "generate",
    "foley",
    "animate",
    "export",
    "bench",
    "eval",
    "train",
    "data",
    "import_cmd",
    "info",
)

err_console = Console(stderr=True, highlight=False)

app = typer.Typer(
    name="avgen",
    help=(
        "Generate sounding video: text -> video with its soundtrack, silent video -> synchronized foley, "
        "audio -> video.\n\n"
        "Examples:\n\n"
        "  avgen generate --prompt \"a red ball bouncing on a metal plate\" -o out.mp4\n\n"
        "  avgen foley clip.mp4 --out-dir foley/\n\n"
        "  avgen info"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"avgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    if debug:
        os.environ["AVGEN_DEBUG"] = "1"


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"avcli.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"avcli.cli.{name}":
                continue  # command not built yet in this checkout
            raise
        module.register(app)


_register_all()


def _click_exception_types() -> tuple[type, ...]:
    """ClickException classes: typer >= 0.20 vendors its own click (typer._click), older ones use click."""
    found = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(name).ClickException)
        except ImportError:
            pass
    return tuple(found)


def is_launched_worker() -> bool:
    """A process that torchrun or accelerate launch started as one of several (WORLD_SIZE > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def exit_worker(code: int) -> None:
    """End a launched worker without interpreter finalization: flush, then `os._exit`.

    By then every output is written and renamed and the process group is closed. What is left for finalization is
    the teardown of gloo's and OpenMP's native threads, which now and then never returns: once in CI rank 0 printed
    its report and the two-process launch then sat until the test's 300 s timeout (teardown hangs of this kind are
    known upstream, pytorch issue 75097). The launcher needs only the exit code.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def leave(code: int) -> None:
    """End a finished command the way the interpreter would, minus its finalization: join the threads
    (`threading._shutdown` also runs concurrent.futures' exit hooks), run the atexit handlers (Ray's shutdown,
    temporary files), flush, then `os._exit`. Finalizing torch's and onnxruntime's modules takes ~0.7 s on 2 cores
    after every command (`python -c "import torch"`: 2.35 s, 1.67 s leaving this way), which a batch script pays
    once per shot. Without `threading._shutdown` (not CPython) it exits normally."""
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:
        sys.exit(code)
    shutdown()
    atexit._run_exitfuncs()
    exit_worker(code)


def _exit_code(fn) -> int:
    """Call fn() and return the exit code the interpreter would give it: SystemExit's code (a message is printed
    to stderr, code 1), 1 with the traceback printed for any other exception (--debug), else 0."""
    try:
        fn()
        return 0
    except SystemExit as exc:
        if isinstance(exc.code, str):  # as the interpreter does with sys.exit("message")
            print(exc.code, file=sys.stderr)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # --debug tracebacks still print before the process leaves
        import traceback

        traceback.print_exc()
        return 1


def main() -> None:
    """The console script (`avgen`, `python -m avcli`): `run()`, then `leave` with its exit code (no interpreter
    finalization). In-process callers (tests, embedding scripts) call `run()`, which raises SystemExit as usual."""
    leave(_exit_code(run))


def run() -> None:
    """Run the app, mapping our errors to a clean line and exit code.

    A worker of a torchrun/accelerate launch leaves through `exit_worker` (no interpreter finalization, which can
    hang on gloo's native threads after the work is done)."""
    if not is_launched_worker():
        _run()
        return
    exit_worker(_exit_code(_run))


def _run() -> None:
    debug = "--debug" in sys.argv or os.environ.get("AVGEN_DEBUG") == "1"
    try:
        from avcli.cli.common import expand_optional_values

        # non-standalone click returns typer.Exit codes instead of exiting
        code = app(args=expand_optional_values(sys.argv[1:]), standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except AvgenError as exc:
        if debug:
            raise
        # user file names may contain [brackets]: escaped, never read as Rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[yellow]aborted[/]")
        sys.exit(1)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        if isinstance(exc, _click_exception_types()):
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} (re-run with --debug "
                          f"for a traceback)", soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
