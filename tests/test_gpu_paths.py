"""The CUDA / TensorRT code paths, exercised on the CPU: real ONNX Runtime IO binding on the CPU, stub modules that
record what the code asks of TensorRT and ORT, and the naming/shape logic (issue 15). The same paths on a real
GPU: tests/test_gpu.py (-m gpu)."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from avcli.cli.main import app


@pytest.fixture(scope="module")
def onnx_dir(tiny_model, tmp_path_factory):
    from export.onnx_export import export_all

    out = tmp_path_factory.mktemp("onnx")
    export_all(tiny_model, out, ["audio_connector", "audio_unet"], raise_on_error=True)
    export_all(tiny_model, out, ["audio_unet"], fp16=True, raise_on_error=True)
    return out


def _inputs(tiny_model):
    from export.descriptions import descriptions

    return descriptions(tiny_model.manifest)["audio_connector"].sample_inputs(tiny_model)


# --- onnxruntime ------------------------------------------------------------------------------------------------
def test_io_binding_returns_float32_on_the_inputs_device(tiny_model, onnx_dir):
    """The bound path (what CUDA uses) run for real on the CPU: DLPack outputs, equal to the plain run."""
    from engines.ort_engine import OrtEngine

    eng = OrtEngine(onnx_dir / "audio_connector.onnx")
    x = _inputs(tiny_model)
    plain = eng.run(x)
    eng.capabilities = dataclasses.replace(eng.capabilities, io_binding=True)
    bound = eng.run(x)
    for k in plain:
        assert bound[k].device == x["latent"].device and bound[k].dtype == torch.float32
        assert torch.equal(bound[k], plain[k])


def test_bound_outputs_follow_the_inputs_not_the_engine(tiny_model, onnx_dir, monkeypatch):
    """onnxruntime-gpu allocates outputs on the GPU (in fp16 for fp16 graphs); the sampler's latents are on the CPU:
    run() must hand back float32 on the inputs' device, or the first step fails with 'different devices'."""
    from engines.ort_engine import OrtEngine

    eng = OrtEngine(onnx_dir / "audio_connector.onnx")
    eng.capabilities = dataclasses.replace(eng.capabilities, io_binding=True)
    meta = torch.empty((1, 2), dtype=torch.float16)
    seen = []
    monkeypatch.setattr(eng, "_run_bound", lambda inputs: {"features": meta})
    real_to = torch.Tensor.to

    def spy(self, *a, **kw):
        seen.append((a, kw))
        return real_to(self, *a, **kw)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    out = eng.run(_inputs(tiny_model))
    assert out["features"].dtype == torch.float32
    assert any(a and a[0] == torch.device("cpu") for a, _ in seen)


def test_ortvalue_to_torch_is_zero_copy_through_dlpack():
    import onnxruntime as ort

    from engines.ort_engine import _ortvalue_to_torch

    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    value = ort.OrtValue.ortvalue_from_numpy(arr)
    assert hasattr(value, "__dlpack__") and not hasattr(value, "to_dlpack")  # the 1.32 API
    t = _ortvalue_to_torch(value, torch.device("cpu"))
    assert t.data_ptr() == value.data_ptr() and torch.equal(t, torch.from_numpy(arr))


import onnxruntime as _ort  # noqa: E402

_REAL_SESSION = _ort.InferenceSession


class _RecordingSession:
    made = []

    def __init__(self, path, so, providers=None, provider_options=None):
        type(self).made.append({"path": path, "optimized": so.optimized_model_filepath, "providers": providers,
                                "options": provider_options})
        self._real = _REAL_SESSION(path, providers=["CPUExecutionProvider"])

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.mark.parametrize("first, saves", [("TensorrtExecutionProvider", False), ("CUDAExecutionProvider", False),
                                          ("CPUExecutionProvider", True)])
def test_optimised_graph_is_saved_only_for_the_cpu_provider(first, saves, onnx_dir, tmp_path, monkeypatch):
    import shutil

    import onnxruntime as ort

    import engines.ort_engine as oe

    src = tmp_path / "audio_connector.onnx"
    shutil.copy(onnx_dir / "audio_connector.onnx", src)
    monkeypatch.setattr(oe, "choose_providers", lambda requested=None: [first, "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", _RecordingSession)
    _RecordingSession.made.clear()
    oe.OrtEngine(src, device_id=3)
    made = _RecordingSession.made[-1]
    assert bool(made["optimized"]) is saves
    if first != "CPUExecutionProvider":
        assert made["options"][0] == {"device_id": 3}  # the device is not dropped


# --- TensorRT: profiles, shapes, strong typing --------------------------------------------------------------------
class _Engine:
    def get_tensor_profile_shape(self, name, index):
        return [(1, 4, 2, 8), (2, 4, 8, 8), (4, 4, 16, 8)]


def test_shapes_outside_the_trt_profile_are_refused_before_enqueue():
    from engines.trt_engine import ShapeOutsideProfile, check_profile

    check_profile(_Engine(), "sample", (2, 4, 8, 8))
    for bad in [(8, 4, 8, 8), (2, 4, 1, 8), (2, 4, 8)]:
        with pytest.raises(ShapeOutsideProfile, match="engine accepts"):
            check_profile(_Engine(), "sample", bad)


def test_trt_bind_checks_set_input_shape():
    from engines.trt_engine import ShapeOutsideProfile, TrtEngine

    class Ctx:
        def set_input_shape(self, name, shape):
            return False  # what TensorRT returns for a shape it cannot take

    eng = object.__new__(TrtEngine)
    eng.name, eng.engine, eng.context, eng.device = "x", _Engine(), Ctx(), torch.device("cpu")
    eng._dtypes = {"sample": torch.float32}
    eng.output_names = []
    with pytest.raises(ShapeOutsideProfile, match="refused"):
        eng._bind({"sample": torch.zeros(2, 4, 8, 8)})


def test_trt_request_outside_the_profile_is_a_usage_error(tiny_model):
    from avcli.errors import UsageError
    from avcli.pipelines.pipeline import JointPipeline

    pipe = JointPipeline(tiny_model.manifest, {}, "trt", None)
    pipe.checked_geometry(tiny_model.manifest["media"]["duration"])
    with pytest.raises(UsageError, match="TensorRT engines were built for"):
        pipe.checked_geometry(0.25)


def _fake_trt(strongly_typed: bool):
    calls = {"flags": [], "create_network": [], "layers": []}

    class Flag:
        EXPLICIT_BATCH = 0
        FP16 = "FP16"
        OBEY_PRECISION_CONSTRAINTS = "OBEY"

    net_flags = types.SimpleNamespace(EXPLICIT_BATCH=0, **({"STRONGLY_TYPED": 5} if strongly_typed else {}))

    class Layer:
        def __init__(self, kind):
            self.type, self.num_outputs, self.precision, self.out = kind, 1, None, {}

        def set_output_type(self, j, t):
            self.out[j] = t

    class Network:
        num_inputs = 1
        layers = [Layer("NORMALIZATION"), Layer("CONVOLUTION"), Layer("SOFTMAX")]
        num_layers = 3

        def get_input(self, i):
            return types.SimpleNamespace(name="sample")

        def get_layer(self, i):
            return self.layers[i]

    class Config:
        def set_memory_pool_limit(self, *a):
            pass

        def set_flag(self, f):
            calls["flags"].append(f)

        def add_optimization_profile(self, p):
            pass

        def create_timing_cache(self, b):
            return b

        def set_timing_cache(self, c, ignore_mismatch):
            pass

        def get_timing_cache(self):
            return types.SimpleNamespace(serialize=lambda: b"tc")

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls["create_network"].append(flags)
            calls["network"] = Network()
            return calls["network"]

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return types.SimpleNamespace(set_shape=lambda *a: None)

        def build_serialized_network(self, network, config):
            return b"PLAN"

    class Parser:
        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            return True

    trt = types.SimpleNamespace(Logger=lambda level=None: None, Builder=Builder, OnnxParser=Parser, BuilderFlag=Flag,
                                NetworkDefinitionCreationFlag=net_flags, MemoryPoolType=types.SimpleNamespace(WORKSPACE=0),
                                LayerType=types.SimpleNamespace(NORMALIZATION="NORMALIZATION", SOFTMAX="SOFTMAX",
                                                                REDUCE="REDUCE"), float32="fp32")
    trt.Logger.WARNING = 0
    return trt, calls


def test_fp16_engines_are_strongly_typed_not_fp16_flagged(tmp_path):
    from export.trt_build import _build_plan

    trt, calls = _fake_trt(strongly_typed=True)
    assert _build_plan(trt, tmp_path / "x.fp16.onnx", {"sample": ((1,), (1,), (1,))}, True, tmp_path / "tc", 1) == b"PLAN"
    assert calls["create_network"] == [1 << 0 | 1 << 5] and calls["flags"] == []  # EXPLICIT_BATCH | STRONGLY_TYPED
    trt, calls = _fake_trt(strongly_typed=False)  # an older TensorRT: precision flags, norms/softmax pinned fp32
    _build_plan(trt, tmp_path / "x.fp16.onnx", {"sample": ((1,), (1,), (1,))}, True, tmp_path / "tc", 1)
    assert calls["flags"] == ["FP16", "OBEY"]
    kinds = {la.type: la.precision for la in calls["network"].layers}
    assert kinds == {"NORMALIZATION": "fp32", "CONVOLUTION": None, "SOFTMAX": "fp32"}


def test_fp16_graph_keeps_norms_and_softmax_in_fp32(onnx_dir):
    """Not just 'a LayerNormalization exists': every normalisation/softmax node reads and writes float32."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_dir / "audio_unet.fp16.onnx")))
    types_ = {v.name: v.type.tensor_type.elem_type for v in list(model.graph.value_info) + list(model.graph.input)
              + list(model.graph.output)}
    for init in model.graph.initializer:
        types_[init.name] = init.data_type
    kept = [n for n in model.graph.node if n.op_type in ("LayerNormalization", "GroupNormalization", "Softmax")]
    assert kept, "the U-Net has normalisations and softmax"
    for node in kept:
        for name in [*node.input[:1], *node.output[:1]]:
            assert types_.get(name) == onnx.TensorProto.FLOAT, (node.op_type, node.name, name)
    halves = sum(1 for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16)
    assert halves > 0  # the weights did go to fp16


def test_large_fp16_graphs_use_external_data(onnx_dir, tiny_model, tmp_path):
    import onnxruntime as ort

    from export.onnx_export import convert_fp16

    dst = tmp_path / "audio_unet.fp16.onnx"
    assert convert_fp16(onnx_dir / "audio_unet.onnx", dst, external_threshold=0) is True
    assert (tmp_path / "audio_unet.fp16.onnx.data").stat().st_size > 0.3 * (onnx_dir / "audio_unet.fp16.onnx").stat().st_size
    assert dst.stat().st_size < (onnx_dir / "audio_unet.fp16.onnx").stat().st_size
    from export.descriptions import descriptions

    x = descriptions(tiny_model.manifest)["audio_unet"].sample_inputs(tiny_model)
    a = ort.InferenceSession(str(dst)).run(None, {k: v.numpy() for k, v in x.items()})[0]
    b = ort.InferenceSession(str(onnx_dir / "audio_unet.fp16.onnx")).run(None, {k: v.numpy() for k, v in x.items()})[0]
    assert np.array_equal(a, b)


# --- precision and device-side measurements -----------------------------------------------------------------------
def test_precision_flag(tiny_bundle, tmp_path):
    from avcli.errors import UsageError

    r = CliRunner().invoke(app, ["generate", "--bundle", str(tiny_bundle), "-p", "x", "--steps", "1",
                                 "--precision", "fp16", "--backend", "torch", "-o", str(tmp_path / "a.mp4")])
    assert isinstance(r.exception, UsageError) and "fp16" in str(r.exception)
    r = CliRunner().invoke(app, ["generate", "--bundle", str(tiny_bundle), "-p", "x", "--steps", "1",
                                 "--precision", "fp16", "--backend", "ort", "-o", str(tmp_path / "b.mp4"), "--json"])
    assert r.exit_code == 0, r.output
    assert '"precision": "fp16"' in r.stdout and (tmp_path / "b.mp4").exists()


def test_bench_utilisation_uses_each_devices_own_peak(tiny_model, monkeypatch):
    import avcli.pipelines.bench as bench
    from avcli.pipelines.pipeline import JointPipeline

    monkeypatch.setattr(bench, "matmul_peak_gflops", lambda n=512, repeat=5, device="cpu": {"cpu": 100.0,
                                                                                            "cuda": 1000.0}[device])
    monkeypatch.setattr(bench, "time_call", lambda fn, warmup, repeat, device="cpu": [0.01] * repeat)
    real = JointPipeline.from_model

    def on_cuda(model, backend="torch", **kw):
        pipe = real(model, backend, **kw)
        fn = pipe.components["audio_connector"]
        pipe.components["audio_connector"] = lambda **x: fn(**x)
        pipe.components["audio_connector"].engine = types.SimpleNamespace(
            capabilities=types.SimpleNamespace(device="cuda"))
        return pipe

    monkeypatch.setattr(JointPipeline, "from_model", staticmethod(on_cuda))
    res = bench.run_bench(tiny_model, ["torch"], ["audio_connector"], "foley", steps=1, warmup=0, repeat=2)
    c = res["backends"]["torch"]["components"]["audio_connector"]
    assert c["device"] == "cuda"
    assert c["utilisation_pct"] == pytest.approx(100.0 * c["achieved_gflops_s"] / 1000.0)
    assert res["backends"]["torch"]["matmul_peak_gflops"] == {"cuda": 1000.0}


def test_gpu_setup_keeps_the_cpu_path_and_never_mixes_onnxruntime_packages():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "scripts" / "setup.sh").read_text()
    assert "--gpu" in text and "onnxruntime-gpu" in text and "pip uninstall" in text and "tensorrt" in text
    cpu_line = [ln for ln in text.splitlines() if '"torch==2.13.0"' in ln]
    assert cpu_line, "the CPU path still pins torch 2.13.0"
