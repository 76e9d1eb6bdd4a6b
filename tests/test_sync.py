"""The synchronisation classifier (seed 002) on our domain: it tells in-sync pairs from shifted ones on held-out
clips, RelSync of the ground truth against itself is 0.5, and `avgen eval --fit-sync / --sync-model` runs it.
The image-audio model behind AlignSync tells a clip's own picture from one of another material on held-out clips;
P_Align of frames that copy the real first frame is exactly 0.5."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from avcli.data.synth import make_clip
from avcli.metrics import image_audio as IA
from avcli.metrics import sync as S


@pytest.fixture(scope="module")
def feats():
    out = []
    for seed in range(70):
        c = make_clip(500 + seed, duration=4.0, fps=8, size=(64, 64))
        out.append((S.audio_features(c.audio, c.sample_rate, len(c.frames)), S.video_features(c.frames)))
    return out


@pytest.fixture(scope="module")
def model(feats):
    return S.train(feats[:60], steps=250, batch=8)


@pytest.fixture(scope="module")
def pictures():
    """(audio features, frames, material) of 70 synthetic clips."""
    out = []
    for seed in range(70):
        c = make_clip(500 + seed, duration=4.0, fps=8, size=(64, 64))
        out.append((S.audio_features(c.audio, c.sample_rate, len(c.frames)), c.frames, c.attrs["material"]))
    return out


@pytest.fixture(scope="module")
def align(pictures):
    return IA.train([(a, f) for a, f, _ in pictures[:60]], steps=100, batch=16)


def test_image_audio_model_knows_a_clips_own_picture_from_another_materials(align, pictures):
    held = pictures[60:]
    pairs = [(i, j) for i in range(len(held)) for j in range(len(held)) if held[i][2] != held[j][2]]
    own = sum(float(np.subtract(*align.ia(held[i][0], np.stack([held[i][1][10], held[j][1][10]])))) > 0
              for i, j in pairs)
    assert own >= 0.8 * len(pairs), (own, len(pairs))  # an untrained or shuffled model sits near one half
    acc = IA.retrieval_accuracy(align, [(a, f) for a, f, _ in held])
    assert acc["accuracy"] > 2 * acc["chance"], acc


def test_p_align_and_alignsync_follow_the_seeds_equations(model, align, pictures):
    a, frames, _ = pictures[63]
    copies = np.repeat(frames[:1], len(frames), axis=0)
    assert IA.p_align(align, a, copies, frames[0]) == pytest.approx(0.5)  # every frame IS v_1
    ia = align.ia(a, frames)  # eq. 8-9 by hand: frames 2..b against v_1
    expect = np.mean(1 / (1 + np.exp(ia[0] - ia[1:])))
    assert IA.p_align(align, a, frames, frames[0]) == pytest.approx(expect, rel=1e-6)
    model.align = align
    try:
        both = S.align_sync(model, a, frames, frames)
    finally:
        model.align = None
    assert both["relsync"] == pytest.approx(0.5) and both["alignsync"] == pytest.approx(0.5 * expect)


def test_real_pairs_score_above_their_shifted_versions_on_held_out_clips(model, feats):
    held = feats[60:]
    better = sum(model.score(a, v) > model.score(np.roll(a, 4, axis=0), v) for a, v in held)
    assert better >= 0.8 * len(held), better
    acc = S.shift_accuracy(model, held)
    assert acc["accuracy"] > 2 * acc["chance"], acc


def test_relsync_of_the_ground_truth_is_one_half_and_orders_pairs(model, feats):
    a, v = feats[65]
    assert S.rel_sync(model, a, v, v) == pytest.approx(0.5)
    shifted = np.roll(v, 4, axis=0)
    assert S.rel_sync(model, a, shifted, v) < 0.5  # a video out of step with the audio scores below the real one


def test_saved_model_gives_the_same_scores(model, align, feats, pictures, tmp_path):
    path = model.save(tmp_path / "sync.safetensors")
    back = S.SyncClassifier.load(path)
    a, v = feats[61]
    assert back.score(a, v) == pytest.approx(model.score(a, v), abs=1e-6)
    assert back.align is None  # a file without the image-audio part
    model.align = align
    try:
        both = S.SyncClassifier.load(model.save(tmp_path / "both.safetensors"))
    finally:
        model.align = None
    a, frames, _ = pictures[62]
    assert both.align.ia(a, frames[:4]) == pytest.approx(align.ia(a, frames[:4]), abs=1e-6)
    with pytest.raises(Exception, match="already exists"):
        model.save(path)


def test_eval_fit_sync_and_relsync(tmp_path):
    from avcli.cli.main import app
    from avcli.media.ffmpeg import write_video

    real, gen = tmp_path / "real", tmp_path / "gen"
    real.mkdir()
    gen.mkdir()
    for i in range(6):
        c = make_clip(900 + i, duration=4.0, fps=8, size=(64, 64))
        write_video(real / f"c{i}.mp4", c.frames, 8, c.audio, c.sample_rate)
        write_video(gen / f"c{i}.mp4", np.roll(c.frames, 5, axis=0), 8, c.audio, c.sample_rate)  # out of step
    model = tmp_path / "sync.safetensors"
    r = CliRunner().invoke(app, ["eval", str(gen), "--reference", str(real), "--metrics", "relsync,alignsync",
                                 "--fit-sync", str(real), "--sync-model", str(model), "--sync-steps", "60",
                                 "--align-steps", "20", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert model.exists() and 0.0 <= out["summary"]["relsync"]["mean"] <= 1.0 and out["summary"]["relsync"]["n"] == 6
    for row in out["files"]:
        assert row["alignsync"] == pytest.approx(row["relsync"] * row["p_align"])
    old = tmp_path / "old.safetensors"  # no image-audio part: alignsync is refused before any clip is read
    r = CliRunner().invoke(app, ["eval", str(gen), "--reference", str(real), "--metrics", "relsync", "--fit-sync",
                                 str(real), "--sync-model", str(old), "--sync-steps", "5", "--align-steps", "0",
                                 "--overwrite"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["eval", str(gen), "--reference", str(real), "--metrics", "alignsync",
                                 "--sync-model", str(old), "--overwrite"])
    assert r.exception.exit_code == 2 and "image-audio part" in str(r.exception)
    same = CliRunner().invoke(app, ["eval", str(real), "--reference", str(real), "--metrics", "relsync",
                                    "--sync-model", str(model), "--json"])
    assert json.loads(same.stdout)["summary"]["relsync"]["mean"] == pytest.approx(0.5)
