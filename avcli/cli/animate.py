"""`avgen animate`: an audio clip -> a video synchronized to it (the animate task of the joint model), muxed with
the ORIGINAL audio (not a re-synthesis), so what you hear is exactly what you gave."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

import typer

from avcli.cli.common import console, plan_outputs, print_json, refuse_existing, slug, step_progress, stdout

EXAMPLES = """
Examples:

  avgen animate hit.wav --prompt "a red ball hits a metal plate" -o hit.mp4

  avgen animate hit.wav --image first.png --fit pad -o hit.mp4     (the picture becomes the first frame)

  avgen animate drums.flac -p "a wooden block struck by a stick" --num-samples 3 -o takes/
"""


def _db(v: float | None) -> float | None:
    return None if v is None else (round(v, 2) if math.isfinite(v) else None)


def register(app: typer.Typer) -> None:
    app.command("animate", short_help="Audio -> a video synchronized to it.",
                help="Generate a video that moves with an audio clip, muxed with the clip's own sound. Audio longer "
                     "than the model's window is animated in overlapping windows (the output lasts as long as the "
                     "audio); --image gives the first frame (resized to the bundle's frame size: --fit crop fills "
                     "and cuts the overflow, pad letterboxes, stretch distorts)." + EXAMPLES)(animate_cmd)


def animate_cmd(
    audio_path: Path = typer.Argument(..., metavar="AUDIO", help="Audio file (wav, flac, mp3, m4a, or a video's "
                                      "soundtrack)."),
    prompt: str = typer.Option("", "--prompt", "-p", help="What should be seen."),
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="The first frame (png, jpg, ...)."),
    fit: str = typer.Option("crop", "--fit", help="How --image meets the frame size: crop, pad or stretch."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output .mp4, or a directory."),
    negative_prompt: str = typer.Option("", "--negative-prompt", "-n", help="What to steer away from."),
    start: float = typer.Option(0.0, min=0.0, help="Start of the audio segment (s)."),
    duration: Optional[float] = typer.Option(None, help="Segment length (s; default: to the end of the audio)."),
    overlap: Optional[float] = typer.Option(None, min=0.0, help="Seconds shared by consecutive windows of long "
                                            "audio [default: 1.0, at most half the model's window]."),
    steps: Optional[int] = typer.Option(None, min=1, help="Denoising steps (default: the bundle's)."),
    solver: Optional[str] = typer.Option(None, help="ddim or dpmpp2m (default: the bundle's)."),
    gamma: Optional[float] = typer.Option(None, help="Timestep adjustment gamma (seed 000 eq. 8); 1 = off."),
    timestep_spacing: Optional[str] = typer.Option(None, "--timestep-spacing", metavar="SPACING",
                                                   help="trailing, leading or linspace (default: the bundle's)."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Classifier-free guidance for video."),
    audio_guidance: Optional[float] = typer.Option(None, "--audio-guidance", min=0.0,
                                                   help="Classifier-free audio guidance eta (seed 002): > 1 follows "
                                                   "the sound more closely, at one more video U-Net call per step; "
                                                   "1 = off [default: the bundle's animate default, else 1]. Meant for bundles trained with "
                                                   "--audio-dropout."),
    first_frame_steps: Optional[int] = typer.Option(None, "--first-frame-steps", min=0,
                                                    help="Fit the --image latent to the picture through the video "
                                                    "decoder for N L-BFGS iterations [default: 50 with a weights bundle; "
                                                    "0 = the encoder's latent, as an engine folder must]."),
    seed: int = typer.Option(0, help="Random seed; sample i uses seed + i."),
    num_samples: int = typer.Option(1, "--num-samples", min=1, max=64, help="How many variations."),
    backend: str = typer.Option("auto", help="torch, ort, trt or auto (see avgen generate --help)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or fp16 (fp16: CUDA, or ONNX Runtime graphs)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda[:N] (default: what the backend uses)."),
    bundle: Optional[str] = typer.Option(None, "--bundle", "-b",
                                         help="Bundle name or folder (default: the embedded hits-demo)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (for scripts)."),
) -> None:
    t_start = time.perf_counter()
    from dataclasses import replace

    from avcli.media.ffmpeg import probe, write_video
    from avcli.pipelines.animate import AnimateRequest, check_request, first_frame_mode, window_count
    from avcli.pipelines.common import Timings, parse_spacing, sampler_config
    from avcli.pipelines.pipeline import JointPipeline

    probe(audio_path)  # a missing or unreadable file is one line before the model loads
    outputs = plan_outputs(output, num_samples, slug(prompt or audio_path.stem) + f"_s{seed}")
    refuse_existing(outputs, overwrite)
    req = AnimateRequest(prompt=prompt, negative_prompt=negative_prompt, steps=steps, solver=solver, gamma=gamma,
                         cfg=cfg, seed=seed, start=start, duration=duration, overlap=overlap, fit=fit,
                         image=str(image) if image is not None else None, audio_guidance=audio_guidance,
                         first_frame_steps=first_frame_steps, timestep_spacing=parse_spacing(timestep_spacing))
    timings = Timings()
    with timings.stage("load"):
        pipe = JointPipeline.from_bundle(bundle, backend=backend, device=device, precision=precision,
                                         quiet=json_out)
    _, seconds = check_request(pipe, audio_path, req)  # segment, windows, image: before any compute
    rows, fit_steps, eta = [], 0, None
    per_sample = window_count(pipe, seconds, overlap) * (steps or pipe.default_steps)
    with step_progress("animating", enabled=not json_out) as progress:
        task = progress.add_task("animating", total=per_sample * num_samples)
        for i, path in enumerate(outputs):
            out = pipe.animate(audio_path, replace(req, seed=seed + i), on_step=lambda k, n: progress.advance(task),
                               timings=timings)
            with timings.stage("mux"):
                write_video(path, out.frames, out.fps, out.audio, out.sample_rate, overwrite=overwrite)
            rows.append({"file": str(path), "seed": seed + i, "frames": len(out.frames), "fps": out.fps,
                         "duration_s": len(out.frames) / out.fps, "audio_s": round(out.duration, 4),
                         "windows": out.windows, "sample_rate": out.sample_rate,
                         "first_frame_psnr_db": _db(out.first_frame_psnr_db)})
            fit_steps, eta = out.first_frame_fit_steps, out.audio_guidance
    wall = time.perf_counter() - t_start
    summary = {"outputs": rows, "timings_s": {k: round(v, 4) for k, v in timings.stages.items()},
               "wall_s": round(wall, 3), "input": str(audio_path), "start_s": start, "duration_s": seconds,
               "image": str(image) if image else None, "fit": fit, "backend": pipe.backend,
               "first_frame": first_frame_mode(pipe.manifest, image is not None),
               "first_frame_fit_steps": fit_steps if image else None, "audio_guidance": eta,
               "timestep_spacing": sampler_config(pipe.manifest,
                                                  timestep_spacing=req.timestep_spacing).timestep_spacing}
    if json_out:
        print_json(summary)
        return
    from rich.markup import escape

    for r in rows:
        stdout.print(f"{escape(r['file'])}  seed {r['seed']}  {r['frames']} frames @ {r['fps']:g} fps "
                     f"({r['windows']} window{'s' if r['windows'] > 1 else ''})")
    if summary["first_frame"]:
        fitted = f", latent fitted ({fit_steps} L-BFGS iterations)" if fit_steps else ", encoder latent"
        psnrs = ", ".join(f"{r['first_frame_psnr_db']:.1f}" for r in rows)
        console.print(f"first frame: {summary['first_frame']}{fitted}; {psnrs} dB PSNR against the picture")
    console.print(f"done in {wall:.1f} s")
