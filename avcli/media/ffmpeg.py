"""ffmpeg-based media I/O (minimal core): probe, read frames at a fps, read audio, write H.264+AAC mp4 atomically."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avcli.errors import MediaError, UsageError


def ffmpeg_exe() -> str:
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _src(path) -> str:
    return "file:" + str(Path(path).resolve())


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    video_codec: str = ""
    audio_codec: str = ""
    audio_sample_rate: int = 0
    rotation: int = 0


def _check_file(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: file not found")
    if p.is_dir():
        raise MediaError(f"{p}: is a directory, not a media file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: empty file")
    return p


def probe(path) -> MediaInfo:
    p = _check_file(path)
    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", _src(p)], capture_output=True, text=True)
    err = r.stderr
    if "Invalid data found" in err or "Stream #" not in err:
        raise MediaError(f"{p}: not a media file ffmpeg can read")
    dur = 0.0
    m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", err)
    if m:
        dur = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    v = re.search(r"Stream #\S+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})", err)
    fps = re.search(r"Stream #\S+.*?: Video: .*?, ([\d.]+) (?:fps|tbr)", err)
    a = re.search(r"Stream #\S+.*?: Audio: (\w+).*?, (\d+) Hz", err)
    rot = re.search(r"rotat\w+ of (-?[\d.]+) degrees|rotate\s*:\s*(-?\d+)", err)
    rotation = int(float(rot.group(1) or rot.group(2))) if rot else 0
    w, h = (int(v.group(2)), int(v.group(3))) if v else (0, 0)
    if rotation % 180:
        w, h = h, w
    return MediaInfo(dur, v is not None, a is not None, w, h, float(fps.group(1)) if fps else 0.0,
                     v.group(1) if v else "", a.group(1) if a else "", int(a.group(2)) if a else 0, rotation)


def _vf(size, fit: str, fps: float) -> str:
    h, w = size
    if fit == "crop":
        scale = f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h}"
    elif fit == "pad":
        scale = f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2"
    elif fit == "stretch":
        scale = f"scale={w}:{h}"
    else:
        raise UsageError(f"--fit must be crop, pad or stretch, got {fit!r}")
    return f"fps={fps},{scale},setsar=1"


def read_video(path, fps: float, size=(64, 64), fit: str = "crop", start: float = 0.0,
               duration: float | None = None) -> np.ndarray:
    info = probe(path)
    if not info.has_video:
        raise MediaError(f"{path}: no video stream")
    h, w = size
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-ss", f"{start:.6f}", "-i", _src(path)]
    if duration is not None:
        cmd += ["-t", f"{duration:.6f}"]
    cmd += ["-an", "-vf", _vf(size, fit, fps), "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        raise MediaError(f"{path}: ffmpeg could not decode the video ({r.stderr.decode(errors='replace').strip()[-200:]})")
    n = len(r.stdout) // (h * w * 3)
    return np.frombuffer(r.stdout[: n * h * w * 3], dtype=np.uint8).reshape(n, h, w, 3).copy()


def read_audio(path, sample_rate: int, start: float = 0.0, duration: float | None = None, mono: bool = True):
    info = probe(path)
    if not info.has_audio:
        return None
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-ss", f"{start:.6f}", "-i", _src(path)]
    if duration is not None:
        cmd += ["-t", f"{duration:.6f}"]
    cmd += ["-vn", "-ac", "1" if mono else "2", "-ar", str(sample_rate), "-f", "f32le", "pipe:1"]
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        raise MediaError(f"{path}: ffmpeg could not decode the audio")
    a = np.frombuffer(r.stdout, dtype=np.float32).copy()
    return a if mono else a.reshape(-1, 2)


@contextmanager
def atomic_path(path, overwrite: bool = False):
    path = Path(path)
    if path.exists() and not overwrite:
        raise UsageError(f"{path}: already exists (use --overwrite to replace it)")
    if not path.parent.exists():
        raise UsageError(f"{path.parent}: output directory does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_wav(path, audio, sr: int, overwrite: bool = False, subtype: str = "PCM_16", fmt: str = "WAV") -> Path:
    import soundfile as sf

    with atomic_path(path, overwrite) as tmp:
        sf.write(str(tmp), np.asarray(audio, dtype=np.float32), sr, subtype=subtype, format=fmt)
    return Path(path)


def write_flac(path, audio, sr: int, overwrite: bool = False) -> Path:
    return write_wav(path, audio, sr, overwrite, subtype="PCM_16", fmt="FLAC")


def write_video(path, frames: np.ndarray, fps: float, audio=None, sample_rate: int | None = None,
                overwrite: bool = False) -> Path:
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    n, h, w, _ = frames.shape
    with tempfile.TemporaryDirectory() as td, atomic_path(path, overwrite) as tmp:
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-r", f"{fps}", "-i", "pipe:0"]
        if audio is not None:
            dur = n / fps
            a = np.asarray(audio, dtype=np.float32).reshape(len(audio), -1)
            need = int(round(dur * sample_rate))
            a = np.pad(a[:need], ((0, max(0, need - len(a))), (0, 0)))
            wav = Path(td) / "a.wav"
            import soundfile as sf

            sf.write(str(wav), a, sample_rate, subtype="FLOAT")
            cmd += ["-i", _src(wav)]
        cmd += ["-map", "0:v:0", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-fflags", "+bitexact", "-flags:v", "+bitexact"]
        if audio is not None:
            cmd += ["-map", "1:a:0", "-c:a", "aac", "-b:a", "128k", "-flags:a", "+bitexact"]
        cmd += ["-movflags", "+faststart", "-threads", "1", "-f", "mp4", _src(tmp)]
        r = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
        if r.returncode != 0:
            raise MediaError(f"{path}: ffmpeg failed to encode ({r.stderr.decode(errors='replace').strip()[-300:]})")
    return Path(path)
