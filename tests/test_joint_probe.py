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
        assert r["gain_pct"] == 100.0 * (r["mismatched"] - r["matched"]) / r["mismatched"]
    # the values, recomputed independently: same noise draws (video first, then audio), x_t = sqrt(abar) x0 +
    # sqrt(1 - abar) eps, epsilon target, each U-Net fed the other modality's connector features
    from avcli.sampling.schedules import NoiseSchedule

    cat = lambda k: torch.cat([e[k] for e in entries]).float()  # noqa: E731
    v0, a0 = cat("video"), cat("audio")
    g = torch.Generator().manual_seed(0)
    ev, ea = torch.randn(v0.shape, generator=g), torch.randn(a0.shape, generator=g)
    abar_v = NoiseSchedule.from_dict(moved.manifest["video"]["schedule"]).alphas_cumprod()[0]
    abar_a = NoiseSchedule.from_dict(moved.manifest["audio"]["schedule"]).alphas_cumprod()[300]
    xv, xa = abar_v.sqrt() * v0 + (1 - abar_v).sqrt() * ev, abar_a.sqrt() * a0 + (1 - abar_a).sqrt() * ea
    with torch.no_grad():
        fv = moved.video_connector(latent=xv, x0_hat=v0)
        out = moved.audio_unet(sample=xa, timestep=torch.full((4,), 300), text_embeds=cat("text_audio"),
                               cross_features=fv)
        other = moved.audio_unet(sample=xa, timestep=torch.full((4,), 300), text_embeds=cat("text_audio"),
                                 cross_features=fv.roll(1, 0))
    assert abs(rows[0]["audio"]["matched"] - float(((out - ea) ** 2).mean())) < 1e-6
    assert abs(rows[0]["audio"]["mismatched"] - float(((other - ea) ** 2).mean())) < 1e-6
