"""Batches on a Ray cluster: one actor per GPU (or per CPU slot) loads the pipeline once and runs units of work
(lists of the local batch's items) with exactly the code the local batch runs (`worker.run(unit)`).

    run = run_on_ray(units, FoleyWorker, (LoadSpec(bundle), settings), RayOptions(address="auto"), on_result)

What the driver does, and why:
- Planning, the skip-done rule and the preflight happen before this, on the driver, with the local code; units
  carry absolute paths, so every node reads and writes the same files (outputs on storage all nodes share).
- One unit in flight per actor: a dead actor costs at most its one unit, and retries are counted per unit.
- A dead actor (its process killed, its node lost) raises RayActorError for its unit. The driver kills what is left
  of it, starts a replacement actor (which loads the pipeline again) and puts the unit back at the front of the
  queue, up to `retries` times per unit; a unit that keeps killing its worker is reported failed, not retried
  forever. Ray's own restarts are not used, so the count in the report is the count that happened.
- An item that fails inside a worker (bad file, AvgenError) fails that item only, as in a local batch: no retry,
  a retry would fail the same way.
- Ctrl-C at the driver: the actors are killed, their temp files removed, every unfinished item is "not run", and
  the same command resumes.
Ray is an optional extra, imported here only.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from avcli.errors import AvgenError, UsageError
from avcli.media.ffmpeg import die_with_parent
from avcli.pipelines.batch import STATUS_FAILED, STATUS_NOT_RUN, ItemResult

RAY_MISSING = ("--ray needs Ray, an optional extra: pip install 'avgen[ray]' (in this checkout: "
               ".venv/bin/pip install -e '.[ray]')")
_ADDRESS = re.compile(r"^(local|auto|ray://\S+|[A-Za-z0-9_.\-\[\]:]+:\d+)$")
KILL_WAIT_S = 15.0  # how long an interrupted batch waits for killed workers to exit before removing their temp files
ORPHAN_GRACE_S = 2.0  # then how long it keeps removing them, while an ffmpeg the worker started may still finish


def is_address(text: str) -> bool:
    """What `--ray` accepts: local (start one here), auto (the cluster this machine joined), ray://host:port or
    host:port (a cluster's head)."""
    return bool(_ADDRESS.match(text))


@dataclass(frozen=True)
class RayOptions:
    address: str = "local"
    workers: int | None = None  # default: one per GPU (gpus_per_worker each), else one per cpus_per_worker CPUs
    gpus_per_worker: float | None = None  # default: 1 when the cluster has GPUs, else 0
    cpus_per_worker: float = 1.0
    retries: int = 2


@dataclass
class RayRun:
    interrupted: bool = False
    workers: list[dict] = field(default_factory=list)  # every actor started: host, pid, node, replacement or not
    events: list[dict] = field(default_factory=list)  # worker deaths and what became of their units
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        workers = [{k: v for k, v in w.items() if not k.startswith("_")} for w in self.workers]
        return {**self.settings, "workers_started": len(workers), "workers": workers, "events": self.events}


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


def check_options(opts: RayOptions) -> None:
    """Before any compute: Ray importable, the address and the sizes make sense."""
    import_ray()
    if not is_address(opts.address):
        raise UsageError(f"--ray {opts.address!r}: give no value (a local Ray), auto, ray://HOST:PORT or HOST:PORT")
    if opts.workers is not None and opts.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {opts.workers}")
    if opts.retries < 0:
        raise UsageError(f"--retries must be >= 0, got {opts.retries}")
    if opts.gpus_per_worker is not None and opts.gpus_per_worker < 0:
        raise UsageError(f"--gpus-per-worker must be >= 0, got {opts.gpus_per_worker:g}")
    if not opts.cpus_per_worker > 0:
        raise UsageError(f"--cpus-per-worker must be > 0, got {opts.cpus_per_worker:g}")


class WorkerHost:
    """The body of each Ray actor: builds the worker once (that loads the pipeline) and runs units on it. A load
    error is kept and reported to the driver as one line (not as a dead actor)."""

    def __init__(self, factory: Callable, args: tuple, cpus: float = 1.0):
        self.error = None
        self.worker = None
        # Ray sets OMP_NUM_THREADS (torch) to the actor's CPUs; ONNX Runtime would take every core of the node
        os.environ.setdefault("AVGEN_ORT_THREADS", str(max(1, int(cpus))))
        # killed on Ctrl-C, this worker must not leave an ffmpeg behind that rewrites a temp file already removed
        die_with_parent()
        try:
            self.worker = factory(*args)
        except AvgenError as exc:
            self.error = str(exc)

    def info(self) -> dict:
        import ray

        desc = self.worker.describe() if self.worker is not None and hasattr(self.worker, "describe") else {}
        return {"host": socket.gethostname(), "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                "error": self.error, **desc}

    def run(self, unit: list) -> list[ItemResult]:
        if self.worker is None:
            raise UsageError(self.error or "the worker did not load")
        return self.worker.run(unit)


def _init(ray, address: str) -> bool:
    """Connect (or start a local instance); True when this call started Ray and must shut it down."""
    if ray.is_initialized():
        return False
    kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="error")
    try:
        if address == "local":
            # A local instance runs the user's own batch: at the priority of the command they typed, not Ray's
            # default worker niceness of 15 (made for cluster nodes), which starves it behind anything else
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(**kw)
        else:
            ray.init(address=address, **kw)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UsageError(f"--ray {address}: cannot reach the Ray cluster ({str(exc).splitlines()[0]})") from None
    return True


def _sizes(ray, opts: RayOptions, n_units: int) -> tuple[int, float, float]:
    res = ray.cluster_resources()
    gpus, cpus = float(res.get("GPU", 0)), float(res.get("CPU", 1))
    gpw = opts.gpus_per_worker if opts.gpus_per_worker is not None else (1.0 if gpus >= 1 else 0.0)
    cpw = opts.cpus_per_worker
    fit = int(gpus // gpw) if gpw else int(cpus // cpw)
    n = opts.workers or max(1, fit)
    if gpw * n > gpus + 1e-9:
        raise UsageError(f"{n} worker(s) x {gpw:g} GPU(s) each: the Ray cluster has {gpus:g} GPU(s)")
    if cpw * n > cpus + 1e-9:
        raise UsageError(f"{n} worker(s) x {cpw:g} CPU(s) each: the Ray cluster has {cpus:g} CPU(s)")
    return min(n, max(1, n_units)), gpw, cpw


def run_on_ray(units: list[list], factory: Callable, args: tuple, opts: RayOptions,
               on_result: Callable[[int, int, ItemResult], None],
               on_cleanup: Callable[[list], None] | None = None,
               on_status: Callable[[str], None] | None = None) -> RayRun:
    """Run every unit on the cluster. `on_result(unit, position, result)` is called on the driver as results
    arrive (each unit's items in order); `on_cleanup(unit)` after a worker died on it (remove its temp files)."""
    ray = import_ray()
    from ray.exceptions import RayActorError, RayTaskError

    run = RayRun()
    if not units:
        return run
    # Ray's driver threads print worker deaths with print(): keep stdout for the command's own --json report
    with contextlib.redirect_stdout(sys.stderr):
        return _run(ray, RayActorError, RayTaskError, run, units, factory, args, opts, on_result, on_cleanup,
                    on_status)


def _run(ray, RayActorError, RayTaskError, run, units, factory, args, opts, on_result, on_cleanup, on_status):
    started = _init(ray, opts.address)
    try:
        n, gpw, cpw = _sizes(ray, opts, len(units))
        run.settings = {"address": opts.address, "workers": n, "gpus_per_worker": gpw, "cpus_per_worker": cpw,
                        "retries": opts.retries}
        # Actors are restarted by the driver, not by Ray (max_restarts=0): every retry is seen and counted.
        actor_cls = ray.remote(WorkerHost).options(num_cpus=cpw, num_gpus=gpw, max_restarts=0, max_task_retries=0)
        replacements_left = opts.retries * len(units)

        def start(replacing: dict | None = None):
            actor = actor_cls.remote(factory, args, cpw)
            entry = {"replaces": replacing.get("pid") if replacing else None}
            run.workers.append(entry)
            return actor, entry

        queue = deque(range(len(units)))
        attempts = [0] * len(units)
        idle: list = []
        inflight: dict = {}
        try:
            if on_status is not None:
                on_status(f"starting {n} Ray worker(s)")
            pool = [start() for _ in range(n)]
            idle = list(pool)
            try:
                infos = ray.get([a.info.remote() for a, _ in pool])
            except RayActorError as exc:
                raise UsageError(f"a Ray worker died while loading the pipeline ({_first_line(exc)})") from None
            for (_, entry), info in zip(pool, infos):
                if info["error"]:
                    raise UsageError(f"Ray worker on {info['host']}: {info['error']}")
                entry.update(info)
            if on_status is not None:
                on_status(f"{n} Ray worker(s)")
            while queue or inflight:
                while queue and idle:
                    actor, entry = idle.pop()
                    u = queue.popleft()
                    inflight[actor.run.remote(units[u])] = (actor, entry, u)
                ready, _ = ray.wait(list(inflight), num_returns=1)
                ref = ready[0]
                actor, entry, u = inflight.pop(ref)
                try:
                    results = ray.get(ref)
                except RayActorError as exc:
                    attempts[u] += 1
                    ray.kill(actor, no_restart=True)
                    if on_cleanup is not None:
                        on_cleanup(units[u])
                    gave_up = attempts[u] > opts.retries
                    run.events.append({"event": "worker died", "worker": f"{entry.get('host')}:{entry.get('pid')}",
                                       "unit": u, "attempt": attempts[u], "error": _first_line(exc),
                                       "then": "failed" if gave_up else "retried"})
                    if gave_up:
                        reason = (f"its worker died {attempts[u]} time(s) while running it (--retries "
                                  f"{opts.retries}): {_first_line(exc)}")
                        for i in range(len(units[u])):
                            on_result(u, i, _result(units[u][i], STATUS_FAILED, reason, attempts[u]))
                    else:
                        queue.appendleft(u)
                    if replacements_left > 0 and (queue or inflight):
                        replacements_left -= 1
                        new, new_entry = start(entry)
                        new_entry["_info"] = new.info.remote()  # read when its first unit returns: no wait here
                        idle.append((new, new_entry))
                    elif not idle and not inflight:
                        break
                    continue
                except RayTaskError as exc:  # an error the worker did not turn into an item result: fail the unit
                    for i in range(len(units[u])):
                        on_result(u, i, _result(units[u][i], STATUS_FAILED, _first_line(exc.cause or exc),
                                                attempts[u] + 1))
                    idle.append((actor, entry))
                    continue
                if "_info" in entry:
                    try:
                        entry.update(ray.get(entry.pop("_info"), timeout=60))
                    except Exception as exc:  # its unit came back, so the label is all that is missing
                        entry["error"] = _first_line(exc)
                for i, res in enumerate(results):
                    res.extra = {**res.extra, "worker": f"{entry.get('host')}:{entry.get('pid')}",
                                 "attempts": attempts[u] + 1}
                    on_result(u, i, res)
                idle.append((actor, entry))
            for u in queue:  # no worker left to run them
                for i in range(len(units[u])):
                    on_result(u, i, _result(units[u][i], STATUS_NOT_RUN, "every Ray worker died", attempts[u]))
        except KeyboardInterrupt:
            run.interrupted = True
            for actor, _, _ in inflight.values():
                ray.kill(actor, no_restart=True)
            # ray.kill only asks: an actor can still be writing its temp file for a moment. Its call resolves (with
            # the actor's death) once it is gone, so wait for that (bounded) before removing what it left
            try:
                ray.wait(list(inflight), num_returns=len(inflight), timeout=KILL_WAIT_S)
            except Exception:  # noqa: BLE001 - cleanup goes ahead either way
                pass
            for _, _, u in inflight.values():
                if on_cleanup is not None:
                    on_cleanup(units[u])
                queue.appendleft(u)
            # a worker's ffmpeg dies with it (die_with_parent, Linux); where that is not in force it can outlive
            # the worker for a moment and write its temp file again (+faststart reopens it by name): sweep again
            deadline = time.monotonic() + ORPHAN_GRACE_S
            while on_cleanup is not None and inflight and time.monotonic() < deadline:
                time.sleep(0.25)
                for _, _, u in inflight.values():
                    on_cleanup(units[u])
            for u in sorted(queue):
                for i in range(len(units[u])):
                    on_result(u, i, _result(units[u][i], STATUS_NOT_RUN, "interrupted", attempts[u]))
        finally:
            for actor, _ in idle:
                ray.kill(actor, no_restart=True)
    finally:
        if started:
            ray.shutdown()
    return run


def _result(item, status: str, reason: str, attempts: int) -> ItemResult:
    inp = getattr(item, "input", None)
    label = str(inp) if inp is not None else str(getattr(item, "row", ""))
    return ItemResult(label, str(item.output), status, 0.0, reason, {"attempts": attempts})


def _first_line(exc) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "File ", "ray::")):
            return line[:300]
    return type(exc).__name__



def run_items_on_ray(items: list, chunks: list[list[int]], factory: Callable, args: tuple, opts: RayOptions,
                     done: Callable[[int, ItemResult], None], files_of: Callable[[object], list],
                     on_status: Callable[[str], None] | None = None) -> RayRun:
    """The local batch's items (indices in `chunks`, one unit each) on Ray. Paths travel absolute; each result
    comes back to `done(index, result)` labelled as the local batch labels it. `files_of(item)` names the files an
    item writes, whose temp files a killed worker leaves behind: they are removed before a retry."""
    from dataclasses import replace

    from avcli.media.ffmpeg import remove_stale_parts

    def absolute(it):
        kw = {"output": it.output.absolute()}
        if getattr(it, "input", None) is not None:
            kw["input"] = it.input.absolute()
        return replace(it, **kw)

    units = [[absolute(items[i]) for i in c] for c in chunks]

    def on_result(u: int, pos: int, res: ItemResult) -> None:
        idx = chunks[u][pos]
        it = items[idx]
        res.input = str(it.input) if getattr(it, "input", None) is not None else str(it.row)
        res.output = str(it.output)
        done(idx, res)

    def on_cleanup(unit: list) -> None:
        remove_stale_parts([p for it in unit for p in files_of(it)])

    return run_on_ray(units, factory, args, opts, on_result, on_cleanup, on_status)
