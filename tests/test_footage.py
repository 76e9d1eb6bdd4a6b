"""Real footage in (issue 16): clips in the forms editors receive, made at test time with the bundled ffmpeg.
Each either gets a correct output (decodes, the input's duration, the video packets untouched when copied) or a
one-line refusal before any compute, with nothing written."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from avcli.cli.main import app
from avcli.media.ffmpeg import ffmpeg_exe, probe, video_packet_md5

runner = CliRunner()
LAVFI = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050"]


def _make(path, *args, seconds=1.5):
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *LAVFI, "-t", str(seconds), *args, str(path)]
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"this ffmpeg cannot make {path.name}: {r.stderr.decode()[-200:]}")
    if path.name.startswith("rotated"):  # a display matrix, as phones write it
        tmp = path.with_name("norot" + path.suffix)
        path.rename(tmp)
        subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-display_rotation", "90", "-i",
                        str(tmp), "-c", "copy", str(path)], check=True)
        tmp.unlink()
    return path


FORMS = {
    "msmpeg4v2.avi": ["-c:v", "msmpeg4v2", "-c:a", "pcm_s16le"],
    "mpeg4.avi": ["-c:v", "mpeg4", "-c:a", "pcm_s16le"],
    "mpeg2.mpg": ["-c:v", "mpeg2video", "-c:a", "mp2", "-f", "vob"],
    "vp9.webm": ["-c:v", "libvpx-vp9", "-b:v", "200k", "-c:a", "libopus"],
    "timecode.mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-timecode", "01:02:03:04"],
    "surround.mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "6"],
    "rotated.mov": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],  # rotation added by _make
}


def _foley(bundle, *args):
    return runner.invoke(app, ["foley", *map(str, args), "--bundle", str(bundle), "--steps", "1", "--json"])


@pytest.mark.parametrize("name", sorted(FORMS))
def test_each_form_gets_a_correct_output_in_its_own_container(name, tiny_bundle, tmp_path):
    src = _make(tmp_path / name, *FORMS[name])
    res = _foley(tiny_bundle, src)
    assert res.exit_code == 0, res.output
    out = tmp_path / f"{src.stem}.foley{src.suffix}"
    assert out.exists(), sorted(p.name for p in tmp_path.iterdir())
    a, b = probe(src), probe(out)
    assert b.has_audio and b.video_codec == a.video_codec
    assert abs(b.duration_s - a.duration_s) <= 0.11, (a.duration_s, b.duration_s)
    assert video_packet_md5(out) == video_packet_md5(src)  # the picture is untouched
    if name == "timecode.mp4":
        err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True).stderr.decode()
        import re

        assert re.search(r"timecode\s*:\s*01:02:03:0?4", err), err
    if name == "rotated.mov":
        assert b.rotation % 360 == a.rotation % 360 != 0


def _no_model(monkeypatch):
    from avcli.pipelines.pipeline import JointPipeline

    def refuse(*a, **k):
        raise AssertionError("the model loaded: the refusal came after the preflight")

    monkeypatch.setattr(JointPipeline, "from_bundle", classmethod(refuse))


@pytest.mark.parametrize("name", ["msmpeg4v2.avi", "mpeg2.mpg", "mpeg4.avi"])
def test_copy_into_mp4_that_browsers_cannot_play_is_refused_up_front(name, tiny_bundle, tmp_path, monkeypatch):
    src = _make(tmp_path / name, *FORMS[name])
    _no_model(monkeypatch)
    res = _foley(tiny_bundle, src, "-o", tmp_path / "web.mp4")
    assert res.exit_code == 2 or getattr(res.exception, "exit_code", None) == 2
    msg = str(res.exception)
    assert "--video-codec h264" in msg and src.suffix in msg
    assert not (tmp_path / "web.mp4").exists()


def test_a_container_that_cannot_carry_the_codec_is_refused_before_the_model_loads(tiny_bundle, tmp_path,
                                                                                   monkeypatch):
    src = _make(tmp_path / "msmpeg4v2.avi", *FORMS["msmpeg4v2.avi"])
    _no_model(monkeypatch)
    res = _foley(tiny_bundle, src, "-o", tmp_path / "x.mpg")
    assert getattr(res.exception, "exit_code", None) == 2, res.output
    assert "cannot go into .mpg" in str(res.exception) and not (tmp_path / "x.mpg").exists()


def test_dry_mux_is_ffmpegs_own_verdict(tmp_path):
    """The dry mux runs the real streams through ffmpeg's muxer: MS-MPEG4 has no tag in mp4, which ffmpeg itself
    refuses in milliseconds (the old failure came after minutes of sampling)."""
    import time

    from avcli.errors import UsageError
    from avcli.media.container import MuxPlan, dry_mux

    src = _make(tmp_path / "msmpeg4v2.avi", *FORMS["msmpeg4v2.avi"])
    t0 = time.perf_counter()
    with pytest.raises(UsageError, match="cannot go into .mp4"):
        dry_mux(src, MuxPlan(".mp4", "mp4", ("-c:v", "copy"), ("-c:a", "aac"), True), 8000)
    assert time.perf_counter() - t0 < 2.0
    dry_mux(src, MuxPlan(".avi", "avi", ("-c:v", "copy"), ("-c:a", "pcm_s16le"), False), 8000)


def test_h264_reencode_makes_a_web_mp4(tiny_bundle, tmp_path):
    src = _make(tmp_path / "msmpeg4v2.avi", *FORMS["msmpeg4v2.avi"])
    out = tmp_path / "web.mp4"
    res = _foley(tiny_bundle, src, "-o", out, "--video-codec", "h264")
    assert res.exit_code == 0, res.output
    info = probe(out)
    assert info.video_codec == "h264" and info.has_audio and abs(info.duration_s - probe(src).duration_s) <= 0.11
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and head.find(b"moov") < max(head.find(b"mdat"), 4096)  # +faststart


def test_prores_goes_in_mov_only(tiny_bundle, tmp_path):
    src = _make(tmp_path / "mpeg4.avi", *FORMS["mpeg4.avi"])
    res = _foley(tiny_bundle, src, "-o", tmp_path / "edit.mp4", "--video-codec", "prores")
    assert getattr(res.exception, "exit_code", None) == 2 and ".mov" in str(res.exception)
    res = _foley(tiny_bundle, src, "-o", tmp_path / "edit.mov", "--video-codec", "prores")
    assert res.exit_code == 0, res.output
    assert probe(tmp_path / "edit.mov").video_codec == "prores"


def test_batch_preflights_each_item_before_its_compute(tiny_bundle, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    _make(d / "good.mp4", *FORMS["timecode.mp4"])
    _make(d / "old.avi", *FORMS["msmpeg4v2.avi"])
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"input": "in/good.mp4", "output": "out/good.mp4"}) + "\n"
                    + json.dumps({"input": "in/old.avi", "output": "out/old.mp4"}) + "\n")
    (tmp_path / "out").mkdir()
    res = _foley(tiny_bundle, "--jobs", jobs)
    rep = json.loads(res.stdout)
    status = {i["input"].rsplit("/", 1)[-1]: (i["status"], i["seconds"], i["reason"]) for i in rep["items"]}
    assert status["good.mp4"][0] == "ok"
    assert status["old.avi"][0] == "failed" and status["old.avi"][1] == 0.0 and "h264" in status["old.avi"][2]


def test_vfr_input_keeps_its_packet_timestamps(tiny_bundle, tmp_path):
    src = tmp_path / "vfr.mkv"
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *LAVFI, "-t", "2", "-vf",
           "setpts='if(lt(N,10),N/10/TB,(1+(N-10)/5)/TB)'", "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt",
           "yuv420p", "-c:a", "aac", str(src)]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    res = _foley(tiny_bundle, src)
    assert res.exit_code == 0, res.output
    out = tmp_path / "vfr.foley.mkv"

    def pts(p):
        r = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(p), "-map", "0:v:0", "-c", "copy", "-f",
                            "framemd5", "-"], capture_output=True, text=True)
        return [ln.split(",")[2].strip() for ln in r.stdout.splitlines() if ln and not ln.startswith("#")]

    assert pts(out) == pts(src) and len(set(pts(src))) > 5


def test_audio_deliverables_48k_24bit_stereo_sidecars(tiny_bundle, tmp_path):
    import soundfile as sf

    src = _make(tmp_path / "timecode.mp4", *FORMS["timecode.mp4"])
    res = _foley(tiny_bundle, src, "--sample-rate", "48000", "--bit-depth", "24", "--channels", "2", "--save-wav",
                 "--save-flac")
    assert res.exit_code == 0, res.output
    for ext in (".wav", ".flac"):
        info = sf.info(str(tmp_path / f"timecode.foley{ext}"))
        assert (info.samplerate, info.channels, info.subtype) == (48000, 2, "PCM_24"), ext
        assert abs(info.frames / 48000 - probe(src).duration_s) < 0.05


def test_keep_audio_tracks_and_ducking(tiny_bundle, tmp_path):
    src = _make(tmp_path / "surround.mp4", *FORMS["surround.mp4"])
    res = _foley(tiny_bundle, src, "--mix", "keep", "--mix-gain", "-12", "--duck", "--keep-audio-tracks")
    assert res.exit_code == 0, res.output
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(tmp_path / "surround.foley.mp4")],
                         capture_output=True).stderr.decode()
    audio_streams = [ln for ln in err.splitlines() if "Audio:" in ln]
    assert len(audio_streams) == 2 and "5.1" in audio_streams[1]  # the new mix first, the original 5.1 kept
    bad = _foley(tiny_bundle, src, "--duck")
    assert getattr(bad.exception, "exit_code", None) == 2 and "--mix keep" in str(bad.exception)


def test_colour_metadata_and_chapters_survive(tiny_bundle, tmp_path):
    meta = tmp_path / "chapters.txt"
    meta.write_text(";FFMETADATA1\ntitle=take 7\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=700\ntitle=approach\n"
                    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=700\nEND=1500\ntitle=impact\n")
    src = tmp_path / "graded.mkv"
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *LAVFI, "-i", str(meta), "-t", "1.5",
           "-map", "0:v", "-map", "1:a", "-map_metadata", "2", "-map_chapters", "2", "-c:v", "libx264", "-pix_fmt",
           "yuv420p", "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range",
           "tv", "-c:a", "aac", str(src)]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    res = _foley(tiny_bundle, src)
    assert res.exit_code == 0, res.output
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(tmp_path / "graded.foley.mkv")],
                         capture_output=True).stderr.decode()
    video = next(ln for ln in err.splitlines() if "Video:" in ln)
    assert "bt709" in video and "tv" in video, video
    assert "approach" in err and "impact" in err and "take 7" in err  # chapters and global tags


def test_a_minute_of_audio_is_animated_to_its_full_length(tiny_bundle, tiny_model, tmp_path):
    from avcli.media.ffmpeg import write_wav

    sr = 8000
    t = np.arange(60 * sr) / sr
    write_wav(tmp_path / "minute.wav", (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 0.7 < 0.05)).astype(np.float32), sr)
    res = runner.invoke(app, ["animate", str(tmp_path / "minute.wav"), "--bundle", str(tiny_bundle), "--steps", "1",
                              "-o", str(tmp_path / "minute.mp4"), "--json"])
    assert res.exit_code == 0, res.output
    geo = tiny_model.geometry()
    row = json.loads(res.stdout)["outputs"][0]
    assert abs(row["frames"] - 60 * geo.fps) <= 1
    assert abs(probe(tmp_path / "minute.mp4").duration_s - 60.0) <= 1.0 / geo.fps + 0.05
