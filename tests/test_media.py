"""Media I/O on ffmpeg: probe, fps-filter decode (crop/pad/stretch, rotation, VP9), atomic writes, stream-copy mux,
and clean MediaErrors for bad inputs. Inputs are made here with ffmpeg's lavfi sources (small and short)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from avcli.errors import MediaError, UsageError
from avcli.media.ffmpeg import (atomic_path, ffmpeg_exe, mux_audio, probe, read_audio, read_video, video_packet_md5,
                                write_flac, write_video, write_wav)

SR = 16000


def _ffmpeg(*args):
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True)


def _has_encoder(name: str) -> bool:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return f" {name} " in out


def _frames(n=32, h=48, w=64):
    f = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        f[i, :, :, 0] = 8 * i
        f[i, h // 4: h // 2, (2 * i) % w: (2 * i) % w + 8] = 255
    return f


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    t = np.arange(2 * SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    write_video(d / "synth.mp4", _frames(), 16, tone, SR)  # 2.0 s, 64x48, 16 fps
    write_video(d / "silent.mp4", _frames(), 16)
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=480x854:rate=30:duration=1", "-f", "lavfi", "-i",
            "sine=frequency=440:sample_rate=44100:duration=1", "-c:v", "libx264", "-preset", "ultrafast",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", d / "portrait.mp4")
    _ffmpeg("-display_rotation", "90", "-i", d / "portrait.mp4", "-c", "copy", d / "rotated.mp4")  # shows 854x480
    if _has_encoder("libvpx-vp9"):
        _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=12:duration=1.5", "-f", "lavfi", "-i",
                "sine=duration=1.5:sample_rate=48000", "-c:v", "libvpx-vp9", "-deadline", "realtime",
                "-cpu-used", "8", "-c:a", "libopus", d / "clip.webm")
    write_wav(d / "tone.wav", tone, SR)
    return d


def test_write_and_probe(media):
    info = probe(media / "synth.mp4")
    assert info.has_video and info.has_audio
    assert (info.width, info.height, info.fps) == (64, 48, 16.0)
    assert info.video_codec == "h264" and info.audio_codec == "aac" and info.audio_sample_rate == SR
    assert abs(info.duration_s - 2.0) < 0.1
    a = read_audio(media / "synth.mp4", SR)
    assert abs(len(a) / SR - 2.0) < 0.1 and 0.3 < np.abs(a).max() < 0.7
    assert read_audio(media / "silent.mp4", SR) is None
    with pytest.raises(MediaError, match="no audio"):
        read_audio(media / "silent.mp4", SR, required=True)


@pytest.mark.parametrize("fit", ["crop", "pad", "stretch"])
def test_read_video_resamples_fps_and_fits(media, fit):
    v = read_video(media / "synth.mp4", fps=10, size=(40, 30), fit=fit)
    assert v.dtype == np.uint8 and v.shape == (round(2.0 * 10), 40, 30, 3)
    # the fps filter keeps time: the red ramp (8/frame at 16 fps) grows with time, never repeats a jump
    red = v[:, 20, 15, 0].astype(int)
    assert red[-1] > red[0]
    if fit == "pad":  # 64x48 into 30 wide x 40 high: black bars top and bottom
        assert v[:, 0].max() < 20 and v[:, -1].max() < 20


def test_read_video_window(media):
    v = read_video(media / "synth.mp4", fps=8, size=(24, 32), start=0.5, duration=1.0)
    assert v.shape == (8, 24, 32, 3)


def test_portrait_and_rotated(media):
    info = probe(media / "portrait.mp4")
    assert (info.width, info.height, info.rotation) == (480, 854, 0) and info.fps == 30.0
    v = read_video(media / "portrait.mp4", fps=12, size=(64, 36), fit="stretch")
    assert v.shape == (12, 64, 36, 3)
    rot = probe(media / "rotated.mp4")
    assert rot.rotation in (90, -90, 270) and (rot.width, rot.height) == (854, 480)
    r = read_video(media / "rotated.mp4", fps=6, size=(48, 48), fit="pad")
    assert r.shape == (6, 48, 48, 3)
    # autorotated: landscape content inside a square -> black bars on top/bottom, not on the sides
    assert r[:, 0].max() < 20 and r[:, :, 0].max() > 20


def test_vp9_webm(media):
    if not (media / "clip.webm").exists():
        pytest.skip("this ffmpeg build has no libvpx-vp9 encoder")
    info = probe(media / "clip.webm")
    assert info.video_codec == "vp9" and info.fps == 12.0 and (info.width, info.height) == (160, 120)
    v = read_video(media / "clip.webm", fps=16, size=(32, 32))
    assert v.shape == (round(1.5 * 16), 32, 32, 3)
    a = read_audio(media / "clip.webm", SR)
    assert abs(len(a) / SR - 1.5) < 0.1


def test_mux_audio_copies_video_stream(media, tmp_path):
    src = media / "synth.mp4"
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, SR).astype(np.float32)  # 1 s for a 2 s video
    out = mux_audio(src, noise, SR, tmp_path / "muxed.mp4")
    assert video_packet_md5(out) == video_packet_md5(src) and len(video_packet_md5(src)) == 32
    info = probe(out)
    assert info.has_audio and abs(info.duration_s - 2.0) < 0.1
    a = read_audio(out, SR)
    assert abs(len(a) / SR - 2.0) < 0.1  # the track covers the whole video (silence after 1 s)
    assert np.abs(a[int(0.2 * SR):int(0.8 * SR)]).max() > 0.1 and np.abs(a[int(1.3 * SR):]).max() < 0.02
    kept = mux_audio(src, noise, SR, tmp_path / "kept.mp4", mix="keep", start=0.0, duration=0.5)
    k = read_audio(kept, SR)
    assert video_packet_md5(kept) == video_packet_md5(src)
    tail = k[int(1.2 * SR):int(1.8 * SR)]  # only the original 440 Hz tone (0.5 peak) at -6 dB
    assert 0.15 < np.abs(tail).max() < 0.35
    with pytest.raises(UsageError, match="already exists"):
        mux_audio(src, noise, SR, tmp_path / "muxed.mp4")


def test_bad_inputs(media, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 20)
    cases = {tmp_path / "missing.mp4": "not found", tmp_path / "empty.mp4": "empty",
             tmp_path: "directory", tmp_path / "notes.mp4": "not a media file",
             media / "tone.wav": "no video stream"}
    for path, reason in cases.items():
        with pytest.raises(MediaError, match=reason) as exc:
            read_video(path, fps=8, size=(16, 16))
        assert str(path) in str(exc.value)
    with pytest.raises(UsageError, match="fit"):
        read_video(media / "synth.mp4", fps=8, size=(16, 16), fit="zoom")


def test_dash_file_name_and_odd_size(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_video("-y.mp4", _frames(8, 33, 45), 8)  # a name ffmpeg would read as an option; odd size
    info = probe("-y.mp4")
    assert (info.width, info.height) == (46, 34)  # padded to even by one row/column
    assert read_video("-y.mp4", fps=8, size=(33, 45), fit="stretch").shape == (8, 33, 45, 3)


def test_no_overwrite_keeps_old_file(tmp_path):
    out = tmp_path / "out.mp4"
    write_video(out, _frames(8), 8)
    before = out.read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        write_video(out, _frames(16), 8)
    assert out.read_bytes() == before
    write_video(out, _frames(16), 8, overwrite=True)
    assert len(read_video(out, fps=8, size=(16, 16))) == 16
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.wav") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no partial or temp files left


def test_wav_flac_roundtrip(tmp_path):
    x = (0.25 * np.sin(np.arange(SR) / 10)).astype(np.float32)
    write_wav(tmp_path / "a.wav", x, SR)
    write_flac(tmp_path / "a.flac", np.stack([x, -x], 1), SR)
    assert np.abs(read_audio(tmp_path / "a.wav", SR) - x).max() < 1e-3
    st = read_audio(tmp_path / "a.flac", SR, mono=False)
    assert st.shape == (SR, 2) and np.abs(st[:, 1] + x).max() < 1e-3


def test_ffmpeg_reasons_are_one_short_line_naming_the_cause():
    """The first line naming invalid data wins over the fallout after it, without ffmpeg's "[x @ 0x...]" prefixes,
    and a long line is cut at its end, not its start."""
    from avcli.media.ffmpeg import _tail

    err = (b"[png @ 0x55a0bc6b9900] Invalid PNG signature 0x6E6F742061207069.\n"
           b"[vost#0:0/rawvideo @ 0x55a0bc6bcd00] [enc:rawvideo @ 0x55a0bc6bd7c0] Could not open encoder before EOF\n"
           b"[out#0/rawvideo @ 0x5643a5a0b100] Nothing was written into output file.\n")
    assert _tail(err) == "Invalid PNG signature 0x6E6F742061207069."
    assert _tail(b"[mp4 @ 0x1] moov atom not found\n") == "moov atom not found"
    long = _tail("x" * 50 + " end", 20)
    assert long.startswith("xxx") and long.endswith("...") and len(long) == 20
    assert _tail(b"") == "no message"


def _children(pid: int) -> list[int]:
    from pathlib import Path

    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the field after the state is the parent pid
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("die", [True, False])
def test_die_with_parent_takes_ffmpeg_down_with_a_killed_worker(tmp_path, die):
    """What a Ray worker killed on Ctrl-C needs: its running ffmpeg dies with it (and so cannot write its temp file
    again after the driver removed it). Without die_with_parent the same ffmpeg outlives its killed parent, which
    is what makes the check able to fail."""
    import os
    import signal
    import sys
    import time

    script = (
        "import sys, time\n"
        "from avcli.media import ffmpeg as f\n"
        f"print(f.die_with_parent({die}), flush=True)\n"
        "f._run([f.ffmpeg_exe(), '-nostdin', '-nostats', '-loglevel', 'quiet', '-re', '-f', 'lavfi', '-i',\n"
        "        'anullsrc=r=8000:cl=mono', '-t', '30', '-f', 'null', '-'], 'x', 'run')\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    kids: list[int] = []
    try:
        assert proc.stdout.readline().strip() == str(die)
        deadline = time.monotonic() + 20
        while not kids and time.monotonic() < deadline:
            kids = _children(proc.pid)
            time.sleep(0.05)
        assert len(kids) == 1, "the worker's ffmpeg did not start"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while _alive(kids[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(kids[0]) is (not die)
    finally:
        proc.kill()
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass


def test_ray_worker_host_turns_die_with_parent_on():
    """The wiring: a Ray actor's body sets it before it loads its worker (Linux), so the test above applies to it."""
    import sys

    from avcli.media import ffmpeg
    from avcli.pipelines.ray_runner import WorkerHost

    try:
        seen = []
        WorkerHost(lambda: seen.append(ffmpeg._prctl is not None), ())
        assert seen == [sys.platform.startswith("linux")]
    finally:
        ffmpeg.die_with_parent(False)
    assert ffmpeg._prctl is None
