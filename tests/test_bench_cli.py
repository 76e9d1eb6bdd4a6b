"""`avgen bench` on the tiny bundle: JSON with the expected keys; helpers behave."""

from __future__ import annotations

import json

from typer.testing import CliRunner


def test_bench_writes_json(tiny_bundle, tmp_path):
    from avcli.cli.main import app

    out = tmp_path / "out.json"
    res = CliRunner().invoke(app, ["bench", "--bundle", str(tiny_bundle), "--backends", "torch", "--components",
                                   "audio_connector,vocoder", "--task", "foley", "--steps", "2", "--warmup", "1",
                                   "--repeat", "2", "--json", str(out)])
    assert "joint foley step" in res.output and "end to end foley" in res.output
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert {"machine", "config", "matmul_peak_gflops", "flops", "backends"} <= set(data)
    assert {"versions", "cpu", "platform"} <= set(data["machine"])
    assert set(data["backends"]) == {"torch"}  # ort side by side: tests/test_engines.py covers its parity
    for b in ("torch",):
        r = data["backends"][b]
        assert set(r["components"]) == {"audio_connector", "vocoder"}
        c = r["components"]["vocoder"]
        assert {"p50_ms", "p90_ms", "min_ms", "gflops", "achieved_gflops_s", "utilisation_pct",
                "speedup_vs_torch"} <= set(c)
        assert c["min_ms"] <= c["p50_ms"] <= c["p90_ms"]
        step = r["step"]
        assert step["calls"] == {"video_connector": 2, "audio_unet": 2}  # foley: no video U-Net, no audio features
        assert 0 <= step["sampler_overhead_pct"] < 100 and step["ms_per_step"] > 0
        assert r["peak_rss_mb"] > 0
        e2e = r["e2e"]  # foley end to end: decode the input, encode, denoise, vocode, mux (video stream copied)
        assert {"load", "text", "decode-video", "encode", "denoise", "vocode", "mux"} <= set(e2e["stages_s"])
        assert abs(e2e["total_s"] - sum(e2e["stages_s"].values())) < 1e-2
    assert data["flops"]["vocoder"] > 0


def test_bench_rejects_unknown_backend(tiny_bundle):
    from avcli.cli.main import app
    from avcli.errors import UsageError

    res = CliRunner().invoke(app, ["bench", "--bundle", str(tiny_bundle), "--backends", "tpu"])
    assert isinstance(res.exception, UsageError)


def test_percentile_and_peak():
    from avcli.pipelines.bench import matmul_peak_gflops, percentile

    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0], 0.9) > 1.8
    assert matmul_peak_gflops(n=64, repeat=2) > 0
