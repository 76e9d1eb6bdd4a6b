"""`avgen generate`: text -> video with its soundtrack, generated jointly."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from avcli.cli.common import console, human_size, plan_outputs, print_json, refuse_existing, slug, step_progress, stdout

EXAMPLES = """
Examples:

  avgen generate --prompt "a blue ball bouncing on a metal plate" -o out.mp4

  avgen generate -p "someone hits a wooden table with a stick" --num-samples 4 -o takes/ --seed 7

  avgen generate -p "a red block dropped on glass" --steps 50 --gamma 1.5 --cfg-audio 3 --save-wav --json
"""


def register(app: typer.Typer) -> None:
    app.command("generate", short_help="Text -> video with its soundtrack.", help="Generate a sounding video (video + synchronized audio) from a text prompt."
                + EXAMPLES)(generate_cmd)


def generate_cmd(
    prompt: str = typer.Option(..., "--prompt", "-p", help="What should be seen and heard."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Output .mp4, or a directory for several samples."),
    negative_prompt: str = typer.Option("", "--negative-prompt", "-n", help="What to steer away from."),
    duration: Optional[float] = typer.Option(None, help="Seconds (default: the bundle's native length)."),
    fps: Optional[float] = typer.Option(None, help="Frames per second (default: the bundle's)."),
    steps: Optional[int] = typer.Option(None, help="Denoising steps (default: the bundle's)."),
    solver: Optional[str] = typer.Option(None, help="ddim or dpmpp2m (default: the bundle's)."),
    gamma: Optional[float] = typer.Option(None, help="Timestep adjustment gamma (seed 000 eq. 8); 1 = off."),
    cfg_video: Optional[float] = typer.Option(None, "--cfg-video", help="Classifier-free guidance for video."),
    cfg_audio: Optional[float] = typer.Option(None, "--cfg-audio", help="Classifier-free guidance for audio."),
    seed: int = typer.Option(0, help="Random seed; sample i uses seed + i."),
    num_samples: int = typer.Option(1, "--num-samples", min=1, max=64, help="How many variations."),
    backend: str = typer.Option("torch", help="torch, ort, trt or auto."),
    bundle: Optional[str] = typer.Option(None, "--bundle", "-b",
                                         help="Bundle name or folder (default: the embedded hits-demo)."),
    save_wav: bool = typer.Option(False, "--save-wav", help="Also write the soundtrack as a .wav beside the mp4."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (for scripts)."),
) -> None:
    t_start = time.perf_counter()
    from avcli.errors import UsageError

    if not prompt.strip():
        raise UsageError("--prompt is empty")
    outputs = plan_outputs(output, num_samples, slug(prompt) + f"_s{seed}")
    refuse_existing(outputs + ([p.with_suffix(".wav") for p in outputs] if save_wav else []), overwrite)

    t_import = time.perf_counter()
    from avcli.media.ffmpeg import write_video, write_wav
    from avcli.models.bundle import load_bundle
    from avcli.pipelines.common import Timings
    from avcli.pipelines.generate import GenerateRequest, generate

    timings = Timings()
    timings.stages["import"] = time.perf_counter() - t_import  # torch, diffusers, transformers: seconds on a CPU
    with timings.stage("load"):
        model = load_bundle(bundle)
    req = GenerateRequest(prompt, negative_prompt, duration, fps, steps, solver, gamma, cfg_video, cfg_audio, None,
                          seed, num_samples, backend)
    total_steps = (steps or model.manifest["sampling"]["steps"]) * num_samples
    with step_progress("denoising", enabled=not json_out) as progress:
        task = progress.add_task("denoising", total=total_steps)
        clips = generate(model, req, on_step=lambda k, n: progress.advance(task), timings=timings)
    rows = []
    for clip, path in zip(clips, outputs):
        with timings.stage("mux"):
            write_video(path, clip.frames, clip.fps, clip.audio, clip.sample_rate, overwrite=overwrite)
            if save_wav:
                write_wav(path.with_suffix(".wav"), clip.audio, clip.sample_rate, overwrite=overwrite)
        rows.append({"file": str(path), "seed": clip.seed, "bytes": path.stat().st_size,
                     "duration_s": len(clip.frames) / clip.fps, "frames": len(clip.frames),
                     "sample_rate": clip.sample_rate})
    wall = time.perf_counter() - t_start
    summary = {"outputs": rows, "timings_s": {k: round(v, 4) for k, v in timings.stages.items()},
               "wall_s": round(wall, 3), "bundle": str(getattr(model, "bundle_path", "")),
               "settings": {k: v for k, v in req.__dict__.items()}}
    if json_out:
        print_json(summary)
        return
    table = Table(title="avgen generate", show_lines=False)
    table.add_column("output")
    table.add_column("seed", justify="right")
    table.add_column("length", justify="right")
    table.add_column("size", justify="right")
    for r in rows:
        table.add_row(r["file"], str(r["seed"]), f"{r['duration_s']:.2f} s", human_size(r["bytes"]))
    stdout.print(table)
    t2 = Table(title="timings")
    for k in timings.stages:
        t2.add_column(k, justify="right")
    t2.add_column("wall", justify="right")
    t2.add_row(*[f"{v:.2f} s" for v in timings.stages.values()], f"{wall:.2f} s")
    stdout.print(t2)
