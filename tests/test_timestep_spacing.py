"""Where the sampling steps sit among the training timesteps (`--timestep-spacing`, the bundle's
`sampling.timestep_spacing`): the U-Nets see diffusers' timesteps for that spacing, in every task."""

import json
import shutil

import pytest
import torch
from diffusers import DDIMScheduler
from typer.testing import CliRunner

from avcli.cli.main import app
from avcli.pipelines.common import modality_specs, sampler_config
from avcli.sampling.joint import SamplerConfig, TextConditioning, sample
from avcli.sampling.schedules import local_timesteps

runner = CliRunner()


def _diffusers_timesteps(schedule, spacing: str, steps: int) -> list[int]:
    """The timesteps diffusers' DDIM scheduler steps on for this schedule and spacing (the reference)."""
    sch = DDIMScheduler(num_train_timesteps=schedule.num_train_timesteps, beta_start=schedule.beta_start,
                        beta_end=schedule.beta_end, beta_schedule=schedule.beta_schedule,
                        steps_offset=schedule.steps_offset, timestep_spacing=spacing)
    sch.set_timesteps(steps)
    return sch.timesteps.tolist()


def _recording(comps: dict, seen: dict) -> dict:
    comps = dict(comps)
    for name in seen:
        def call(_fn=comps[name], _name=name, **kw):
            seen[_name].append(int(kw["timestep"].flatten()[0]))
            return _fn(**kw)
        comps[name] = call
    return comps


def _text(model):
    L, D = model.manifest["text"]["max_length"], model.manifest["text"]["video"]["dim"]
    z = torch.zeros(1, L, D)
    return TextConditioning(z, z, z, z)


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_the_unets_step_on_diffusers_timesteps_for_the_spacing(tiny_model, spacing):
    vspec, aspec = modality_specs(tiny_model, tiny_model.geometry())
    T = max(vspec.schedule.num_train_timesteps, aspec.schedule.num_train_timesteps)
    want_global = _diffusers_timesteps(vspec.schedule, spacing, 5)
    want_v, want_a = local_timesteps(want_global, T, vspec.schedule.num_train_timesteps,
                                     aspec.schedule.num_train_timesteps, 1.5)
    seen = {"video_unet": [], "audio_unet": []}
    cfg = SamplerConfig(steps=5, gamma=1.5, cfg_video=1.0, cfg_audio=1.0, timestep_spacing=spacing)
    with torch.no_grad():
        res = sample(_recording(tiny_model.sampler_components(), seen), vspec, aspec, _text(tiny_model), cfg,
                     torch.Generator().manual_seed(0))
    assert seen == {"video_unet": want_v, "audio_unet": want_a}
    assert res.video_timesteps == want_v
    if spacing == "trailing":  # the first step is the last training timestep: pure noise, as the sampler starts
        assert want_global[0] == vspec.schedule.num_train_timesteps - 1


def test_none_is_the_schedule_spacing_and_a_bundle_default_is_overridden_per_call(tiny_manifest):
    import copy

    from avcli.errors import UsageError
    from avcli.pipelines.common import parse_spacing
    from avcli.training.stages import shipping_manifest

    assert tiny_manifest["video"]["schedule"]["timestep_spacing"] == "leading"
    assert sampler_config(tiny_manifest).timestep_spacing == "leading"  # resolved: the report says what runs
    m = copy.deepcopy(tiny_manifest)
    m["sampling"].update(shipping_manifest(m, None, timestep_spacing="trailing")["sampling"])
    assert m["sampling"]["timestep_spacing"] == "trailing"
    assert sampler_config(m).timestep_spacing == "trailing"
    assert sampler_config(m, timestep_spacing="linspace").timestep_spacing == "linspace"
    assert parse_spacing(None) is None and parse_spacing("trailing") == "trailing"
    with pytest.raises(UsageError):
        parse_spacing("tailing")
    with pytest.raises(ValueError):
        SamplerConfig(timestep_spacing="tailing")


def test_generate_cli_reports_the_spacing_and_refuses_a_bad_one_before_loading(tiny_bundle, tmp_path, monkeypatch,
                                                                                capsys):
    from conftest import run_cli

    out = tmp_path / "a.mp4"
    args = ["generate", "--bundle", str(tiny_bundle), "-p", "a red ball", "--steps", "2", "-o", str(out)]
    res = runner.invoke(app, [*args, "--timestep-spacing", "trailing", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["sampling"]["timestep_spacing"] == "trailing"
    code, _, err = run_cli(monkeypatch, capsys, *args[:-1], tmp_path / "b.mp4", "--timestep-spacing", "tailing")
    assert code == 2 and "--timestep-spacing" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.mp4").exists()
    # animate and foley report the spacing that ran: the bundle's unless asked
    for cmd in (["animate", out, "-o", tmp_path / "an.mp4"], ["foley", out, "-o", tmp_path / "fo.mp4"]):
        code, stdout, err = run_cli(monkeypatch, capsys, *cmd, "--bundle", tiny_bundle, "--steps", "1", "--json")
        assert code == 0, err
        key = json.loads(stdout) if cmd[0] == "animate" else json.loads(stdout)["settings"]
        assert key["timestep_spacing"] == "leading", cmd[0]
        code, stdout, err = run_cli(monkeypatch, capsys, *cmd[:3], str(cmd[3]).replace(".mp4", "2.mp4"), "--bundle",
                                    tiny_bundle, "--steps", "1", "--json", "--timestep-spacing", "trailing")
        assert code == 0, err
        key = json.loads(stdout) if cmd[0] == "animate" else json.loads(stdout)["settings"]
        assert key["timestep_spacing"] == "trailing", cmd[0]


def test_foley_and_animate_step_on_the_bundles_spacing_unless_asked(tiny_bundle, tiny_model, tmp_path):
    from avcli.media.ffmpeg import write_video
    from avcli.pipelines.animate import AnimateRequest
    from avcli.pipelines.foley import FoleyRequest
    from avcli.pipelines.pipeline import JointPipeline
    from avcli.training.stages import shipping_manifest

    geo = tiny_model.geometry()
    clip = tmp_path / "clip.mp4"
    frames = (torch.rand((geo.frames, *geo.frame_size, 3), generator=torch.Generator().manual_seed(0)) * 255)
    audio = torch.rand(int(geo.duration * geo.sample_rate), generator=torch.Generator().manual_seed(1)) - 0.5
    write_video(clip, frames.to(torch.uint8).numpy(), geo.fps, audio.numpy(), geo.sample_rate)
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "bundle.json").read_text())
    m["sampling"].update(shipping_manifest(m, None, timestep_spacing="trailing")["sampling"])
    (b / "bundle.json").write_text(json.dumps(m))
    vspec, aspec = modality_specs(tiny_model, geo)
    T = max(vspec.schedule.num_train_timesteps, aspec.schedule.num_train_timesteps)
    gamma = sampler_config(tiny_model.manifest).gamma

    def local(spacing):
        return local_timesteps(_diffusers_timesteps(vspec.schedule, spacing, 3), T,
                               vspec.schedule.num_train_timesteps, aspec.schedule.num_train_timesteps, gamma)

    for bundle, spacing, want in ((tiny_bundle, None, "leading"), (b, None, "trailing"), (b, "leading", "leading")):
        pipe = JointPipeline.from_bundle(bundle)
        seen = {"video_unet": [], "audio_unet": []}
        pipe.components.update(_recording(pipe.components, seen))
        pipe.foley(clip, FoleyRequest(steps=3, timestep_spacing=spacing))
        assert seen["audio_unet"] == local(want)[1] and seen["video_unet"] == [], (bundle, spacing)
        seen["audio_unet"].clear()
        pipe.animate(clip, AnimateRequest(steps=3, timestep_spacing=spacing, first_frame_steps=0))
        assert seen["video_unet"] == local(want)[0] and seen["audio_unet"] == [], (bundle, spacing)
