"""Foley batches: plan items from files, folders or a jobs file, refuse bad ones before any compute, and a worker
that loads the pipeline once and turns one item into its output. The local batch (`avgen foley DIR`) and every
Ray actor (`avgen foley DIR --ray`) run the same `FoleyWorker.process`, so a clip is the same wherever it ran.

    items = plan_items(inputs, jobs, output, out_dir, recursive, num_samples, defaults)
    infos = preflight(items, single, output, settings.video_codec, settings.sample_rate, bundle_rate(bundle))
    worker = FoleyWorker(LoadSpec(bundle), settings)        # loads once
    outcome = run_items(items, worker.process)              # or on Ray: the same items, one worker per actor
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from avcli.errors import AvgenError, UsageError
from avcli.pipelines import batch as B
from avcli.pipelines.common import Timings
from avcli.pipelines.pipeline import LoadSpec

TAG = B.FOLEY_TAG


# the settings a worker resolves against its bundle (FoleyWorker.describe), reported as what ran
DESCRIBED = ("backend", "overlap", "video_guidance", "cfg", "timestep_spacing")


@dataclass(frozen=True)
class FoleySettings:
    """Everything a batch shares (plain data: it travels to Ray workers): sampling knobs and output shaping."""

    steps: int | None = None
    solver: str | None = None
    cfg: float | None = None
    gamma: float | None = None
    overlap: float | None = None
    fit: str = "crop"
    recon_guidance: float = 0.0
    mix: str = "replace"
    mix_gain: float = -6.0
    duck: bool = False
    keep_audio_tracks: bool = False
    bit_depth: int = 24
    channels: int = 1
    sample_rate: int | None = None
    video_codec: str = "copy"
    save_wav: bool = False
    save_flac: bool = False
    overwrite: bool = False
    video_guidance: float | None = None  # seed 004's guidance over the visual condition (None: the bundle's)
    timestep_spacing: str | None = None  # None: the bundle's


def check_options(inputs, output, out_dir, jobs, settings: FoleySettings, duration) -> None:
    from avcli.media.ffmpeg import FITS

    if not inputs and jobs is None:
        raise UsageError("give one or more input videos or folders (or --jobs jobs.csv)")
    if inputs and jobs is not None:
        raise UsageError("give either input files or --jobs, not both")
    if output is not None and out_dir is not None:
        raise UsageError("-o and --out-dir cannot be used together")
    if output is not None and (jobs is not None or len(inputs) != 1 or inputs[0].is_dir()):
        raise UsageError("-o takes a single input file; use --out-dir for several")
    if output is not None:
        B.check_output_path(output)
    if settings.fit not in FITS:
        raise UsageError(f"--fit must be one of {', '.join(FITS)}, got {settings.fit!r}")
    if settings.mix not in ("replace", "keep"):
        raise UsageError(f"--mix must be replace or keep, got {settings.mix!r}")
    if duration is not None and duration <= 0:
        raise UsageError(f"--duration must be > 0 seconds, got {duration:g}")
    if settings.bit_depth not in (16, 24):
        raise UsageError(f"--bit-depth must be 16 or 24, got {settings.bit_depth}")
    if (settings.duck or settings.mix_gain != -6.0) and settings.mix != "keep":
        raise UsageError("--duck and --mix-gain shape the original sound: use them with --mix keep")


def plan_items(inputs, jobs, output, out_dir, recursive, num_samples, defaults) -> list[B.Item]:
    """One item per (input, variation), in input order."""
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
            err = None
            if "output" in r:
                out = B.numbered(Path(r["output"]), s, num_samples)
                try:
                    B.check_output_path(out)
                except UsageError as exc:
                    err = str(exc)
            elif output is not None:
                out = B.numbered(output, s, num_samples)
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
            kw = {**defaults, **{k: v for k, v in r.items() if k not in ("input", "output")}}
            items.append(B.Item(p, out, kw["prompt"], kw["negative_prompt"], int(kw["seed"]),
                                float(kw["start"]), kw["duration"], s, err))
    return items


def preflight(items, single: bool, output, video_codec: str = "copy", sample_rate: int | None = None,
              sr_hint: int = 48000) -> dict:
    """Refuse bad inputs before the model loads: missing, empty, a folder, not media, no video, zero length,
    a start past the end, an output folder we cannot write, a container/codec that cannot be written (checked by a
    dry mux of the real video stream). Sets each item's mux plan; returns MediaInfo per readable input."""
    from avcli.media.container import dry_mux, plan_mux
    from avcli.media.ffmpeg import probe

    infos, errors, tried = {}, {}, {}
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
                errors[it.input] = B._strip_name(str(exc), it.input)
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
            B.check_writable_dir(it.output.parent, create=not single and output is None)
            if key not in tried:
                try:
                    tried[key] = plan_mux(it.input, info.video_codec, it.output, video_codec)
                    dry_mux(it.input, tried[key], sample_rate or sr_hint)  # milliseconds, not a failure after compute
                except UsageError as exc:
                    tried[key] = exc
            if isinstance(tried[key], Exception):
                raise tried[key]
            it.plan = tried[key]
        except UsageError as exc:
            it.input_error = B._strip_name(str(exc), it.input)
    return infos


def refuse_sidecars(items, settings: FoleySettings, single: bool) -> None:
    """An existing .wav/.flac beside a pending output is never replaced without --overwrite: that item is refused
    before any compute (a single input: the command is)."""
    if settings.overwrite:
        return
    for it in items:
        if it.input_error is not None or it.output.exists():
            continue
        for on, ext in ((settings.save_wav, ".wav"), (settings.save_flac, ".flac")):
            side = it.output.with_suffix(ext)
            if on and side.exists():
                if single:
                    raise UsageError(f"{side}: already exists (use --overwrite to replace it)")
                it.input_error = f"{side.name} already exists (use --overwrite to replace it)"
                break


def sidecar_paths(it: B.Item, settings: FoleySettings) -> list[Path]:
    return [it.output.with_suffix(ext) for on, ext in ((settings.save_wav, ".wav"), (settings.save_flac, ".flac"))
            if on]


def bundle_rate(bundle) -> int:
    """The bundle's sample rate from its manifest (no model load): what the output's audio track will carry."""
    from avcli.manifest import read_manifest, resolve_bundle

    try:
        return int(read_manifest(resolve_bundle(bundle))["media"]["sample_rate"])
    except AvgenError:
        return 48000  # the load reports a bad bundle itself


def _empty_container(path: Path) -> bool:
    """ffmpeg recognises the container but it has no streams (e.g. an mp4 written with zero frames): probe reads
    that as "not media"; users deserve to hear that the video is empty."""
    from avcli.media.ffmpeg import ffmpeg_exe

    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", "file:" + str(Path(path).resolve())],
                         capture_output=True).stderr.decode(errors="replace")
    return "Input #0" in err and "Stream #" not in err


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


class FoleyWorker:
    """A loaded pipeline and the batch's settings; `process(item)` writes one output (sidecars first, the video
    last, each atomic) and returns the report's extra columns. Raises AvgenError/OSError for a failed item."""

    def __init__(self, spec: LoadSpec, settings: FoleySettings, timings: Timings | None = None):
        from avcli.pipelines.foley import plan_windows

        self.settings = settings
        self.timings = timings if timings is not None else Timings()
        with self.timings.stage("load"):
            self.pipe = spec.load()
        geo = self.pipe.geometry()
        self.sr = geo.sample_rate
        self.sr_out = int(settings.sample_rate or self.sr)
        self.overlap = min(1.0, geo.duration / 2) if settings.overlap is None else settings.overlap
        plan_windows(geo.duration * 2, geo.duration, self.overlap)  # a bad --overlap fails here, once

    def request(self, it: B.Item):
        from avcli.pipelines.foley import FoleyRequest

        s = self.settings
        return FoleyRequest(prompt=it.prompt, negative_prompt=it.negative_prompt, steps=s.steps, solver=s.solver,
                            gamma=s.gamma, cfg=s.cfg, seed=it.seed + it.sample, overlap=self.overlap, fit=s.fit,
                            start=it.start, duration=it.duration, recon_guidance=s.recon_guidance,
                            video_guidance=s.video_guidance, timestep_spacing=s.timestep_spacing)

    def total_steps(self, info, it: B.Item) -> int | None:
        """Denoising steps this item will take (windows x steps), for a progress bar; None when unknown."""
        from avcli.pipelines.foley import plan_windows

        if info is None:
            return None
        total = info.duration_s - it.start
        if it.duration:
            total = min(total, it.duration)
        try:
            n = len(plan_windows(total, self.pipe.geometry().duration, self.overlap).starts)
        except AvgenError:
            return None
        return n * int(self.settings.steps or self.pipe.default_steps)

    def process(self, it: B.Item, on_step=None) -> dict:
        from avcli.media.ffmpeg import mux_audio, write_flac, write_wav

        s, timings = self.settings, self.timings
        req = self.request(it)
        audio = self.pipe.foley(it.input, req, on_step=on_step, timings=timings).audio
        seconds = len(audio) / self.sr
        if self.sr_out != self.sr:
            with timings.stage("resample"):
                audio = resample(audio, self.sr, self.sr_out, int(round(seconds * self.sr_out)))
        if s.channels == 2:
            import numpy as np

            audio = np.stack([audio, audio], axis=1)  # the same sound on both sides: a stereo deliverable
        pcm = f"PCM_{s.bit_depth}"
        it.output.parent.mkdir(parents=True, exist_ok=True)
        sidecars = []
        with timings.stage("mux"):
            # Side files first, the video last: an existing output video means the item is complete (resume key).
            if s.save_wav:
                sidecars.append(write_wav(it.output.with_suffix(".wav"), audio, self.sr_out, overwrite=s.overwrite,
                                          subtype=pcm))
            if s.save_flac:
                sidecars.append(write_flac(it.output.with_suffix(".flac"), audio, self.sr_out, overwrite=s.overwrite,
                                           subtype=pcm))
            mux_audio(it.input, audio, self.sr_out, it.output, mix=s.mix, start=it.start,
                      duration=len(audio) / self.sr_out, overwrite=s.overwrite, plan=it.plan, mix_gain_db=s.mix_gain,
                      duck=s.duck, keep_tracks=s.keep_audio_tracks)
        return {"seed": req.seed, "start_s": it.start, "duration_s": round(len(audio) / self.sr_out, 6),
                "samples": len(audio), "sample_rate": self.sr_out, "extra_files": [str(p) for p in sidecars]}

    def run(self, items: list[B.Item]) -> list[B.ItemResult]:
        """A unit of work sent to a remote worker: exactly the local batch's rule (skip done, isolate failures)."""
        return B.run_items(items, self.process, overwrite=self.settings.overwrite).results

    def describe(self) -> dict:
        from avcli.pipelines.common import sampler_config
        from avcli.pipelines.foley import FoleyRequest, foley_cfg_audio, foley_video_guidance

        return {"backend": self.pipe.backend, "bundle_path": str(self.pipe.bundle_path or ""), "sr_out": self.sr_out,
                "overlap": self.overlap, "video_guidance": foley_video_guidance(
                    self.pipe.manifest, FoleyRequest(video_guidance=self.settings.video_guidance)),
                "cfg": foley_cfg_audio(self.pipe.manifest, FoleyRequest(cfg=self.settings.cfg)),
                "timestep_spacing": sampler_config(self.pipe.manifest,
                                                   timestep_spacing=self.settings.timestep_spacing).timestep_spacing}
