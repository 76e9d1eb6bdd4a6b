"""Is int8 dynamic quantisation of the U-Nets worth a --precision int8? ONNX Runtime's quantize_dynamic (QInt8
weights; MatMul/Gemm/Conv become integer ops) on an engine folder's U-Nets, timed against the fp32 graphs in the
same process (p50 of 7 after 2 warm-ups) and compared on the same inputs (max abs error, relative to the output's
spread). -> benchmarks/results/int8_unet.json

    .venv/bin/python benchmarks/int8_unet.py --engines work/engines --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", type=Path, default=ROOT / "work" / "engines")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "int8_unet.json")
    args = ap.parse_args()
    if args.threads:
        os.environ["AVGEN_ORT_THREADS"] = str(args.threads)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from avcli.manifest import read_manifest
    from engines.ort_engine import OrtEngine
    from export.descriptions import descriptions

    manifest = read_manifest(args.engines)
    res = {"command": "python benchmarks/int8_unet.py " + " ".join(sys.argv[1:]), "components": {}}
    with tempfile.TemporaryDirectory() as td:
        for name in ("video_unet", "audio_unet"):
            src = args.engines / f"{name}.onnx"
            q = Path(td) / f"{name}.int8.onnx"
            quantize_dynamic(str(src), str(q), weight_type=QuantType.QInt8)
            x = descriptions(manifest)[name].sample_inputs(types.SimpleNamespace(manifest=manifest))
            row = {}
            outs = {}
            for tag, path in (("fp32", src), ("int8", q)):
                eng = OrtEngine(path, name=name, intra_op_threads=args.threads, save_optimized=False)
                outs[tag] = eng.run(x)["noise_pred"]
                eng.run(x)
                ts = []
                for _ in range(7):
                    t0 = time.perf_counter()
                    eng.run(x)
                    ts.append(time.perf_counter() - t0)
                row[f"{tag}_p50_ms"] = 1e3 * statistics.median(ts)
                row[f"{tag}_mb"] = path.stat().st_size / 1e6
            row["int8_vs_fp32_speed"] = row["fp32_p50_ms"] / row["int8_p50_ms"]
            row["max_abs_error"] = float((outs["int8"] - outs["fp32"]).abs().max())
            row["output_std"] = float(outs["fp32"].std())
            res["components"][name] = row
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
