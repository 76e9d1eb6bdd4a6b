"""scripts/average_weights.py: the averaged component is the mean of the two, everything else is the base's."""

import importlib.util
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location(
    "average_weights", Path(__file__).parents[1] / "scripts" / "average_weights.py")
avg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(avg)


def test_soup_is_the_mean_of_one_component_and_keeps_the_rest(tiny_bundle, tmp_path):
    from avcli.models.bundle import component_state_dicts, load_bundle, save_bundle

    other = load_bundle(tiny_bundle)
    with torch.no_grad():
        for p in other.video_unet.parameters():
            p.add_(0.5)
        for p in other.audio_unet.parameters():
            p.add_(1.0)  # not averaged: the output must keep the base's
    other_dir = save_bundle(other, tmp_path / "other")
    diff = avg.average_into(Path(tiny_bundle), other_dir, "video_unet", tmp_path / "soup")
    assert diff == pytest.approx(0.5, abs=1e-6)
    base, soup = component_state_dicts(load_bundle(tiny_bundle)), component_state_dicts(load_bundle(tmp_path / "soup"))
    moved = component_state_dicts(load_bundle(other_dir))["video_unet"]
    shifted = 0
    for k, v in base["video_unet"].items():
        assert torch.allclose(soup["video_unet"][k], (v + moved[k]) / 2, atol=1e-6), k
        shifted += bool(torch.allclose(soup["video_unet"][k], v + 0.25, atol=1e-6))
    assert shifted > 10  # the parameters moved halfway (buffers such as positional tables did not move at all)
    for k, v in base["audio_unet"].items():
        assert torch.equal(soup["audio_unet"][k], v), k
    assert not (tmp_path / ".soup.part").exists()


@pytest.mark.parametrize("kw, msg", [({"component": "video_vae_encoder"}, "--component"), ({"t": 1.5}, "--t"),
                                     ({"out": "exists"}, "already exists")])
def test_bad_input_is_refused_before_anything_is_written(tiny_bundle, tmp_path, kw, msg):
    from avcli.errors import UsageError

    out = tmp_path / "soup"
    if kw.pop("out", None):
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    args = {"component": "video_unet", "t": 0.5, **kw}
    with pytest.raises(UsageError, match=msg):
        avg.average_into(Path(tiny_bundle), Path(tiny_bundle), args["component"], out, args["t"])
    assert not (tmp_path / ".soup.part").exists()
    assert not out.exists() or (out / "keep.txt").read_text() == "mine"


def test_script_gives_one_line_and_exit_2_for_a_missing_bundle(tiny_bundle, tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "scripts" / "average_weights.py"),
                        "--base", str(tiny_bundle), "--other", str(tmp_path / "nope"), "--component", "video_unet",
                        "-o", str(tmp_path / "soup")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert not (tmp_path / "soup").exists() and not (tmp_path / ".soup.part").exists()
