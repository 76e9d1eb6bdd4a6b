"""The synchronisation classifier (seed 002) on our domain: it tells in-sync pairs from shifted ones on held-out
clips, RelSync of the ground truth against itself is 0.5, and `avgen eval --fit-sync / --sync-model` runs it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from avcli.data.synth import make_clip
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


def test_saved_model_gives_the_same_scores(model, feats, tmp_path):
    path = model.save(tmp_path / "sync.safetensors")
    back = S.SyncClassifier.load(path)
    a, v = feats[61]
    assert back.score(a, v) == pytest.approx(model.score(a, v), abs=1e-6)
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
    r = CliRunner().invoke(app, ["eval", str(gen), "--reference", str(real), "--metrics", "relsync", "--fit-sync",
                                 str(real), "--sync-model", str(model), "--sync-steps", "60", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert model.exists() and 0.0 <= out["summary"]["relsync"]["mean"] <= 1.0 and out["summary"]["relsync"]["n"] == 6
    same = CliRunner().invoke(app, ["eval", str(real), "--reference", str(real), "--metrics", "relsync",
                                    "--sync-model", str(model), "--json"])
    assert json.loads(same.stdout)["summary"]["relsync"]["mean"] == pytest.approx(0.5)
