"""Which container and codecs a foley output gets, decided before any compute, and a dry mux that proves it.

Policy:
- the default output keeps the input's container (clip.avi -> clip.foley.avi, clip.mov -> clip.foley.mov), so the
  picture can be stream-copied whatever its codec (inputs in containers we do not write get .mkv, which holds any);
- `--video-codec copy` (the default) keeps the picture bit for bit. An explicit web container (.mp4, .m4v, .webm)
  whose browsers cannot decode the copied codec (MPEG-2, MPEG-4 part 2 / XviD, MS-MPEG4, Cinepak ...) is refused
  up front with the exact fix;
- `--video-codec h264` re-encodes (yuv420p, +faststart): plays in browsers; `prores` (ProRes 422 HQ in .mov, PCM
  audio) is for editing software;
- audio goes in what each container carries well: AAC (mp4/mov/mkv), Opus (webm), MP2 (MPEG-PS), PCM (avi, and
  with ProRes).

`dry_mux` muxes the real video stream and a silent stand-in track for a fraction of a second into a temp file of
the output's container, so an impossible combination fails in milliseconds, not after minutes of sampling.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from avcli.errors import UsageError

VIDEO_CODECS = ("copy", "h264", "prores")
# video files avgen reads from folders (foley batches, training data); anything ffmpeg opens works when named directly
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg")
# containers foley writes: suffix -> (ffmpeg muxer, audio codec args)
CONTAINERS = {
    ".mp4": ("mp4", ["-c:a", "aac", "-b:a", "160k"]),
    ".m4v": ("mp4", ["-c:a", "aac", "-b:a", "160k"]),
    ".mov": ("mov", ["-c:a", "aac", "-b:a", "160k"]),
    ".mkv": ("matroska", ["-c:a", "aac", "-b:a", "160k"]),
    ".webm": ("webm", ["-c:a", "libopus", "-b:a", "128k"]),
    ".avi": ("avi", ["-c:a", "pcm_s16le"]),
    ".mpg": ("vob", ["-c:a", "mp2", "-b:a", "192k", "-ar", "48000"]),  # MP2 takes 16-48 kHz only
    ".mpeg": ("vob", ["-c:a", "mp2", "-b:a", "192k", "-ar", "48000"]),
}
# what a container can carry by stream copy at all (others: whatever ffmpeg's muxer accepts, see dry_mux)
COPY_ONLY = {".mpg": {"mpeg1video", "mpeg2video", "h264"}, ".mpeg": {"mpeg1video", "mpeg2video", "h264"},
             ".webm": {"vp8", "vp9", "av1"}}
# what browsers decode in their containers (a stream-copied picture must be one of these to be seen there)
WEB_VIDEO = {".mp4": {"h264", "hevc", "av1", "vp9"}, ".m4v": {"h264", "hevc", "av1", "vp9"},
             ".webm": {"vp8", "vp9", "av1"}}


@dataclass(frozen=True)
class MuxPlan:
    suffix: str
    muxer: str
    video_args: tuple[str, ...]
    audio_args: tuple[str, ...]
    faststart: bool

    @property
    def copies_video(self) -> bool:
        return self.video_args[:2] == ("-c:v", "copy")


def default_suffix(input_path: Path) -> str:
    s = Path(input_path).suffix.lower()
    return s if s in CONTAINERS else ".mkv"


def plan_mux(input_path: Path, video_codec_name: str, out_path: Path, video_codec: str = "copy") -> MuxPlan:
    """The muxing plan for `input_path` -> `out_path`, or a UsageError that says exactly what to do instead."""
    if video_codec not in VIDEO_CODECS:
        raise UsageError(f"--video-codec must be one of {', '.join(VIDEO_CODECS)}, got {video_codec!r}")
    suffix = Path(out_path).suffix.lower()
    if suffix not in CONTAINERS:
        raise UsageError(f"{out_path}: output must end in {', '.join(CONTAINERS)}")
    muxer, audio = CONTAINERS[suffix]
    src = default_suffix(input_path)
    if video_codec == "prores":
        if suffix != ".mov":
            raise UsageError(f"{out_path}: ProRes goes in a .mov (use -o {Path(out_path).with_suffix('.mov').name})")
        return MuxPlan(suffix, muxer, ("-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le"),
                       ("-c:a", "pcm_s24le"), False)
    if video_codec == "h264":
        if suffix in (".webm",):
            raise UsageError(f"{out_path}: WebM cannot carry H.264; use -o {Path(out_path).with_suffix('.mp4').name}")
        return MuxPlan(suffix, muxer, ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt",
                                       "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"),
                       tuple(audio if suffix != ".avi" else ["-c:a", "aac", "-b:a", "160k"]),
                       suffix in (".mp4", ".m4v", ".mov"))
    codec = (video_codec_name or "").lower()
    if suffix in COPY_ONLY and codec not in COPY_ONLY[suffix]:
        raise UsageError(f"{out_path}: {codec or 'this'} video cannot go into {suffix} by stream copy; keep its "
                         f"container (-o {Path(out_path).with_suffix(src).name}), use .mkv, or re-encode it "
                         f"(--video-codec h264)")
    if suffix in WEB_VIDEO and codec not in WEB_VIDEO[suffix]:
        raise UsageError(f"{out_path}: {codec or 'this'} video copied into {suffix} does not play in browsers; "
                         f"keep its container (-o {Path(out_path).with_suffix(src).name}) or re-encode it "
                         f"(--video-codec h264)")
    return MuxPlan(suffix, muxer, ("-c:v", "copy"), tuple(audio), suffix in (".mp4", ".m4v", ".mov"))


def dry_mux(input_path: Path, plan: MuxPlan, sample_rate: int = 48000, channels: int = 1,
            seconds: float = 0.25) -> None:
    """Mux the input's first video packets and a silent stand-in track into a temp file of the planned container;
    a UsageError naming ffmpeg's reason and the fix when that cannot work."""
    from avcli.media.ffmpeg import _src, _tail, ffmpeg_exe

    with tempfile.TemporaryDirectory(prefix="avgen-drymux-") as td:
        out = Path(td) / f"dry{plan.suffix}"
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", _src(input_path),
               "-f", "lavfi", "-i", f"anullsrc=r={int(sample_rate)}:cl={'mono' if channels == 1 else 'stereo'}",
               "-t", f"{seconds:.3f}", "-map", "0:v:0",
               "-map", "1:a:0", *plan.video_args, *plan.audio_args, "-f", plan.muxer, _src(out)]
        r = subprocess.run(cmd, capture_output=True)
        if r.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            reason = _tail(r.stderr, 160)
            fix = ("re-encode it (--video-codec h264) or keep the input's container "
                   f"(-o NAME{default_suffix(input_path)})") if plan.copies_video else "try -o NAME.mkv"
            raise UsageError(f"{input_path}: its video cannot go into {plan.suffix} this way ({reason}); {fix}")


_TIMECODE = re.compile(r"^\s*timecode\s*:\s*(\d{1,2}:\d{2}:\d{2}[:;.]\d{1,3})\s*$", re.M)


def timecode_args(input_path: Path, suffix: str) -> list[str]:
    """Carry the input's start timecode (a `timecode` tag or a tmcd track) to the output: mov/mp4 write a tmcd
    track from -timecode, Matroska keeps it as a tag."""
    from avcli.media.ffmpeg import _src, ffmpeg_exe

    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", _src(input_path)], capture_output=True).stderr
    m = _TIMECODE.search(err.decode(errors="replace"))
    if not m:
        return []
    tc = m.group(1)
    if suffix in (".mp4", ".m4v", ".mov"):
        return ["-timecode", tc]
    return ["-metadata", f"timecode={tc}"]
