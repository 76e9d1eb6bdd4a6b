"""ONNX Runtime on the CPU: transformer fusions and thread settings for the two U-Nets, on a quiet machine and with
one core taken by another process (issue 14: "graph optimisation, including onnxruntime's transformer fusions
where they apply to these U-Nets, and thread settings that hold when the machine is busy").

For each U-Net of an engine folder (`avgen export --out DIR`): the plain graph (what the engines run, ORT's own
ENABLE_ALL passes on top) and the fused variants of `engines/ort_fusions.py`, each through `engines.OrtEngine`
(the class the pipeline uses) at the sampler's CFG batch; intra-op threads 1 and 2, pool spinning off (the
engines' default) and on. Every configuration is timed in interleaved rounds (median), so each ratio is measured
side by side. The "busy" condition runs a pure-Python busy loop in another process for the whole round. Each
fused graph is checked against the plain one on the same inputs.

    .venv/bin/python benchmarks/ort_tuning.py --engines /tmp/eng --rounds 9

Writes benchmarks/results/ort_tuning.json; `benchmarks/report.py` renders the README table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "ort_tuning.json"
UNETS = ("video_unet", "audio_unet")


def _busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _timed(fns: dict, rounds: int, busy: bool) -> dict[str, list[float]]:
    """ms per call of each function, in interleaved rounds after one warm-up call each; with `busy`, a busy loop in
    another process runs for the whole measurement."""
    times = {k: [] for k in fns}
    hog = _busy() if busy else None
    try:
        time.sleep(0.5 if hog else 0)
        for fn in fns.values():
            fn()
        for _ in range(rounds):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1000)
    finally:
        if hog:
            hog.kill()
            hog.wait()
    return times


def _pair(kept: dict, rounds: int) -> dict:
    """One sampler step's two U-Net calls (plain graphs): one after the other, or at the same time (the video U-Net
    in a pool thread, as `sample(..., pool=)` runs them; ORT releases the GIL), at 1 or 2 intra-op threads each."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    (ev, fv), (ea, fa) = kept["video_unet"], kept["audio_unet"]
    pool = ThreadPoolExecutor(1)

    def seq(t):
        ev[f"plain/t{t}"].run(fv)
        ea[f"plain/t{t}"].run(fa)

    def conc(t):
        fut = pool.submit(ev[f"plain/t{t}"].run, fv)
        ea[f"plain/t{t}"].run(fa)
        fut.result()

    modes = {"sequential/t2": lambda: seq(2), "concurrent/t1+t1": lambda: conc(1),
             "concurrent/t2+t2": lambda: conc(2)}
    out = {}
    for load in ("quiet", "busy"):
        times = _timed(modes, rounds, load == "busy")
        base = float(np.median(times["sequential/t2"]))
        out[load] = {m: {"ms_p50": float(np.median(t)), "vs_sequential": base / float(np.median(t))}
                     for m, t in times.items()}
        print("pair", load, {m: round(v["ms_p50"], 1) for m, v in out[load].items()}, file=sys.stderr, flush=True)
    pool.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", type=Path, required=True, help="an engine folder from `avgen export --out`")
    ap.add_argument("--work", type=Path, default=None, help="where the fused graphs go (default: --engines/fused)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--variants", default="all,attention,norm")
    args = ap.parse_args()

    import numpy as np
    import onnxruntime as ort
    import torch

    from engines.ort_engine import OrtEngine
    from export.descriptions import get_description, inputs_at
    from engines.ort_fusions import fuse_unet

    manifest = json.loads((args.engines / "bundle.json").read_text())
    work = args.work or args.engines / "fused"
    work.mkdir(parents=True, exist_ok=True)
    variants = args.variants.split(",")
    duration = float(manifest["media"]["duration"])
    res: dict = {"command": "python benchmarks/ort_tuning.py " + " ".join(sys.argv[1:]), "cpu": platform.processor()
                 or platform.machine(), "logical_cpus": os.cpu_count(), "onnxruntime": ort.__version__,
                 "torch": torch.__version__, "rounds": args.rounds, "duration_s": duration, "components": {}}
    kept = {}
    for name in UNETS:
        src = args.engines / f"{name}.onnx"
        files = {"plain": src}
        fused_ops = {}
        for v in variants:
            dst = work / f"{name}.fused-{v}.onnx"
            fused_ops[v] = fuse_unet(src, dst, v)
            files[v] = dst
        feeds = inputs_at(get_description(manifest, name), SimpleNamespace(manifest=manifest), duration, batch=1)
        configs = []  # (label, variant, threads, spin)
        for v in files:
            for threads in (1, 2):
                configs.append((f"{v}/t{threads}", v, threads, False))
        configs.append(("plain/t2/spin", "plain", 2, True))
        engines = {}
        for label, v, threads, spin in configs:
            os.environ["AVGEN_ORT_SPIN"] = "1" if spin else "0"
            engines[label] = OrtEngine(files[v], name=name, intra_op_threads=threads, save_optimized=False)
        os.environ.pop("AVGEN_ORT_SPIN", None)
        ref = engines["plain/t2"].run(feeds)["noise_pred"]
        parity = {}
        for v in variants:
            out = engines[f"{v}/t2"].run(feeds)["noise_pred"]
            parity[v] = float((out - ref).abs().max() / ref.abs().max())
        rows = {}
        for load in ("quiet", "busy"):
            times = _timed({label: (lambda e=eng: e.run(feeds)) for label, eng in engines.items()}, args.rounds,
                           load == "busy")
            base = float(np.median(times["plain/t2"]))
            rows[load] = {label: {"ms_p50": float(np.median(t)), "ms_min": float(min(t)),
                                  "vs_plain_t2": base / float(np.median(t))} for label, t in times.items()}
            print(name, load, {k: round(v["ms_p50"], 1) for k, v in rows[load].items()}, file=sys.stderr, flush=True)
        kept[name] = (engines, feeds)
        res["components"][name] = {"fused_ops": fused_ops, "max_rel_err_vs_plain": parity, "ms": rows,
                                   "inputs": {k: list(t.shape) for k, t in feeds.items()}}
        OUT.write_text(json.dumps(res, indent=1) + "\n")
    res["pair"] = _pair(kept, args.rounds)
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    # the decision the engines follow: a setting is worth adopting only if it wins in both conditions on both U-Nets
    best = {}
    for load in ("quiet", "busy"):
        labels = res["components"][UNETS[0]]["ms"][load].keys()
        total = {lb: sum(res["components"][n]["ms"][load][lb]["ms_p50"] for n in UNETS) for lb in labels}
        best[load] = {"fastest": min(total, key=total.get), "ms_both_unets": total}
    res["best"] = best
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(best, indent=1))


if __name__ == "__main__":
    main()
