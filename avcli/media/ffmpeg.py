"""ffmpeg-based media I/O: probe, decode frames at a fps, decode audio, write H.264+AAC mp4, mux audio onto a
video without re-encoding it, write wav/flac. Every writer is atomic (temp file in the same folder, then rename).

Safety: subprocesses get argument lists (never a shell), and user paths are always passed to ffmpeg as absolute
paths behind the `file:` protocol, so a name like `-y.mp4` or `concat:x` can never be read as an option/protocol.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from avcli.errors import MediaError, UsageError

FITS = ("crop", "pad", "stretch")


def ffmpeg_exe() -> str:
    """A system `ffmpeg` if one is on PATH, else the static binary shipped with imageio-ffmpeg."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - depends on the install
        raise MediaError("ffmpeg: not found; install ffmpeg or `pip install imageio-ffmpeg`") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _src(path) -> str:
    return "file:" + str(Path(path).resolve())


_CONTEXT = re.compile(r"^(\[[^\]]*@ ?0x[0-9a-fA-F]+\] ?)+")  # ffmpeg's "[png @ 0x55a0...] " line prefixes


def _tail(stderr: bytes | str, n: int = 300) -> str:
    """ffmpeg's reason in one short line: its first line naming invalid data (the cause, where later lines are
    the fallout), else its last line, without the "[codec @ 0x...]" context, cut at n characters."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    lines = [_CONTEXT.sub("", ln).strip() for ln in stderr.strip().splitlines()]
    lines = [ln for ln in lines if ln]
    cause = next((ln for ln in lines if "invalid" in ln.lower()), lines[-1] if lines else "no message")
    return cause if len(cause) <= n else cause[: n - 3].rstrip() + "..."


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_prctl = None  # libc's prctl while die_with_parent() is in force


def die_with_parent(on: bool = True) -> bool:
    """Have each ffmpeg started from now on in this process killed (SIGKILL) when the thread that started it dies,
    as a killed process's threads all do (Linux prctl PR_SET_PDEATHSIG); True where that is in force.

    A Ray worker turns this on: when the driver kills it on Ctrl-C, an ffmpeg still encoding would otherwise see
    EOF on its stdin, finish, and write its temp file again (+faststart reopens it by name) after the driver has
    removed it. It costs a plain fork per ffmpeg (a preexec function rules out vfork) and is off elsewhere: a
    Ctrl-C at a terminal reaches ffmpeg through the process group anyway."""
    global _prctl
    if not on or not sys.platform.startswith("linux"):
        _prctl = None
        return False
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child must not import or allocate
    return True


def _die_with(parent: int, prctl):
    def preexec() -> None:  # runs in the forked child, before exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl: the signal will never come
            os._exit(1)

    return preexec


def _run(cmd: list[str], path, what: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    prctl = _prctl
    r = subprocess.run(cmd, input=input, capture_output=True,
                       preexec_fn=_die_with(os.getpid(), prctl) if prctl is not None else None)
    if r.returncode != 0:
        raise MediaError(f"{path}: ffmpeg could not {what} ({_tail(r.stderr)})")
    return r


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    has_video: bool
    has_audio: bool
    width: int = 0  # display size (after rotation metadata)
    height: int = 0
    fps: float = 0.0  # average frame rate
    video_codec: str = ""
    audio_codec: str = ""
    audio_sample_rate: int = 0
    rotation: int = 0  # degrees, as stored in the display matrix


def _check_file(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: file not found")
    if p.is_dir():
        raise MediaError(f"{p}: is a directory, not a media file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: empty file (0 bytes)")
    return p


_DUR = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"^\s*Stream #\S+.*?: Video: (\w+)(.*)$", re.M)
_AUDIO = re.compile(r"^\s*Stream #\S+.*?: Audio: (\w+).*?, (\d+) Hz", re.M)
_SIZE = re.compile(r", (\d{1,5})x(\d{1,5})\b")
_FPS = re.compile(r", ([\d.]+)(k?) (fps|tbr)\b")
_ROT = re.compile(r"rotation of (-?[\d.]+) degrees|^\s*rotate\s*:\s*(-?\d+)", re.M)


def probe(path, require_video: bool = False) -> MediaInfo:
    """Read a media file's streams by parsing `ffmpeg -i` (no ffprobe needed).

    Raises MediaError naming the file if it is missing, empty, a folder, not media ffmpeg can read, or (with
    require_video) has no video stream. Cover-art pictures do not count as video."""
    p = _check_file(path)
    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", _src(p)], capture_output=True)
    err = r.stderr.decode(errors="replace")
    if "Stream #" not in err:
        raise MediaError(f"{p}: not a media file ffmpeg can read ({_tail(err, 120)})")
    dur = 0.0
    m = _DUR.search(err)
    if m:
        dur = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    video = None
    for vm in _VIDEO.finditer(err):
        if "attached pic" not in vm.group(2):
            video = vm
            break
    a = _AUDIO.search(err)
    w = h = 0
    fps = 0.0
    rotation = 0
    vcodec = ""
    if video is not None:
        vcodec = video.group(1)
        sm = _SIZE.search(video.group(2))
        if sm:
            w, h = int(sm.group(1)), int(sm.group(2))
        rates = {u: float(v) * (1000 if k else 1) for v, k, u in _FPS.findall(video.group(2))}
        fps = rates.get("fps", rates.get("tbr", 0.0))
        # rotation side data follows the video stream line (before the next stream)
        rest = err[video.end():]
        nxt = re.search(r"^\s*Stream #", rest, re.M)
        rm = _ROT.search(rest[: nxt.start()] if nxt else rest)
        if rm:
            rotation = int(round(float(rm.group(1) or rm.group(2))))
        if rotation % 180:
            w, h = h, w
    if require_video and video is None:
        raise MediaError(f"{p}: no video stream (audio-only or image-only file)")
    return MediaInfo(dur, video is not None, a is not None, w, h, fps, vcodec,
                     a.group(1) if a else "", int(a.group(2)) if a else 0, rotation)


def _vf(size, fit: str, fps: float) -> str:
    h, w = size
    if fit == "crop":
        scale = f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h}"
    elif fit == "pad":
        scale = f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2"
    elif fit == "stretch":
        scale = f"scale={w}:{h}"
    else:
        raise UsageError(f"--fit must be one of {', '.join(FITS)}, got {fit!r}")
    return f"fps={_rate(fps)},{scale},setsar=1"


def _rate(fps: float) -> str:
    if not fps or fps <= 0:
        raise UsageError(f"fps must be > 0, got {fps!r}")
    fr = Fraction(fps).limit_denominator(1001)
    return f"{fr.numerator}/{fr.denominator}"


def _seek_args(start: float, duration: float | None) -> tuple[list[str], list[str]]:
    if start < 0:
        raise UsageError(f"start must be >= 0 seconds, got {start}")
    if duration is not None and duration <= 0:
        raise UsageError(f"duration must be > 0 seconds, got {duration}")
    pre = ["-ss", f"{start:.6f}"] if start > 0 else []
    post = ["-t", f"{duration:.6f}"] if duration is not None else []
    return pre, post


def read_video(path, fps: float, size=(64, 64), fit: str = "crop", start: float = 0.0,
               duration: float | None = None) -> np.ndarray:
    """Decode frames resampled to `fps` with ffmpeg's fps filter, fitted to size=(H, W); rotation metadata is
    honoured (ffmpeg autorotates). Returns uint8 (F, H, W, 3)."""
    probe(path, require_video=True)
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise UsageError(f"size must be positive (H, W), got {size!r}")
    vf = _vf((h, w), fit, fps)
    pre, post = _seek_args(start, duration)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *pre, "-i", _src(path), *post,
           "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", vf, "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    r = _run(cmd, path, "decode the video")
    n = len(r.stdout) // (h * w * 3)
    if n == 0:
        raise MediaError(f"{path}: no frames decoded (start {start:.2f}s past the end of the video?)")
    return np.frombuffer(r.stdout[: n * h * w * 3], dtype=np.uint8).reshape(n, h, w, 3).copy()


def read_image(path, size=(64, 64), fit: str = "crop") -> np.ndarray:
    """One picture (png, jpg, webp, ... or a video's first frame) fitted to size=(H, W): uint8 (H, W, 3).
    `fit` crop fills the frame and cuts the overflow (centred), pad letterboxes with black, stretch distorts."""
    p = _check_file(path)
    h, w = int(size[0]), int(size[1])
    r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", _src(p)], capture_output=True)
    err = r.stderr.decode(errors="replace")
    if not _VIDEO.search(err):
        raise MediaError(f"{p}: not an image ffmpeg can read ({_tail(err, 120)})")
    sm = _SIZE.search(_VIDEO.search(err).group(2))
    if sm and (int(sm.group(1)) < 2 or int(sm.group(2)) < 2):
        raise MediaError(f"{p}: image is {sm.group(1)}x{sm.group(2)} px, too small to fit to {w}x{h}")
    vf = _vf((h, w), fit, 1.0).split(",", 1)[1]  # no fps filter: one picture
    # a damaged picture (a truncated JPEG decodes to a grey half with only a warning) fails instead of animating
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-err_detect", "explode", "-xerror",
           "-i", _src(p), "-map", "0:v:0",
           "-frames:v", "1", "-an", "-sn", "-dn", "-vf", vf, "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    r = subprocess.run(cmd, capture_output=True)
    out = r.stdout
    if r.returncode != 0 or len(out) < h * w * 3:
        raise MediaError(f"{p}: not an image ffmpeg can decode ({_tail(r.stderr, 120)})")
    return np.frombuffer(out[: h * w * 3], dtype=np.uint8).reshape(h, w, 3).copy()


def read_audio(path, sample_rate: int, start: float = 0.0, duration: float | None = None, mono: bool = True,
               required: bool = False):
    """Decode audio resampled to `sample_rate` as float32 (N,) (mono) or (N, C).

    A file without an audio stream gives None, or MediaError when `required`."""
    info = probe(path)
    if not info.has_audio:
        if required:
            raise MediaError(f"{path}: no audio stream")
        return None
    pre, post = _seek_args(start, duration)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *pre, "-i", _src(path), *post,
           "-map", "0:a:0", "-vn", "-sn", "-dn"]
    if mono:
        cmd += ["-ac", "1"]
    cmd += ["-ar", str(int(sample_rate)), "-f", "f32le", "pipe:1"]
    r = _run(cmd, path, "decode the audio")
    a = np.frombuffer(r.stdout, dtype=np.float32).copy()
    if mono:
        return a
    channels = _channels(path)
    return a.reshape(-1, channels)


def _channels(path) -> int:
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", _src(path)], capture_output=True).stderr
    m = re.search(r"Audio: .*?, \d+ Hz, ([^,]+)", err.decode(errors="replace"))
    layout = m.group(1).strip() if m else "stereo"
    named = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "5.1(side)": 6, "7.1": 8}
    if layout in named:
        return named[layout]
    cm = re.match(r"(\d+) channels", layout)
    return int(cm.group(1)) if cm else 2


@contextmanager
def atomic_path(path, overwrite: bool = False):
    """Yield a temp path in the destination's folder; rename it onto `path` on success, delete it on failure.

    An existing `path` is a UsageError unless overwrite=True; the old file is untouched until the rename."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a file name")
    if path.exists() and not overwrite:
        raise UsageError(f"{path}: already exists (use --overwrite to replace it)")
    if not path.parent.exists():
        raise UsageError(f"{path.parent}: output directory does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def stale_parts(path) -> list[Path]:
    """Temp files that `atomic_path` made for `path` and never renamed: left by a process that was killed (a dead
    batch worker). The name pattern is atomic_path's own: .<stem>.<8 random chars>.part<suffix>."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pat = re.compile(rf"^\.{re.escape(path.stem)}\.[A-Za-z0-9_]{{8}}\.part{re.escape(path.suffix)}$")
    return [p for p in path.parent.iterdir() if pat.match(p.name)]


def remove_stale_parts(paths) -> int:
    n = 0
    for p in paths:
        for tmp in stale_parts(p):
            try:
                tmp.unlink()
                n += 1
            except OSError:
                pass
    return n


def _audio_2d(audio) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise UsageError(f"audio must be (N,) or (N, C), got shape {a.shape}")
    if a.shape[1] > a.shape[0]:  # (C, N) given
        a = a.T
    return np.ascontiguousarray(a)


def write_wav(path, audio, sr: int, overwrite: bool = False, subtype: str = "PCM_16", fmt: str = "WAV") -> Path:
    import soundfile as sf

    a = _audio_2d(audio)
    with atomic_path(path, overwrite) as tmp:
        sf.write(str(tmp), np.clip(a, -1, 1) if subtype.startswith("PCM") else a, int(sr), subtype=subtype,
                 format=fmt)
    return Path(path)


def write_flac(path, audio, sr: int, overwrite: bool = False, subtype: str = "PCM_16") -> Path:
    return write_wav(path, audio, sr, overwrite, subtype=subtype, fmt="FLAC")


def _fit_len(a: np.ndarray, n: int) -> np.ndarray:
    return np.pad(a[:n], ((0, max(0, n - len(a))), (0, 0)))


def _audio_codec_args(suffix: str) -> list[str]:
    if suffix.lower() in (".webm", ".ogg"):
        return ["-c:a", "libopus", "-b:a", "128k"]
    return ["-c:a", "aac", "-b:a", "160k"]


def _faststart(suffix: str) -> list[str]:
    return ["-movflags", "+faststart"] if suffix.lower() in (".mp4", ".mov", ".m4v") else []


def write_video(path, frames: np.ndarray, fps: float, audio=None, sample_rate: int | None = None,
                overwrite: bool = False) -> Path:
    """Encode uint8 (F, H, W, 3) frames as H.264 yuv420p (+ AAC audio) with +faststart, atomically.

    The video lasts F/fps seconds and the audio is padded/trimmed to the same length. Odd frame sizes are padded
    by one black row/column at the bottom/right (yuv420p needs even sizes)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise UsageError(f"{path}: frames must be a non-empty (F, H, W, 3) array, got shape {frames.shape}")
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if audio is not None and not sample_rate:
        raise UsageError(f"{path}: audio given without a sample rate")
    n, h, w, _ = frames.shape
    path = Path(path)
    with tempfile.TemporaryDirectory() as td, atomic_path(path, overwrite) as tmp:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", _rate(fps), "-i", "pipe:0"]
        if audio is not None:
            a = _fit_len(_audio_2d(audio), int(round(n / fps * sample_rate)))
            import soundfile as sf

            wav = Path(td) / "a.wav"
            sf.write(str(wav), a, int(sample_rate), subtype="FLOAT")
            cmd += ["-i", _src(wav)]
        cmd += ["-map", "0:v:0", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-fflags", "+bitexact", "-flags:v", "+bitexact"]
        if audio is not None:
            cmd += ["-map", "1:a:0", *_audio_codec_args(".mp4"), "-flags:a", "+bitexact"]
        cmd += [*_faststart(".mp4"), "-threads", "1", "-f", "mp4", _src(tmp)]
        _run(cmd, path, "encode the video", input=frames.tobytes())
    return path


def mux_audio(video_path, audio, sample_rate: int, out_path, mix: str = "replace", start: float = 0.0,
              duration: float | None = None, overwrite: bool = False, plan=None, mix_gain_db: float = -6.0,
              duck: bool = False, keep_tracks: bool = False) -> Path:
    """Put `audio` on a copy of `video_path` without re-encoding the video (`-c:v copy`), atomically.

    The new audio starts `start` seconds into the video and lasts `duration` seconds (default: to the end); the
    result's soundtrack always covers the whole video (silence, or the original sound, elsewhere).
    mix="replace" drops the original audio; mix="keep" mixes it (if any) under the new one at `mix_gain_db`, and
    with `duck` the original is pushed further down while the new sound plays (a sidechain compressor).
    `keep_tracks` appends every original audio track after the new one (re-encoded to the container's codec).
    `plan` (avcli.media.container.plan_mux) chooses the video codec (copy by default) and the container's audio
    codec; global and per-stream metadata (timecode, language, ...) are copied, and packet timestamps kept (VFR)."""
    from avcli.media.container import plan_mux, timecode_args
    if mix not in ("replace", "keep"):
        raise UsageError(f"--mix must be replace or keep, got {mix!r}")
    info = probe(video_path, require_video=True)
    if start < 0:
        raise UsageError(f"start must be >= 0 seconds, got {start}")
    out_path = Path(out_path)
    if out_path.resolve() == Path(video_path).resolve():
        raise UsageError(f"{out_path}: output must differ from the input video")
    sr = int(sample_rate)
    a = _audio_2d(audio)
    total = int(round(info.duration_s * sr))
    length = int(round(duration * sr)) if duration is not None else max(0, total - int(round(start * sr)))
    a = _fit_len(a, length)
    at = int(round(start * sr))
    track = np.zeros((max(total, at + len(a)), a.shape[1]), np.float32)
    track[at:at + len(a)] = a
    track = track[:max(total, 1)]
    keep = mix == "keep" and info.has_audio
    plan = plan or plan_mux(Path(video_path), info.video_codec, out_path)
    with tempfile.TemporaryDirectory() as td, atomic_path(out_path, overwrite) as tmp:
        import soundfile as sf

        wav = Path(td) / "a.wav"
        sf.write(str(wav), track, sr, subtype="FLOAT")
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", _src(video_path),
               "-i", _src(wav), "-map", "0:v:0", *plan.video_args]
        if not plan.copies_video:
            cmd += ["-fps_mode", "passthrough"]  # keep each frame's timestamp (variable frame rate survives)
        if keep:
            ducked = ("[orig][side]sidechaincompress=threshold=0.02:ratio=8:attack=5:release=250[origd];"
                      if duck else "")
            cmd += ["-filter_complex",
                    f"[0:a:0]aresample={sr},volume={float(mix_gain_db):g}dB[orig];"
                    + ("[1:a:0]asplit=2[new][side];" if duck else "")
                    + ducked
                    + f"[{'new' if duck else '1:a:0'}][{'origd' if duck else 'orig'}]"
                      f"amix=inputs=2:duration=first:dropout_transition=0:normalize=0[aout]",
                    "-map", "[aout]"]
        else:
            cmd += ["-map", "1:a:0"]
        if keep_tracks and info.has_audio:
            cmd += ["-map", "0:a", "-disposition:a:0", "default"]
        cmd += [*plan.audio_args, "-map_metadata", "0", "-map_metadata:s:v:0", "0:s:v:0",
                *timecode_args(Path(video_path), plan.suffix),
                *(["-movflags", "+faststart"] if plan.faststart else []), "-f", plan.muxer, _src(tmp)]
        _run(cmd, video_path, "mux the audio")
    return out_path


def video_packet_md5(path) -> list[str]:
    """MD5 of every packet of the first video stream (stream copy, no decoding): equal lists = identical video."""
    _check_file(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", _src(path), "-map", "0:v:0",
           "-c", "copy", "-f", "framemd5", "pipe:1"]
    r = _run(cmd, path, "read the video packets")
    return [ln.rsplit(",", 1)[1].strip() for ln in r.stdout.decode().splitlines()
            if ln.strip() and not ln.startswith("#")]
