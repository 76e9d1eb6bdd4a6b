"""`avgen foley`: real video files -> the same videos with generated, synchronized sound (stream-copied picture).

One file, folders of files (--recursive) or a jobs file (--jobs); long videos go through overlapping windows
(avcli.pipelines.foley); batches skip finished outputs, survive bad files, and stop cleanly on Ctrl-C.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from avcli.cli.common import (CPUS_HELP, GPUS_HELP, RAY_HELP, RETRIES_HELP, WORKERS_HELP, console, print_json,
                              ray_options, stdout)

EXAMPLES = """
Examples:

  avgen foley clip.mp4                      (writes clip.foley.mp4 next to it)

  avgen foley shots/ --recursive --out-dir foley/ --prompt "footsteps on gravel" --report report.json

  avgen foley long_take.mov --overlap 1.5 --sample-rate 48000 --save-wav -o long_take_fx.mov

  avgen foley --jobs jobs.csv --num-samples 3     (columns: input,output,prompt,negative_prompt,seed,start,duration)

  avgen foley /shared/shots --out-dir /shared/foley --ray auto --report /shared/foley/report.json   (a Ray cluster)
"""

def register(app: typer.Typer) -> None:
    app.command("foley", short_help="Video -> the same video with synchronized generated sound.",
                help="Generate synchronized sound for real video files (the picture is copied untouched). "
                     "Long videos are processed in overlapping windows; folders and job files run as resumable "
                     "batches." + EXAMPLES)(foley_cmd)


def foley_cmd(
    inputs: Optional[List[Path]] = typer.Argument(None, help="Video files or folders (mp4 mov mkv webm avi m4v mpg mpeg; a named file may be anything ffmpeg reads).",
                                                  show_default=False),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (only with a single input)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Folder for outputs (default: next to inputs)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders of input folders."),
    jobs: Optional[Path] = typer.Option(None, "--jobs", help="A .jsonl or .csv of jobs: input, output, prompt, "
                                        "negative_prompt, seed, start, duration (paths relative to the file)."),
    prompt: str = typer.Option("", "--prompt", "-p", help="What the sound should be (optional)."),
    negative_prompt: str = typer.Option("", "--negative-prompt", "-n", help="What to steer away from."),
    steps: Optional[int] = typer.Option(None, min=1, help="Denoising steps (default: the bundle's)."),
    solver: Optional[str] = typer.Option(None, help="ddim or dpmpp2m (default: the bundle's; on the demo bundle "
                                                     "dpmpp2m places onsets worse: README, Steps and solvers)."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Text guidance for audio, with --prompt, on every step "
                                       "(default: the bundle's foley_cfg_audio, else its cfg_audio: 1 on the demo "
                                       "since 2026-12-05, so a prompt conditions without guidance; 2.5 was the "
                                       "default before)."),
    gamma: Optional[float] = typer.Option(None, help="Timestep adjustment gamma (seed 000 eq. 8); 1 = off."),
    timestep_spacing: Optional[str] = typer.Option(None, "--timestep-spacing", metavar="SPACING",
                                                   help="trailing, leading or linspace (default: the bundle's)."),
    seed: int = typer.Option(0, help="Random seed; variation i uses seed + i."),
    num_samples: int = typer.Option(1, "--num-samples", min=1, max=64,
                                    help="Variations per input: <stem>.foley_1.mp4, _2, ..."),
    backend: str = typer.Option("auto", help="torch, ort, trt or auto (an engine folder: TensorRT or ONNX Runtime; "
                                "a weights bundle: TensorRT if usable, else PyTorch)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or fp16 (fp16: CUDA, or ONNX Runtime graphs)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda[:N] (default: what the backend uses)."),
    bundle: Optional[str] = typer.Option(None, "--bundle", "-b",
                                         help="Bundle name or folder (default: the embedded hits-demo)."),
    fit: str = typer.Option("crop", help="How frames meet the model's frame size: crop, pad or stretch."),
    start: float = typer.Option(0.0, min=0.0, help="Segment start (s); the rest of the video keeps silence "
                                "(or its own sound with --mix keep)."),
    duration: Optional[float] = typer.Option(None, help="Segment length (s; default: to the end)."),
    overlap: Optional[float] = typer.Option(None, min=0.0, help="Seconds shared by consecutive windows of long "
                                            "videos [default: 1.0, at most half the model's window]."),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", min=1000, max=384000,
                                              help="Resample the generated audio (e.g. 48000)."),
    mix: str = typer.Option("replace", help="replace the original sound, or keep it mixed under (--mix-gain)."),
    mix_gain: float = typer.Option(-6.0, "--mix-gain", min=-60.0, max=12.0,
                                   help="Level of the original sound under the new one with --mix keep (dB)."),
    video_codec: str = typer.Option("copy", "--video-codec",
                                    help="copy (default: the picture bit for bit, in the input's container unless -o "
                                         "says otherwise), h264 (yuv420p, +faststart: plays in browsers) or prores "
                                         "(ProRes 422 HQ in .mov, PCM audio: for editing software)."),
    duck: bool = typer.Option(False, "--duck", help="With --mix keep: push the original further down while the "
                              "new sound plays (sidechain ducking)."),
    keep_audio_tracks: bool = typer.Option(False, "--keep-audio-tracks", help="Keep every original audio track "
                                           "after the new one (re-encoded to the container's audio codec)."),
    bit_depth: int = typer.Option(24, "--bit-depth", help="16 or 24-bit PCM for the .wav/.flac sidecars."),
    channels: int = typer.Option(1, "--channels", min=1, max=2, help="1 (mono) or 2 (stereo) for the new sound."),
    save_wav: bool = typer.Option(False, "--save-wav", help="Also write the generated audio as .wav."),
    save_flac: bool = typer.Option(False, "--save-flac", help="Also write the generated audio as .flac."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that already exist."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a JSON report of every item here."),
    json_out: bool = typer.Option(False, "--json", help="Print the JSON report on stdout (for scripts)."),
    recon_guidance: float = typer.Option(0.0, "--recon-guidance", min=0.0,
                                         help="Reconstruction guidance weight (seed 001; torch backend only)."),
    video_guidance: Optional[float] = typer.Option(
        None, "--video-guidance", min=0.0, metavar="ETA",
        help="Guidance over the picture (seed 004): eps(no picture) + ETA (eps(picture) - eps(no picture)), so the "
             "sound keeps to what is seen: quiet between impacts (1 = off; default: the bundle's, 2 on the "
             "demo; free without --prompt)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help=RAY_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    gpus_per_worker: Optional[float] = typer.Option(None, "--gpus-per-worker", help=GPUS_HELP),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", help=CPUS_HELP),
    retries: int = typer.Option(2, "--retries", help=RETRIES_HELP),
) -> None:
    t_start = time.perf_counter()
    from avcli.errors import UsageError
    from avcli.media.ffmpeg import remove_stale_parts
    from avcli.pipelines import batch as B
    from avcli.pipelines import foley_jobs as F
    from avcli.pipelines.common import Timings, parse_spacing
    from avcli.pipelines.pipeline import LoadSpec

    inputs = list(inputs or [])
    settings = F.FoleySettings(steps, solver, cfg, gamma, overlap, fit, recon_guidance, mix, mix_gain, duck,
                               keep_audio_tracks, bit_depth, channels, sample_rate, video_codec, save_wav, save_flac,
                               overwrite, video_guidance, parse_spacing(timestep_spacing))
    F.check_options(inputs, output, out_dir, jobs, settings, duration)
    ray_opts = ray_options(ray, workers, gpus_per_worker, cpus_per_worker, retries)
    single = jobs is None and len(inputs) == 1 and not inputs[0].is_dir()
    if ray_opts is not None and output is not None:
        raise UsageError("--ray runs batches: give folders or --jobs and --out-dir, not -o")
    if out_dir is not None:
        B.check_writable_dir(out_dir, create=True)
    if report is not None:
        B.check_writable_dir(report.parent if str(report.parent) else Path("."))
        if report.is_dir():
            raise UsageError(f"{report}: --report must be a file name")

    items = F.plan_items(inputs, jobs, output, out_dir, recursive, num_samples,
                         dict(prompt=prompt, negative_prompt=negative_prompt, seed=seed, start=start,
                              duration=duration))
    infos = F.preflight(items, single, output, video_codec, sample_rate, F.bundle_rate(bundle))
    B.mark_collisions(items)
    if single and items[0].input_error:
        raise UsageError(f"{items[0].input}: {items[0].input_error}")
    F.refuse_sidecars(items, settings, single)
    todo = [it for it in items if it.input_error is None and (overwrite or not it.output.exists())]
    remove_stale_parts([p for it in todo for p in [it.output, *F.sidecar_paths(it, settings)]])  # a killed run's
    timings = Timings()
    state: dict = {}
    report_settings = {k: v for k, v in settings.__dict__.items() if k not in ("save_wav", "save_flac", "overwrite")}
    report_settings.update(bundle=bundle, backend=backend, precision=precision, num_samples=num_samples)

    def finish(outcome: B.BatchOutcome) -> dict:
        rep = {"command": "foley", **outcome.to_dict(),
               "settings": {**report_settings, **{k: state[k] for k in F.DESCRIBED if k in state}},
               "sample_rate": state.get("sr_out"), "bundle": state.get("bundle_path"),
               "timings_s": {k: round(v, 4) for k, v in timings.stages.items()},
               "wall_s": round(time.perf_counter() - t_start, 3)}
        if "ray" in state:
            rep["ray"] = state["ray"]
        if report is not None:
            B.write_report(report, rep)
        return rep

    show = not json_out and console.is_terminal
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True, disable=not show)
    spec = LoadSpec(bundle, backend, device, precision, needs_grad=recon_guidance > 0)

    def on_result(res: B.ItemResult, out: B.BatchOutcome) -> None:
        progress.advance(items_task)
        if res.status == B.STATUS_FAILED:
            progress.console.print(f"[bold red]failed:[/] {escape(res.input)}: {escape(res.reason)}", soft_wrap=True)
        if report is not None:  # keep the report current, so a crash still leaves one
            got = {r.output for r in out.results}
            finish(B.BatchOutcome(out.results + [B.ItemResult(str(i.input), str(i.output), B.STATUS_NOT_RUN)
                                                 for i in items if str(i.output) not in got], out.interrupted))

    with progress:
        items_task = progress.add_task("files", total=len(items))
        if ray_opts is not None:
            outcome = _on_ray(items, todo, spec, settings, ray_opts, state, on_result, progress, items_task)
        else:
            outcome = _local(items, todo, spec, settings, state, timings, infos, on_result, progress, items_task,
                             single)
    rep = finish(outcome)
    if json_out:
        print_json(rep)
    else:
        _print_summary(outcome, time.perf_counter() - t_start, state.get("ray"))
    if outcome.interrupted:
        left = outcome.counts()[B.STATUS_NOT_RUN]
        console.print(f"[yellow]interrupted:[/] {left} item(s) not run; run the same command again to resume")
    if outcome.exit_code:
        # SystemExit, not typer.Exit: main.run() calls the app with standalone_mode=False, where click turns
        # typer.Exit into a return value that run() drops (the exit code would be lost).
        raise SystemExit(outcome.exit_code)


def _local(items, todo, spec, settings, state, timings, infos, on_result, progress, items_task, single):
    """One process: load the pipeline once (only when something is left to do) and run the items in order."""
    from avcli.pipelines import batch as B
    from avcli.pipelines.foley_jobs import FoleyWorker

    steps_task = progress.add_task("steps", total=None)
    worker = None
    if todo:
        try:
            worker = FoleyWorker(spec, settings, timings)
        except KeyboardInterrupt:
            return B.BatchOutcome([B.ItemResult(str(it.input), str(it.output), B.STATUS_NOT_RUN, 0.0, "interrupted")
                                   for it in items], interrupted=True)
        state.update(worker.describe())

    def on_start(it: B.Item) -> None:
        progress.update(items_task, description=f"{it.input.name}")
        progress.reset(steps_task, total=worker.total_steps(infos.get(it.input), it))

    def process(it: B.Item) -> dict:
        return worker.process(it, on_step=lambda k, n: progress.advance(steps_task))

    return B.run_items(items, process, overwrite=settings.overwrite, on_result=on_result, on_start=on_start,
                       raise_errors=single)


def _on_ray(items, todo, spec, settings, opts, state, on_result, progress, items_task):
    """The same items on Ray actors (one FoleyWorker each); items needing no work are settled here, as locally."""
    from avcli.pipelines import batch as B
    from avcli.pipelines.foley_jobs import DESCRIBED, FoleyWorker, sidecar_paths
    from avcli.pipelines.ray_runner import run_items_on_ray

    results: dict[int, B.ItemResult] = {}
    outcome = B.BatchOutcome([])
    pending = {id(it) for it in todo}

    def done(idx: int, res: B.ItemResult) -> None:
        results[idx] = res
        outcome.results = [results[i] for i in sorted(results)]
        on_result(res, outcome)

    for i, it in enumerate(items):  # exactly run_items' rule, before any worker starts
        if it.input_error is not None:
            done(i, B.ItemResult(str(it.input), str(it.output), B.STATUS_FAILED, 0.0, it.input_error))
        elif id(it) not in pending:
            done(i, B.ItemResult(str(it.input), str(it.output), B.STATUS_SKIPPED, 0.0, "output exists"))
    chunks = [[i] for i, it in enumerate(items) if id(it) in pending]
    if chunks:
        run = run_items_on_ray(items, chunks, FoleyWorker, (spec, settings), opts, done,
                               lambda it: [it.output, *sidecar_paths(it, settings)],
                               on_status=lambda m: progress.update(items_task, description=m))
        state["ray"] = run.to_dict()
        first = next((w for w in run.workers if w.get("bundle")), {})
        state.update({k: first[k] for k in ("bundle_path", "sr_out", *DESCRIBED) if k in first})
        outcome.interrupted = run.interrupted
    for i, it in enumerate(items):
        results.setdefault(i, B.ItemResult(str(it.input), str(it.output), B.STATUS_NOT_RUN, 0.0, "interrupted"))
    outcome.results = [results[i] for i in sorted(results)]
    return outcome


def _print_summary(outcome, wall: float, ray_run: dict | None = None) -> None:
    from rich.markup import escape

    styles = {"ok": "green", "skipped": "cyan", "failed": "bold red", "not run": "yellow"}
    table = Table(title="avgen foley")
    table.add_column("input", overflow="fold")
    table.add_column("output", overflow="fold")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    table.add_column("reason", overflow="fold")
    for r in outcome.results:
        table.add_row(escape(r.input), escape(r.output), f"[{styles.get(r.status, '')}]{r.status}[/]",
                      f"{r.seconds:.2f}" if r.status == "ok" else "", escape(r.reason))
    stdout.print(table)
    c = outcome.counts()
    retried = sum(1 for e in (ray_run or {}).get("events", []) if e["then"] == "retried")
    on = f" on {ray_run['workers_started']} Ray worker(s)" if ray_run else ""
    stdout.print(f"{c['ok']} ok, {c['skipped']} skipped, {c['failed']} failed, {c['not run']} not run "
                 f"in {wall:.1f} s{on}" + (f", {retried} retried after a worker died" if retried else ""))
