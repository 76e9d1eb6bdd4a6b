"""What only a CUDA machine can show: the GPU paths for real (`python -m pytest -m gpu tests/test_gpu.py`).

Set up with `bash scripts/setup.sh --gpu`. Every test skips with its reason where CUDA, onnxruntime-gpu's CUDA
provider or TensorRT is missing; tests/test_gpu_paths.py covers the same code on the CPU with stubs.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

pytestmark = pytest.mark.gpu

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device visible to torch")


def _ort_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


needs_ort_cuda = pytest.mark.skipif(not (HAS_CUDA and _ort_cuda()),
                                    reason="onnxruntime-gpu's CUDA execution provider is not available "
                                           "(bash scripts/setup.sh --gpu)")
needs_trt = pytest.mark.skipif(not (HAS_CUDA and importlib.util.find_spec("tensorrt")),
                               reason="tensorrt with a CUDA device is needed")


@pytest.fixture(scope="module")
def engine_dir(tiny_bundle, tmp_path_factory):
    from typer.testing import CliRunner

    from avcli.cli.main import app

    out = tmp_path_factory.mktemp("gpu-engines") / "tiny"
    r = CliRunner().invoke(app, ["export", "--bundle", str(tiny_bundle), "--out", str(out), "--fp16", "--json"])
    assert r.exit_code == 0, r.output
    return out


@needs_ort_cuda
def test_ort_cuda_generate_matches_cpu_and_returns_cpu_tensors(tiny_bundle, engine_dir):
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    req = GenerateRequest("a red ball", steps=3, seed=1)
    gpu = JointPipeline.from_bundle(engine_dir, backend="ort")
    assert gpu.device == "cuda"
    eng = gpu.components["video_unet"].engine
    assert eng.capabilities.io_binding and eng.session.get_providers()[0] == "CUDAExecutionProvider"
    a = gpu.generate(req)[0]
    b = JointPipeline.from_bundle(tiny_bundle, backend="torch").generate(req)[0]
    assert a.video_latent.device.type == "cpu"
    assert torch.allclose(a.video_latent, b.video_latent, atol=1e-2)


@needs_ort_cuda
def test_ort_fp16_on_cuda_stays_close_to_fp32(engine_dir):
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    req = GenerateRequest("a red ball", steps=3, seed=2)
    a = JointPipeline.from_bundle(engine_dir, backend="ort", precision="fp16").generate(req)[0]
    b = JointPipeline.from_bundle(engine_dir, backend="ort").generate(req)[0]
    err = (a.video_latent - b.video_latent).abs().max().item()
    assert err < 0.1, err


@needs_trt
def test_trt_fp16_engine_generates_close_to_torch(tiny_bundle, engine_dir):
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    req = GenerateRequest("a red ball", steps=3, seed=3)
    for precision, tol in (("fp32", 1e-2), ("fp16", 0.1)):
        a = JointPipeline.from_bundle(engine_dir, backend="trt", precision=precision).generate(req)[0]
        b = JointPipeline.from_bundle(tiny_bundle, backend="torch").generate(req)[0]
        assert (a.audio_latent - b.audio_latent).abs().max().item() < tol, precision


@needs_trt
def test_trt_plans_of_two_precisions_coexist(engine_dir):
    from avcli.pipelines.pipeline import JointPipeline

    JointPipeline.from_bundle(engine_dir, backend="trt", precision="fp32", names=["audio_connector"])
    JointPipeline.from_bundle(engine_dir, backend="trt", precision="fp16", names=["audio_connector"])
    plans = sorted(p.name for p in (engine_dir / "trt").glob("audio_connector.*.plan"))
    assert len(plans) == 2, plans


@needs_cuda
def test_torch_cuda_fp16_generate(tiny_bundle):
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    pipe = JointPipeline.from_bundle(tiny_bundle, backend="torch", device="cuda", precision="fp16")
    clip = pipe.generate(GenerateRequest("a red ball", steps=2))[0]
    assert clip.frames.shape[0] > 0 and torch.isfinite(clip.audio_latent).all()


@needs_cuda
def test_bench_measures_the_gpus_own_peak(tiny_model):
    from avcli.pipelines.bench import matmul_peak_gflops

    assert matmul_peak_gflops(device="cuda") > 5 * matmul_peak_gflops(device="cpu")


@needs_cuda
def test_torch_cuda_fp32_generate_matches_cpu(tiny_bundle):
    """The same seed on the GPU and on the CPU: the sampler's noise is drawn on the CPU, so only kernel rounding
    (cuDNN's tf32 convolutions included) may separate them."""
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    req = GenerateRequest("a red ball", steps=3, seed=4)
    a = JointPipeline.from_bundle(tiny_bundle, backend="torch", device="cuda").generate(req)[0]
    b = JointPipeline.from_bundle(tiny_bundle, backend="torch", device="cpu").generate(req)[0]
    assert a.video_latent.device.type == "cpu"
    for x, y in ((a.video_latent, b.video_latent), (a.audio_latent, b.audio_latent)):
        rel = ((x - y).norm() / y.norm()).item()  # the tiny model's latents reach +-40: compare relative to them
        assert rel < 5e-3, rel


@needs_cuda
def test_run_bench_on_cuda_times_the_gpu(tiny_manifest):
    from avcli.models.joint import JointModel
    from avcli.pipelines.bench import run_bench

    model = JointModel(tiny_manifest).eval()  # its own: a CUDA pipeline moves the module's weights to the GPU
    res = run_bench(model, ["torch"], ["video_unet", "audio_unet"], steps=2, warmup=1, repeat=3, device="cuda")
    comps = res["backends"]["torch"]["components"]
    assert {c["device"] for c in comps.values()} == {"cuda"}
    assert "cuda" in res["backends"]["torch"]["matmul_peak_gflops"]
    assert res["backends"]["torch"]["step"]["ms_per_step"] > 0
