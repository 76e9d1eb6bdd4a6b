"""`avgen eval` end to end on a folder of tiny generated mp4s."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from avcli.cli.main import app
from avcli.errors import UsageError

FPS = 8
SR = 16000
EVENTS = [4, 12, 20]  # frames


def _video(events, n=32, size=64):
    tex = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    frames = np.full((n, size, size, 3), 60, np.uint8)
    x = 8
    for i in range(n):
        if i in events:
            x = 40 if x == 8 else 8
        frames[i, 24:40, x:x + 16] = tex
    return frames


def _clicks(times, dur=4.0):
    y = np.zeros(int(SR * dur), np.float32)
    n = int(0.03 * SR)
    burst = np.random.default_rng(1).standard_normal(n) * np.exp(-np.arange(n) / (0.005 * SR))
    for t in times:
        s = int(round(t * SR))
        y[s:s + n] += 0.8 * burst[: len(y) - s].astype(np.float32)
    return y


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from avcli.media.ffmpeg import write_video

    root = tmp_path_factory.mktemp("eval")
    gen, ref = root / "gen", root / "ref"
    gen.mkdir()
    ref.mkdir()
    times = np.array(EVENTS) / FPS
    write_video(gen / "clip_00000.mp4", _video(EVENTS), FPS, _clicks(times), SR)  # aligned
    write_video(gen / "clip_00001.mp4", _video(EVENTS), FPS, _clicks(times + 5 / FPS), SR)  # 5 frames late
    write_video(ref / "clip_00000.mp4", _video(EVENTS), FPS, _clicks(times), SR)
    write_video(ref / "clip_00001.mp4", _video(EVENTS), FPS, _clicks(times), SR)
    with (root / "events.jsonl").open("w") as f:
        for name in ("clip_00000.mp4", "clip_00001.mp4"):
            f.write(json.dumps({"file": name, "events": times.tolist(), "attrs": {}}) + "\n")
    return root


def test_eval_writes_csv_and_table(folders):
    out = folders / "scores.csv"
    r = CliRunner().invoke(app, ["eval", str(folders / "gen"), "--reference", str(folders / "ref"), "--truth",
                                 str(folders / "events.jsonl"), "--variant", "all", "--csv", str(out)])
    assert r.exit_code == 0, r.output
    assert "av_align_seed000" in r.output and "FD-logmel" in r.output
    rows = {row["file"]: row for row in csv.DictReader(out.open())}
    assert set(rows) == {"clip_00000.mp4", "clip_00001.mp4"}
    good, late = rows["clip_00000.mp4"], rows["clip_00001.mp4"]
    for v in ("seed000", "official", "legacy"):
        assert float(good[f"av_align_{v}"]) == pytest.approx(1.0)
        assert float(late[f"av_align_{v}"]) == 0.0
    assert float(good["onset_f1"]) == 1.0 and float(late["onset_f1"]) == 0.0
    assert float(good["aa_align"]) == 1.0 and float(late["aa_align"]) == 0.0


def test_eval_never_replaces_its_csv_without_overwrite(folders, tmp_path):
    """The per-file CSV is an output like any other: an existing one is refused before any scoring, and kept."""
    out = tmp_path / "scores.csv"
    out.write_text("keep me")
    r = subprocess.run([sys.executable, "-m", "avcli", "eval", str(folders / "gen"), "--metrics", "av_align",
                        "--csv", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "already exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert out.read_text() == "keep me"
    r = CliRunner().invoke(app, ["eval", str(folders / "gen"), "--metrics", "av_align", "--csv", str(out),
                                 "--overwrite"])
    assert r.exit_code == 0, r.output
    assert {row["file"] for row in csv.DictReader(out.open())} == {"clip_00000.mp4", "clip_00001.mp4"}


def test_eval_json_and_metric_selection(folders):
    r = CliRunner().invoke(app, ["eval", str(folders / "gen"), "--metrics", "av_align", "--variant", "official",
                                 "--json", "--csv", str(folders / "a.csv")])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["summary"]["av_align_official"]["n"] == 2
    assert data["summary"]["av_align_official"]["mean"] == pytest.approx(0.5)


def test_eval_reads_every_container_and_pairs_references_by_stem(folders, tmp_path):
    """Generated clips as AVI (MPEG-4 Part 2, PCM) and Matroska, real clips as the mp4s: read, paired by stem (the
    AVI under the name `avgen foley` gives its output: clip_00000.foley.avi), and scored like the mp4s they were
    made from (a broken reader would drop them, or pair nothing and leave aa_align out)."""
    import imageio_ffmpeg

    gen = tmp_path / "gen"
    gen.mkdir()
    for src, dst, codec in (("clip_00000.mp4", "clip_00000.foley.avi", ["-c:v", "mpeg4", "-q:v", "2", "-c:a", "pcm_s16le"]),
                            ("clip_00001.mp4", "clip_00001.mkv", ["-c:v", "libx264", "-c:a", "pcm_s16le"])):
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(folders / "gen" / src), *codec,
                        str(gen / dst)], check=True)
    (gen / "notes.txt").write_text("not a clip")
    truth = tmp_path / "events.jsonl"
    times = (np.array(EVENTS) / FPS).tolist()
    truth.write_text("".join(json.dumps({"file": n, "events": times}) + "\n" for n in ("clip_00000.foley.avi", "clip_00001.mkv")))
    out = tmp_path / "scores.csv"
    r = CliRunner().invoke(app, ["eval", str(gen), "--reference", str(folders / "ref"), "--truth", str(truth),
                                 "--metrics", "av_align,onsets,aa_align", "--csv", str(out)])
    assert r.exit_code == 0, r.output
    rows = {row["file"]: row for row in csv.DictReader(out.open())}
    assert set(rows) == {"clip_00000.foley.avi", "clip_00001.mkv"}
    good, late = rows["clip_00000.foley.avi"], rows["clip_00001.mkv"]
    assert float(good["onset_f1"]) == 1.0 and float(late["onset_f1"]) == 0.0
    assert float(good["aa_align"]) == 1.0 and float(late["aa_align"]) == 0.0  # the stem-paired mp4 references


def test_source_stem_undoes_foleys_output_names():
    from avcli.pipelines.batch import FOLEY_TAG, output_name, source_stem

    for n in (1, 3):
        name = output_name("shot 01.take", FOLEY_TAG, n - 1, n, ".avi")
        assert source_stem(name[: -len(".avi")], FOLEY_TAG) == "shot 01.take"
    assert source_stem("shot.foley.x", FOLEY_TAG) == "shot.foley.x" and source_stem("foley", FOLEY_TAG) == "foley"
    assert source_stem("shot.foleys", FOLEY_TAG) == "shot.foleys"


def _usage_error(result, text=""):
    # CliRunner sees the raw exception; avcli.cli.main.run turns it into one line and its exit code
    assert isinstance(result.exception, UsageError), result.output
    assert result.exception.exit_code == 2 and text in str(result.exception)


def test_eval_usage_errors(tmp_path, folders):
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    _usage_error(runner.invoke(app, ["eval", str(empty)]), "no video files")
    _usage_error(runner.invoke(app, ["eval", str(tmp_path / "missing")]), "not a directory")
    _usage_error(runner.invoke(app, ["eval", str(folders / "gen"), "--metrics", "aa_align"]), "--reference")
    _usage_error(runner.invoke(app, ["eval", str(folders / "gen"), "--variant", "nope"]), "--variant")


def test_empty_folder_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "avcli", "eval", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "no video files" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_fit_adherence_trains_saves_and_scores(tmp_path):
    """Classifiers trained from a labelled synth folder (avgen data synth) recognise that folder's own clips."""
    runner = CliRunner()
    data = tmp_path / "hits"
    assert runner.invoke(app, ["data", "synth", "--n", "12", "-o", str(data), "--seed", "3"]).exit_code == 0
    model = tmp_path / "adh.safetensors"
    r = runner.invoke(app, ["eval", str(data), "--metrics", "adherence", "--fit-adherence", str(data),
                            "--adherence-model", str(model), "--json", "--csv", str(tmp_path / "s.csv")])
    assert r.exit_code == 0, r.output
    assert model.is_file()
    summary = json.loads(r.stdout[r.stdout.index("{"):])["summary"]
    assert summary["colour_ok"]["n"] == 12 and summary["colour_ok"]["mean"] >= 0.9
    assert summary["material_ok"]["mean"] >= 0.7
    # reused without refitting; a missing --adherence-model is a usage error
    r2 = runner.invoke(app, ["eval", str(data), "--metrics", "adherence", "--adherence-model", str(model), "--json",
                             "--csv", str(tmp_path / "t.csv")])
    assert json.loads(r2.stdout[r2.stdout.index("{"):])["summary"]["colour_ok"] == summary["colour_ok"]
    _usage_error(runner.invoke(app, ["eval", str(data), "--fit-adherence", str(data)]), "--adherence-model")


def test_contact_and_floor_metrics_read_the_frames_and_the_silence(tmp_path):
    """--metrics contact,floor on synthesized hits clips: the real sound agrees with the contacts seen in the frames;
    the same sound 3 frames late does not; the floor is the synthesizer's background level."""
    from avcli.data.synth import make_clip
    from avcli.media.ffmpeg import write_video

    good, late = tmp_path / "good", tmp_path / "late"
    good.mkdir()
    late.mkdir()
    with (tmp_path / "events.jsonl").open("w") as f:
        for seed in range(6):
            c = make_clip(seed, fps=8, size=(64, 64), impact_fps=8)
            name = f"clip_{seed:05d}.mp4"
            write_video(good / name, c.frames, 8, c.audio, c.sample_rate)
            shift = int(3 / 8 * c.sample_rate)
            write_video(late / name, c.frames, 8, np.concatenate([np.zeros(shift, np.float32), c.audio[:-shift]]),
                        c.sample_rate)
            f.write(json.dumps({"file": name, "events": c.events, "attrs": c.attrs}) + "\n")
    runner = CliRunner()
    out = {}
    for d in (good, late):
        r = runner.invoke(app, ["eval", str(d), "--metrics", "contact,floor", "--truth", str(tmp_path / "events.jsonl"),
                                "--onset-tolerance-ms", "125", "--json"])
        assert r.exit_code == 0, r.output
        out[d.name] = json.loads(r.stdout[r.stdout.index("{"):])["summary"]
    assert out["good"]["contact_f1"]["mean"] >= 0.6
    assert out["late"]["contact_f1"]["mean"] <= out["good"]["contact_f1"]["mean"] - 0.3
    assert -60 < out["good"]["noise_floor_db"]["mean"] < -40
