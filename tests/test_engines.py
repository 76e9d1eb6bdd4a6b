"""Engines: the generic interface, ONNX Runtime vs torch parity (per component and through the sampler),
backend registry, TensorRT (skipped without tensorrt + CUDA)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from engines.base import as_callable
from engines.registry import available_backends
from engines.torch_engine import TorchEngine
from export.descriptions import COMPONENTS, SAMPLER_COMPONENTS, descriptions

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_CUDA = torch.cuda.is_available()
needs_trt = pytest.mark.skipif(not (HAS_TRT and HAS_CUDA),
                               reason="TensorRT tests need the tensorrt package and a CUDA GPU "
                                      f"(tensorrt installed: {HAS_TRT}, CUDA: {HAS_CUDA})")


@pytest.fixture(scope="session")
def onnx_dir(tiny_model, tmp_path_factory):
    from export.onnx_export import export_all

    out = tmp_path_factory.mktemp("onnx")
    records = export_all(tiny_model, out, COMPONENTS, raise_on_error=True, validate_outputs=False)  # tested below
    assert all(r.status == "ok" for r in records)
    return out


def test_registry_reports_each_backend():
    avail = available_backends()
    assert set(avail) == {"torch", "ort", "trt"}
    assert avail["torch"][0] and avail["ort"][0]
    if not (HAS_TRT and HAS_CUDA):
        assert not avail["trt"][0] and avail["trt"][1]


def test_torch_engine_callable_matches_module(tiny_model):
    d = descriptions(tiny_model.manifest)["video_connector"]
    eng = TorchEngine(d.name, d.module(tiny_model), d.output_names, d.input_names)
    x = d.sample_inputs(tiny_model, "min")
    assert eng.input_names == ["latent", "x0_hat"] and eng.capabilities.device == "cpu"
    torch.testing.assert_close(as_callable(eng)(**x), tiny_model.video_connector(**x))
    with pytest.raises(ValueError, match="do not match"):
        eng.run({"latent": x["latent"]})


@pytest.mark.parametrize("name", COMPONENTS)
def test_ort_matches_torch_at_two_shapes(name, tiny_model, onnx_dir):
    from engines.ort_engine import OrtEngine

    d = descriptions(tiny_model.manifest)[name]
    eng = OrtEngine(onnx_dir / f"{name}.onnx", name=name)
    assert eng.input_names == d.input_names and eng.output_names == d.output_names
    shapes = []
    for seed, point in enumerate(("min", "opt")):  # batch 1 vs 2, different frames / mel lengths
        x = d.sample_inputs(tiny_model, point, seed=seed)
        with torch.no_grad():
            ref = d.module(tiny_model)(**x)
        got = as_callable(eng)(**x)
        torch.testing.assert_close(got, ref, atol=d.tolerance.atol, rtol=d.tolerance.rtol)
        shapes.append(tuple(got.shape))
    assert shapes[0] != shapes[1]


def test_ort_saves_optimized_model_for_later_sessions(onnx_dir):
    from engines.ort_engine import OrtEngine, optimized_path

    OrtEngine(onnx_dir / "audio_connector.onnx")
    opt = optimized_path(onnx_dir / "audio_connector.onnx", "CPUExecutionProvider")
    assert opt.exists()
    assert OrtEngine(onnx_dir / "audio_connector.onnx").loaded_from == opt


def test_ort_cpu_threads_do_not_spin_between_runs(onnx_dir, monkeypatch):
    """The sampler alternates ORT runs with torch work on the same cores; spinning pool threads cost ~45 ms per
    U-Net call on 2 cores, so CPU sessions disable spinning (AVGEN_ORT_SPIN=1 restores ORT's default)."""
    from engines.ort_engine import OrtEngine

    key = "session.intra_op.allow_spinning"
    eng = OrtEngine(onnx_dir / "audio_connector.onnx")
    assert eng.session.get_session_options().get_session_config_entry(key) == "0"
    monkeypatch.setenv("AVGEN_ORT_SPIN", "1")
    opts = OrtEngine(onnx_dir / "audio_connector.onnx").session.get_session_options()
    with pytest.raises(RuntimeError):  # not configured: ORT's default (spinning) applies
        opts.get_session_config_entry(key)


def test_sampler_ort_matches_torch_same_seed(tiny_model, onnx_dir):
    from avcli.pipelines.backends import load_components
    from avcli.pipelines.common import modality_specs
    from avcli.sampling.joint import SamplerConfig, TextConditioning, sample

    geo = tiny_model.geometry()
    vspec, aspec = modality_specs(tiny_model, geo, batch=1)
    g = torch.Generator().manual_seed(3)
    text = TextConditioning(*(torch.randn(1, 8, 32, generator=g) for _ in range(4)))
    cfg = SamplerConfig(steps=2, gamma=1.5, cfg_video=3.0, cfg_audio=2.0)
    results = {}
    for backend in ("torch", "ort"):
        comps = load_components(tiny_model, backend, export_dir=onnx_dir, names=SAMPLER_COMPONENTS, quiet=True)
        results[backend] = sample(comps, vspec, aspec, text, cfg, torch.Generator().manual_seed(7))
    torch.testing.assert_close(results["ort"].video, results["torch"].video, atol=1e-3, rtol=0)
    torch.testing.assert_close(results["ort"].audio, results["torch"].audio, atol=1e-3, rtol=0)


def test_load_components_exports_on_demand_into_cache(tiny_model, tmp_path, monkeypatch, capsys):
    from avcli.pipelines.backends import default_export_dir, load_components

    monkeypatch.setenv("AVGEN_CACHE", str(tmp_path / "c"))
    comps = load_components(tiny_model, "ort", names=["audio_connector"])
    out_dir = default_export_dir(tiny_model)
    assert str(out_dir).startswith(str(tmp_path / "c" / "exports"))
    assert (out_dir / "audio_connector.onnx").exists() and "exporting audio_connector" in capsys.readouterr().err
    x = descriptions(tiny_model.manifest)["audio_connector"].sample_inputs(tiny_model)
    torch.testing.assert_close(comps["audio_connector"](**x), tiny_model.audio_connector(**x), atol=1e-4, rtol=1e-3)


def test_trt_backend_unavailable_has_reason(tiny_model):
    from avcli.errors import BackendUnavailable
    from avcli.pipelines.backends import load_components

    if HAS_TRT and HAS_CUDA:
        pytest.skip("TensorRT is usable here")
    with pytest.raises(BackendUnavailable, match="trt"):
        load_components(tiny_model, "trt", names=["vocoder"])
    assert load_components(tiny_model, "auto", names=["audio_connector"], quiet=True)


@needs_trt
def test_trt_engine_matches_torch(tiny_model, onnx_dir, tmp_path):
    from engines.trt_engine import TrtEngine
    from export.trt_build import build_engine

    d = descriptions(tiny_model.manifest)["audio_unet"]
    res = build_engine(onnx_dir / "audio_unet.onnx", d.name, d.profile(tiny_model.manifest), tmp_path)
    assert res.built and build_engine(onnx_dir / "audio_unet.onnx", d.name, d.profile(tiny_model.manifest),
                                      tmp_path).built is False
    eng = TrtEngine(res.plan, name=d.name)
    for point in ("min", "opt"):
        x = d.sample_inputs(tiny_model, point)
        with torch.no_grad():
            ref = d.module(tiny_model)(**x)
        torch.testing.assert_close(as_callable(eng)(**{k: v.cuda() for k, v in x.items()}).cpu(), ref,
                                   atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("name", ["video_unet", "audio_unet"])
def test_ort_unet_fusions_run_on_the_cpu_ep_and_match_the_plain_graph(onnx_dir, tiny_model, tmp_path, name):
    """engines/ort_fusions.py: onnxruntime's unet fusions with the CUDA-only ops left out. The fused graph must hold
    the CPU-runnable fused ops (MultiHeadAttention with q/k/v apart: a packed layout has no CPU kernel and fails at
    run time), run through OrtEngine, and give the plain graph's output."""
    from engines.ort_engine import OrtEngine
    from export.descriptions import get_description, inputs_at
    from engines.ort_fusions import fuse_unet

    feeds = inputs_at(get_description(tiny_model.manifest, name), tiny_model, 1.0, batch=1)
    plain = OrtEngine(onnx_dir / f"{name}.onnx", save_optimized=False).run(feeds)["noise_pred"]
    new_ops = fuse_unet(onnx_dir / f"{name}.onnx", tmp_path / "fused.onnx", "all")
    assert new_ops.get("MultiHeadAttention", 0) >= 1, new_ops
    assert not set(new_ops) & {"NhwcConv", "GroupNorm", "SkipGroupNorm", "BiasSplitGelu", "BiasAdd"}, new_ops
    fused = OrtEngine(tmp_path / "fused.onnx", save_optimized=False).run(feeds)["noise_pred"]
    assert torch.allclose(fused, plain, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown fusion variant"):
        fuse_unet(onnx_dir / f"{name}.onnx", tmp_path / "x.onnx", "packed")


def test_ort_engine_fusion_saves_a_fused_graph_apart_from_the_plain_one(onnx_dir, tiny_model, tmp_path):
    """OrtEngine(fusion="attention") fuses in memory, saves the optimised fused graph under its own name (a plain
    session must not pick it up, nor a fused one the plain file), reloads it in the next session, and matches the
    plain graph."""
    import shutil

    import onnx

    from engines.ort_engine import OrtEngine, optimized_path
    from export.descriptions import get_description, inputs_at

    src = tmp_path / "video_unet.onnx"
    shutil.copy(onnx_dir / "video_unet.onnx", src)
    feeds = inputs_at(get_description(tiny_model.manifest, "video_unet"), tiny_model, 1.0, batch=1)
    plain = OrtEngine(src).run(feeds)["noise_pred"]
    plain_opt = optimized_path(src, "CPUExecutionProvider")
    fused_opt = optimized_path(src, "CPUExecutionProvider", "attention")
    assert plain_opt.exists() and not fused_opt.exists()
    first = OrtEngine(src, fusion="attention")
    assert first.fusion == "attention" and fused_opt.exists() and first.loaded_from == src
    ops = {n.op_type for n in onnx.load(str(fused_opt)).graph.node}
    assert "MultiHeadAttention" in ops
    assert "MultiHeadAttention" not in {n.op_type for n in onnx.load(str(plain_opt)).graph.node}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # written aside, then renamed
    again = OrtEngine(src, fusion="attention")
    assert again.loaded_from == fused_opt
    assert OrtEngine(src).loaded_from == plain_opt
    for eng in (first, again):
        assert torch.allclose(eng.run(feeds)["noise_pred"], plain, atol=1e-4, rtol=1e-4)


def test_cpu_fusion_reaches_the_unet_engines_of_an_ort_pipeline(tiny_model, onnx_dir, monkeypatch):
    """The components named in export.descriptions.CPU_FUSION get their fusion on the CPU EP; the others stay
    plain."""
    import engines.ort_engine as oe
    from avcli.pipelines.backends import engine_folder_components
    from export.descriptions import CPU_FUSION

    seen = {}
    real = oe.OrtEngine.__init__

    def record(self, path, name=None, **kw):
        seen[name] = kw.get("fusion")
        real(self, path, name=name, **kw)

    monkeypatch.setattr(oe.OrtEngine, "__init__", record)
    engine_folder_components(onnx_dir, tiny_model.manifest, "ort", names=["video_unet", "audio_unet",
                                                                           "audio_connector"], quiet=True)
    assert seen == {"video_unet": CPU_FUSION["video_unet"], "audio_unet": CPU_FUSION["audio_unet"],
                    "audio_connector": None}
    assert set(CPU_FUSION) == {"video_unet", "audio_unet"}


def test_ort_engine_in_a_read_only_folder_optimises_in_memory(onnx_dir, tiny_model, tmp_path, monkeypatch):
    """A deploy box may mount the engine folder read-only: the session (fused or not) still loads and runs, and
    nothing is written next to the graph."""
    import shutil

    import engines.ort_engine as oe
    from export.descriptions import get_description, inputs_at

    src = tmp_path / "audio_unet.onnx"
    shutil.copy(onnx_dir / "audio_unet.onnx", src)
    monkeypatch.setattr(oe.os, "access", lambda p, mode: False)
    feeds = inputs_at(get_description(tiny_model.manifest, "audio_unet"), tiny_model, 1.0, batch=1)
    for fusion in (None, "attention"):
        eng = oe.OrtEngine(src, fusion=fusion)
        assert eng.run(feeds)["noise_pred"].shape == feeds["sample"].shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio_unet.onnx"]
