"""The training loop: loss goes down, checkpoints are safetensors, resume continues from the saved step."""

import json

import pytest
import torch
from torch import nn

from avcli.training.loop import LoopConfig, train


def _problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0]])

    def loss_fn(step, gen):
        x = torch.randn(32, 4, generator=gen)
        return ((model(x) - x @ w.T) ** 2).mean(), {}

    return model, loss_fn


def test_loss_decreases_and_logs(tmp_path):
    model, loss_fn = _problem()
    res = train("toy", model, loss_fn, tmp_path, LoopConfig(steps=150, lr=1e-2, ckpt_every=50, log_every=10),
                progress=False)
    rows = json.loads((tmp_path / "log.json").read_text())
    assert rows[-1]["loss"] < 0.3 * rows[0]["loss"]
    assert res["step"] == 150
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert (tmp_path / "log.csv").read_text().startswith("step,loss")
    assert {p.suffix for p in tmp_path.iterdir()} <= {".json", ".safetensors", ".csv", ".png"}


def test_resume_continues_from_saved_step(tmp_path):
    model, loss_fn = _problem()
    train("toy", model, loss_fn, tmp_path, LoopConfig(steps=40, lr=1e-2, ckpt_every=20), progress=False)
    saved = [p.detach().clone() for p in model.parameters()]
    assert json.loads((tmp_path / "state.json").read_text())["step"] == 40

    model2, loss_fn2 = _problem()  # a fresh process: new random weights
    calls = []
    res = train("toy", model2, lambda s, g: (calls.append(s), loss_fn2(s, g))[1], tmp_path,
                LoopConfig(steps=60, lr=1e-2, ckpt_every=20), progress=False)
    assert calls[0] == 40 and len(calls) == 20  # continued at the saved step, ran only the rest
    assert res["steps_run"] == 20
    rows = json.loads((tmp_path / "log.json").read_text())
    assert [r["step"] for r in rows] == sorted({r["step"] for r in rows}) and rows[-1]["step"] == 60

    model3, loss_fn3 = _problem()  # resuming loads the weights that were saved
    fresh = [p.detach().clone() for p in model3.parameters()]
    train("toy", model3, loss_fn3, tmp_path, LoopConfig(steps=60, lr=1e-2), progress=False)  # nothing to do
    from safetensors.torch import load_file

    on_disk = load_file(str(tmp_path / "ckpt.safetensors"))  # what the step-60 run saved
    assert all(torch.equal(p, on_disk[k]) for k, p in model3.state_dict().items())
    assert not all(torch.equal(a, b) for a, b in zip(fresh, model3.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(saved, model3.parameters()))  # step 60 weights, not step 40


def test_ema_follows_weights_and_resumes_from_checkpoints_without_it(tmp_path):
    from safetensors.torch import load_file

    from avcli.training.ema import EMA

    model, loss_fn = _problem()
    train("toy", model, loss_fn, tmp_path, LoopConfig(steps=20, lr=1e-2, ckpt_every=10), progress=False)
    assert not (tmp_path / "ema.safetensors").exists()  # a run from before EMA existed
    ema = EMA(0.9)
    model2, loss_fn2 = _problem()
    train("toy", model2, loss_fn2, tmp_path, LoopConfig(steps=30, lr=1e-2, ckpt_every=10), progress=False, ema=ema)
    saved = load_file(str(tmp_path / "ema.safetensors"))
    assert set(saved) == {n for n, _ in model2.named_parameters()}
    for name, p in model2.named_parameters():  # an average of recent weights: close to, not equal to, the last
        assert torch.equal(saved[name], ema.shadow[name]) and not torch.equal(saved[name], p.detach())
        assert (saved[name] - p.detach()).abs().max() < 0.1
    with pytest.raises(ValueError):
        EMA(1.0)


def test_foreground_weight_marks_the_moving_object_only():
    from avcli.training.stages import foreground_weight

    bg = torch.full((1, 3, 16, 16), -0.5)
    frame = bg.clone()
    frame[:, :, 4:7, 9:12] = 0.9  # a small bright object on the static scene
    w = foreground_weight(frame, bg, boost=20.0)
    assert w.shape == (1, 1, 16, 16)
    assert torch.allclose(w[0, 0, 4:7, 9:12], torch.full((3, 3), 21.0))
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[4:7, 9:12] = False
    assert torch.all(w[0, 0][outside] == 1.0)
    assert torch.all(foreground_weight(frame, bg, boost=0.0) == 1.0)
