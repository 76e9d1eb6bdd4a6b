"""Quality of a bundle on held-out synthetic clips (the README's quality table); every number comes from `avgen eval`.

1. generate: one clip per held-out caption with the default settings of `avgen generate` (seed = index);
2. foley: the held-out videos (never seen in training) re-sounded with `avgen foley`'s pipeline, default settings;
3. `avgen eval` on the real held-out clips, the generated clips and the foley outputs: AV-Align (all three
   variants), onset accuracy against the true impact times (foley and real; +-1 video frame), Fréchet distances
   against the real clips, and prompt adherence (object colour from frames, material from audio) by classifiers
   trained on the training clips (`--fit-adherence`), the agreement of the sound's onsets with the contacts seen
   in the frames (generate and real; metrics/contact.py) and the noise floor before the first impact.

    .venv/bin/python benchmarks/quality.py --train work/hits --test work/hits-test --n 100

`--parts foley` makes and scores only the foley side (onsets, AV-Align, FD), what the training levers are compared
on (benchmarks/levers.py); the real clips are then scored for onsets and AV-Align only. `--parts generate` makes
and scores only the generate side (what a text-guidance setting changes: benchmarks/guidance_sweep.py), with
`--cfg-video` / `--cfg-audio` in place of the bundle's guidance scales. `--gamma` replaces seed 000's timestep
adjustment on both sides (seed 000's Table 1 sweep, benchmarks/gamma_sweep.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def avgen_eval(folder: Path, *args: str) -> dict:
    """`avgen eval FOLDER ... --json` in a subprocess (argument list, no shell); its summary and set metrics."""
    cmd = [sys.executable, "-m", "avcli", "eval", str(folder), "--json", "--csv", str(folder / "eval_metrics.csv"),
           "--overwrite", *args]  # the folder is this benchmark's own: a re-run scores it again
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"avgen eval failed on {folder}: {proc.stderr.strip()[-500:]}")
    out = json.loads(proc.stdout)
    return {"summary": out["summary"], "set_metrics": out["set_metrics"],
            "command": "avgen eval " + " ".join(str(a) for a in cmd[4:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--train", type=Path, required=True, help="training clips (for the adherence classifiers)")
    ap.add_argument("--test", type=Path, required=True, help="held-out clips: captions, videos, true events")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality")
    ap.add_argument("--parts", default="generate,foley", help="generate,foley (default), generate or foley")
    ap.add_argument("--cfg-video", type=float, default=None, help="generate's video text guidance (default: bundle's)")
    ap.add_argument("--cfg-audio", type=float, default=None, help="generate's audio text guidance (default: bundle's)")
    ap.add_argument("--cfg-video-interval", default=None, metavar="START:END",
                    help="generate's video guidance only in this part of the steps (default: bundle's)")
    ap.add_argument("--cfg-audio-interval", default=None, metavar="START:END",
                    help="generate's audio guidance only in this part of the steps (default: bundle's)")
    ap.add_argument("--cfg-video-rescale", type=float, default=None,
                    help="generate's guidance rescale phi on the video's text guidance (default: bundle's)")
    ap.add_argument("--cfg-audio-rescale", type=float, default=None,
                    help="generate's guidance rescale phi on the audio's text guidance (default: bundle's)")
    ap.add_argument("--audio-guidance", type=float, default=None,
                    help="generate's audio guidance on the video U-Net, seed 002's eta (default: bundle's, 1 = off)")
    ap.add_argument("--audio-guidance-interval", default=None, metavar="START:END",
                    help="that audio guidance only in this part of the steps (default: bundle's)")
    ap.add_argument("--video-guidance", type=float, default=None,
                    help="generate's guidance over the picture on the audio U-Net, seed 004 (default: bundle's)")
    ap.add_argument("--video-guidance-interval", default=None, metavar="START:END",
                    help="that video guidance only in this part of the steps (default: bundle's)")
    ap.add_argument("--foley-video-guidance", type=float, default=None,
                    help="foley's --video-guidance (default: bundle's)")
    ap.add_argument("--timestep-spacing", default=None, metavar="SPACING",
                    help="where the steps sit among the training timesteps, both sides (default: bundle's)")
    ap.add_argument("--gamma", type=float, default=None, help="timestep adjustment, both sides (default: bundle's)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the bundle's)")
    ap.add_argument("--solver", choices=("ddim", "dpmpp2m"), default=None, help="default: the bundle's")
    ap.add_argument("--adherence-model", type=Path, default=None,
                    help="adherence classifiers to reuse if the file exists (fitted on --train and saved there if "
                         "not); default: fitted afresh into the --out folder")
    ap.add_argument("--picture-without-sound", action="store_true",
                    help="diagnostic: generate with the video U-Net's audio features zeroed on every step (the null "
                         "that --audio-dropout trains), so the frames are drawn from the text alone; the audio side "
                         "still reads the picture")
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="clip i is sampled with seed i + offset (a second offset measures seed noise)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if not parts or parts - {"generate", "foley"}:
        raise SystemExit("--parts: generate,foley, generate or foley")
    gen, fol = "generate" in parts, "foley" in parts
    from avcli.pipelines.common import parse_interval, parse_spacing

    intervals = dict(cfg_video_interval=parse_interval(args.cfg_video_interval, "--cfg-video-interval"),
                     cfg_audio_interval=parse_interval(args.cfg_audio_interval, "--cfg-audio-interval"),
                     cfg_video_rescale=args.cfg_video_rescale, cfg_audio_rescale=args.cfg_audio_rescale,
                     audio_guidance=args.audio_guidance,
                     audio_guidance_interval=parse_interval(args.audio_guidance_interval, "--audio-guidance-interval"),
                     video_guidance=args.video_guidance, timestep_spacing=parse_spacing(args.timestep_spacing),
                     video_guidance_interval=parse_interval(args.video_guidance_interval, "--video-guidance-interval"))

    from avcli.media.ffmpeg import mux_audio, write_video
    from avcli.models.bundle import load_bundle
    from avcli.pipelines.common import sampler_config
    from avcli.pipelines.foley import FoleyRequest, foley_video_guidance
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    model = load_bundle(args.bundle)
    geo = model.geometry()
    caps = _rows(args.test / "captions.jsonl")[: args.n]
    truth = {r["file"]: r for r in _rows(args.test / "events.jsonl")}
    real, gen_dir, foley_dir = args.out / "real", args.out / "generate", args.out / "foley"
    for d in (real, gen_dir, foley_dir):
        d.mkdir(parents=True, exist_ok=True)
    pipe = JointPipeline.from_model(model)  # the pipeline `avgen generate` / `avgen foley` run
    if args.picture_without_sound:
        import torch

        connector = pipe.components["audio_connector"]
        pipe.components["audio_connector"] = lambda **kw: torch.zeros_like(connector(**kw))
    seconds = {"generate": [], "foley": []}
    for i, row in enumerate(caps):
        name, seed = row["file"], i + args.seed_offset
        if not (real / name).exists():  # the same n real clips, by link: eval scores whole folders
            (real / name).symlink_to((args.test / name).resolve())
        if gen and not (gen_dir / name).exists():
            t0 = time.perf_counter()
            clip = pipe.generate(GenerateRequest(row["caption"], seed=seed, steps=args.steps, solver=args.solver,
                                                 cfg_video=args.cfg_video, cfg_audio=args.cfg_audio,
                                                 gamma=args.gamma, **intervals))[0]
            write_video(gen_dir / name, clip.frames, clip.fps, clip.audio, clip.sample_rate)
            seconds["generate"].append(time.perf_counter() - t0)
        if fol and not (foley_dir / name).exists():
            t0 = time.perf_counter()
            audio = pipe.foley(args.test / name, FoleyRequest(seed=seed, steps=args.steps, solver=args.solver,
                                                                gamma=args.gamma,
                                                                timestep_spacing=intervals["timestep_spacing"],
                                                                video_guidance=args.foley_video_guidance)).audio
            mux_audio(args.test / name, audio, geo.sample_rate, foley_dir / name)
            seconds["foley"].append(time.perf_counter() - t0)
        print(f"{i + 1}/{len(caps)} {name}", file=sys.stderr, flush=True)
    for d in (real, gen_dir, foley_dir):
        (d / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in caps))
    (real / "events.jsonl").write_text("".join(json.dumps(truth[r["file"]]) + "\n" for r in caps))

    adh = args.adherence_model or args.out / "adherence.safetensors"
    fit = [] if args.adherence_model and adh.exists() else ["--fit-adherence", str(args.train), "--overwrite"]
    tol = str(round(1000.0 / geo.fps, 3))  # +-1 video frame, the AV-Align window
    common = ["--fps", f"{geo.fps:g}", "--variant", "all"]
    res: dict = {"n": len(caps), "bundle": str(model.bundle_path), "fps": geo.fps, "sample_rate": geo.sample_rate,
                 "command": "python benchmarks/quality.py " + " ".join(sys.argv[1:])}
    res["parts"] = sorted(parts)
    cfg = sampler_config(model, steps=args.steps, solver=args.solver, cfg_video=args.cfg_video,
                         cfg_audio=args.cfg_audio, gamma=args.gamma, **intervals)
    res["sampling"] = {"steps": cfg.steps, "solver": cfg.solver, "seed_offset": args.seed_offset,
                       "cfg_video": cfg.cfg_video, "cfg_audio": cfg.cfg_audio, "gamma": cfg.gamma,
                       "cfg_video_interval": list(cfg.cfg_video_interval),
                       "cfg_audio_interval": list(cfg.cfg_audio_interval), "audio_guidance": cfg.audio_guidance,
                       "audio_guidance_interval": list(cfg.audio_guidance_interval),
                       "video_guidance": cfg.video_guidance,
                       "video_guidance_interval": list(cfg.video_guidance_interval),
                       "cfg_video_rescale": cfg.cfg_video_rescale, "cfg_audio_rescale": cfg.cfg_audio_rescale,
                       "timestep_spacing": cfg.timestep_spacing,
                       "foley_video_guidance": foley_video_guidance(model.manifest,
                                                                    FoleyRequest(video_guidance=args.foley_video_guidance))}
    from avcli.metrics.onsets import IMPACT_ONSET_DETECTOR
    res["onset_detector"] = IMPACT_ONSET_DETECTOR
    truth_args = ["--truth", str(real / "events.jsonl"), "--onset-tolerance-ms", tol]
    if gen:
        res["eval_real"] = avgen_eval(real, *common, "--metrics", "av_align,onsets,adherence,contact,floor", *truth_args,
                                      *fit, "--adherence-model", str(adh))
        res["eval_generate"] = avgen_eval(gen_dir, *common, "--metrics", "av_align,fd,adherence,contact,floor",
                                          "--onset-tolerance-ms", tol, "--reference", str(real),
                                          "--adherence-model", str(adh))
    else:
        res["eval_real"] = avgen_eval(real, *common, "--metrics", "av_align,onsets,floor", *truth_args)
    if fol:
        res["eval_foley"] = avgen_eval(foley_dir, *common, "--metrics", "av_align,onsets,fd,floor", *truth_args,
                                       "--reference", str(real))
    scored = ["real"] + (["generate"] if gen else []) + (["foley"] if fol else [])
    mean = lambda name, key: res[f"eval_{name}"]["summary"].get(key, {}).get("mean")  # noqa: E731
    for name in scored:
        res[f"av_align_{name}"] = {v: mean(name, f"av_align_{v}") for v in ("seed000", "official", "legacy")}
    for name in ("real", "foley") if fol else ("real",):
        res[f"onsets_{name}"] = {k: mean(name, f"onset_{k}") for k in ("precision", "recall", "f1")}
    for name in ("real", "generate") if gen else ():
        res[f"adherence_{name}"] = {"colour": mean(name, "colour_ok"), "material": mean(name, "material_ok"),
                                    "colour_frames": mean(name, "colour_frames_ok")}  # mean over clips
    for name in ("real", "generate") if gen else ():  # sound onsets vs contacts seen in frames
        res[f"contact_{name}"] = {k: mean(name, f"contact_{k}") for k in ("precision", "recall", "f1")}
    for name in scored:
        res[f"noise_floor_db_{name}"] = mean(name, "noise_floor_db")
        res[f"buzz_{name}"] = mean(name, "buzz")
    res["seconds_per_clip"] = {k: (sum(v) / len(v) if v else None) for k, v in seconds.items()}
    old = args.out.parent / "quality.json"
    if old.exists():  # a rerun that made no clip (only re-scored them) keeps the timing of the run that made them
        prev = json.loads(old.read_text()).get("seconds_per_clip") or {}
        res["seconds_per_clip"] = {k: v if v is not None else prev.get(k) for k, v in res["seconds_per_clip"].items()}
    (args.out.parent / "quality.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if not k.startswith("eval_")}, indent=1))


if __name__ == "__main__":
    main()
