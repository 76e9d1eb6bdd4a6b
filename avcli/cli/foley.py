"""`avgen foley`: real video files -> the same videos with generated, synchronized sound (stream-copied picture).

One file, folders of files (--recursive) or a jobs file (--jobs); long videos go through overlapping windows
(avcli.pipelines.foley); batches skip finished outputs, survive bad files, and stop cleanly on Ctrl-C.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from avcli.cli.common import console, print_json, stdout

EXAMPLES = """
Examples:

  avgen foley clip.mp4                      (writes clip.foley.mp4 next to it)

  avgen foley shots/ --recursive --out-dir foley/ --prompt "footsteps on gravel" --report report.json

  avgen foley long_take.mov --overlap 1.5 --sample-rate 48000 --save-wav -o long_take_fx.mov

  avgen foley --jobs jobs.csv --num-samples 3     (columns: input,output,prompt,negative_prompt,seed,start,duration)
"""

TAG = "foley"


def register(app: typer.Typer) -> None:
    app.command("foley", short_help="Video -> the same video with synchronized generated sound.",
                help="Generate synchronized sound for real video files (the picture is copied untouched). "
                     "Long videos are processed in overlapping windows; folders and job files run as resumable "
                     "batches." + EXAMPLES)(foley_cmd)


def foley_cmd(
    inputs: Optional[List[Path]] = typer.Argument(None, help="Video files or folders (mp4 mov mkv webm avi m4v).",
                                                  show_default=False),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (only with a single input)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Folder for outputs (default: next to inputs)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders of input folders."),
    jobs: Optional[Path] = typer.Option(None, "--jobs", help="A .jsonl or .csv of jobs: input, output, prompt, "
                                        "negative_prompt, seed, start, duration (paths relative to the file)."),
    prompt: str = typer.Option("", "--prompt", "-p", help="What the sound should be (optional)."),
    negative_prompt: str = typer.Option("", "--negative-prompt", "-n", help="What to steer away from."),
    steps: Optional[int] = typer.Option(None, min=1, help="Denoising steps (default: the bundle's)."),
    solver: Optional[str] = typer.Option(None, help="ddim or dpmpp2m (default: the bundle's)."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Classifier-free guidance for audio."),
    gamma: Optional[float] = typer.Option(None, help="Timestep adjustment gamma (seed 000 eq. 8); 1 = off."),
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
) -> None:
    t_start = time.perf_counter()
    from avcli.errors import UsageError
    from avcli.pipelines import batch as B

    inputs = list(inputs or [])
    _check_options(inputs, output, out_dir, jobs, fit, mix, duration)
    if bit_depth not in (16, 24):
        raise UsageError(f"--bit-depth must be 16 or 24, got {bit_depth}")
    if (duck or mix_gain != -6.0) and mix != "keep":
        raise UsageError("--duck and --mix-gain shape the original sound: use them with --mix keep")
    single = jobs is None and len(inputs) == 1 and not inputs[0].is_dir()
    if out_dir is not None:
        B.check_writable_dir(out_dir, create=True)
    if report is not None:
        B.check_writable_dir(report.parent if str(report.parent) else Path("."))
        if report.is_dir():
            raise UsageError(f"{report}: --report must be a file name")

    items = _plan_items(inputs, jobs, output, out_dir, recursive, num_samples,
                        dict(prompt=prompt, negative_prompt=negative_prompt, seed=seed, start=start,
                             duration=duration))
    infos = _preflight(items, single, output, video_codec, sample_rate, _bundle_rate(bundle))
    B.mark_collisions(items)
    if single and items[0].input_error:
        raise UsageError(f"{items[0].input}: {items[0].input_error}")

    from avcli.pipelines.common import Timings
    from avcli.pipelines.foley import FoleyRequest, plan_windows

    def request(it: B.Item) -> FoleyRequest:
        return FoleyRequest(prompt=it.prompt, negative_prompt=it.negative_prompt, steps=steps, solver=solver,
                            gamma=gamma, cfg=cfg, seed=it.seed + it.sample, overlap=overlap, fit=fit,
                            start=it.start, duration=it.duration, recon_guidance=recon_guidance)

    _refuse_sidecars(items, save_wav, save_flac, overwrite, single)
    plans = infos.pop("_plans", {})
    todo = [it for it in items if it.input_error is None and (overwrite or not it.output.exists())]
    timings = Timings()
    state: dict = {}
    settings = {"video_codec": video_codec, "mix_gain": mix_gain, "duck": duck, "keep_audio_tracks": keep_audio_tracks,
                "bit_depth": bit_depth, "channels": channels, "bundle": bundle, "backend": backend,
                "precision": precision, "steps": steps, "solver": solver, "cfg": cfg, "gamma": gamma,
                "fit": fit, "overlap": overlap, "sample_rate": sample_rate, "mix": mix, "num_samples": num_samples,
                "recon_guidance": recon_guidance}

    def finish(outcome: B.BatchOutcome) -> dict:
        rep = {"command": "foley", **outcome.to_dict(), "settings": settings,
               "sample_rate": state.get("sr_out"), "bundle": state.get("bundle_path"),
               "timings_s": {k: round(v, 4) for k, v in timings.stages.items()},
               "wall_s": round(time.perf_counter() - t_start, 3)}
        if report is not None:
            B.write_report(report, rep)
        return rep

    show = not json_out and console.is_terminal
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True, disable=not show)
    with progress:
        items_task = progress.add_task("files", total=len(items))
        steps_task = progress.add_task("steps", total=None)
        outcome = None
        if todo:
            try:
                _load(state, bundle, backend, precision, device, recon_guidance > 0, timings, sample_rate)
                settings["backend"] = state["pipe"].backend
                window = state["pipe"].geometry().duration
                overlap = min(1.0, window / 2) if overlap is None else overlap
                settings["overlap"] = overlap
                plan_windows(window * 2, window, overlap)  # a bad --overlap fails here, once, for the whole batch
            except KeyboardInterrupt:
                outcome = B.BatchOutcome([B.ItemResult(str(it.input), str(it.output), B.STATUS_NOT_RUN, 0.0,
                                                       "interrupted") for it in items], interrupted=True)

        def on_start(it: B.Item) -> None:
            progress.update(items_task, description=f"{it.input.name}")
            progress.reset(steps_task, total=_total_steps(state, infos.get(it.input), it, steps, overlap))

        def process(it: B.Item) -> dict:
            return _process(state, it, request(it), timings, mix, overwrite, save_wav, save_flac,
                            on_step=lambda k, n: progress.advance(steps_task), plan=plans.get(it.output),
                            mix_gain=mix_gain, duck=duck, keep_tracks=keep_audio_tracks, bit_depth=bit_depth,
                            channels=channels)

        def on_result(res: B.ItemResult, out: B.BatchOutcome) -> None:
            progress.advance(items_task)
            if res.status == B.STATUS_FAILED:
                progress.console.print(f"[bold red]failed:[/] {escape(res.input)}: {escape(res.reason)}", soft_wrap=True)
            if report is not None:  # keep the report current, so a crash still leaves one
                finish(B.BatchOutcome(out.results + [B.ItemResult(str(i.input), str(i.output), B.STATUS_NOT_RUN)
                                                     for i in items[len(out.results):]], out.interrupted))

        if outcome is None:
            outcome = B.run_items(items, process, overwrite=overwrite, on_result=on_result, on_start=on_start,
                                  raise_errors=single)
    rep = finish(outcome)
    if json_out:
        print_json(rep)
    else:
        _print_summary(outcome, time.perf_counter() - t_start)
    if outcome.interrupted:
        left = outcome.counts()[B.STATUS_NOT_RUN]
        console.print(f"[yellow]interrupted:[/] {left} item(s) not run; run the same command again to resume")
    if outcome.exit_code:
        # SystemExit, not typer.Exit: main.run() calls the app with standalone_mode=False, where click turns
        # typer.Exit into a return value that run() drops (the exit code would be lost).
        raise SystemExit(outcome.exit_code)


def _check_options(inputs, output, out_dir, jobs, fit, mix, duration) -> None:
    from avcli.errors import UsageError
    from avcli.media.ffmpeg import FITS
    from avcli.pipelines.batch import check_output_path

    if not inputs and jobs is None:
        raise UsageError("give one or more input videos or folders (or --jobs jobs.csv)")
    if inputs and jobs is not None:
        raise UsageError("give either input files or --jobs, not both")
    if output is not None and out_dir is not None:
        raise UsageError("-o and --out-dir cannot be used together")
    if output is not None and (jobs is not None or len(inputs) != 1 or inputs[0].is_dir()):
        raise UsageError("-o takes a single input file; use --out-dir for several")
    if output is not None:
        check_output_path(output)
    if fit not in FITS:
        raise UsageError(f"--fit must be one of {', '.join(FITS)}, got {fit!r}")
    if mix not in ("replace", "keep"):
        raise UsageError(f"--mix must be replace or keep, got {mix!r}")
    if duration is not None and duration <= 0:
        raise UsageError(f"--duration must be > 0 seconds, got {duration:g}")


def _plan_items(inputs, jobs, output, out_dir, recursive, num_samples, defaults) -> list:
    from avcli.errors import UsageError
    from avcli.pipelines import batch as B

    rows: list[tuple[Path, Path, dict]] = []  # (input, base folder, row)
    if jobs is not None:
        for r in B.read_jobs(jobs):
            p = Path(r["input"])
            rows.append((p, p.parent, r))
    else:
        for p, base in B.discover_inputs(inputs, recursive, TAG, exclude=out_dir):
            rows.append((p, base, {}))
    items = []
    for p, base, r in rows:
        for s in range(num_samples):
            if "output" in r:
                out = B.numbered(Path(r["output"]), s, num_samples)
                try:
                    B.check_output_path(out)
                except UsageError as exc:
                    out, err = out, str(exc)
                else:
                    err = None
            elif output is not None:
                out, err = B.numbered(output, s, num_samples), None
            else:
                from avcli.media.container import default_suffix

                name = B.output_name(p.stem, TAG, s, num_samples, default_suffix(p))  # keeps the input's container
                if out_dir is not None:
                    try:
                        rel = p.parent.relative_to(base) if recursive else Path()
                    except ValueError:
                        rel = Path()
                    out = out_dir / rel / name
                else:
                    out = p.parent / name
                err = None
            kw = {**defaults, **{k: v for k, v in r.items() if k not in ("input", "output")}}
            items.append(B.Item(p, out, kw["prompt"], kw["negative_prompt"], int(kw["seed"]), float(kw["start"]),
                                kw["duration"], s, err))
    return items


def _preflight(items, single: bool, output, video_codec: str = "copy", sample_rate: int | None = None,
               sr_hint: int = 48000) -> dict:
    """Refuse bad inputs before the model loads: missing, empty, a folder, not media, no video, zero length,
    a start past the end, an output folder we cannot write, a container/codec that cannot be written (checked by a
    dry mux of the real video stream). Returns MediaInfo per readable input, and the mux plans under "_plans"."""
    from avcli.errors import AvgenError, UsageError
    from avcli.media.container import dry_mux, plan_mux
    from avcli.media.ffmpeg import probe
    from avcli.pipelines.batch import check_writable_dir

    infos, errors, plans, tried = {}, {}, {}, {}
    for it in items:
        if it.input_error is not None:
            continue
        if it.input not in infos and it.input not in errors:
            try:
                info = probe(it.input, require_video=True)
                if not info.duration_s > 0:
                    raise UsageError(f"{it.input}: zero-length video (no duration, no frames)")
                infos[it.input] = info
            except AvgenError as exc:
                errors[it.input] = _reason(str(exc), it.input)
                if "not a media file" in errors[it.input] and _empty_container(it.input):
                    errors[it.input] = "zero-length video (the container holds no streams or frames)"
            except OSError as exc:
                errors[it.input] = f"cannot read ({exc.strerror or exc})"
        if it.input in errors:
            it.input_error = errors[it.input]
            continue
        info = infos[it.input]
        if it.start >= info.duration_s:
            it.input_error = f"--start {it.start:g} s is past the end of the video ({info.duration_s:.2f} s)"
            continue
        key = (it.input, it.output.suffix.lower())
        try:
            check_writable_dir(it.output.parent, create=not single and output is None)
            if key not in tried:
                try:
                    tried[key] = plan_mux(it.input, info.video_codec, it.output, video_codec)
                    dry_mux(it.input, tried[key], sample_rate or sr_hint)  # milliseconds, not a failure after compute
                except UsageError as exc:
                    tried[key] = exc
            if isinstance(tried[key], Exception):
                raise tried[key]
            plans[it.output] = tried[key]
        except UsageError as exc:
            it.input_error = _reason(str(exc), it.input)
    infos["_plans"] = plans
    return infos


def _bundle_rate(bundle) -> int:
    """The bundle's sample rate from its manifest (no model load): what the output's audio track will carry."""
    from avcli.errors import AvgenError
    from avcli.manifest import read_manifest, resolve_bundle

    try:
        return int(read_manifest(resolve_bundle(bundle))["media"]["sample_rate"])
    except AvgenError:
        return 48000  # the load reports a bad bundle itself


def _empty_container(path: Path) -> bool:
    """ffmpeg recognises the container but it has no streams (e.g. an mp4 written with zero frames): probe reads
    that as "not media"; users deserve to hear that the video is empty."""
    import subprocess

    from avcli.media.ffmpeg import ffmpeg_exe

    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", "file:" + str(Path(path).resolve())],
                         capture_output=True).stderr.decode(errors="replace")
    return "Input #0" in err and "Stream #" not in err


def _reason(msg: str, path: Path) -> str:
    from avcli.pipelines.batch import _strip_name

    return _strip_name(msg, path)


def _load(state: dict, bundle, backend, precision, device, needs_grad, timings, sample_rate) -> None:
    from avcli.pipelines.pipeline import JointPipeline

    with timings.stage("load"):
        pipe = JointPipeline.from_bundle(bundle, backend=backend, device=device, precision=precision,
                                         needs_grad=needs_grad)
    state["pipe"] = pipe
    state["bundle_path"] = str(pipe.bundle_path or "")
    state["sr"] = pipe.geometry().sample_rate
    state["sr_out"] = int(sample_rate or state["sr"])


def _refuse_sidecars(items, save_wav: bool, save_flac: bool, overwrite: bool, single: bool) -> None:
    """An existing .wav/.flac beside a pending output is never replaced without --overwrite: that item is refused
    before any compute (a single input: the command is)."""
    from avcli.errors import UsageError

    if overwrite:
        return
    for it in items:
        if it.input_error is not None or it.output.exists():
            continue
        for on, ext in ((save_wav, ".wav"), (save_flac, ".flac")):
            side = it.output.with_suffix(ext)
            if on and side.exists():
                if single:
                    raise UsageError(f"{side}: already exists (use --overwrite to replace it)")
                it.input_error = f"{side.name} already exists (use --overwrite to replace it)"
                break


def _total_steps(state, info, it, steps, overlap) -> int | None:
    from avcli.errors import AvgenError
    from avcli.pipelines.foley import plan_windows

    pipe = state.get("pipe")
    if pipe is None or info is None:
        return None
    total = info.duration_s - it.start
    if it.duration:
        total = min(total, it.duration)
    try:
        n = len(plan_windows(total, pipe.geometry().duration, overlap).starts)
    except AvgenError:
        return None
    return n * int(steps or pipe.default_steps)


def resample(audio, sr_in: int, sr_out: int, n_out: int | None = None):
    """Polyphase resampling (scipy), trimmed/padded to exactly `n_out` samples (default: round(len * ratio))."""
    import numpy as np
    from scipy.signal import resample_poly

    if n_out is None:
        n_out = int(round(len(audio) * sr_out / sr_in))
    if sr_in != sr_out:
        g = math.gcd(int(sr_in), int(sr_out))
        audio = resample_poly(np.asarray(audio, np.float64), sr_out // g, sr_in // g)
    audio = np.asarray(audio, np.float32)[:n_out]
    return np.pad(audio, (0, n_out - len(audio))).astype(np.float32)


def _process(state, it, req, timings, mix, overwrite, save_wav, save_flac, on_step, plan=None,
             mix_gain: float = -6.0, duck: bool = False, keep_tracks: bool = False, bit_depth: int = 24,
             channels: int = 1) -> dict:
    from avcli.media.ffmpeg import mux_audio, write_flac, write_wav
    audio = state["pipe"].foley(it.input, req, on_step=on_step, timings=timings).audio
    sr, sr_out = state["sr"], state["sr_out"]
    seconds = len(audio) / sr
    if sr_out != sr:
        with timings.stage("resample"):
            audio = resample(audio, sr, sr_out, int(round(seconds * sr_out)))
    if channels == 2:
        import numpy as np

        audio = np.stack([audio, audio], axis=1)  # the same sound on both sides: a stereo deliverable
    pcm = f"PCM_{bit_depth}"
    it.output.parent.mkdir(parents=True, exist_ok=True)
    sidecars = []
    with timings.stage("mux"):
        # Side files first, the video last: an existing output video means the item is complete (resume key).
        if save_wav:
            sidecars.append(write_wav(it.output.with_suffix(".wav"), audio, sr_out, overwrite=overwrite, subtype=pcm))
        if save_flac:
            sidecars.append(write_flac(it.output.with_suffix(".flac"), audio, sr_out, overwrite=overwrite,
                                       subtype=pcm))
        mux_audio(it.input, audio, sr_out, it.output, mix=mix, start=it.start, duration=len(audio) / sr_out,
                  overwrite=overwrite, plan=plan, mix_gain_db=mix_gain, duck=duck, keep_tracks=keep_tracks)
    return {"seed": req.seed, "start_s": it.start, "duration_s": round(len(audio) / sr_out, 6),
            "samples": len(audio), "sample_rate": sr_out, "extra_files": [str(p) for p in sidecars]}


def _print_summary(outcome, wall: float) -> None:
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
    stdout.print(f"{c['ok']} ok, {c['skipped']} skipped, {c['failed']} failed, {c['not run']} not run "
                 f"in {wall:.1f} s")
