"""benchmarks/joint_probe.py: the paired-loss probe tells a model that ignores the other modality from one that
does not."""

import copy
import importlib.util
from pathlib import Path

import torch

_spec = importlib.util.spec_from_file_location("joint_probe", Path(__file__).parents[1] / "benchmarks" / "joint_probe.py")
joint_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(joint_probe)


def _entries(model, n=4):
    g = torch.Generator().manual_seed(0)
    geo = model.geometry()
    L, D = model.manifest["text"]["max_length"], model.manifest["text"]["video"]["dim"]
    return [{"video": torch.randn((1,) + geo.video_latent, generator=g),
             "audio": torch.randn((1,) + geo.audio_latent, generator=g),
             "text_video": torch.randn(1, L, D, generator=g), "text_audio": torch.randn(1, L, D, generator=g)}
            for _ in range(n)]


def test_fresh_joint_model_has_no_cross_modal_gain_and_a_trained_one_does(tiny_model):
    entries = _entries(tiny_model)
    rows = joint_probe.probe(tiny_model, entries, [300], [0])
    for side in ("audio", "video"):  # zero-initialised blocks: the other modality cannot matter
        r = rows[0][side]
        assert r["matched"] == r["mismatched"] == r["zeroed"] and r["gain_pct"] == 0.0
    moved = copy.deepcopy(tiny_model)
    torch.manual_seed(1)
    with torch.no_grad():
        for blk in list(moved.audio_unet.cross_blocks) + list(moved.video_unet.cross_blocks):
            blk.out.weight.normal_(0, 0.5)
    rows = joint_probe.probe(moved, entries, [300], [0])
    for side in ("audio", "video"):
        r = rows[0][side]
        assert r["matched"] != r["mismatched"] and r["zeroed"] != r["matched"]
