"""Evaluate a folder of generated clips: per-file metric rows and a summary (used by `avgen eval`).

Media is read with avcli.media (imported lazily); everything else is the pure metric functions of this package.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avcli.errors import UsageError
from avcli.media.container import VIDEO_EXTS

METRICS = ("av_align", "aa_align", "beats", "onsets", "fd", "adherence", "relsync", "alignsync", "contact", "floor")
NEEDS_REFERENCE = ("aa_align", "beats", "fd", "relsync", "alignsync")
AUDIO_SR = 16000


@dataclass(frozen=True)
class EvalConfig:
    metrics: tuple[str, ...] = ("av_align",)
    variants: tuple[str, ...] = ("seed000",)
    fps: float = 8.0
    onset_tolerance: float = 0.05
    resolution_aware: bool = False


@dataclass
class EvalResult:
    rows: list[dict]  # one per generated file: {"file": name, metric: value, ...}
    set_metrics: dict[str, dict] = field(default_factory=dict)  # set-level values (Fréchet distances)
    warnings: list[str] = field(default_factory=list)

    def columns(self) -> list[str]:
        cols: list[str] = []
        for r in self.rows:
            cols += [k for k in r if k not in cols]
        return cols

    def summary(self) -> dict[str, dict]:
        out = {}
        for c in self.columns():
            if c == "file":
                continue
            v = np.array([r.get(c, math.nan) for r in self.rows], dtype=np.float64)
            v = v[np.isfinite(v)]
            out[c] = {"mean": float(v.mean()) if len(v) else math.nan,
                      "std": float(v.std()) if len(v) else math.nan, "n": int(len(v))}
        return out


def is_video(path: Path) -> bool:
    """A video file by its name (the containers foley reads: mp4 mov mkv webm avi m4v mpg mpeg)."""
    return path.suffix.lower() in VIDEO_EXTS


def list_clips(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a directory (give the folder holding the generated video files)")
    clips = sorted(p for p in folder.iterdir() if is_video(p) and p.is_file() and not p.name.startswith("."))
    if not clips:
        raise UsageError(f"{folder}: no video files ({', '.join(e[1:] for e in VIDEO_EXTS)}) to evaluate")
    return clips


def read_jsonl(path, what: str) -> list[dict]:
    from avcli.jsonl import read_file_rows

    return read_file_rows(path, what)


def load_truth(path) -> dict[str, list[float]]:
    """events.jsonl: {"file": "clip.mp4", "events": [seconds, ...], "attrs": {...}} per line -> {name: events}."""
    out = {}
    for row in read_jsonl(path, "events"):
        ev = row.get("events", [])
        if not isinstance(ev, list) or not all(isinstance(t, (int, float)) for t in ev):
            raise UsageError(f"{path}: \"events\" of {row['file']} must be a list of times in seconds")
        out[Path(row["file"]).name] = [float(t) for t in ev]
    return out


def load_captions(folder) -> dict[str, str]:
    p = Path(folder) / "captions.jsonl"
    if not p.is_file():
        return {}
    return {Path(r["file"]).name: str(r.get("caption", "")) for r in read_jsonl(p, "captions")}


def read_clip_audio(clip: Path) -> tuple[np.ndarray, int]:
    """Audio of a clip as float32 (N,) and its rate: a same-stem .wav wins over the clip's own track.

    A clip without audio gives one second of silence at 16 kHz (metrics then warn about missing onsets)."""
    wav = clip.with_suffix(".wav")
    if wav.is_file():
        return read_wav(wav)
    from avcli.media.ffmpeg import read_audio

    a = read_audio(clip, AUDIO_SR)
    if a is None:
        warnings.warn(f"{clip.name}: no audio stream; scoring it as silence", RuntimeWarning, stacklevel=2)
        return np.zeros(AUDIO_SR, np.float32), AUDIO_SR
    return a, AUDIO_SR


def read_clip_frames(clip: Path, fps: float) -> np.ndarray:
    """Frames resampled to `fps` at the clip's own size: uint8 (F, H, W, 3)."""
    from avcli.media.ffmpeg import probe, read_video

    info = probe(clip, require_video=True)
    return read_video(clip, fps, size=(info.height, info.width))


def find_reference(ref_dir: Path, clip: Path) -> Path | None:
    """The real clip paired with `clip`: the same file name, else a same-stem .wav, else a same-stem video in any
    container; for `avgen foley`'s outputs (shot.foley.mp4, shot.foley_2.mp4) the same with the source's stem
    (shot.avi), so `avgen eval OUT --reference SHOTS` pairs each output with the shot it was made for."""
    from avcli.pipelines.batch import FOLEY_TAG, source_stem

    stems = dict.fromkeys((clip.stem, source_stem(clip.stem, FOLEY_TAG)))
    for cand in (ref_dir / clip.name, *(ref_dir / f"{s}{e}" for s in stems for e in (".wav", *VIDEO_EXTS))):
        if cand.is_file():
            return cand
    return None


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A WAV file as mono float32 (N,) and its rate."""
    import soundfile as sf

    try:
        a, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    except RuntimeError as exc:
        raise UsageError(f"{path}: unreadable WAV ({exc})") from exc
    return a.mean(axis=1), int(sr)


def _ref_audio(ref: Path) -> tuple[np.ndarray, int]:
    return read_clip_audio(ref) if is_video(ref) else read_wav(ref)


def evaluate_folder(gen_dir, cfg: EvalConfig, reference=None, truth=None, adherence_model=None,
                    on_file=None, sync_model=None) -> EvalResult:
    """Compute per-file metrics for every video file in gen_dir. `on_file(name)` is called before each file."""
    from avcli.metrics import (aa_align, audio_onsets, beat_hit_rate, beat_times, impact_onsets, onset_accuracy,
                               video_peaks)
    from avcli.metrics.av_align import SCORERS
    from avcli.metrics.frechet import (FD_AUDIO_NAME, FD_VIDEO_NAME, audio_features, frechet_distance,
                                       video_features)

    clips = list_clips(gen_dir)
    ref_dir = Path(reference) if reference is not None else None
    if ref_dir is not None and not ref_dir.is_dir():
        raise UsageError(f"{ref_dir}: reference folder not found")
    missing = [m for m in cfg.metrics if m in NEEDS_REFERENCE and ref_dir is None]
    if missing:
        raise UsageError(f"metric {missing[0]} needs --reference REAL_DIR (real clips with the same file names)")
    events = load_truth(truth) if truth is not None else None
    if "onsets" in cfg.metrics and events is None:
        raise UsageError("metric onsets needs --truth events.jsonl")
    captions = load_captions(gen_dir) if "adherence" in cfg.metrics else {}
    if "adherence" in cfg.metrics and adherence_model is None:
        raise UsageError("metric adherence needs --adherence-model FILE")
    for m in ("relsync", "alignsync"):
        if m in cfg.metrics and sync_model is None:
            raise UsageError(f"metric {m} needs --sync-model FILE (train one with --fit-sync DATA_DIR)")
    if "alignsync" in cfg.metrics and sync_model.align is None:
        raise UsageError("metric alignsync needs a sync model with its image-audio part (a version-1 file has "
                         "none): train it again with --fit-sync DATA_DIR")

    rows, feats, messages = [], {"gen_a": [], "ref_a": [], "gen_v": [], "ref_v": []}, []
    for clip in clips:
        if on_file:
            on_file(clip.name)
        row: dict = {"file": clip.name}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frames = read_clip_frames(clip, cfg.fps)  # (F, H, W, 3)
            audio, sr = read_clip_audio(clip)
            onsets = audio_onsets(audio, sr)  # seed 000's detector: AV-Align and AA-Align
            if {"onsets", "contact"} & set(cfg.metrics):
                impacts = impact_onsets(audio, sr)  # onset accuracy, contact agreement (no zero-padding edge)
            if "av_align" in cfg.metrics:
                peaks = video_peaks(frames, cfg.fps, resolution_aware=cfg.resolution_aware)
                for v in cfg.variants:
                    row[f"av_align_{v}"] = SCORERS[v](onsets, peaks, cfg.fps)
                row["n_onsets"], row["n_peaks"] = len(onsets), len(peaks)
            ref = find_reference(ref_dir, clip) if ref_dir is not None else None
            if ref_dir is not None and ref is None and any(m in NEEDS_REFERENCE for m in cfg.metrics):
                warnings.warn(f"no reference named {clip.name} (or {clip.stem}.wav) in {ref_dir}", RuntimeWarning)
            if ref is not None:
                ref_audio, ref_sr = _ref_audio(ref)
                if "aa_align" in cfg.metrics:
                    row["aa_align"] = aa_align(onsets, audio_onsets(ref_audio, ref_sr))
                if "beats" in cfg.metrics:
                    gb, rb = beat_times(audio, sr), beat_times(ref_audio, ref_sr)
                    row["beat_hit_100ms"] = beat_hit_rate(gb, rb, 0.1)
                    row["beat_hit_500ms"] = beat_hit_rate(gb, rb, 0.5)
                if "fd" in cfg.metrics:
                    fa, ra = audio_features(audio, sr), audio_features(ref_audio, ref_sr)
                    row["logmel_l2"] = float(np.linalg.norm(fa - ra))
                    feats["gen_a"].append(fa)
                    feats["ref_a"].append(ra)
                    if is_video(ref):
                        fv, rv = video_features(frames), video_features(read_clip_frames(ref, cfg.fps))
                        row["colourflow_l2"] = float(np.linalg.norm(fv - rv))
                        feats["gen_v"].append(fv)
                        feats["ref_v"].append(rv)
            if ({"relsync", "alignsync"} & set(cfg.metrics)) and ref is not None and is_video(ref):
                from avcli.metrics.sync import align_sync, clip_data, rel_sync

                ref_a, ref_v, ref_frames = clip_data(ref)  # the audio the video was made for, and the real video
                _, gen_v, gen_frames = clip_data(clip)
                if "alignsync" in cfg.metrics:
                    both = align_sync(sync_model, ref_a, gen_frames, ref_frames)
                    row.update(relsync=both["relsync"], p_align=both["p_align"], alignsync=both["alignsync"])
                else:
                    row["relsync"] = rel_sync(sync_model, ref_a, gen_v, ref_v)
            if "onsets" in cfg.metrics:
                if clip.name in events:
                    s = onset_accuracy(impacts, events[clip.name], cfg.onset_tolerance)
                    row.update(onset_precision=s.precision, onset_recall=s.recall, onset_f1=s.f1,
                               onset_offset_ms=s.offset_ms)
                else:
                    warnings.warn(f"{clip.name} has no line in the events file", RuntimeWarning)
            if "contact" in cfg.metrics or "floor" in cfg.metrics:
                row.update(_contact_floor(cfg, frames, audio, sr, impacts if "contact" in cfg.metrics else None,
                                          (events or {}).get(clip.name)))
            if "adherence" in cfg.metrics:
                row.update(_adherence(adherence_model, captions.get(clip.name), frames, audio, sr, clip.name))
        messages += [f"{clip.name}: {w.message}" for w in caught]
        rows.append(row)

    result = EvalResult(rows, warnings=messages)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, g, r in ((FD_AUDIO_NAME, "gen_a", "ref_a"), (FD_VIDEO_NAME, "gen_v", "ref_v")):
            if len(feats[g]) >= 2:
                result.set_metrics[name] = {"value": frechet_distance(np.stack(feats[g]), np.stack(feats[r])),
                                            "n": len(feats[g])}
            elif "fd" in cfg.metrics:
                warnings.warn(f"{name} needs at least 2 paired clips, found {len(feats[g])}", RuntimeWarning)
    result.warnings += [str(w.message) for w in caught]
    return result


def _contact_floor(cfg: EvalConfig, frames, audio, sr, onsets, true_events) -> dict:
    """contact: the audio's onsets against the contacts seen in the frames (metrics/contact.py), +-tolerance;
    floor: the level and the periodicity (`buzz`) of the stretch before the first impact (the true one when --truth
    has the clip, else the first contact)."""
    from avcli.metrics import onset_accuracy
    from avcli.metrics.contact import buzz, frame_contacts, noise_floor_db

    contacts = frame_contacts(frames, cfg.fps)
    row: dict = {}
    if "contact" in cfg.metrics:
        s = onset_accuracy(onsets, contacts, cfg.onset_tolerance)
        row.update(contact_precision=s.precision, contact_recall=s.recall, contact_f1=s.f1, n_contacts=len(contacts))
    if "floor" in cfg.metrics:
        first = true_events[0] if true_events else (float(contacts[0]) if len(contacts) else len(audio) / sr)
        level, periodic = noise_floor_db(audio, sr, first), buzz(audio, sr, first)
        if level is not None:
            row["noise_floor_db"], row["buzz"] = level, periodic
    return row


def _adherence(model, caption, frames, audio, sr, name) -> dict:
    from avcli.metrics.adherence import parse_caption

    if caption is None:
        warnings.warn(f"{name} has no caption in captions.jsonl", RuntimeWarning)
        return {}
    colour, material = parse_caption(caption)
    out = {}
    if colour is not None:
        out["colour_ok"] = float(model.predict_colour(frames) == colour)
        per_frame = model.colour_frames(frames)  # the same classifier frame by frame: an object that changes hue
        if per_frame:
            out["colour_frames_ok"] = sum(c == colour for c in per_frame) / len(per_frame)
    if material is not None:
        out["material_ok"] = float(model.predict_material(audio, sr) == material)
    return out
