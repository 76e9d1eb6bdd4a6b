"""`avgen foley` on real files: exact audio length, stream-copied picture, seamless long videos, resumable batches
that survive bad files and Ctrl-C, clean one-line errors for bad single inputs, job files and variations.

Inputs are made here with ffmpeg's lavfi sources, small and short; the model is the tiny random-weight bundle
(1 s window, 8 kHz), so the numbers checked are lengths, bytes and continuity, never sound quality."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from avcli.cli.main import app
from avcli.media.ffmpeg import ffmpeg_exe, probe, read_audio, video_packet_md5
from avcli.pipelines.batch import read_jobs
from avcli.pipelines.foley import crossfade_into, plan_windows

runner = CliRunner()
SR = 8000  # the tiny bundle's sample rate


def _ffmpeg(*args):
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True)


def _has_encoder(name: str) -> bool:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return f" {name} " in out


def _clip(path, size="96x64", rate=10, duration=1.0):
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={duration}", "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p", path)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("foley_media")
    _clip(d / "portrait.mp4", size="480x854", rate=30, duration=1)
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=44100:duration=1", "-c:a", "aac", d / "audio.m4a")
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-frames:v", "0", "-c:v", "libx264", d / "zero.mp4")
    if _has_encoder("libvpx-vp9"):
        _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=12:duration=1.5", "-c:v", "libvpx-vp9",
                "-deadline", "realtime", "-cpu-used", "8", d / "clip.webm")
    return d


def _foley(bundle, *args):
    return runner.invoke(app, ["foley", "--bundle", str(bundle), "--steps", "2", *map(str, args)])


def _run_cli(monkeypatch, capsys, *args):
    """`avgen foley ARGS` through the console entry point (conftest.run_cli)."""
    from conftest import run_cli

    return run_cli(monkeypatch, capsys, "foley", *args)


# --- windows and crossfade ------------------------------------------------------------------------------------

@pytest.mark.parametrize("total,window,overlap", [(20.0, 1.0, 0.5), (4.0, 1.0, 0.25), (0.3, 1.0, 0.5),
                                                  (7.3, 2.0, 0.0), (1.0, 1.0, 0.5)])
def test_plan_windows_covers_everything_with_the_overlap(total, window, overlap):
    plan = plan_windows(total, window, overlap)
    assert plan.starts[0] == 0 and plan.starts[-1] + window >= total - 1e-9  # whole duration covered
    assert plan.starts[-1] < total  # no window wholly past the end
    for a, b in zip(plan.starts, plan.starts[1:]):
        assert b - a == pytest.approx(window - overlap)  # consecutive windows share exactly `overlap`


def test_plan_windows_refuses_bad_overlap_and_empty_segment():
    from avcli.errors import UsageError

    with pytest.raises(UsageError, match="overlap"):
        plan_windows(10, 1.0, 0.8)
    with pytest.raises(UsageError, match="zero length"):
        plan_windows(0, 1.0, 0.5)


def test_crossfade_is_equal_power_and_continuous():
    out = np.ones(100, np.float32)
    crossfade_into(out, -np.ones(60, np.float32), 50, 20)
    assert np.all(out[:50] == 1) and np.all(out[70:] == -1)
    ramp = np.sin(np.linspace(0, np.pi / 2, 20)) ** 2
    np.testing.assert_allclose(out[50:70], np.sqrt(1 - ramp) - np.sqrt(ramp), atol=1e-6)
    # two uncorrelated unit-power signals keep unit power through the fade (equal power, no dip)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(200_000).astype(np.float32), rng.standard_normal(200_000).astype(np.float32)
    mixed = a.copy()
    crossfade_into(mixed, b, 0, len(b))
    mid = mixed[90_000:110_000]
    assert abs(np.mean(mid ** 2) - 1.0) < 0.05
    # a piece running past the end is cut, never grows the output
    short = np.zeros(10, np.float32)
    crossfade_into(short, np.ones(50, np.float32), 5, 2)
    assert len(short) == 10 and short[-1] == 1


# --- single files: exact length, stream copy ------------------------------------------------------------------

def _check_exact(out, seconds):
    want = int(round(seconds * SR))
    got = read_audio(out, SR)
    assert abs(len(got) - want) <= 1024, (len(got), want)  # within one AAC frame
    import soundfile as sf

    wav, sr = sf.read(out.with_suffix(".wav"))
    assert sr == SR and len(wav) == want  # the generated audio itself is exact to the sample


def test_portrait_mp4_gets_exact_audio_and_untouched_video(tiny_bundle, media, tmp_path):
    src = media / "portrait.mp4"
    out = tmp_path / "p.mp4"
    res = _foley(tiny_bundle, src, "-o", out, "--save-wav", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["items"][0]["status"] == "ok" and rep["counts"]["ok"] == 1
    _check_exact(out, 1.0)
    info = probe(out)
    assert (info.width, info.height, info.video_codec, info.audio_codec) == (480, 854, "h264", "aac")
    assert video_packet_md5(out) == video_packet_md5(src)  # stream copy: bit-identical video packets


def test_vp9_webm(tiny_bundle, media, tmp_path):
    if not (media / "clip.webm").exists():
        pytest.skip("this ffmpeg build has no libvpx-vp9 encoder")
    res = _foley(tiny_bundle, media / "clip.webm", "--out-dir", tmp_path, "--save-wav", "--sample-rate", "16000")  # keeps .webm
    assert res.exit_code == 0, res.output
    out = tmp_path / "clip.foley.webm"
    assert probe(out).video_codec == "vp9" and video_packet_md5(out) == video_packet_md5(media / "clip.webm")
    got = read_audio(out, 16000)
    assert abs(len(got) - 24000) <= 1024
    import soundfile as sf

    wav, sr = sf.read(out.with_suffix(".wav"))
    assert sr == 16000 and len(wav) == 24000  # resampled, still exact to the sample


# --- long videos: windows joined without seams ----------------------------------------------------------------

def test_long_video_is_covered_without_seams(tiny_bundle, tmp_path):
    src = _clip(tmp_path / "long.mp4", size="64x48", rate=8, duration=20)
    overlap = 0.25
    res = _foley(tiny_bundle, src, "--overlap", overlap, "--save-wav", "--json")
    assert res.exit_code == 0, res.output
    out = tmp_path / "long.foley.mp4"
    _check_exact(out, 20.0)
    import soundfile as sf

    wav, _ = sf.read(out.with_suffix(".wav"))
    diff = np.abs(np.diff(wav))
    plan = plan_windows(20.0, 1.0, overlap)
    # joins: where each window's crossfade starts and where the previous window's audio ends
    seams = sorted({int(round(t * SR)) for s in plan.starts[1:] for t in (s, s + overlap)})
    half = int(0.005 * SR)  # +-5 ms
    near = np.zeros(len(diff), bool)
    for s in seams:
        near[max(0, s - 3 * half): s + 3 * half] = True
    block = 2 * half
    # robust yardstick: the median over 10 ms blocks (away from every seam) of each block's largest step
    elsewhere = [diff[i:i + block].max() for i in range(0, len(diff) - block, block) if not near[i:i + block].any()]
    ref = float(np.median(elsewhere))
    assert ref > 0
    worst = max(diff[max(0, s - half): s + half].max() for s in seams)
    assert worst <= 3 * ref, (worst, ref)
    assert np.abs(wav).max() > 0  # not silence


# --- batches ----------------------------------------------------------------------------------------------------

def test_batch_survives_a_bad_file_and_resumes(tiny_bundle, tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    _clip(d / "a.mp4")
    _clip(d / "sub" / "b.mov")
    (d / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    out, rep = tmp_path / "out", tmp_path / "report.json"
    res = _foley(tiny_bundle, d, "--recursive", "--out-dir", out, "--report", rep)
    assert res.exit_code == 1, res.output
    assert (out / "a.foley.mp4").exists() and (out / "sub" / "b.foley.mov").exists()  # mirrored, containers kept
    report = json.loads(rep.read_text())
    by = {r["input"].rsplit("/", 1)[-1]: r for r in report["items"]}
    assert by["a.mp4"]["status"] == by["b.mov"]["status"] == "ok"
    assert by["broken.mp4"]["status"] == "failed" and "not a media file" in by["broken.mp4"]["reason"]
    assert report["counts"] == {"ok": 2, "skipped": 0, "failed": 1, "not run": 0}
    assert not [p for p in out.rglob("*") if ".part" in p.name]  # no partial files

    res = _foley(tiny_bundle, d, "--recursive", "--out-dir", out, "--report", rep, "--json")
    assert res.exit_code == 1
    again = json.loads(rep.read_text())
    assert again["counts"] == {"ok": 0, "skipped": 2, "failed": 1, "not run": 0}
    # the earlier outputs next to the inputs are never taken as new inputs
    res = _foley(tiny_bundle, d / "a.mp4", "--json")
    assert res.exit_code == 0 and (d / "a.foley.mp4").exists()
    res = _foley(tiny_bundle, d, "--json")
    assert res.exit_code == 1
    assert {r["input"].rsplit("/", 1)[-1] for r in json.loads(res.stdout)["items"]} == {"a.mp4", "broken.mp4"}


def test_ctrl_c_stops_cleanly_and_rerun_resumes(tiny_bundle, tmp_path, monkeypatch, capsys):
    import avcli.pipelines.foley as fp

    d = tmp_path / "in"
    d.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        _clip(d / name)
    real, calls = fp.foley, []

    def interrupted_second_time(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(fp, "foley", interrupted_second_time)
    rep = tmp_path / "r.json"
    code, _, err = _run_cli(monkeypatch, capsys, d, "--bundle", tiny_bundle, "--steps", 2, "--report", rep)
    assert code == 130 and "interrupted" in err
    report = json.loads(rep.read_text())
    assert [r["status"] for r in report["items"]] == ["ok", "not run", "not run"] and report["interrupted"]
    assert sorted(p.name for p in d.iterdir()) == ["a.foley.mp4", "a.mp4", "b.mp4", "c.mp4"]  # nothing partial
    monkeypatch.setattr(fp, "foley", real)
    code, _, _ = _run_cli(monkeypatch, capsys, d, "--bundle", tiny_bundle, "--steps", 2, "--report", rep)
    assert code == 0
    assert [r["status"] for r in json.loads(rep.read_text())["items"]] == ["skipped", "ok", "ok"]


# --- bad single inputs: exit 2, one line, nothing written ------------------------------------------------------

def _bad_cases(media, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(1).bytes(2048))
    (tmp_path / "nothing_here").mkdir()
    (tmp_path / "a_file").write_text("x")
    good = media / "portrait.mp4"
    return [
        ([tmp_path / "missing.mp4"], "missing.mp4", "not found"),
        ([tmp_path / "empty.mp4"], "empty.mp4", "empty"),
        ([tmp_path / "noise.mp4"], "noise.mp4", "not a media file"),
        ([media / "audio.m4a"], "audio.m4a", "no video stream"),
        ([media / "zero.mp4"], "zero.mp4", "zero-length"),
        ([tmp_path / "nothing_here"], "nothing_here", "no video files"),
        ([good, "--out-dir", tmp_path / "a_file"], "a_file", "not a directory"),
        ([good, "-o", tmp_path / "no" / "such" / "x.mp4"], "such", "does not exist"),
    ]


def test_bad_single_inputs_exit_2_with_one_line(tiny_bundle, media, tmp_path, monkeypatch, capsys):
    cases = _bad_cases(media, tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    media_before = sorted(p.name for p in media.iterdir())
    for args, name, why in cases:
        code, out, err = _run_cli(monkeypatch, capsys, *args, "--bundle", tiny_bundle, "--steps", 2)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2, (args, err)
        assert len(lines) == 1 and name in lines[0] and why in lines[0], (args, err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written
    assert sorted(p.name for p in media.iterdir()) == media_before


def test_unreadable_directory_and_unwritable_out_dir(tiny_bundle, media, tmp_path, monkeypatch, capsys):
    """Permission errors as the OS reports them. CI runs as root, where mode bits stop nothing, so the refusals
    are simulated where the code meets the OS: the directory listing raises PermissionError, os.access says no."""
    import os
    from pathlib import Path

    locked = tmp_path / "locked"
    locked.mkdir()
    real_iterdir, real_access = Path.iterdir, os.access

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == locked and mode & os.W_OK
                        else real_access(p, mode, **kw))
    code, _, err = _run_cli(monkeypatch, capsys, locked, "--bundle", tiny_bundle)
    assert code == 2 and "locked" in err and "not readable" in err
    code, _, err = _run_cli(monkeypatch, capsys, media / "portrait.mp4", "--out-dir", locked, "--bundle",
                            tiny_bundle)
    assert code == 2 and "not writable" in err
    assert list(real_iterdir(locked)) == []  # nothing written


def test_cli_subprocess_reports_a_missing_file_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "avcli", "foley", str(tmp_path / "nope.mp4")], capture_output=True,
                       text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "nope.mp4" in r.stderr
    assert list(tmp_path.iterdir()) == []


# --- job files and variations -----------------------------------------------------------------------------------

def test_jobs_csv_and_jsonl_and_variations(tiny_bundle, tmp_path):
    d = tmp_path / "media"
    d.mkdir()
    _clip(d / "x.mp4", duration=2)
    (tmp_path / "jobs.csv").write_text("input,output,prompt,seed,start,duration\n"
                                       "media/x.mp4,out/x_csv.mp4,glass clinks,3,0.5,1.0\n")
    (tmp_path / "out").mkdir()
    res = _foley(tiny_bundle, "--jobs", tmp_path / "jobs.csv", "--json", "--save-wav")
    assert res.exit_code == 0, res.output
    item = json.loads(res.stdout)["items"][0]
    assert item["status"] == "ok" and item["seed"] == 3 and item["start_s"] == 0.5
    out = tmp_path / "out" / "x_csv.mp4"
    import soundfile as sf

    assert len(sf.read(out.with_suffix(".wav"))[0]) == SR  # the 1 s segment, exact
    assert abs(len(read_audio(out, SR)) - 2 * SR) <= 1024  # soundtrack still spans the whole 2 s video

    (tmp_path / "jobs.jsonl").write_text(json.dumps({"input": "media/x.mp4", "prompt": "a drum", "seed": 1,
                                                                "duration": 0.75}) + "\n")
    assert read_jobs(tmp_path / "jobs.jsonl")[0]["input"] == str(tmp_path / "media" / "x.mp4")
    res = _foley(tiny_bundle, "--jobs", tmp_path / "jobs.jsonl", "--num-samples", "2", "--json")
    assert res.exit_code == 0, res.output
    items = json.loads(res.stdout)["items"]
    assert [i["seed"] for i in items] == [1, 2]
    assert (d / "x.foley_1.mp4").exists() and (d / "x.foley_2.mp4").exists()
    assert (d / "x.foley_1.mp4").read_bytes() != (d / "x.foley_2.mp4").read_bytes()


def test_video_guidance_reaches_the_audio_unet_from_the_cli_and_the_bundle(tiny_bundle, media, tmp_path):
    """--video-guidance ETA runs the audio U-Net on [null; video] features each step (no prompt: one call of batch
    2, the cost of the text guidance it replaces); a bundle's sampling.foley_video_guidance is the default, and
    the report says what ran."""
    import shutil

    import torch

    from avcli.pipelines.foley import FoleyRequest
    from avcli.pipelines.pipeline import JointPipeline

    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "bundle.json").read_text())
    m["sampling"]["foley_video_guidance"] = 3.0
    (b / "bundle.json").write_text(json.dumps(m))
    for bundle, req, want in ((tiny_bundle, FoleyRequest(steps=2), [[False]] * 2),
                              (b, FoleyRequest(steps=2), [[True, False]] * 2),
                              (b, FoleyRequest(steps=2, video_guidance=1.0), [[False]] * 2)):
        pipe = JointPipeline.from_bundle(bundle)
        unet, seen = pipe.components["audio_unet"], []

        def recording(_unet=unet, _seen=seen, **kw):
            _seen.append([bool(torch.count_nonzero(r) == 0) for r in kw["cross_features"]])
            return _unet(**kw)

        pipe.components["audio_unet"] = recording
        pipe.foley(media / "portrait.mp4", req)
        assert seen == want, (bundle, req)
    res = _foley(tiny_bundle, media / "portrait.mp4", "-o", tmp_path / "p.mp4", "--video-guidance", "2.5",
                 "--steps", "1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["settings"]["video_guidance"] == 2.5
    res = _foley(b, media / "portrait.mp4", "-o", tmp_path / "d.mp4", "--steps", "1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["settings"]["video_guidance"] == 3.0  # the report says what ran: the bundle's
    bad = _foley(tiny_bundle, media / "portrait.mp4", "-o", tmp_path / "q.mp4", "--video-guidance", "-1")
    assert bad.exit_code == 2 and not (tmp_path / "q.mp4").exists()


def test_foley_keeps_its_own_text_guidance_when_a_bundle_sets_generates(tiny_bundle, media, tmp_path):
    """A bundle whose generate guides the audio's text on the last 60 % of the steps only (cfg_audio 5,
    cfg_audio_interval 0.4:1, rescale 0.7): foley with a prompt guides every step with plain guidance (the CFG batch
    of 2 on each of 5 steps), and a bundle's sampling.foley_cfg_audio 1 turns it off (batch 1)."""
    import shutil

    from avcli.pipelines.foley import FoleyRequest, foley_cfg_audio
    from avcli.pipelines.pipeline import JointPipeline
    from avcli.training.stages import shipping_manifest

    def bundle_with(**sampling):
        b = tmp_path / "-".join(sampling)
        shutil.copytree(tiny_bundle, b)
        m = json.loads((b / "bundle.json").read_text())
        m["sampling"].update(shipping_manifest(m, None, **sampling)["sampling"])
        (b / "bundle.json").write_text(json.dumps(m))
        return b

    gen = dict(cfg_audio=5.0, cfg_audio_interval=(0.4, 1.0), cfg_audio_rescale=0.7)
    req = FoleyRequest(prompt="a metal ball on glass", steps=5)
    for bundle, want in ((bundle_with(**gen), [2] * 5), (bundle_with(**gen, foley_cfg_audio=1.0), [1] * 5)):
        pipe = JointPipeline.from_bundle(bundle)
        unet, seen = pipe.components["audio_unet"], []

        def recording(_unet=unet, _seen=seen, **kw):
            _seen.append(kw["sample"].shape[0])
            return _unet(**kw)

        pipe.components["audio_unet"] = recording
        pipe.foley(media / "portrait.mp4", req)
        assert seen == want, bundle
    b2 = bundle_with(foley_cfg_audio=2.0)
    m = json.loads((b2 / "bundle.json").read_text())
    assert foley_cfg_audio(m, FoleyRequest()) == 2.0 and foley_cfg_audio(m, FoleyRequest(cfg=3.0)) == 3.0
    res = _foley(b2, media / "portrait.mp4", "-o", tmp_path / "c.mp4", "--steps", "1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["settings"]["cfg"] == 2.0  # the report says what a prompt runs with
