"""Onset pretext task (seed 003 sec. II-B1): pseudo-labels at known event times, head, score, and the CLI stage."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from avcli.cli.main import app
from avcli.training.onset import OnsetHead, onset_f1, onset_frames, onset_labels

SR, HOP = 16000, 160  # 100 mel frames per second, as the demo bundle


def _log_mel(events_s, seconds=4.0, n_mels=64, seed=0):
    """Log-mel of decaying broadband hits at known times over a quiet noise floor."""
    rng = np.random.default_rng(seed)
    t = int(seconds * SR / HOP)
    power = 1e-4 * (1 + 0.1 * rng.random((t, n_mels)))
    for e in events_s:
        f = int(round(e * SR / HOP))
        decay = np.exp(-np.arange(t - f) / 6.0)[:, None]
        power[f:] += decay * rng.uniform(0.5, 1.0, n_mels)[None]
    return np.log(power)


def test_pseudo_labels_fall_on_the_known_events():
    events = [0.31, 1.07, 1.92, 2.66, 3.4]
    frames = onset_frames(_log_mel(events), SR, HOP)
    assert len(frames) == len(events)
    assert np.all(np.abs(frames * HOP / SR - np.array(events)) <= 0.03)  # within 3 mel frames
    mels = torch.from_numpy(np.stack([_log_mel(events), _log_mel([0.5, 2.0], seed=1)])).float()
    labels = onset_labels(mels, 100, SR, HOP)  # 400 mel frames -> 100 latent frames of 40 ms
    assert labels.shape == (2, 100) and labels.sum(1).tolist() == [5.0, 2.0]
    got = labels[0].nonzero()[:, 0].numpy() * 0.04
    assert np.all(np.abs(got - np.array(events)) <= 0.04 + 0.03)


def test_head_stretches_features_to_the_audio_frames():
    head = OnsetHead(8)
    feats = torch.zeros(2, 32, 8)
    feats[:, 16] = 1.0  # one marked video frame in the middle
    with torch.no_grad():
        head.proj.weight.fill_(1.0)
        head.proj.bias.zero_()
        out = head(feats, 100)
    assert out.shape == (2, 100)
    assert abs(int(out[0].argmax()) - 51) <= 1  # frame 16 of 32 sits at 16.5/32 of the clip = latent frame ~51


def test_onset_f1_matches_within_tolerance_one_to_one():
    labels = torch.zeros(1, 20)
    labels[0, [3, 10, 15]] = 1
    logits = torch.full((1, 20), -5.0)
    logits[0, [4, 10]] = 5.0  # one off by a frame, one exact, one missed
    s = onset_f1(logits, labels)
    assert s["precision"] == 1.0 and s["recall"] == pytest.approx(2 / 3)
    assert onset_f1(logits, labels, tolerance=0)["precision"] == 0.5
    assert onset_f1(torch.full((1, 20), -5.0), labels)["f1"] == 0.0  # nothing predicted: defined, no division


def test_cli_onset_stage_trains_only_the_video_connector(tiny_bundle, tmp_path):
    from avcli.media.ffmpeg import write_video

    data = tmp_path / "clips"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        frames = rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
        t = np.arange(16000) / 16000
        audio = (0.5 * rng.standard_normal(len(t)) * np.exp(-((t - 0.3 * (i + 1)) % 1.0) * 30)).astype(np.float32)
        write_video(data / f"hit_{i}.mp4", frames, 8, audio, 16000)
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    before = {p.name: load_file(str(p)) for p in bundle.glob("*.safetensors")}
    res = CliRunner().invoke(app, ["train", "onset", "--bundle", str(bundle), "--data", str(data), "--work",
                                   str(tmp_path / "w"), "--steps", "3", "--batch", "4", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["step"] == 3 and 0 < out["onset_rate"] < 1
    p, r = out["heldout_precision"], out["heldout_recall"]
    assert out["heldout_f1"] == (2 * p * r / (p + r) if p + r else 0.0)  # the score is the F1 of its P and R
    assert out["heldout_windows"] >= 1
    changed = {name for name, tensors in before.items()
               if any(not torch.equal(v, load_file(str(bundle / name))[k]) for k, v in tensors.items())}
    assert changed == {"video_connector.safetensors"}
    assert (tmp_path / "w/runs/onset/ckpt.safetensors").exists()
    missing = CliRunner().invoke(app, ["train", "onset", "--bundle", str(bundle), "--data", str(tmp_path / "nope"),
                                       "--work", str(tmp_path / "w2"), "--steps", "1"])
    assert missing.exit_code != 0 and "data folder not found" in str(missing.exception) + missing.output
