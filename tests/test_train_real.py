"""`avgen train joint` on real-looking files: mixed lengths, a .mov, captions from file names; only connector and
CMC-PE weights change; the second run reads the latent cache (no ffmpeg, no VAE); resume; EMA; torchrun."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from avcli.cli.main import app

runner = CliRunner()
FILES = {"dog_barking_01.mp4": 1.3, "glass-breaking_02.mp4": 2.5, "door_slam_03.mov": 0.9}
BASE_FILES = ("video_vae_encoder", "video_vae_decoder", "audio_vae_encoder", "audio_vae_decoder", "vocoder",
              "text_encoder_video", "text_encoder_audio")


def _reset_accelerate():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)  # accelerate's state is per process; each CLI run here starts its own
    GradientState._reset_state()


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    _reset_accelerate()
    yield
    _reset_accelerate()


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    """Three short files at another fps, size and sample rate than the bundle's; one in a QuickTime container."""
    from avcli.media.ffmpeg import ffmpeg_exe, write_video

    d = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(0)
    for name, dur in FILES.items():
        frames = rng.integers(0, 255, (int(round(dur * 8)), 40, 48, 3), dtype=np.uint8)
        t = np.arange(int(dur * 16000)) / 16000
        audio = (0.3 * np.sin(2 * np.pi * 440 * t) * (t % 0.5 < 0.1)).astype(np.float32)
        mp4 = write_video(d / (name if name.endswith(".mp4") else "tmp.mp4"), frames, 8, audio, 16000)
        if name.endswith(".mov"):
            subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(mp4), "-c", "copy", "-f", "mov",
                            str(d / name)], check=True)
            mp4.unlink()
    return d


def _joint(bundle, data, work, steps, *extra):
    return runner.invoke(app, ["train", "joint", "--bundle", str(bundle), "--data", str(data), "--work", str(work),
                               "--steps", str(steps), "--batch", "2", "--lr", "2e-3", "--ckpt-every", "2", "--json",
                               *extra])


def test_captions_from_file_names(real_data):
    from avcli.data.folder import read_folder

    assert [i.caption for i in read_folder(real_data)] == ["dog barking 01", "door slam 03", "glass breaking 02"]


def test_joint_on_real_files_changes_only_joint_weights_caches_and_resumes(tiny_bundle, real_data, tmp_path,
                                                                          monkeypatch):
    bundle, work = tmp_path / "b", tmp_path / "w"
    shutil.copytree(tiny_bundle, bundle)
    before = json.loads((bundle / "bundle.json").read_text())["files"]
    unets = {n: load_file(str(bundle / f"{n}.safetensors")) for n in ("video_unet", "audio_unet")}
    conn = load_file(str(bundle / "video_connector.safetensors"))

    res = _joint(bundle, real_data, work, 4)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["step"] == 4 and out["processes"] == 1 and out["mixed_precision"] == "no"
    record = json.loads((work / "records/joint.json").read_text())
    assert record[-1]["clips"] == 4  # 1.3 s -> 1 window, 2.5 s -> 2, 0.9 s -> 1 (padded)

    after = json.loads((bundle / "bundle.json").read_text())["files"]
    for name in BASE_FILES:  # files never rewritten: bit-identical
        assert after[name]["sha256"] == before[name]["sha256"], name
    for name, sd in unets.items():
        new = load_file(str(bundle / f"{name}.safetensors"))
        assert all(torch.equal(v, new[k]) for k, v in sd.items() if k.startswith("unet.")), f"{name} base changed"
        assert any(not torch.equal(v, new[k]) for k, v in sd.items() if k.startswith("cross_blocks."))
    new_conn = load_file(str(bundle / "video_connector.safetensors"))
    assert any(not torch.equal(v, new_conn[k]) for k, v in conn.items())
    ema = load_file(str(work / "runs/joint/ema.safetensors"))  # the bundle holds the EMA weights
    assert all(torch.equal(ema[f"video_connector.{k}"], v) for k, v in new_conn.items())

    # second run: resumes at step 4 and reads the latent cache only (no ffmpeg, no VAE, no text encoder)
    from avcli.media import ffmpeg
    from avcli.models import components

    def boom(*a, **k):
        raise AssertionError("cache miss: encoder or ffmpeg called")

    for target in (components.VideoVAEEncoder, components.AudioVAEEncoder, components.TextEncoder):
        monkeypatch.setattr(target, "forward", boom)
    monkeypatch.setattr(ffmpeg, "read_video", boom)
    monkeypatch.setattr(ffmpeg, "probe", boom)
    res = _joint(bundle, real_data, work, 6, "--known-p", "0.5", "--high-noise-weight", "5")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["steps_run"] == 2 and out["known_p"] == 0.5 and out["high_noise_weight"] == 5.0
    assert json.loads((work / "runs/joint/state.json").read_text())["step"] == 6
    assert [r["step"] for r in json.loads((work / "runs/joint/log.json").read_text())][-1] == 6


def test_latent_cache_follows_vae_weights(tiny_bundle, real_data, tmp_path):
    from avcli.data.folder import read_folder
    from avcli.models.bundle import load_bundle
    from avcli.training.latents import cached_latents, encoder_fingerprint

    model = load_bundle(tiny_bundle)
    geo = model.geometry()
    data = cached_latents(model, read_folder(real_data), geo, tmp_path, progress=False)
    assert data.video.shape == (4,) + geo.video_latent and data.audio.shape == (4,) + geo.audio_latent
    assert data.owner.tolist() == [0, 1, 2, 2] and data.text_video.shape[0] == 3
    fp = encoder_fingerprint(model.manifest)
    model.manifest["files"]["video_vae_encoder"]["sha256"] = "0" * 64  # as after `avgen train vae-video`
    assert encoder_fingerprint(model.manifest) != fp
    model.manifest["files"]["video_connector"]["sha256"] = "1" * 64  # joint training does not invalidate
    changed = encoder_fingerprint(model.manifest)
    model.manifest["files"]["video_connector"]["sha256"] = "2" * 64
    assert encoder_fingerprint(model.manifest) == changed


def test_joint_bf16_and_contrastive_on_cpu(tiny_bundle, real_data, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    res = _joint(bundle, real_data, tmp_path / "w", 2, "--mixed-precision", "bf16", "--contrastive-weight", "0.01",
                 "--ema-decay", "0")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["mixed_precision"] == "bf16" and np.isfinite(out["final_loss"])
    rows = json.loads((tmp_path / "w/runs/joint/log.json").read_text())
    assert {"loss_pos", "loss_neg_audio", "loss_neg_video"} <= set(rows[-1])
    assert not (tmp_path / "w/runs/joint/ema.safetensors").exists()


def _process_tree(root: int) -> str:
    """Each live process under `root`: pid, command line, and the kernel wait channel of each of its threads."""
    lines, todo = [], [root]
    while todo:
        pid = todo.pop()
        base = f"/proc/{pid}"
        try:
            cmd = open(f"{base}/cmdline", "rb").read().replace(b"\0", b" ").decode()[:120]
            waits = sorted({open(f"{base}/task/{t}/wchan").read() or "-" for t in os.listdir(f"{base}/task")})
            kids = [int(c) for t in os.listdir(f"{base}/task")
                    for c in open(f"{base}/task/{t}/children").read().split()]
        except OSError:
            continue
        lines.append(f"{pid} {cmd} waits={waits}")
        todo += kids
    return "\n".join(lines)


def test_torchrun_two_processes_on_cpu(tiny_bundle, real_data, tmp_path):
    """Two processes (gloo) as `torchrun --nproc_per_node 2 -m avcli train joint` starts them: ~25 s on 2 cores."""
    bundle, work = tmp_path / "b", tmp_path / "w"
    shutil.copytree(tiny_bundle, bundle)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "avcli", "train", "joint", "--bundle", str(bundle), "--data", str(real_data), "--work", str(work),
           "--steps", "2", "--batch", "2", "--ckpt-every", "1", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        alive = _process_tree(proc.pid)  # which of launcher / rank 0 / rank 1 is still there, and waiting on what
        os.killpg(proc.pid, 9)
        stdout, stderr = proc.communicate()
        pytest.fail(f"the launch did not exit in 300 s; still alive:\n{alive}\nstdout: {stdout[-1500:]}\n"
                    f"stderr: {stderr[-1500:]}")
    assert proc.returncode == 0, stderr[-3000:]
    out = json.loads(stdout)  # one report, from rank 0
    assert out["processes"] == 2 and out["step"] == 2
    record = json.loads((work / "records/joint.json").read_text())
    assert len(record) == 1 and record[0]["clips"] == 4  # the two shards together
    assert json.loads((work / "runs/joint/state.json").read_text())["step"] == 2


def test_joint_levers_onset_aux_concat_and_attentive_pool(tiny_bundle, real_data, tmp_path,
                                                                          monkeypatch, capsys):
    """--onset-weight trains an onset head beside the connectors (started from the onset stage's head in --work),
    --concat-p mixes clips, --attentive-pool gives the video connector its global feature; the bundle gets
    connector weights only (no head) and still loads."""
    from avcli.models.bundle import load_bundle

    bundle, work = tmp_path / "b", tmp_path / "w"
    shutil.copytree(tiny_bundle, bundle)
    res = runner.invoke(app, ["train", "onset", "--bundle", str(bundle), "--data", str(real_data), "--work",
                              str(work), "--steps", "2", "--batch", "2", "--json"])
    assert res.exit_code == 0, res.output
    head0 = {k: v for k, v in load_file(str(work / "runs/onset/ckpt.safetensors")).items() if k.startswith("head.")}
    res = _joint(bundle, real_data, work, 3, "--onset-weight", "0.5", "--concat-p", "0.5", "--attentive-pool")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["onset_weight"] == 0.5 and out["concat_p"] == 0.5 and out["attentive_pool"]
    assert json.loads((bundle / "bundle.json").read_text())["joint"]["video_global_pool"] is True
    conn = load_file(str(bundle / "video_connector.safetensors"))
    assert float(conn["global_pool.proj.weight"].abs().sum()) > 0  # trained away from its zero start
    assert out["onset_head_from"].endswith("ckpt.safetensors")
    ckpt = load_file(str(work / "runs/joint/ckpt.safetensors"))
    heads = {k: v for k, v in ckpt.items() if k.startswith("onset_head.")}
    assert set(heads) == {f"onset_{k}" for k in head0}  # the onset stage's head, trained on
    assert any(not torch.equal(heads[f"onset_{k}"], v) for k, v in head0.items())
    names = set().union(*(load_file(str(p)).keys() for p in bundle.glob("*.safetensors")))
    assert not any("onset_head" in n for n in names)
    load_bundle(bundle)  # verifies hashes: a valid bundle
    log = json.loads((work / "runs/joint/log.json").read_text())
    assert any("loss_onset" in row for row in (log if isinstance(log, list) else log.get("rows", [])))
    from conftest import run_cli

    code, _, err = run_cli(monkeypatch, capsys, "train", "joint", "--bundle", bundle, "--data", real_data, "--work",
                           tmp_path / "w2", "--onset-weight", "0.5", "--contrastive-weight", "1e-3")
    assert code == 2 and "cannot be combined" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "w2" / "cache").exists()  # refused before any encoding


def test_a_launched_worker_keeps_exit_codes_and_one_line_errors(tiny_bundle, tmp_path):
    """A torchrun worker (WORLD_SIZE > 1) leaves through os._exit; a usage error still exits 2 with one line, and a
    finished command still exits 0 with its output flushed."""
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "1"}
    bad = subprocess.run([sys.executable, "-m", "avcli", "train", "joint", "--bundle", str(tiny_bundle), "--data",
                          str(tmp_path / "missing"), "--work", str(tmp_path / "w")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "data folder not found" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    ok = subprocess.run([sys.executable, "-m", "avcli", "--version"], env=env, capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0 and ok.stdout.strip(), (ok.stdout, ok.stderr)


def test_joint_first_frame_attention_trains_motion_and_is_recorded(tiny_bundle, real_data, tmp_path):
    """--first-frame-attn --unfreeze-motion (animate mode b): the manifest records FF-Attn, the bundle loads with it,
    the motion modules moved and the spatial (base) weights did not."""
    from avcli.models.bundle import load_bundle
    from avcli.models.joint_unet import FirstFrameAttnProcessor

    bundle, work = tmp_path / "b", tmp_path / "w"
    shutil.copytree(tiny_bundle, bundle)
    before = load_file(str(bundle / "video_unet.safetensors"))
    res = _joint(bundle, real_data, work, 2, "--first-frame-attn", "--unfreeze-motion")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["first_frame_attn"] is True
    assert json.loads((bundle / "bundle.json").read_text())["joint"]["video_first_frame_attn"] is True
    model = load_bundle(bundle)  # verified: the manifest's hashes match the rewritten files
    assert model.video_unet.first_frame_attn
    assert any(isinstance(p, FirstFrameAttnProcessor) for p in model.video_unet.unet.attn_processors.values())
    after = load_file(str(bundle / "video_unet.safetensors"))
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("motion_modules" in k for k in moved)
    assert not any(".attentions." in k and "attn1" in k for k in moved)  # FF-Attn reuses frozen projections


@pytest.mark.parametrize("side,other", [("audio", "video"), ("video", "audio")])
def test_joint_unfreeze_trains_that_base_and_nothing_else_of_the_bases(tiny_bundle, real_data, tmp_path, side, other):
    """--unfreeze-audio / --unfreeze-video: that base U-Net's own weights move (not only its cross-modal blocks), the
    other U-Net's base weights stay bit-identical, the record says so, and the rewritten bundle still verifies."""
    from avcli.models.bundle import load_bundle

    bundle, work = tmp_path / "b", tmp_path / "w"
    shutil.copytree(tiny_bundle, bundle)
    s0, o0 = (load_file(str(bundle / f"{m}_unet.safetensors")) for m in (side, other))
    res = _joint(bundle, real_data, work, 2, f"--unfreeze-{side}", "--cfg-dropout", "0.3")
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record[f"unfreeze_{side}"] is True and record[f"unfreeze_{other}"] is False
    assert record["cfg_dropout"] == 0.3
    s1, o1 = (load_file(str(bundle / f"{m}_unet.safetensors")) for m in (side, other))
    moved = {k for k in s0 if not torch.equal(s0[k], s1[k])}
    assert any(k.startswith("unet.") and "attn2" in k for k in moved), sorted(moved)[:5]  # text cross-attention
    assert any(k.startswith("unet.conv_in") for k in moved)
    assert not {k for k in o0 if k.startswith("unet.") and not torch.equal(o0[k], o1[k])}
    load_bundle(bundle)  # verified: the manifest's hashes match the rewritten files


@pytest.mark.parametrize("side,frozen,moving,base", [
    ("audio", ("video_unet", "audio_connector"), ("video_connector", "audio_unet"), ("--unfreeze-audio",)),
    ("video", ("audio_unet", "video_connector"), ("audio_connector", "video_unet"), ())])
def test_joint_train_side_keeps_the_other_side_bit_identical(tiny_bundle, real_data, tmp_path, side, frozen, moving,
                                                            base):
    """--train-side audio (with --unfreeze-audio): the video connector, the audio U-Net's cross-modal blocks and its
    base move; the video U-Net (cross-modal blocks included) and the audio connector stay bit-identical, so what the
    video side computes from a given audio latent is exactly the bundle's before. --train-side video: the mirror,
    bases frozen. The record says which side; resuming that run with the other options is refused (exit 2), not
    crashed on."""
    from avcli.errors import UsageError
    from avcli.models.bundle import load_bundle

    bundle, work = tmp_path / "b", tmp_path / "w"
    shutil.copytree(tiny_bundle, bundle)
    names = frozen + moving
    before = {n: load_file(str(bundle / f"{n}.safetensors")) for n in names}
    res = _joint(bundle, real_data, work, 2, "--train-side", side, *base)
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    assert record["train_side"] == side and record["unfreeze_audio"] is bool(base)
    after = {n: load_file(str(bundle / f"{n}.safetensors")) for n in names}
    moved = {n: {k for k in before[n] if not torch.equal(before[n][k], after[n][k])} for n in names}
    assert not any(moved[n] for n in frozen), {n: sorted(moved[n])[:3] for n in frozen}
    connector, unet = moving
    assert moved[connector]
    assert any(not k.startswith("unet.") for k in moved[unet])  # its cross-modal blocks
    assert any(k.startswith("unet.") for k in moved[unet]) is bool(base)  # its base only when unfrozen
    load_bundle(bundle)
    manifest = (bundle / "bundle.json").read_bytes()
    res = _joint(bundle, real_data, work, 4)  # the same work folder, both sides
    assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2, res.output
    assert "--restart" in str(res.exception) and (bundle / "bundle.json").read_bytes() == manifest


@pytest.mark.parametrize("extra", [["--train-side", "sideways"], ["--train-side", "audio", "--unfreeze-video"],
                                   ["--train-side", "video", "--unfreeze-audio"],
                                   ["--train-side", "video", "--video-dropout", "0.2"]])
def test_joint_train_side_refuses_what_it_would_contradict_before_any_work(tiny_bundle, real_data, tmp_path, extra):
    bundle, work = tmp_path / "b", tmp_path / "w"
    shutil.copytree(tiny_bundle, bundle)
    digest = (bundle / "bundle.json").read_bytes()
    from avcli.errors import UsageError

    res = _joint(bundle, real_data, work, 2, *extra)
    assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2, res.output
    assert "--train-side" in str(res.exception) and "\n" not in str(res.exception)
    assert (bundle / "bundle.json").read_bytes() == digest and not (work / "cache").exists()


def test_joint_first_frame_given_is_recorded_and_animate_gives_the_picture_clean(tiny_bundle, real_data, tmp_path):
    """--first-frame-p: the manifest records it, and animate on that bundle switches to mode b: the picture's latent
    goes into the video U-Net clean at every step (not re-noised), and comes back exactly at frame 0."""
    import numpy as np

    from avcli.media.ffmpeg import write_video, write_wav
    from avcli.pipelines.animate import AnimateRequest, first_frame_mode
    from avcli.pipelines.pipeline import JointPipeline

    bundle, work = tmp_path / "b", tmp_path / "w"
    shutil.copytree(tiny_bundle, bundle)
    res = _joint(bundle, real_data, work, 2, "--first-frame-p", "0.5")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["first_frame_p"] == 0.5
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["joint"]["video_first_frame_given"] is True
    assert first_frame_mode(manifest, True).startswith("mode b")
    pipe = JointPipeline.from_bundle(bundle)
    geo = pipe.geometry()
    wav = tmp_path / "hit.wav"
    write_wav(wav, (0.3 * np.sin(np.arange(int(geo.duration * 8000)) * 0.3)).astype(np.float32), 8000)
    pic = tmp_path / "pic.mp4"
    write_video(pic, (np.random.default_rng(0).random((1, *geo.frame_size, 3)) * 255).astype(np.uint8), 1)
    unet, seen = pipe.components["video_unet"], []

    def recording(**kw):
        seen.append(kw["sample"][:, :, :1].clone())
        return unet(**kw)

    pipe.components["video_unet"] = recording
    out = pipe.animate(wav, AnimateRequest(steps=3, image=str(pic), first_frame_steps=0))
    first = out.video_latent[:, :, :1]
    assert len(seen) >= 3  # every call of every step saw the clean latent
    assert all(torch.allclose(s, first.expand_as(s)) for s in seen)
    plain = JointPipeline.from_bundle(tiny_bundle)  # mode a re-noises it: the U-Net sees a noisy frame 0
    unet2, seen2 = plain.components["video_unet"], []
    plain.components["video_unet"] = lambda **kw: (seen2.append(kw["sample"][:, :, :1].clone()), unet2(**kw))[1]
    plain.animate(wav, AnimateRequest(steps=3, image=str(pic), first_frame_steps=0))
    assert not torch.allclose(seen2[0], first.expand_as(seen2[0]))


def test_joint_first_frame_conv_trains_its_weights_and_is_recorded(tiny_bundle, real_data, tmp_path):
    """--first-frame-conv --first-frame-p: FF-Conv's weights start at zero and training moves them (they are among
    the trained parameters and reach the bundle); the base U-Net's own weights do not move."""
    from avcli.models.bundle import load_bundle

    bundle, work = tmp_path / "b", tmp_path / "w"
    shutil.copytree(tiny_bundle, bundle)
    before = load_file(str(bundle / "video_unet.safetensors"))
    res = _joint(bundle, real_data, work, 2, "--first-frame-conv", "--first-frame-p", "0.5", "--ema-decay", "0")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["first_frame_conv"] is True
    joint = json.loads((bundle / "bundle.json").read_text())["joint"]
    assert joint["video_first_frame_conv"] is True and joint["video_first_frame_given"] is True
    model = load_bundle(bundle)
    assert model.video_unet.first_frame_conv and float(model.video_unet.ff_conv.conv.weight.detach().abs().sum()) > 0
    after = load_file(str(bundle / "video_unet.safetensors"))
    assert "ff_conv.conv.weight" in after and "ff_conv.conv.weight" not in before
    assert not any(k.startswith("unet.") and not torch.equal(before[k], after[k]) for k in before)


def test_window_draw_follows_caption_weights():
    """captions.jsonl weights: a file of weight 3 has its windows drawn three times as often as a file of weight 1
    (counted over many draws against the expected shares computed here by hand); all weights 1 keeps the uniform
    draw of earlier runs bit for bit (same generator stream as torch.randint)."""
    from avcli.data.folder import Item
    from avcli.training.dataset import draw_windows
    from avcli.training.joint_stage import window_weights

    items = [Item(Path(f"{k}.mp4"), k, weight=w) for k, w in (("a", 1.0), ("b", 3.0), ("c", 0.5))]
    owner = torch.tensor([0, 0, 1, 2, 2, 2])  # windows per file: a 2, b 1, c 3
    w = window_weights(items, owner)
    expected = torch.tensor([1, 1, 3, 0.5, 0.5, 0.5], dtype=torch.float64) / 6.5
    draws = draw_windows(w, 6, 200_000, torch.Generator().manual_seed(0))
    share = torch.bincount(draws, minlength=6).double() / len(draws)
    assert torch.allclose(share, expected, atol=0.005), (share, expected)
    plain = [Item(Path(f"{k}.mp4"), k) for k in "abc"]
    assert window_weights(plain, owner) is None
    assert torch.equal(draw_windows(None, 6, 64, torch.Generator().manual_seed(3)),
                       torch.randint(0, 6, (64,), generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("bad", [0, -2, "3", True, None, 10 ** 400])
def test_caption_weight_must_be_a_positive_number(real_data, tmp_path, bad):
    from avcli.data.folder import read_folder
    from avcli.errors import UsageError

    d = tmp_path / "d"
    shutil.copytree(real_data, d)
    rows = [{"file": "door_slam_03.mov", "caption": "a door", "weight": 2},
            {"file": "dog_barking_01.mp4", "caption": "a dog", "weight": bad}]
    (d / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UsageError, match="dog_barking_01.mp4.*weight must be a positive number"):
        read_folder(d)
    rows[1]["weight"] = 0.25
    (d / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert {i.path.name: i.weight for i in read_folder(d)} == {"dog_barking_01.mp4": 0.25, "door_slam_03.mov": 2.0,
                                                              "glass-breaking_02.mp4": 1.0}


def test_joint_with_caption_weights_draws_by_them_and_refuses_a_bad_one_before_any_work(tiny_bundle, real_data,
                                                                                       tmp_path, monkeypatch):
    """The training step draws its windows with the caption weights (seen at the draw itself: the door's one window
    at 4, the others at 1), the record counts them, and a bad weight is exit 2 before any work."""
    from avcli.errors import UsageError
    from avcli.training import joint_stage

    d, bundle = tmp_path / "d", tmp_path / "b"
    shutil.copytree(real_data, d)
    shutil.copytree(tiny_bundle, bundle)
    (d / "captions.jsonl").write_text(json.dumps({"file": "door_slam_03.mov", "caption": "a door", "weight": 4}) + "\n")
    seen, real_draw = [], joint_stage.draw_windows
    monkeypatch.setattr(joint_stage, "draw_windows", lambda w, *a: seen.append(w) or real_draw(w, *a))
    res = _joint(bundle, d, tmp_path / "w", 2)
    assert res.exit_code == 0, res.output
    assert len(seen) == 2 and all(w is not None for w in seen)
    assert sorted(seen[0].tolist()).count(4.0) == 1 and set(seen[0].tolist()) == {1.0, 4.0}
    assert json.loads(res.stdout)["weighted_windows"] == 1
    (d / "captions.jsonl").write_text(json.dumps({"file": "door_slam_03.mov", "caption": "a door", "weight": -1}) + "\n")
    digest = (bundle / "bundle.json").read_bytes()
    res = _joint(bundle, d, tmp_path / "w2", 2)
    assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2, res.output
    assert (bundle / "bundle.json").read_bytes() == digest and not (tmp_path / "w2" / "cache").exists()


def test_data_weight_sets_weights_by_caption_keeps_other_fields_and_resets(real_data, tmp_path):
    """`avgen data weight`: whole-word, case-insensitive matches on the caption (a file captioned by its name gets a
    row); the first rule wins; other fields and rows of absent files survive; --dry-run writes nothing; no --match
    resets every weight to 1; a bad rule is exit 2 with the file untouched."""
    from avcli.data.folder import read_folder
    from avcli.errors import UsageError

    d = tmp_path / "d"
    shutil.copytree(real_data, d)
    rows = [{"file": "door_slam_03.mov", "caption": "A DOOR slams", "take": 7},
            {"file": "gone.mp4", "caption": "a door, file deleted"}]
    (d / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = (d / "captions.jsonl").read_bytes()
    res = runner.invoke(app, ["data", "weight", str(d), "--match", "door=3", "--match", "dog|glass=0.5", "--dry-run",
                              "--json"])
    assert res.exit_code == 0, res.output
    assert [r["files"] for r in json.loads(res.stdout)["rules"]] == [1, 2, 0]
    assert (d / "captions.jsonl").read_bytes() == before
    res = runner.invoke(app, ["data", "weight", str(d), "--match", "door|barking=3", "--match", "do=9"])
    assert res.exit_code == 0, res.output  # "do" is no whole word of any caption; "barking" matches "dog barking 01"
    got = {r["file"]: r for r in map(json.loads, (d / "captions.jsonl").read_text().splitlines())}
    assert got["door_slam_03.mov"] == {"file": "door_slam_03.mov", "caption": "A DOOR slams", "take": 7, "weight": 3.0}
    assert got["gone.mp4"] == rows[1] and "weight" not in got["glass-breaking_02.mp4"]
    assert {i.path.name: i.weight for i in read_folder(d)} == {"dog_barking_01.mp4": 3.0, "door_slam_03.mov": 3.0,
                                                              "glass-breaking_02.mp4": 1.0}
    after = (d / "captions.jsonl").read_bytes()
    for bad in ("door", "door=0", "[=2", "door=x"):
        res = runner.invoke(app, ["data", "weight", str(d), "--match", bad])
        assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2, (bad, res.output)
        assert (d / "captions.jsonl").read_bytes() == after
    text = (d / "captions.jsonl").read_text().replace('"weight": 3.0', '"weight": "heavy"', 1)
    (d / "captions.jsonl").write_text(text)  # a hand-edited bad weight: training refuses it, the command mends it
    with pytest.raises(UsageError, match="weight must be"):
        read_folder(d)
    assert runner.invoke(app, ["data", "weight", str(d)]).exit_code == 0
    assert {i.weight for i in read_folder(d)} == {1.0}
