"""`avgen animate`: an audio clip -> a video synchronized to it (the animate task of the joint model), muxed with
the ORIGINAL audio (not a re-synthesis), so what you hear is exactly what you gave."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from avcli.cli.common import console, plan_outputs, print_json, refuse_existing, slug, step_progress, stdout

EXAMPLES = """
Examples:

  avgen animate hit.wav --prompt "a red ball hits a metal plate" -o hit.mp4

  avgen animate drums.flac -p "a wooden block struck by a stick" --num-samples 3 -o takes/
"""


def register(app: typer.Typer) -> None:
    app.command("animate", short_help="Audio -> a video synchronized to it.",
                help="Generate a video that matches an audio clip (one model window; the clip's own sound is kept)."
                     + EXAMPLES)(animate_cmd)


def animate_cmd(
    audio_path: Path = typer.Argument(..., metavar="AUDIO", help="Audio file (wav, flac, mp3, m4a, or a video's "
                                      "soundtrack)."),
    prompt: str = typer.Option("", "--prompt", "-p", help="What should be seen."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output .mp4, or a directory."),
    negative_prompt: str = typer.Option("", "--negative-prompt", "-n", help="What to steer away from."),
    start: float = typer.Option(0.0, min=0.0, help="Start of the audio segment (s)."),
    duration: Optional[float] = typer.Option(None, help="Segment length (s; default: the whole clip, up to the "
                                             "bundle's longest window)."),
    steps: Optional[int] = typer.Option(None, min=1, help="Denoising steps (default: the bundle's)."),
    solver: Optional[str] = typer.Option(None, help="ddim or dpmpp2m (default: the bundle's)."),
    gamma: Optional[float] = typer.Option(None, help="Timestep adjustment gamma (seed 000 eq. 8); 1 = off."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Classifier-free guidance for video."),
    seed: int = typer.Option(0, help="Random seed; sample i uses seed + i."),
    num_samples: int = typer.Option(1, "--num-samples", min=1, max=64, help="How many variations."),
    backend: str = typer.Option("torch", help="torch, ort, trt or auto."),
    bundle: Optional[str] = typer.Option(None, "--bundle", "-b",
                                         help="Bundle name or folder (default: the embedded hits-demo)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (for scripts)."),
) -> None:
    t_start = time.perf_counter()
    import torch

    from avcli.errors import UsageError
    from avcli.media.ffmpeg import probe, read_audio, write_video
    from avcli.models.bundle import load_bundle
    from avcli.pipelines.common import (PromptEncoder, Timings, decode_video, encode_audio, get_components,
                                        modality_specs, resolve_geometry, sampler_config)
    from avcli.sampling.joint import sample

    info = probe(audio_path)
    if not info.has_audio:
        raise UsageError(f"{audio_path}: no audio stream")
    if start >= info.duration_s:
        raise UsageError(f"{audio_path}: --start {start:g} s is past the end ({info.duration_s:.2f} s)")
    outputs = plan_outputs(output, num_samples, slug(prompt or audio_path.stem) + f"_s{seed}")
    refuse_existing(outputs, overwrite)

    timings = Timings()
    with timings.stage("load"):
        model = load_bundle(bundle)
        comps = get_components(model, backend)
        prompts = PromptEncoder(model, comps)
    media = model.manifest["media"]
    max_d = float(media.get("max_duration", media["duration"]))
    seg = min(info.duration_s - start, duration or max_d)
    geo = resolve_geometry(model, seg, None)
    sr = geo.sample_rate
    with timings.stage("decode-audio"):
        wav = read_audio(audio_path, sr, start, seg, required=True)  # the model's view (mono, its rate)
        orig_sr = info.audio_sample_rate or sr
        original = read_audio(audio_path, orig_sr, start, seg, mono=False, required=True)  # what we mux back
    with timings.stage("text"):
        text = prompts.conditioning([prompt], [negative_prompt])
    with timings.stage("encode"):
        known_a = encode_audio(model, comps, wav, geo.mel_frames)
    cfg_ = sampler_config(model, steps=steps, solver=solver, gamma=gamma, cfg_video=cfg)
    vspec, aspec = modality_specs(model, geo)
    rows = []
    with step_progress("animating", enabled=not json_out) as progress:
        task = progress.add_task("animating", total=cfg_.steps * num_samples)
        for i, path in enumerate(outputs):
            with timings.stage("denoise"), torch.no_grad():
                res = sample(comps, vspec, aspec, text, cfg_, torch.Generator().manual_seed(seed + i),
                             task="animate", known_audio=known_a, on_step=lambda k, n: progress.advance(task))
            with timings.stage("decode"):
                frames = decode_video(comps, res.video)[0]
            with timings.stage("mux"):
                write_video(path, frames, geo.fps, original, orig_sr, overwrite=overwrite)
            rows.append({"file": str(path), "seed": seed + i, "frames": len(frames), "fps": geo.fps,
                         "duration_s": len(frames) / geo.fps, "sample_rate": orig_sr})
    wall = time.perf_counter() - t_start
    summary = {"outputs": rows, "timings_s": {k: round(v, 4) for k, v in timings.stages.items()},
               "wall_s": round(wall, 3), "input": str(audio_path), "start_s": start, "duration_s": seg}
    if json_out:
        print_json(summary)
        return
    for r in rows:
        stdout.print(f"{r['file']}  seed {r['seed']}  {r['frames']} frames @ {r['fps']:g} fps")
    console.print(f"done in {wall:.1f} s")
