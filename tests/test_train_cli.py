"""Training commands on a tiny synthetic set: loss decreases, resume continues, joint training leaves bases intact."""

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from avcli.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "hits"
    res = runner.invoke(app, ["data", "synth", "--n", "6", "-o", str(out), "--duration", "1", "--fps", "8",
                              "--size", "32", "--sample-rate", "8000"])
    assert res.exit_code == 0, res.output
    return out


def _train(stage, bundle, data, work, steps, *extra):
    return runner.invoke(app, ["train", stage, "--bundle", str(bundle), "--data", str(data), "--work", str(work),
                               "--steps", str(steps), "--batch", "4", "--lr", "2e-3", "--ckpt-every", "20", "--json",
                               *extra])


def test_vae_training_loss_decreases_and_resumes(tiny_bundle, tiny_data, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    res = _train("vae-video", bundle, tiny_data, tmp_path / "w", 40)
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "w/runs/vae-video/log.json").read_text())
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert (tmp_path / "w/runs/vae-video/loss.png").exists()
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["components"]["video_vae"]["config"]["scaling_factor"] != 1.0  # measured from latents
    res = _train("vae-video", bundle, tiny_data, tmp_path / "w", 60)
    out = json.loads(res.stdout)
    assert out["steps_run"] == 20  # continued from step 40
    record = json.loads((tmp_path / "w/records/vae-video.json").read_text())
    assert [r["steps"] for r in record] == [40, 60] and record[0]["clips"] == 6


def test_decoder_only_keeps_the_latent_space(tiny_bundle, tiny_data, tmp_path):
    """--decoder-only trains the decoder and nothing else: encoder bytes, scaling factor and the x0 clamp stay."""
    from avcli.models.bundle import load_bundle

    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    before_manifest = json.loads((bundle / "bundle.json").read_text())
    enc_bytes = (bundle / "video_vae_encoder.safetensors").read_bytes()
    before = load_bundle(bundle).video_vae.state_dict()
    res = _train("vae-video", bundle, tiny_data, tmp_path / "w", 30, "--decoder-only", "--mse-weight", "1")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["decoder_only"] is True and out["mse_weight"] == 1.0
    rows = json.loads((tmp_path / "w/runs/vae-video-decoder/log.json").read_text())
    assert rows[-1]["loss"] < rows[0]["loss"] and "loss_kl" not in rows[0] and "loss_mse" in rows[0]
    assert not (tmp_path / "w/runs/vae-video").exists()
    assert (bundle / "video_vae_encoder.safetensors").read_bytes() == enc_bytes
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["components"]["video_vae"] == before_manifest["components"]["video_vae"]
    assert manifest["video"]["schedule"] == before_manifest["video"]["schedule"]
    after = load_bundle(bundle).video_vae.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"decoder", "post_quant_conv"} or changed == {"decoder"}, changed


def test_decoder_only_is_refused_outside_vae_video(tiny_bundle, tiny_data, tmp_path):
    from avcli.errors import UsageError

    res = _train("vae-audio", tiny_bundle, tiny_data, tmp_path / "w", 2, "--decoder-only")
    assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2
    assert "vae-video" in str(res.exception) and not (tmp_path / "w").exists()


def test_joint_training_changes_only_joint_parts(tiny_bundle, tiny_data, tmp_path):
    from avcli.models.bundle import load_bundle

    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    before = load_bundle(bundle)
    res = _train("joint", bundle, tiny_data, tmp_path / "w", 6)
    assert res.exit_code == 0, res.output
    after = load_bundle(bundle)
    for name in ("video_vae", "audio_vae", "vocoder", "text_encoder_video"):
        for (k, a), b in zip(getattr(before, name).state_dict().items(), getattr(after, name).state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k} changed"
    for unet in ("video_unet", "audio_unet"):
        b_sd, a_sd = getattr(before, unet).unet.state_dict(), getattr(after, unet).unet.state_dict()
        assert all(torch.equal(b_sd[k], a_sd[k]) for k in b_sd), f"{unet} base weights changed"
        changed = [not torch.equal(x, y) for x, y in zip(getattr(before, unet).cross_blocks.parameters(),
                                                          getattr(after, unet).cross_blocks.parameters())]
        assert any(changed)
    assert any(not torch.equal(x, y) for x, y in zip(before.video_connector.parameters(),
                                                      after.video_connector.parameters()))


def test_bad_data_folder(tiny_bundle, tmp_path):
    res = _train("vae-audio", tiny_bundle, tmp_path / "missing", tmp_path / "w", 2)
    assert res.exit_code != 0
    assert "not found" in str(res.exception) or "not found" in res.output


def test_init_video_grid_checked_up_front(tiny_bundle, tmp_path):
    # tiny: 32x32 frames -> 16x16 latents -> an 8x8 connector feature map; 3 does not divide it
    from avcli.errors import UsageError  # `avgen` turns it into one line on stderr and exit code 2

    res = runner.invoke(app, ["train", "init", "--preset", "tiny", "--video-grid", "3", "-o", str(tmp_path / "a")])
    assert isinstance(res.exception, UsageError) and "video_grid 3" in str(res.exception) and "8x8" in str(res.exception)
    assert not (tmp_path / "a" / "bundle.json").exists()
    res = runner.invoke(app, ["train", "init", "--from-bundle", str(tiny_bundle), "--video-grid", "3",
                              "-o", str(tmp_path / "b")])
    assert isinstance(res.exception, UsageError) and "video_grid 3" in str(res.exception)
    assert not (tmp_path / "b" / "bundle.json").exists()
    res = runner.invoke(app, ["train", "init", "--from-bundle", str(tiny_bundle), "--video-grid", "2",
                              "-o", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "c" / "bundle.json").read_text())["joint"]["video_grid"] == 2


def test_finalize_keeps_the_history_appends_new_stages_and_sets_sampling_defaults(tiny_bundle, tmp_path, monkeypatch,
                                                                                  capsys):
    """A bundle trained further is shipped with its own training record first, then the work folder's new stages
    (a record already in the bundle is not repeated), and the sampling defaults given to finalize."""
    from avcli.models.bundle import load_bundle

    src = tmp_path / "trained"
    shutil.copytree(tiny_bundle, src)
    m = json.loads((src / "bundle.json").read_text())
    old = {"stage": "vae-video", "steps": 10, "steps_run": 10, "data": "a"}
    m["training"] = [old]
    (src / "bundle.json").write_text(json.dumps(m))
    work = tmp_path / "w"
    (work / "records").mkdir(parents=True)
    new = {"stage": "joint", "steps": 400, "steps_run": 400, "data": "b"}
    (work / "records" / "joint.json").write_text(json.dumps([new]))
    (work / "records" / "vae-video.json").write_text(json.dumps([old]))  # already in the bundle's history
    out = tmp_path / "shipped"
    res = runner.invoke(app, ["train", "finalize", "--bundle", str(src), "--work", str(work), "-o", str(out),
                              "--steps", "12", "--solver", "dpmpp2m", "--animate-audio-guidance", "12",
                              "--noise-fill-below-dbfs", "-40", "--cfg-audio", "5", "--cfg-audio-interval", "0:0.6",
                              "--audio-guidance", "4", "--audio-guidance-interval", "0.4:1",
                              "--noise-fill-below-peak-db", "25"])
    assert res.exit_code == 0, res.output
    assert "warning" in res.output and "--audio-dropout" in res.output  # its record has no audio-dropout stage
    shipped = load_bundle(out).manifest
    assert shipped["training"] == [old, new]
    assert shipped["sampling"] == {**m["sampling"], "steps": 12, "solver": "dpmpp2m", "animate_audio_guidance": 12.0,
                                   "noise_fill_below_dbfs": -40.0, "cfg_audio": 5.0, "cfg_audio_interval": [0.0, 0.6],
                                   "audio_guidance": 4.0, "audio_guidance_interval": [0.4, 1.0],
                                   "noise_fill_below_peak_db": 25.0}
    from avcli.pipelines.common import sampler_config

    assert sampler_config(shipped).cfg_audio_interval == (0.0, 0.6)  # what generate then runs with
    assert sampler_config(shipped).audio_guidance == 4.0
    assert sampler_config(shipped).audio_guidance_at(0) == 1.0 and sampler_config(shipped).audio_guidance_at(11) == 4.0
    assert shipped["sampling"]["cfg_video"] == m["sampling"]["cfg_video"]
    res = runner.invoke(app, ["train", "finalize", "--bundle", str(out), "-o", str(tmp_path / "off"),
                              "--noise-fill-below-dbfs", "off", "--noise-fill-below-peak-db", "off"])
    assert res.exit_code == 0, res.output
    assert "noise_fill_below_dbfs" not in load_bundle(tmp_path / "off").manifest["sampling"]
    assert "noise_fill_below_peak_db" not in load_bundle(tmp_path / "off").manifest["sampling"]
    from conftest import run_cli

    code, _, err = run_cli(monkeypatch, capsys, "train", "finalize", "--bundle", src, "-o", tmp_path / "x",
                           "--solver", "euler")
    assert code == 2 and "--solver must be one of ddim, dpmpp2m; got 'euler'" in err and len(err.splitlines()) == 1
    code, _, err = run_cli(monkeypatch, capsys, "train", "finalize", "--bundle", src, "-o", tmp_path / "z",
                           "--noise-fill-below-peak-db", "-3")
    assert code == 2 and "--noise-fill-below-peak-db must be a number of dB (> 0)" in err and len(err.splitlines()) == 1
    code, _, err = run_cli(monkeypatch, capsys, "train", "finalize", "--bundle", src, "-o", tmp_path / "y",
                           "--cfg-audio-interval", "0.9:0.1")
    assert code == 2 and "--cfg-audio-interval" in err and len(err.splitlines()) == 1 and not (tmp_path / "y").exists()
    assert not (tmp_path / "x").exists()
    code, _, err = run_cli(monkeypatch, capsys, "train", "finalize", "--bundle", src, "-o", tmp_path / "x",
                           "--noise-fill-below-dbfs", "loud")
    assert code == 2 and "--noise-fill-below-dbfs must be a level" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_vae_step_mse_term_and_decoder_only_recomputed_by_hand(tiny_bundle):
    """The decoder-only loss is the foreground-weighted L1 + W x MSE of the decoded posterior sample, no KL, and
    sends no gradient into the encoder; recomputed here with the same noise."""
    from avcli.models.bundle import load_bundle
    from avcli.training.stages import _vae_step

    vae = load_bundle(tiny_bundle).video_vae
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    w = torch.rand(2, 1, 32, 32) + 1
    loss, logs = _vae_step(vae, x, torch.Generator().manual_seed(3), weight=w, decoder_only=True, mse_weight=10.0)
    post = vae.encode(x).latent_dist
    z = post.mean + post.std * torch.randn(post.mean.shape, generator=torch.Generator().manual_seed(3))
    err = (vae.decode(z).sample - x).abs()
    want = (err * w).sum() / (w.sum() * 3) + 10.0 * (err**2).mean()
    assert torch.allclose(loss, want, atol=1e-6) and "loss_kl" not in logs
    vae.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in vae.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.decoder.parameters())


def test_train_summary_is_one_row_per_field_and_keeps_paths_literal(tiny_bundle, tiny_data, tmp_path):
    """Without --json the record prints as rows (a 20-field joint record squeezed into columns printed only
    ellipses at 80 columns); a work folder with brackets in its name is printed as written, not read as markup."""
    bundle, work = tmp_path / "b", tmp_path / "[red]w"
    shutil.copytree(tiny_bundle, bundle)
    res = runner.invoke(app, ["train", "joint", "--bundle", str(bundle), "--data", str(tiny_data), "--work",
                              str(work), "--steps", "2", "--batch", "2", "--train-side", "audio"],
                        terminal_width=80)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any("train_side" in ln and "audio" in ln for ln in lines), res.output
    assert any("final_loss" in ln and any(c.isdigit() for c in ln) for ln in lines), res.output
    assert any(ln.split("│")[1:2] and "seconds" in ln and (" s " in ln or " min " in ln) for ln in lines)
    assert f"{work / 'runs' / 'joint' / 'log.csv'}" in res.output.replace("\n", "")


def test_base_unet_stage_draws_by_caption_weights(tiny_bundle, tiny_data, tmp_path, monkeypatch):
    """`avgen data weight` then `train unet-audio`: each step's draw gets the weights (3 for the matched files' windows,
    1 for the rest) and the record counts them (that the draw follows its weights: tests/test_train_real.py)."""
    import re

    from avcli.training import stages

    d, bundle = tmp_path / "d", tmp_path / "b"
    shutil.copytree(tiny_data, d)
    shutil.copytree(tiny_bundle, bundle)
    first = json.loads((d / "captions.jsonl").read_text().splitlines()[0])["caption"]
    res = runner.invoke(app, ["data", "weight", str(d), "--match", f"{re.escape(first)}=3", "--json"])
    assert res.exit_code == 0, res.output
    matched = json.loads(res.stdout)["rules"][0]["files"]
    assert 1 <= matched < 6
    seen, real_draw = [], stages.draw_windows
    monkeypatch.setattr(stages, "draw_windows", lambda w, *a: seen.append(w) or real_draw(w, *a))
    res = _train("unet-audio", bundle, d, tmp_path / "w", 2)
    assert res.exit_code == 0, res.output
    assert len(seen) == 2 and seen[0] is not None
    assert seen[0].tolist().count(3.0) == matched and set(seen[0].tolist()) == {1.0, 3.0}
    assert json.loads(res.stdout)["weighted_windows"] == matched


def test_latent_foreground_weight_marks_the_cells_that_move():
    """A 6 px square moving over a flat scene: the latent cells it crosses weigh more, the rest exactly 1."""
    import numpy as np

    from avcli.training.stages import latent_foreground_weight

    frames = np.full((1, 4, 32, 32, 3), 60, np.uint8)
    for f in range(4):  # the square sits in cell (1, f) of a 4 x 4 grid of 8 px cells
        frames[0, f, 9:15, 8 * f + 1:8 * f + 7] = (250, 20, 20)
    w = latent_foreground_weight(frames, (4, 4), 10.0)
    assert w.shape == (1, 1, 4, 4, 4)
    for f in range(4):
        cell = w[0, 0, f, 1, f].item()
        assert abs(cell - (1 + 10 * 36 / 64)) < 1e-5  # 36 of the cell's 64 pixels move, fully
        rest = w[0, 0, f].clone()
        rest[1, f] = 1.0
        assert torch.all(rest == 1.0)


def test_weighted_base_loss_is_the_weighted_mean_of_the_squared_error():
    """base_loss with a weight against a recomputation from the same noise draw; uniform weights give the plain loss."""
    from avcli.sampling.schedules import NoiseSchedule
    from avcli.training.objective import add_noise, base_loss

    class Echo(torch.nn.Module):  # a "U-Net" that returns its input: the error is x_t - noise, known in closed form
        def forward(self, sample, timestep, text_embeds, cross_features):
            return sample

    sched = NoiseSchedule(num_train_timesteps=100)
    abar = sched.alphas_cumprod()
    x0 = torch.randn(2, 4, 3, 2, 2)
    w = torch.ones(2, 1, 3, 2, 2)
    w[0, 0, 1, 0, 1] = 9.0
    got = base_loss(Echo(), x0, torch.zeros(2, 1, 8), sched, abar, (5, 8), torch.Generator().manual_seed(3), weight=w)
    nb = add_noise(x0, sched, abar, torch.Generator().manual_seed(3))
    se = (nb.x_t - nb.target) ** 2
    want = (se * w).sum() / (w.expand_as(se)).sum()
    assert torch.allclose(got, want) and not torch.allclose(got, se.mean())
    plain = base_loss(Echo(), x0, torch.zeros(2, 1, 8), sched, abar, (5, 8), torch.Generator().manual_seed(3),
                      weight=torch.ones_like(w))
    assert torch.allclose(plain, se.mean())


def test_unet_video_foreground_boost_reaches_the_loss(tiny_bundle, tiny_data, tmp_path, monkeypatch):
    """`train unet-video --foreground-boost 8` passes each drawn window's latent weight map to the loss (the windows
    drawn, recomputed from the frames); without the option there is none; other stages refuse it."""
    from avcli.training import stages

    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    seen, real = [], stages.base_loss
    monkeypatch.setattr(stages, "base_loss", lambda *a, weight=None, **k: seen.append(weight) or real(
        *a, weight=weight, **k))
    drawn, real_draw = [], stages.draw_windows
    monkeypatch.setattr(stages, "draw_windows", lambda *a: drawn.append(real_draw(*a)) or drawn[-1])
    res = _train("unet-video", bundle, tiny_data, tmp_path / "w", 2, "--foreground-boost", "8")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["foreground_boost"] == 8.0
    from avcli.training.dataset import load_clips

    clips = load_clips(tiny_data, stages.load_bundle(bundle, verify=False).geometry(), tmp_path / "w" / "cache")
    full = stages.latent_foreground_weight(clips.frames, tuple(seen[0].shape[-2:]), 8.0)
    assert len(seen) == 2 and all(torch.equal(s, full[i]) for s, i in zip(seen, drawn))
    assert float(seen[0].max()) > 1.5  # the objects move
    seen.clear()
    res = _train("unet-video", bundle, tiny_data, tmp_path / "w2", 1)
    assert res.exit_code == 0, res.output
    assert seen == [None] and json.loads(res.stdout)["foreground_boost"] == 0.0
    from avcli.errors import UsageError  # `avgen` turns it into one line on stderr and exit code 2

    res = _train("unet-audio", bundle, tiny_data, tmp_path / "w3", 1, "--foreground-boost", "8")
    assert isinstance(res.exception, UsageError) and "--foreground-boost" in str(res.exception)
    assert not (tmp_path / "w3").exists()  # refused before any work


def test_init_with_a_fresh_wider_video_unet_keeps_everything_else(tiny_bundle, tiny_data, tmp_path):
    """`train init --from-bundle B --video-unet-config '{...}'`: the video U-Net takes the new config and fresh weights
    (its cross-modal blocks zero-output, so the joint video U-Net is its base); every other tensor of B is carried
    bit for bit; the result trains (`train unet-video`). Bad JSON and a missing --from-bundle are refused."""
    from avcli.errors import UsageError
    from avcli.models.bundle import load_bundle

    src = load_bundle(tiny_bundle)
    cfg = src.manifest["components"]["video_unet"]["config"]
    wider = [2 * c for c in cfg["block_out_channels"]]
    out = tmp_path / "wide"
    res = runner.invoke(app, ["train", "init", "--from-bundle", str(tiny_bundle), "-o", str(out),
                              "--video-unet-config", json.dumps({"block_out_channels": wider})])
    assert res.exit_code == 0, res.output
    new = load_bundle(out)
    assert new.manifest["components"]["video_unet"]["config"]["block_out_channels"] == wider
    old_state, new_state = src.state_dict(), new.state_dict()
    assert set(old_state) == set(new_state)
    for k, v in old_state.items():
        if k.startswith("video_unet."):
            continue
        assert torch.equal(v, new_state[k]), k
    grown = [k for k in old_state if k.startswith("video_unet.") and old_state[k].shape != new_state[k].shape]
    assert grown  # the base is wider
    vcfg = new.manifest["components"]["video_unet"]["config"]
    geo = new.geometry()
    x = torch.randn(1, vcfg["in_channels"], geo.frames, *geo.video_latent[-2:])
    text = torch.randn(1, 3, vcfg["cross_attention_dim"])
    cross = (geo.audio_latent[1], new.manifest["joint"]["connector_dim"])
    with torch.no_grad():
        joint = new.video_unet(sample=x, timestep=torch.tensor([10]), text_embeds=text,
                               cross_features=torch.randn(1, *cross))
        base = new.video_unet(sample=x, timestep=torch.tensor([10]), text_embeds=text,
                              cross_features=torch.zeros(1, *cross))
    assert joint.shape == x.shape and torch.equal(joint, base)  # fresh cross-modal blocks add nothing yet
    res = _train("unet-video", out, tiny_data, tmp_path / "w", 2)
    assert res.exit_code == 0, res.output
    for bad in (["--video-unet-config", "{not json"], ["--video-unet-config", "[]"],
                ["--video-unet-config", '{"bogus_key": 3}']):
        res = runner.invoke(app, ["train", "init", "--from-bundle", str(tiny_bundle), "-o", str(tmp_path / "x"), *bad])
        assert isinstance(res.exception, UsageError), res.output
    res = runner.invoke(app, ["train", "init", "-o", str(tmp_path / "y"), "--video-unet-config", "{\"a\": 1}"])
    assert isinstance(res.exception, UsageError) and "--from-bundle" in str(res.exception)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
