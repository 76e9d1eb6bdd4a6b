"""Export: descriptions, ONNX export + validation + manifest, fp16, engine cache keys, the `avgen export` CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from export.descriptions import COMPONENTS, descriptions, limits
from export.engine_cache import check_entry, engine_key, entry_paths, key_parts, lookup, write_entry


def test_descriptions_cover_every_component_and_profile_is_ordered(tiny_manifest):
    descs = descriptions(tiny_manifest)
    assert tuple(descs) == COMPONENTS
    lim = limits(tiny_manifest)
    assert lim.batch == (1, 2, 4)  # CFG doubles max_batch 2
    for d in descs.values():
        prof = d.profile(tiny_manifest)
        assert set(prof) == set(d.input_names)
        for mn, op, mx in prof.values():
            assert all(a <= b <= c for a, b, c in zip(mn, op, mx))
    unet = descs["video_unet"]
    assert unet.dynamic_axes["sample"] == {0: "batch", 2: "frames"}
    assert unet.input_dtypes["timestep"] == "int64"
    assert descs["vocoder"].dynamic_axes["waveform"] == {0: "batch", 1: "samples"}


def test_sample_inputs_match_module_signature(tiny_model):
    d = descriptions(tiny_model.manifest)["audio_connector"]
    x = d.sample_inputs(tiny_model, "max")
    with torch.no_grad():
        y = d.module(tiny_model)(**x)
    assert y.shape == (4, x["latent"].shape[2], 16)  # (B, T, D): batch 2 * max_batch, time of max_duration


def test_export_validates_and_writes_manifest(tiny_model, tmp_path):
    from export.onnx_export import MANIFEST_NAME, export_all

    recs = export_all(tiny_model, tmp_path, ["audio_connector", "vocoder"])
    assert [r.status for r in recs] == ["ok", "ok"]
    assert all(len(r.validation) == 2 and r.max_error < 1e-4 for r in recs)  # two shapes, one output each
    shapes = {tuple(v["shape"]) for v in recs[0].validation}
    assert len(shapes) == 2
    man = json.loads((tmp_path / MANIFEST_NAME).read_text())
    entry = man["components"]["vocoder:fp32"]
    assert {"component", "file", "sha256", "size", "opset", "precision", "export_seconds", "max_error",
            "status"} <= set(entry)
    assert entry["opset"] == 18 and (tmp_path / "vocoder.onnx").exists()
    again = export_all(tiny_model, tmp_path, ["vocoder"])  # unchanged file: reused
    assert again[0].status == "cached"


def test_validation_error_is_typed(tiny_model, tmp_path):
    from export.descriptions import Tolerance
    from export.onnx_export import ExportValidationError, export_component, validate

    export_component(tiny_model, "audio_connector", tmp_path, validate_outputs=False)
    d = descriptions(tiny_model.manifest)["audio_connector"]
    reports = validate(d, tiny_model, tmp_path / "audio_connector.onnx", Tolerance(0.0, 0.0))
    with torch.no_grad():
        tiny_model.audio_connector.head.norm.bias.add_(1.0)  # torch now disagrees with the exported graph
    try:
        reports = validate(d, tiny_model, tmp_path / "audio_connector.onnx", d.tolerance)
    finally:
        with torch.no_grad():
            tiny_model.audio_connector.head.norm.bias.sub_(1.0)
    assert not all(r.ok for r in reports)
    err = ExportValidationError("audio_connector", reports)
    assert "audio_connector" in str(err) and "features" in str(err)


def test_fp16_export_within_loose_tolerance(tiny_model, tmp_path):
    pytest.importorskip("onnxconverter_common", reason="fp16 conversion needs onnxconverter-common")
    import onnx

    from export.onnx_export import export_component

    rec = export_component(tiny_model, "video_connector", tmp_path, fp16=True)
    assert rec.status == "ok" and rec.precision == "fp16" and rec.file == "video_connector.fp16.onnx"
    m = onnx.load(str(tmp_path / rec.file))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types
    ln = [n for n in m.graph.node if n.op_type == "LayerNormalization"]
    assert ln  # blocked: stays fp32


# --- engine cache: pure functions, no TensorRT needed ----------------------------------------------------------
PROFILE = {"sample": ((1, 4, 2, 8), (2, 4, 4, 8), (4, 4, 16, 8))}


def _parts(**kw):
    args = dict(onnx_sha256="a" * 64, profile=PROFILE, precision="fp16", trt_version="10.3.0",
                gpu_name="NVIDIA H100", compute_capability=(9, 0))
    args.update(kw)
    return key_parts(**args)


def test_engine_key_changes_with_every_part():
    base = engine_key(_parts())
    assert engine_key(_parts()) == base
    for kw in ({"onnx_sha256": "b" * 64}, {"precision": "fp32"}, {"trt_version": "10.4.0"},
               {"gpu_name": "NVIDIA A100"}, {"compute_capability": (8, 0)},
               {"profile": {"sample": ((1, 4, 2, 8), (2, 4, 8, 8), (4, 4, 16, 8))}}):
        assert engine_key(_parts(**kw)) != base, kw


def test_engine_key_follows_onnx_bytes(tmp_path):
    from export.onnx_export import onnx_content_sha256

    f = tmp_path / "m.onnx"
    f.write_bytes(b"graph-1")
    k1 = engine_key(_parts(onnx_sha256=onnx_content_sha256(f)))
    f.write_bytes(b"graph-2")
    assert engine_key(_parts(onnx_sha256=onnx_content_sha256(f))) != k1


def test_cache_entry_detects_tampered_stale_and_foreign(tmp_path):
    parts = _parts()
    entry, key, valid, reason = lookup(tmp_path, "video_unet", parts)
    assert not valid and reason == "no plan"
    write_entry(entry, key, parts, b"PLAN-BYTES")
    assert lookup(tmp_path, "video_unet", parts)[2] is True
    assert lookup(tmp_path, "video_unet", parts, force=True)[2] is False
    entry.plan.write_bytes(b"PLAN-BYTEZ")  # tampered
    ok, why = check_entry(entry, key)
    assert not ok and "tampered" in why
    write_entry(entry, key, parts, b"PLAN-BYTES")
    other = engine_key(_parts(precision="fp32"))
    assert "stale" in check_entry(entry, other)[1]
    entry.meta.unlink()  # foreign: a plan nobody described
    assert not check_entry(entry, key)[0]
    assert entry_paths(tmp_path, "video_unet", key).plan.name.startswith("video_unet.")


def test_engine_cache_keeps_fp16_and_fp32_plans_apart(tmp_path):
    """Two keys give two plan files, and writing one leaves the other valid (with_suffix once collapsed every key
    onto video_unet.plan, so fp16 and fp32 overwrote each other and read back as 'tampered')."""
    from export.engine_cache import check_entry, entry_paths, lookup, write_entry

    p16, p32 = _parts(precision="fp16"), _parts(precision="fp32")
    e16, k16, _, _ = lookup(tmp_path, "video_unet", p16)
    e32, k32, _, _ = lookup(tmp_path, "video_unet", p32)
    assert k16 != k32 and e16.plan != e32.plan and e16.meta != e32.meta
    assert e16.plan.name == f"video_unet.{k16[:16]}.plan"
    write_entry(e16, k16, p16, b"FP16-PLAN")
    write_entry(e32, k32, p32, b"FP32-PLAN")
    assert check_entry(e16, k16) == (True, "cached") and check_entry(e32, k32) == (True, "cached")
    assert e16.plan.read_bytes() == b"FP16-PLAN" and entry_paths(tmp_path, "video_unet", k32).plan.read_bytes() == b"FP32-PLAN"


def test_trt_build_reports_missing_tensorrt(tmp_path):
    import importlib.util

    from export.trt_build import TrtUnavailable, build_engine

    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT is usable here: covered by tests/test_engines.py")
    with pytest.raises(TrtUnavailable):
        build_engine(tmp_path / "x.onnx", "x", PROFILE, tmp_path)


# --- CLI ---------------------------------------------------------------------------------------------------------
def test_cli_export_writes_onnx_and_manifest(tiny_bundle, tmp_path):
    from avcli.cli.main import app

    out = tmp_path / "exp"
    res = CliRunner().invoke(app, ["export", "--bundle", str(tiny_bundle), "--out", str(out), "--components",
                                   "audio_connector,video_connector,vocoder", "--json"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.glob("*.onnx")} == {"audio_connector.onnx", "video_connector.onnx", "vocoder.onnx"}
    man = json.loads((out / "export_manifest.json").read_text())
    assert {v["status"] for v in man["components"].values()} == {"ok"}
    data = json.loads(res.stdout[res.stdout.index("{"):])
    assert [c["component"] for c in data["components"]] == ["audio_connector", "video_connector", "vocoder"]


def test_cli_export_trt_without_tensorrt_is_one_line_error(tiny_bundle, tmp_path):
    import importlib.util

    from avcli.cli.main import app
    from avcli.errors import BackendUnavailable

    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT is usable here")
    res = CliRunner().invoke(app, ["export", "--bundle", str(tiny_bundle), "--out", str(tmp_path / "e"), "--trt",
                                   "--components", "vocoder"])
    assert res.exit_code != 0
    assert isinstance(res.exception, BackendUnavailable)
    assert "TensorRT" in str(res.exception) and "\n" not in str(res.exception)


def test_cli_export_unknown_component(tiny_bundle, tmp_path):
    from avcli.cli.main import app
    from avcli.errors import UsageError

    res = CliRunner().invoke(app, ["export", "--bundle", str(tiny_bundle), "--components", "nope"])
    assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2


def test_globally_pooled_video_connector_exports_and_validates(tiny_manifest, tmp_path):
    """video_grid 0 (the per-frame global mean the shipped demo bundle uses), not only the tiny preset's grid 4."""
    import copy

    from avcli.models.joint import JointModel
    from export.onnx_export import export_component

    manifest = copy.deepcopy(tiny_manifest)
    manifest["joint"]["video_grid"] = 0
    torch.manual_seed(1)
    model = JointModel(manifest).eval()
    assert model.video_connector.grid == 0 and model.video_connector.pool_proj is None
    rec = export_component(model, "video_connector", tmp_path)
    assert rec.status == "ok" and len(rec.validation) == 2 and rec.max_error < 1e-4
    assert len({tuple(v["shape"]) for v in rec.validation}) == 2  # two frame counts through one graph
