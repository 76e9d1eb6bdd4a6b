"""Noise filling on generated audio (issue 13's buzz): one soundtrack per held-out clip, scored once per fill setting
from the same generated mel, so the rows differ by the fill alone.

`--task foley` (default): `avgen foley` on the held-out videos (no prompt, seed = index, as in benchmarks/quality.py);
onset F1 against the true impact times (+-1 video frame), and the noise floor (dBFS) and buzz (periodicity at
2.5-20 ms lags) of the stretch before the first true impact, next to the real clips' own.

`--task generate`: `avgen generate` on the held-out captions (seed = index, the bundle's sampling unless
`--cfg-audio` / `--cfg-audio-interval` say otherwise); the sound's onsets against the contacts seen in the generated
frames (avcli/metrics/contact.py, F1 +-1 frame), floor and buzz before the first contact seen, and with
`--adherence-model` the material adherence of the sound (the real clips' rows use their own frames and audio).

Each row is a fill setting (`--fill`, comma-separated): `off` (the vocoder as rendered), `ABS` (frames below ABS
dBFS: `sampling.noise_fill_below_dbfs`), `ABS/PEAK` (also frames more than PEAK dB under the clip's loudest:
`sampling.noise_fill_below_peak_db`), `/PEAK` (that alone). Every row goes through `finish_audio`, what
`decode_audio` does after the vocoder, with only the fill keys changed, whatever the bundle's own say.

    .venv/bin/python benchmarks/noise_fill_generated.py --test work/v2/hits-test --n 100 --fill=off,-40
    .venv/bin/python benchmarks/noise_fill_generated.py --task generate --test work/v2/hits-test --n 100 \\
        --fill=-47,-47/20,-47/25 --adherence-model work/adherence.safetensors --json work/nf_generate.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FILL_KEYS = ("noise_fill_below_dbfs", "noise_fill_below_peak_db")


def parse_fill(spec: str) -> tuple[str, dict]:
    """'off' | 'ABS' | 'ABS/PEAK' | '/PEAK' -> (row name, the sampling fill keys)."""
    spec = spec.strip()
    if spec == "off":
        return "vocoder as rendered", {}
    a, _, p = spec.partition("/")
    keys, parts = {}, []
    try:
        if a:
            keys["noise_fill_below_dbfs"] = float(a)
            parts.append(f"below {float(a):g} dBFS")
        if p:
            keys["noise_fill_below_peak_db"] = float(p)
            parts.append(f"{float(p):g} dB under the peak")
    except ValueError:
        keys = {}
    if not keys:
        raise SystemExit(f"--fill: {spec!r} is not off, ABS, ABS/PEAK or /PEAK")
    return "noise fill " + " or ".join(parts), keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(ROOT / "avcli" / "bundles" / "hits-demo"))
    ap.add_argument("--test", type=Path, required=True, help="held-out clips (events.jsonl, captions.jsonl)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--task", choices=("foley", "generate"), default="foley")
    ap.add_argument("--fill", default=None, help="comma-separated rows: off, ABS, ABS/PEAK, /PEAK (default: off,-40)")
    ap.add_argument("--below", default=None, help="comma-separated ABS thresholds (dBFS): rows off + these")
    ap.add_argument("--prompt", action="store_true",
                    help="foley: give each clip its caption as the prompt (default: none, as benchmarks/quality.py)")
    ap.add_argument("--cfg-audio", type=float, default=None, help="generate's audio text guidance (default: bundle's)")
    ap.add_argument("--cfg-audio-interval", default=None, metavar="START:END", help="default: the bundle's")
    ap.add_argument("--adherence-model", type=Path, default=None, help="material adherence per row (generate)")
    ap.add_argument("--json", type=Path, default=None,
                    help="default: benchmarks/results/noise_fill_generated.json (foley), noise_fill_generate.json")
    args = ap.parse_args()
    specs = (args.fill.split(",") if args.fill else
             ["off"] + (args.below.split(",") if args.below else ["-40"]))
    rows = dict(parse_fill(s) for s in specs)
    out_json = args.json or ROOT / "benchmarks" / "results" / (
        "noise_fill_generated.json" if args.task == "foley" else "noise_fill_generate.json")

    import avcli.metrics as M
    from avcli.media.ffmpeg import read_audio, read_video
    from avcli.metrics.contact import buzz, frame_contacts, noise_floor_db
    from avcli.metrics.evaluate import read_jsonl
    from avcli.models import noise_fill as nf
    from avcli.pipelines.common import finish_audio, parse_interval
    from avcli.pipelines.foley import FoleyRequest
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    adherence = None
    if args.adherence_model is not None:
        from avcli.metrics.adherence import AdherenceModel, parse_caption

        adherence = AdherenceModel.load(args.adherence_model)
    pipe = JointPipeline.from_bundle(args.bundle, backend="torch", quiet=True)
    sr = int(pipe.manifest["media"]["sample_rate"])
    fps = float(pipe.manifest["media"]["fps"])
    vocoder = pipe.components["vocoder"]
    seen: dict[str, torch.Tensor] = {}

    def recording_vocoder(mel):  # the generated mel and the vocoder's own output, before anything else touches it
        wav = vocoder(mel=mel)
        seen["mel"], seen["wav"] = mel.detach().float().clone(), wav.detach().float().clone()
        return wav

    pipe.components["vocoder"] = recording_vocoder
    manifests = {}
    for row, keys in rows.items():
        m = copy.deepcopy(pipe.manifest)
        for k in FILL_KEYS:
            m["sampling"].pop(k, None)
        m["sampling"].update(keys)
        manifests[row] = m
    events = {r["file"]: r["events"] for r in read_jsonl(args.test / "events.jsonl", "events")}
    captions = {r["file"]: r["caption"] for r in read_jsonl(args.test / "captions.jsonl", "captions")}
    files = sorted(events)[: args.n]
    names = ["real", *rows]
    metric_names = ["onset_f1" if args.task == "foley" else "contact_f1", "floor_db", "buzz"]
    if adherence is not None:
        metric_names.append("material")
    scores = {k: {m: [] for m in metric_names} for k in names}
    interval = parse_interval(args.cfg_audio_interval, "--cfg-audio-interval")
    t0 = time.perf_counter()
    for i, name in enumerate(files):
        ev = events[name]
        if args.task == "foley":
            pipe.foley(args.test / name, FoleyRequest(prompt=captions.get(name, "") if args.prompt else "", seed=i))
            samples = None
        else:
            clip = pipe.generate(GenerateRequest(captions[name], seed=i, cfg_audio=args.cfg_audio,
                                                 cfg_audio_interval=interval))[0]
            samples, frames = len(clip.audio), clip.frames
            contacts = frame_contacts(frames, fps)
        if seen["wav"].shape[0] != 1:
            raise SystemExit(f"{name}: {seen['wav'].shape[0]} windows; use clips of the bundle's duration")
        real_audio = read_audio(args.test / name, sr)
        samples = samples or len(real_audio)
        outs = {"real": real_audio}
        for row in rows:
            outs[row] = finish_audio(manifests[row], seen["wav"], seen["mel"], samples)[0]
        if args.task == "generate":
            real_frames = read_video(args.test / name, fps, size=frames.shape[1:3])
        for row, y in outs.items():
            s = scores[row]
            onsets = M.impact_onsets(y, sr)
            if args.task == "foley":
                s["onset_f1"].append(M.onset_accuracy(onsets, ev, tolerance=1 / fps).f1)
                first = ev[0]
            else:
                seen_contacts = frame_contacts(real_frames, fps) if row == "real" else contacts
                s["contact_f1"].append(M.onset_accuracy(onsets, seen_contacts, tolerance=1 / fps).f1)
                first = float(seen_contacts[0]) if len(seen_contacts) else len(y) / sr
            floor = noise_floor_db(y, sr, first)
            if floor is not None:
                s["floor_db"].append(floor)
                s["buzz"].append(buzz(y, sr, first))
            if adherence is not None:
                material = parse_caption(captions.get(name, ""))[1]
                if material is not None:
                    s["material"].append(float(adherence.predict_material(y, sr) == material))
        print(f"{i + 1}/{len(files)} {name}", file=sys.stderr, flush=True)
    summary = {k: {m: (float(np.mean(v)) if v else None) for m, v in s.items()} for k, s in scores.items()}
    for k, s in scores.items():
        summary[k]["buzz_median"] = float(np.median(s["buzz"])) if s["buzz"] else None
        summary[k]["buzz_over_0.3"] = int(sum(b > 0.3 for b in s["buzz"]))
    from avcli.metrics.onsets import IMPACT_ONSET_DETECTOR

    res = {"command": "python benchmarks/noise_fill_generated.py " + " ".join(sys.argv[1:]), "task": args.task,
           "bundle": str(args.bundle), "prompt": "caption" if args.prompt else None, "clips": len(files),
           "sampling": {k: v for k, v in pipe.manifest["sampling"].items() if "cfg_audio" in k},
           "cfg_audio": args.cfg_audio, "cfg_audio_interval": args.cfg_audio_interval,
           "rows": {row: keys for row, keys in rows.items()},
           "floor_clips": len(scores["real"]["floor_db"]), "onset_detector": IMPACT_ONSET_DETECTOR,
           "settings": {"smooth_bands": nf.SMOOTH_BANDS, "smooth_frames": nf.SMOOTH_FRAMES,
                        "background_quantile": nf.BACKGROUND_QUANTILE, "background_nepers": nf.BACKGROUND_NEPERS,
                        "background_bands": nf.BACKGROUND_BANDS},
           "seconds": time.perf_counter() - t0, "summary": summary}
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
