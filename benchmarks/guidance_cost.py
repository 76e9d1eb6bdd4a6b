"""What the guidance settings of `avgen generate` cost, side by side in one process: the bundle's default, audio
guidance on every step, and audio guidance taking turns with the video's text guidance.

The rows run interleaved (A B C A B C ...) on the same prompts and seeds, so a slow minute of the machine falls
on every row alike; each row's time is the median of its clips (the whole `pipe.generate` call: text encoder,
sampler, decoders), after one untimed warm-up clip per row. The quality of the same settings is
`benchmarks/guidance_interval.py`'s; this measures only their time.

    .venv/bin/python benchmarks/guidance_cost.py --n 8 \\
        --rows default,default+ag4,v-0:0.4+ag4,v-0:0.4+ag4@0.4:1

Writes benchmarks/results/guidance_cost.json (rows: label, settings, U-Net batch rows, median / all seconds, ratio
to the default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from guidance_interval import parse_row, parse_scales, unet_calls  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "guidance_cost.json"
PROMPTS = ("a red ball bouncing on a wooden floor", "a blue block dropped on a metal plate",
           "a green stick striking a glass surface", "a yellow ball bouncing on a drum")


def request_of(row: dict, prompt: str, seed: int):
    from avcli.pipelines.generate import GenerateRequest

    return GenerateRequest(prompt, seed=seed, cfg_video=row["cfg_video"], cfg_audio=row["cfg_audio"],
                           cfg_video_interval=tuple(row["cfg_video_interval"]),
                           cfg_audio_interval=tuple(row["cfg_audio_interval"]),
                           audio_guidance=row["audio_guidance"],
                           audio_guidance_interval=tuple(row["audio_guidance_interval"]),
                           video_guidance=row["video_guidance"],
                           video_guidance_interval=tuple(row["video_guidance_interval"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--n", type=int, default=8, help="timed clips per row")
    ap.add_argument("--rows", default="default,default+ag4,v-0:0.4+ag4,v-0:0.4+ag4@0.4:1")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--scales", default=None, metavar="V:A",
                    help="the text-guidance scales a row label leaves out (default: the bundle's)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    import torch

    from avcli.models.bundle import load_bundle
    from avcli.pipelines.common import sampler_config
    from avcli.pipelines.pipeline import JointPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_bundle(args.bundle)
    base = sampler_config(model)
    labels = [s for s in args.rows.split(",") if s]
    if "default" not in labels:
        labels.insert(0, "default")
    rows = [parse_row(s, parse_scales(args.scales) or (base.cfg_video, base.cfg_audio)) for s in labels]
    pipe = JointPipeline.from_model(model)
    for r in rows:  # warm-up: one untimed clip per row
        pipe.generate(request_of(r, PROMPTS[0], 0))
    times: dict[str, list[float]] = {r["label"]: [] for r in rows}
    for i in range(args.n):
        for r in rows:
            t0 = time.perf_counter()
            pipe.generate(request_of(r, PROMPTS[i % len(PROMPTS)], i))
            times[r["label"]].append(time.perf_counter() - t0)
        print(f"{i + 1}/{args.n}", file=sys.stderr, flush=True)
    ref = statistics.median(times["default"])
    res = {"n": args.n, "bundle": str(model.bundle_path), "steps": base.steps, "solver": base.solver,
           "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
           "date": time.strftime("%Y-%m-%d"),
           "command": "python benchmarks/guidance_cost.py " + " ".join(sys.argv[1:]), "rows": []}
    for r in rows:
        med = statistics.median(times[r["label"]])
        res["rows"].append({**r, "unet_batch_calls": dict(zip(("video", "audio"), unet_calls(r, base.steps))),
                            "seconds_median": med, "seconds": times[r["label"]], "ratio_to_default": med / ref})
        print(f"{r['label']:>24}: {med:.2f} s a clip, {med / ref:.2f}x the default", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
