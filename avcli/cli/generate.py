"""`avgen generate`: text -> video with its soundtrack, generated jointly; one prompt or a batch file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from avcli.cli.common import (CPUS_HELP, GPUS_HELP, RAY_HELP, RETRIES_HELP, WORKERS_HELP, console, human_size,
                              plan_outputs, print_json, ray_options, refuse_existing, slug, step_progress, stdout,
                              warn)

EXAMPLES = """
Examples:

  avgen generate --prompt "a blue ball bouncing on a metal plate" -o out.mp4

  avgen generate -p "someone hits a wooden table with a stick" --num-samples 4 -o takes/ --seed 7

  avgen generate -p "" -o any.mp4          (an empty prompt: unconditional, text guidance off)

  avgen generate -p "a red ball bouncing on a drum" --cfg-audio 1 -o fast.mp4
                                           (the audio's text guidance off: faster, the material less often right)

  avgen generate -p "a red ball bouncing on a drum" --cfg-video 4 --cfg-video-interval 0:1 --audio-guidance 1
                 --cfg-audio 2.5 --video-guidance 1 -o plain.mp4
                                           (the default before 2026-12-04: text guidance on every step)

  avgen generate --prompts shots.csv --out-dir takes/ --batch-size 4 --report report.json

  avgen generate --prompts shots.csv --out-dir /shared/takes --ray auto      (on a Ray cluster, one actor per GPU)

  avgen export --onnx --out engines/ && avgen generate --bundle engines/ -p "a red block dropped on glass"
"""

BACKEND_HELP = ("torch, ort, trt or auto. auto: an exported engine folder runs on TensorRT if usable, else ONNX "
                "Runtime; a weights bundle on TensorRT if usable, else PyTorch.")


def register(app: typer.Typer) -> None:
    app.command("generate", short_help="Text -> video with its soundtrack.",
                help="Generate a sounding video (video + synchronized audio) from a text prompt, or from every row "
                     "of a prompts file (--prompts: txt, csv or jsonl with columns prompt, negative, seed, duration, "
                     "output; resumable, failures isolated, a JSON report)." + EXAMPLES)(generate_cmd)


def generate_cmd(
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="What should be seen and heard. An empty "
                                         "prompt generates unconditionally (text guidance off)."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="A .txt (one prompt a line), .csv or .jsonl "
                                           "file of prompts (columns: prompt, negative, seed, duration, output)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Output .mp4, or a directory for several samples."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Folder for a --prompts batch (default: .)."),
    batch_size: int = typer.Option(1, "--batch-size", min=1, max=64, help="Clips per network call in a --prompts "
                                   "batch. 1 (default): each clip is byte-identical to its single command; larger "
                                   "batches match single runs to float rounding (faster on GPUs; on a 2-core CPU "
                                   "measured no faster)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the batch's JSON report here "
                                          "(default: OUT_DIR/report.json)."),
    negative_prompt: str = typer.Option("", "--negative-prompt", "-n", help="What to steer away from."),
    duration: Optional[float] = typer.Option(None, help="Seconds (default: the bundle's native length)."),
    fps: Optional[float] = typer.Option(None, help="Frames per second (default: the bundle's)."),
    steps: Optional[int] = typer.Option(None, min=1, help="Denoising steps (default: the bundle's)."),
    solver: Optional[str] = typer.Option(None, help="ddim or dpmpp2m (default: the bundle's)."),
    gamma: Optional[float] = typer.Option(None, help="Timestep adjustment gamma (seed 000 eq. 8); 1 = off."),
    cfg_video: Optional[float] = typer.Option(None, "--cfg-video", help="Classifier-free guidance for video."),
    cfg_audio: Optional[float] = typer.Option(None, "--cfg-audio", help="Classifier-free guidance for audio."),
    cfg_video_interval: Optional[str] = typer.Option(None, "--cfg-video-interval", metavar="START:END",
                                                     help="Guide the video only in this part of the steps, as "
                                                          "fractions, noisiest first (e.g. 0:0.6); outside it the "
                                                          "U-Net runs once, not twice. Default: the bundle's."),
    cfg_audio_interval: Optional[str] = typer.Option(None, "--cfg-audio-interval", metavar="START:END",
                                                     help="The same for the audio's text guidance."),
    cfg_video_rescale: Optional[float] = typer.Option(
        None, "--cfg-video-rescale", min=0.0, max=1.0, metavar="PHI",
        help="Guidance rescale on the video's text guidance (Lin et al. 2024; diffusers' guidance_rescale): the "
             "guided prediction brought to the positive one's spread, mixed in with weight PHI (0 = off; default: "
             "the bundle's). Tames what a high scale overdoes, at no extra cost."),
    cfg_audio_rescale: Optional[float] = typer.Option(
        None, "--cfg-audio-rescale", min=0.0, max=1.0, metavar="PHI",
        help="The same for the audio's text guidance."),
    timestep_spacing: Optional[str] = typer.Option(
        None, "--timestep-spacing", metavar="SPACING",
        help="Where the steps sit among the training timesteps: trailing (the first step at the last, pure-noise "
             "timestep), leading or linspace (diffusers' names; default: the bundle's)."),
    audio_guidance: Optional[float] = typer.Option(
        None, "--audio-guidance", min=0.0, metavar="ETA",
        help="Seed 002's audio guidance on the video U-Net: eps(no sound) + ETA (eps(sound) - eps(no sound)), so the "
             "picture follows the generated sound more (1 = off; default: the bundle's: the shipped one runs 12 on "
             "the last 40 % of the steps, where it has no video text guidance, at no extra cost; on steps that also "
             "have text guidance it costs a second video U-Net call). Needs a bundle trained with --audio-dropout."),
    audio_guidance_interval: Optional[str] = typer.Option(
        None, "--audio-guidance-interval", metavar="START:END",
        help="Apply --audio-guidance only in this part of the steps (fractions, noisiest first). With "
             "--cfg-video-interval 0:X and this X:1 each step runs the video U-Net twice, as text guidance alone "
             "does. Default: the bundle's."),
    video_guidance: Optional[float] = typer.Option(
        None, "--video-guidance", min=0.0, metavar="ETA",
        help="Guidance over the picture on the audio U-Net (seed 004): eps(no picture) + ETA (eps(picture) - "
             "eps(no picture)), so the sound keeps to the generated picture (1 = off; default: the bundle's). On "
             "steps with audio text guidance it costs a second audio U-Net call."),
    video_guidance_interval: Optional[str] = typer.Option(
        None, "--video-guidance-interval", metavar="START:END",
        help="Apply --video-guidance only in this part of the steps. Default: the bundle's."),
    seed: int = typer.Option(0, help="Random seed; sample i uses seed + i."),
    num_samples: int = typer.Option(1, "--num-samples", min=1, max=64, help="How many variations."),
    backend: str = typer.Option("auto", help=BACKEND_HELP),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or fp16 (fp16: CUDA, or ONNX Runtime graphs)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda[:N] (default: what the backend uses)."),
    bundle: Optional[str] = typer.Option(None, "--bundle", "-b",
                                         help="Bundle name or folder, or an exported engine folder (default: the "
                                              "embedded hits-demo)."),
    save_wav: bool = typer.Option(False, "--save-wav", help="Also write the soundtrack as a .wav beside the mp4."),
    save_latents: bool = typer.Option(False, "--save-latents", help="Also write the clean video and audio latents "
                                      "as .latents.safetensors beside the mp4 (for post-processing and checks)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (for scripts)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help=RAY_HELP + " (with --prompts)"),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", help=GPUS_HELP),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", help=CPUS_HELP),
    retries: int = typer.Option(2, "--retries", help=RETRIES_HELP),
) -> None:
    t_start = time.perf_counter()
    from avcli.errors import UsageError
    from avcli.pipelines.prompt_jobs import side_path, sidecars as sidecar_exts, write_clip

    if (prompt is None) == (prompts is None):
        raise UsageError("give --prompt TEXT or --prompts FILE (one of them)")
    from avcli.pipelines.common import parse_interval, parse_spacing

    intervals = dict(cfg_video_interval=parse_interval(cfg_video_interval, "--cfg-video-interval"),
                     cfg_audio_interval=parse_interval(cfg_audio_interval, "--cfg-audio-interval"),
                     audio_guidance_interval=parse_interval(audio_guidance_interval, "--audio-guidance-interval"),
                     video_guidance_interval=parse_interval(video_guidance_interval, "--video-guidance-interval"),
                     cfg_video_rescale=cfg_video_rescale, cfg_audio_rescale=cfg_audio_rescale,
                     timestep_spacing=parse_spacing(timestep_spacing))
    if ray is not None and prompts is None:
        raise UsageError("--ray runs a --prompts batch; give --prompts FILE")
    if prompts is not None:
        opts = ray_options(ray, workers, gpus_per_worker, cpus_per_worker, retries)
        return _batch(prompts, out_dir or Path("."), report, batch_size, num_samples, t_start, overwrite,
                      sidecar_exts(save_wav, save_latents), json_out, bundle, backend, precision, device,
                      dict(negative_prompt=negative_prompt, duration=duration, fps=fps, steps=steps, solver=solver,
                           gamma=gamma, cfg_video=cfg_video, cfg_audio=cfg_audio, seed=seed, audio_guidance=audio_guidance,
                           video_guidance=video_guidance, **intervals), opts)
    if out_dir is not None:
        raise UsageError("--out-dir is for --prompts batches; use -o FILE or -o FOLDER/ with --prompt")
    outputs = plan_outputs(output, num_samples, slug(prompt or "unconditional") + f"_s{seed}")
    sidecars = sidecar_exts(save_wav, save_latents)
    refuse_existing(outputs + [side_path(p, ext) for p in outputs for ext in sidecars], overwrite)

    from avcli.pipelines.common import Timings
    from avcli.pipelines.generate import GenerateRequest, resolved_sampling
    from avcli.pipelines.pipeline import JointPipeline

    timings = Timings()
    # from the command's start: the sampler's libraries (torch) come in with prompt_jobs above; a weights bundle's
    # model libraries (diffusers, transformers) load inside from_bundle, under "load"
    timings.stages["import"] = time.perf_counter() - t_start
    with timings.stage("load"):
        pipe = JointPipeline.from_bundle(bundle, backend=backend, device=device, precision=precision, quiet=json_out)
    req = GenerateRequest(prompt, negative_prompt, duration, fps, steps, solver, gamma, cfg_video, cfg_audio, None,
                          seed, num_samples, audio_guidance=audio_guidance, video_guidance=video_guidance,
                          **intervals)
    _warn_guidance(pipe.manifest, req)
    pipe.checked_geometry(duration, fps)  # before the progress bar: a bad --duration is one line, no compute
    total_steps = (steps or pipe.default_steps) * num_samples
    with step_progress("denoising", enabled=not json_out) as progress:
        task = progress.add_task("denoising", total=total_steps)
        out = pipe.generate(req, on_step=lambda k, n: progress.advance(task), timings=timings)
    rows = []
    for clip, path in zip(out.clips, outputs):
        with timings.stage("mux"):
            write_clip(path, clip, sidecars, overwrite)
        rows.append(_row(path, clip))
    wall = time.perf_counter() - t_start
    summary = {"outputs": rows, "timings_s": {k: round(v, 4) for k, v in timings.stages.items()},
               "wall_s": round(wall, 3), "bundle": str(pipe.bundle_path or ""), "backend": pipe.backend,
               "precision": pipe.precision, "settings": dict(req.__dict__),
               "sampling": resolved_sampling(pipe, req)}
    if json_out:
        print_json(summary)
        return
    _print(rows, timings.stages, wall)


def _warn_guidance(manifest: dict, req) -> None:
    from avcli.pipelines.common import sampler_config
    from avcli.pipelines.generate import audio_guidance_untrained

    if (w := audio_guidance_untrained(manifest, sampler_config(
            manifest, audio_guidance=req.audio_guidance).audio_guidance)):
        warn(w)


def _row(path: Path, clip) -> dict:
    return {"file": str(path), "seed": clip.seed, "bytes": path.stat().st_size,
            "duration_s": len(clip.frames) / clip.fps, "frames": len(clip.frames), "sample_rate": clip.sample_rate}


def _print(rows: list[dict], stages: dict, wall: float) -> None:
    from rich.markup import escape

    table = Table(title="avgen generate", show_lines=False)
    table.add_column("output")
    table.add_column("seed", justify="right")
    table.add_column("length", justify="right")
    table.add_column("size", justify="right")
    for r in rows:
        table.add_row(escape(r["file"]), str(r["seed"]), f"{r['duration_s']:.2f} s", human_size(r["bytes"]))
    stdout.print(table)
    t2 = Table(title="timings")
    for k in stages:
        t2.add_column(k, justify="right")
    t2.add_column("wall", justify="right")
    t2.add_row(*[f"{v:.2f} s" for v in stages.values()], f"{wall:.2f} s")
    stdout.print(t2)


def _batch(prompts: Path, out_dir: Path, report: Path | None, batch_size: int, num_samples: int, t_start: float,
           overwrite: bool, sidecars: tuple[str, ...], json_out: bool, bundle, backend, precision, device,
           base: dict, ray_opts=None) -> None:
    from rich.markup import escape

    from avcli.media.ffmpeg import remove_stale_parts
    from avcli.pipelines import batch as B
    from avcli.pipelines import prompt_jobs as J
    from avcli.pipelines.common import Timings
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import LoadSpec

    rows = J.read_prompts(prompts)
    B.check_writable_dir(out_dir, create=True)
    report = report or out_dir / "report.json"
    items = J.plan_items(rows, out_dir, GenerateRequest("", **base), num_samples)  # collisions: refused here
    J.refuse_sidecars(items, sidecars, overwrite)
    spec = LoadSpec(bundle, backend, device, precision, quiet=json_out)
    timings = Timings()
    chunks = J.pending_chunks(items, batch_size, overwrite)
    files_of = (lambda it: [it.output] + [J.side_path(it.output, e) for e in sidecars])  # noqa: E731
    remove_stale_parts([p for c in chunks for i in c for p in files_of(items[i])])  # left by a killed run
    out_dir.mkdir(parents=True, exist_ok=True)
    state: dict = {"backend": None}

    def finish(outcome) -> dict:
        rep = {"command": "generate", "prompts": str(prompts), **outcome.to_dict(),
               "backend": state["backend"], "batch_size": batch_size,
               "timings_s": {k: round(v, 4) for k, v in timings.stages.items()},
               "wall_s": round(time.perf_counter() - t_start, 3)}
        if "ray" in state:
            rep["ray"] = state["ray"]
        B.write_report(report, rep)
        return rep

    steps_each = base["steps"]
    with step_progress("generating", enabled=not json_out, unit="clips" if ray_opts else "steps") as progress:
        if ray_opts is not None:
            outcome = _batch_on_ray(items, batch_size, spec, sidecars, overwrite, ray_opts, bundle, progress,
                                    finish, files_of, state)
        elif chunks:
            worker = J.GenerateWorker(spec, sidecars, overwrite, timings)
            state["backend"] = worker.pipe.backend
            _warn_guidance(worker.pipe.manifest, items[0].request)
            J.preflight(worker.pipe.checked_geometry, items)
            task = progress.add_task("generating", total=(steps_each or worker.pipe.default_steps) *
                                     sum(len(c) for c in chunks))
            outcome = J.run_prompt_items(worker.pipe, items, worker.write, batch_size, overwrite,
                                         on_step=lambda k, n: progress.advance(task), timings=timings,
                                         on_result=lambda res, out: finish(out))
        else:
            outcome = J.run_prompt_items(None, items, None, batch_size, overwrite)
    rep = finish(outcome)
    if json_out:
        print_json(rep)
    else:
        styles = {"ok": "green", "skipped": "cyan", "failed": "bold red", "not run": "yellow"}
        table = Table(title=f"avgen generate --prompts {escape(str(prompts))}")
        for col in ("row", "output", "status", "seconds", "reason"):
            table.add_column(col, overflow="fold")
        for r in outcome.results:
            table.add_row(r.input, escape(r.output), f"[{styles.get(r.status, '')}]{r.status}[/]",
                          f"{r.seconds:.2f}" if r.status == "ok" else "", escape(r.reason))
        stdout.print(table)
        c = outcome.counts()
        retried = sum(1 for e in state.get("ray", {}).get("events", []) if e["then"] == "retried")
        stdout.print(f"{c['ok']} ok, {c['skipped']} skipped, {c['failed']} failed, {c['not run']} not run in "
                     f"{time.perf_counter() - t_start:.1f} s" + (f", {retried} retried after a worker died"
                                                                 if retried else "") +
                     f"; report: {escape(str(report))}")
    if outcome.interrupted:
        console.print("[yellow]interrupted:[/] run the same command again to resume")
    if outcome.exit_code:
        raise SystemExit(outcome.exit_code)


def _batch_on_ray(items, batch_size, spec, sidecars, overwrite, opts, bundle, progress, finish, files_of, state):
    """The same items and chunks as the local batch, one chunk per Ray actor call; results as they come."""
    from avcli.manifest import read_manifest, resolve_bundle
    from avcli.pipelines import prompt_jobs as J
    from avcli.pipelines.batch import STATUS_NOT_RUN, BatchOutcome, ItemResult
    from avcli.pipelines.common import resolve_geometry
    from avcli.pipelines.ray_runner import run_items_on_ray

    manifest = read_manifest(resolve_bundle(bundle))  # the bundle is checked on the driver before Ray starts
    J.preflight(lambda d, f: resolve_geometry(manifest, d, f), items)
    chunks = J.pending_chunks(items, batch_size, overwrite)  # after the preflight, as run_prompt_items makes them
    results = J.settled(items, chunks)  # refused rows (failed) and finished ones (skipped)
    task = progress.add_task("clips", total=len(items), completed=len(results))

    def done(idx: int, res: ItemResult) -> None:
        results[idx] = res
        progress.advance(task)
        finish(BatchOutcome([results[i] for i in sorted(results)]))

    if chunks:
        _warn_guidance(manifest, items[0].request)  # on the driver, once, as the local batch does
        run = run_items_on_ray(items, chunks, J.GenerateWorker, (spec, sidecars, overwrite), opts, done, files_of,
                               on_status=lambda m: progress.update(task, description=m))
        state["ray"] = run.to_dict()
        backends = {w.get("backend") for w in run.workers if w.get("backend")}
        state["backend"] = backends.pop() if len(backends) == 1 else sorted(backends) or None
        interrupted = run.interrupted
    else:
        interrupted = False
    for i, it in enumerate(items):
        results.setdefault(i, ItemResult(str(it.row), str(it.output), STATUS_NOT_RUN, 0.0, "interrupted"))
    return BatchOutcome([results[i] for i in sorted(results)], interrupted)
