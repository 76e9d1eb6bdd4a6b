"""Ray batches against the local batch (issue 18), side by side in one run, each a fresh `avgen` process:

1. `avgen generate --prompts FILE --out-dir A` (one process, all cores) and the same file with
   `--ray --workers W` (a local Ray instance, W actors of one CPU each): wall clock outside the process,
   throughput ratio Ray / local, and where Ray's time went (start-up and load, per-clip compute, the rest);
2. the driver's round trip per unit of work with a no-op worker (the dispatch ceiling);
3. per clip, from the local run's report: the mux (ffmpeg) seconds and the bytes written (the storage load).

From these the scaling across GPUs is projected on paper (no GPU here): see `projection` in the JSON and the
README section "Ray: a farm of machines".

    .venv/bin/python benchmarks/ray_batch.py --n 16 --workers 2     # -> benchmarks/results/ray_batch.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from fast_path import _run  # noqa: E402  (an avgen command in a fresh process: wall clock and its --json)
PROMPTS = ["a red ball bouncing on a metal plate", "a blue block dropped on glass", "a stick hits a wooden table",
           "a green ball bouncing on wood", "a yellow block falls on a metal plate", "someone taps glass twice",
           "a red block dropped on wood", "a ball bounces on a drum"]


class _Noop:
    def __init__(self):
        pass

    def run(self, unit):
        from avcli.pipelines.batch import STATUS_OK, ItemResult

        return [ItemResult("", "", STATUS_OK) for _ in unit]


def dispatch_ms(units: int, workers: int) -> float:
    """Round trip per unit and worker slot with a worker that does nothing (driver, Ray and the actor together:
    the most Ray can cost an item). The driver's own ceiling is workers / this, in units per second."""
    import ray
    from ray import cloudpickle

    from avcli.pipelines.batch import Item
    from avcli.pipelines.ray_runner import RayOptions, run_on_ray

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="error")
    try:
        items = [[Item(Path(f"/in{i}"), Path(f"/out{i}"))] for i in range(units)]
        run_on_ray(items[:workers], _Noop, (), RayOptions("local", workers=workers), lambda *a: None)  # warm
        t0 = time.perf_counter()
        run_on_ray(items, _Noop, (), RayOptions("local", workers=workers), lambda *a: None)
        return (time.perf_counter() - t0) / units * 1000 * workers  # per unit, per worker slot
    finally:
        ray.shutdown()


def project(per_clip_gpu_s: float, mux_s: float, bytes_per_clip: float, driver_per_s: float,
            cpus_per_node: int, gpus_per_node: int, storage_mb_s: float, max_nodes: int = 64) -> list[dict]:
    """Clips/s for 1..max_nodes nodes: linear in GPUs until the driver, the shared storage or a node's CPUs
    (ffmpeg muxing beside the GPUs) binds. Returns a row per node count with the binding limit."""
    rows = []
    for nodes in (1, 2, 4, 8, 16, 32, 64):
        if nodes > max_nodes:
            break
        gpus = nodes * gpus_per_node
        limits = {"GPUs": gpus / per_clip_gpu_s,
                  "ffmpeg on the nodes' CPUs": nodes * max(1, cpus_per_node - gpus_per_node) / mux_s,
                  "shared storage": storage_mb_s * 1e6 / bytes_per_clip,
                  "driver dispatch": driver_per_s}
        bind = min(limits, key=limits.get)
        rows.append({"nodes": nodes, "gpus": gpus, "clips_per_s": limits[bind], "linear": limits["GPUs"],
                     "bound_by": bind})
    return rows


def add_projection(res: dict) -> None:
    """On paper, from the measured constants: nodes of 8 GPUs and 64 cores, storage at 1 GB/s, and per-clip GPU
    times that are assumptions (the demo's FLOPs are milliseconds on an H100: overheads would dominate; a
    real-scale clip takes seconds)."""
    res["driver_units_per_s"] = 1000.0 * res["workers"] / res["dispatch_ms_per_unit"]
    res["projection"] = {
        name: project(t, res["mux_s_per_clip"], b, res["driver_units_per_s"], 64, 8, 1000.0)
        for name, t, b in (("demo bundle, 0.25 s/clip on a GPU (assumed)", 0.25, res["bytes_per_clip"]),
                           ("real scale (512 px, 16 s), 20 s/clip (assumed)", 20.0, 8e6))}
    # Linear while the per-clip GPU time stays above each of these
    res["linear_while_gpu_s_above"] = {
        "ffmpeg (per node)": res["mux_s_per_clip"] * 8 / 56,
        "shared storage (per 64 GPUs)": 64 * res["bytes_per_clip"] / 1e9,
        "driver dispatch (per 64 GPUs)": 64 / res["driver_units_per_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--n", type=int, default=16, help="prompts in the batch")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "ray_batch.json")
    ap.add_argument("--reproject", action="store_true", help="recompute only the paper projection of --json from "
                    "its measured constants (no runs)")
    args = ap.parse_args()
    if args.reproject:
        res = json.loads(args.json.read_text())
        add_projection(res)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        return
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    extra = (["--bundle", args.bundle] if args.bundle else []) + (["--steps", str(args.steps)] if args.steps else [])
    res: dict = {"command": "python benchmarks/ray_batch.py " + " ".join(sys.argv[1:]), "n": args.n,
                 "workers": args.workers, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="avgen-ray-") as td:
        td = Path(td)
        prompts = td / "shots.txt"
        prompts.write_text("\n".join(PROMPTS[i % len(PROMPTS)] + f", take {i}" for i in range(args.n)) + "\n")
        common = ["generate", "--prompts", str(prompts), "--json", *extra]
        local_wall, local = _run([*common, "--out-dir", str(td / "local")], env)
        ray_wall, on_ray = _run([*common, "--out-dir", str(td / "ray"), "--ray", "--workers", str(args.workers)],
                                env)
        same = all((td / "local" / Path(it["output"]).name).read_bytes() == Path(it["output"]).read_bytes()
                   for it in on_ray["items"])
    per_worker: dict[str, float] = {}
    for it in on_ray["items"]:
        per_worker[it["worker"]] = per_worker.get(it["worker"], 0.0) + it["seconds"]
    busy = max(per_worker.values())
    res["local"] = {"wall_s": round(local_wall, 2), "clips_per_s": args.n / local_wall,
                    "per_clip_s": statistics.median(it["seconds"] for it in local["items"]),
                    "timings_s": local["timings_s"]}
    res["ray"] = {"wall_s": round(ray_wall, 2), "clips_per_s": args.n / ray_wall,
                  "per_clip_s": statistics.median(it["seconds"] for it in on_ray["items"]),
                  "busiest_worker_s": round(busy, 2), "start_and_rest_s": round(ray_wall - busy, 2),
                  "workers_started": on_ray["ray"]["workers_started"]}
    res["throughput_ratio"] = res["ray"]["clips_per_s"] / res["local"]["clips_per_s"]
    res["bytes_identical_to_local"] = same  # expected only when the local run has the actors' thread count
    res["mux_s_per_clip"] = local["timings_s"].get("mux", 0.0) / args.n
    res["bytes_per_clip"] = statistics.mean(it["bytes"] for it in local["items"])
    res["dispatch_ms_per_unit"] = dispatch_ms(200, args.workers)
    add_projection(res)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: res[k] for k in ("throughput_ratio", "bytes_identical_to_local", "dispatch_ms_per_unit",
                                           "mux_s_per_clip")}, indent=2))


if __name__ == "__main__":
    main()
