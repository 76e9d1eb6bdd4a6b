"""Noise filling on generated audio (issue 13's buzz): `avgen foley` on held-out clips (no prompt, seed = index, as in benchmarks/quality.py), each soundtrack scored twice
from the same generated mel, once as the vocoder rendered it and once noise-filled (avcli.models.noise_fill), so the
two rows differ by the fill alone:

- onset F1 against the true impact times (+-1 video frame at 8 fps);
- noise floor (dBFS) and buzz (periodicity at 2.5-20 ms lags) of the stretch before the first impact, next to the
  real clips' own.

The fill runs with the thresholds given (--below, dBFS), whatever the bundle's `sampling.noise_fill_below_dbfs` says.

    .venv/bin/python benchmarks/noise_fill_generated.py --bundle avcli/bundles/hits-demo --test work/v2/hits-test \
        --n 100 --below -40
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(ROOT / "avcli" / "bundles" / "hits-demo"))
    ap.add_argument("--test", type=Path, required=True, help="held-out clips (events.jsonl, captions.jsonl)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--below", default="-40", help="comma-separated thresholds (dBFS) for the filled rows")
    ap.add_argument("--prompt", action="store_true",
                    help="give each clip its caption as the prompt (default: none, as benchmarks/quality.py does)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "noise_fill_generated.json")
    args = ap.parse_args()

    import avcli.metrics as M
    from avcli.media.ffmpeg import read_audio
    from avcli.metrics.contact import buzz, noise_floor_db
    from avcli.metrics.evaluate import read_jsonl
    from avcli.models import noise_fill as nf
    from avcli.pipelines.common import log_mel
    from avcli.pipelines.foley import FoleyRequest
    from avcli.pipelines.pipeline import JointPipeline

    pipe = JointPipeline.from_bundle(args.bundle, backend="torch", quiet=True)
    sr = int(pipe.manifest["media"]["sample_rate"])
    fps = float(pipe.manifest["media"]["fps"])
    front = log_mel(pipe)
    vocoder = pipe.components["vocoder"]
    seen: dict[str, torch.Tensor] = {}

    def recording_vocoder(mel):  # the generated mel and the vocoder's own output, before anything else touches it
        wav = vocoder(mel=mel)
        seen["mel"], seen["wav"] = mel.detach().float().clone(), wav.detach().float().clone()
        return wav

    pipe.components["vocoder"] = recording_vocoder
    events = {r["file"]: r["events"] for r in read_jsonl(args.test / "events.jsonl", "events")}
    captions = {r["file"]: r["caption"] for r in read_jsonl(args.test / "captions.jsonl", "captions")}
    files = sorted(events)[: args.n]
    levels = [float(x) for x in args.below.split(",")]
    rows = {"real": None, "vocoder as rendered": None, **{f"noise fill below {x:g} dBFS": x for x in levels}}
    scores = {k: {"onset_f1": [], "floor_db": [], "buzz": []} for k in rows}
    t0 = time.perf_counter()
    for i, name in enumerate(files):
        ev = events[name]
        pipe.foley(args.test / name, FoleyRequest(prompt=captions.get(name, "") if args.prompt else "", seed=i))
        if seen["wav"].shape[0] != 1:
            raise SystemExit(f"{name}: foley ran {seen['wav'].shape[0]} windows; use clips of the bundle's duration")
        wav = seen["wav"].clamp(-1, 1)
        outs = {"real": read_audio(args.test / name, sr)}
        for row, below in rows.items():
            if row == "real":
                continue
            outs[row] = (wav if below is None else nf.noise_fill(wav, seen["mel"], front, below))[0].numpy()
        for row, y in outs.items():
            s = scores[row]
            s["onset_f1"].append(M.onset_accuracy(M.impact_onsets(y, sr), ev, tolerance=1 / fps).f1)
            floor = noise_floor_db(y, sr, ev[0])
            if floor is not None:
                s["floor_db"].append(floor)
                s["buzz"].append(buzz(y, sr, ev[0]))
    summary = {k: {m: (float(np.mean(v)) if v else None) for m, v in s.items()} for k, s in scores.items()}
    for k, s in scores.items():
        summary[k]["buzz_median"] = float(np.median(s["buzz"])) if s["buzz"] else None
    from avcli.metrics.onsets import IMPACT_ONSET_DETECTOR

    res = {"command": "python benchmarks/noise_fill_generated.py " + " ".join(sys.argv[1:]),
           "bundle": str(args.bundle), "prompt": "caption" if args.prompt else None, "clips": len(files),
           "floor_clips": len(scores["real"]["floor_db"]), "onset_detector": IMPACT_ONSET_DETECTOR,
           "settings": {"smooth_bands": nf.SMOOTH_BANDS, "smooth_frames": nf.SMOOTH_FRAMES,
                        "background_quantile": nf.BACKGROUND_QUANTILE, "background_nepers": nf.BACKGROUND_NEPERS,
                        "background_bands": nf.BACKGROUND_BANDS},
           "seconds": time.perf_counter() - t0, "summary": summary}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
