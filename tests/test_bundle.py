"""Bundle save -> load round trip, and clear errors for wrong, partial or corrupt bundles."""

import json
import shutil

import pytest
import torch

from avcli.errors import BundleError
from avcli.models.bundle import component_state_dicts, load_bundle, save_bundle


def test_round_trip_is_exact(tiny_model, tiny_bundle):
    loaded = load_bundle(tiny_bundle)
    a, b = component_state_dicts(tiny_model), component_state_dicts(loaded)
    assert a.keys() == b.keys()
    for name in a:
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), f"{name}.{k}"
    manifest = json.loads((tiny_bundle / "bundle.json").read_text())
    assert manifest["version"] == 1 and set(manifest["files"]) == set(a)
    assert manifest["components"]["video_unet"]["class"] == "diffusers.UNetMotionModel"
    assert manifest["video"]["schedule"]["beta_schedule"] == "scaled_linear"


def test_same_weights_save_to_the_same_bytes(tiny_model, tmp_path):
    """Saving the same weights again gives the same file hashes (the latent cache's fingerprint and the export
    cache key on them): with two metadata keys, safetensors wrote them in either order, so about half the saves
    of identical weights hashed differently."""
    hashes = set()
    for i in range(8):
        m = json.loads((save_bundle(tiny_model, tmp_path / f"b{i}") / "bundle.json").read_text())
        hashes.add(json.dumps({k: v["sha256"] for k, v in sorted(m["files"].items())}))
    assert len(hashes) == 1


def test_fp16_bundle_loads_close(tiny_model, tmp_path):
    path = save_bundle(tiny_model, tmp_path / "half", dtype="float16")
    loaded = load_bundle(path)
    w0 = tiny_model.video_unet.unet.conv_in.weight
    w1 = loaded.video_unet.unet.conv_in.weight
    assert w1.dtype == torch.float32 and torch.allclose(w0, w1, atol=1e-3)
    full = save_bundle(tiny_model, tmp_path / "full")
    size = lambda p: sum(f.stat().st_size for f in p.iterdir())
    assert size(path) < 0.6 * size(full)


@pytest.fixture
def copy_bundle(tiny_bundle, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(tiny_bundle, dst)
    return dst


def _edit_manifest(path, fn):
    m = json.loads((path / "bundle.json").read_text())
    fn(m)
    (path / "bundle.json").write_text(json.dumps(m))


@pytest.mark.parametrize("breakage,message", [
    (lambda p: (p / "bundle.json").unlink(), "no bundle.json"),
    (lambda p: (p / "bundle.json").write_text("{not json"), "corrupt manifest"),
    (lambda p: (p / "video_unet.safetensors").unlink(), "video_unet is missing its weights file"),
    (lambda p: (p / "vocoder.safetensors").write_bytes((p / "vocoder.safetensors").read_bytes()[:100]), "vocoder"),
    (lambda p: _edit_manifest(p, lambda m: m.update(version=99)), "version 99"),
    (lambda p: _edit_manifest(p, lambda m: m.pop("media")), "lacks media"),
    (lambda p: _edit_manifest(p, lambda m: m["files"].pop("audio_unet")), "partial bundle"),
    (lambda p: _edit_manifest(p, lambda m: m["components"]["video_unet"].update({"class": "os.system"})),
     "unknown class"),
    (lambda p: _edit_manifest(p, lambda m: m["components"]["audio_unet"]["config"].update(in_channels=7)),
     "does not match"),
])
def test_broken_bundles_fail_clearly(copy_bundle, breakage, message):
    breakage(copy_bundle)
    with pytest.raises(BundleError, match=message):
        load_bundle(copy_bundle)


def test_tampered_weights_detected(copy_bundle):
    f = copy_bundle / "audio_connector.safetensors"
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF  # same size, different content
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(copy_bundle)


def test_weights_that_do_not_fit_config(copy_bundle, tiny_model):
    from safetensors.torch import save_file

    sd = {k: torch.zeros(3, 3) for k in tiny_model.audio_connector.state_dict()}
    save_file(sd, str(copy_bundle / "audio_connector.safetensors"))
    with pytest.raises(BundleError, match="audio_connector"):
        load_bundle(copy_bundle, verify=False)


def test_unknown_bundle_name():
    with pytest.raises(BundleError, match="not found"):
        load_bundle("no-such-bundle-xyz")


def test_no_pickle_anywhere_in_bundle(tiny_bundle):
    for f in tiny_bundle.iterdir():
        assert f.suffix in (".json", ".safetensors"), f


def test_rejoin_keeps_bases_and_resets_joint(tiny_model):
    import copy

    from avcli.models.joint import rejoin

    m = copy.deepcopy(tiny_model)
    for p in m.video_unet.joint_parameters():
        torch.nn.init.normal_(p)
    x = rejoin(m, "xattn")
    assert x.manifest["joint"]["mode"] == "xattn" and m.manifest["joint"]["mode"] == "cmcpe"
    for a, b in zip(m.video_unet.unet.state_dict().values(), x.video_unet.unet.state_dict().values()):
        assert torch.equal(a, b)
    assert all(float(p.abs().sum()) == 0 for blk in x.video_unet.cross_blocks for p in blk.out.parameters())
