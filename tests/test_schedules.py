"""Scheduler math against diffusers' own schedulers, and the timestep adjustment of seed 000 eq. 8."""

import math

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from avcli.sampling.schedules import NoiseSchedule, adjust_timesteps, global_timesteps, local_timesteps
from avcli.sampling.solvers import DDIMSolver, DPMSolverPP2M


def _diffusers_ddim(s: NoiseSchedule) -> DDIMScheduler:
    return DDIMScheduler(num_train_timesteps=s.num_train_timesteps, beta_start=s.beta_start, beta_end=s.beta_end,
                         beta_schedule=s.beta_schedule, prediction_type=s.prediction_type,
                         clip_sample=s.clip_sample, clip_sample_range=s.clip_sample_range,
                         set_alpha_to_one=s.set_alpha_to_one, steps_offset=s.steps_offset,
                         timestep_spacing=s.timestep_spacing)


@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_alphas_match_diffusers(beta_schedule):
    s = NoiseSchedule(beta_schedule=beta_schedule, beta_start=0.0015, beta_end=0.0195)
    ref = _diffusers_ddim(s).alphas_cumprod
    assert torch.allclose(s.alphas_cumprod(), ref, atol=1e-7)


@pytest.mark.parametrize("spacing,offset", [("leading", 1), ("leading", 0), ("trailing", 0), ("linspace", 0)])
def test_global_timesteps_match_diffusers(spacing, offset):
    s = NoiseSchedule(timestep_spacing=spacing, steps_offset=offset)
    sch = _diffusers_ddim(s)
    for n in (10, 25, 50):
        sch.set_timesteps(n)
        assert global_timesteps(n, 1000, spacing, offset) == sch.timesteps.tolist()


@pytest.mark.parametrize("beta_schedule,pred", [("linear", "epsilon"), ("scaled_linear", "epsilon"),
                                                ("scaled_linear", "v_prediction")])
@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_step_matches_diffusers(beta_schedule, pred, eta):
    s = NoiseSchedule(beta_schedule=beta_schedule, beta_start=0.00085, beta_end=0.012, prediction_type=pred)
    ref = _diffusers_ddim(s)
    ref.set_timesteps(20)
    ours = DDIMSolver(s, eta=eta)
    g = torch.Generator().manual_seed(0)
    x_ref = torch.randn(2, 4, 8, 8, generator=g)
    x = x_ref.clone()
    ts = ref.timesteps.tolist()
    for k, t in enumerate(ts):
        out = torch.tanh(x_ref) * 0.5 + 0.1 * t / 1000  # a one-line stand-in model
        prev = ts[k + 1] if k + 1 < len(ts) else -1
        x_ref = ref.step(out, t, x_ref, eta=eta, generator=torch.Generator().manual_seed(k)).prev_sample
        x, _ = ours.step(out, x, t, prev, generator=torch.Generator().manual_seed(k))
        assert torch.allclose(x, x_ref, atol=1e-6, rtol=1e-5), f"step {k} (t={t}) differs"


@pytest.mark.parametrize("pred", ["epsilon", "v_prediction"])
def test_ddim_clip_sample_matches_diffusers(pred):
    """clip_sample on a schedule whose last alpha-bar is ~3e-5: x0 estimates blow up unless clamped."""
    s = NoiseSchedule(beta_schedule="linear", beta_start=0.0015, beta_end=0.0195, prediction_type=pred,
                      clip_sample=True, clip_sample_range=0.8)
    ref = _diffusers_ddim(s)
    ref.set_timesteps(10)
    ours = DDIMSolver(s)
    x_ref = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    x = x_ref.clone()
    ts = ref.timesteps.tolist()
    for k, t in enumerate(ts):
        out = torch.tanh(x_ref) * 0.9 + 0.3  # a biased stand-in: unclamped, its x0 leaves [-0.8, 0.8]
        prev = ts[k + 1] if k + 1 < len(ts) else -1
        res = ref.step(out, t, x_ref)
        x_ref = res.prev_sample
        x, x0 = ours.step(out, x, t, prev)
        assert torch.allclose(x, x_ref, atol=1e-5, rtol=1e-5), f"step {k} (t={t}) differs"
        assert torch.allclose(x0, res.pred_original_sample, atol=1e-5) and x0.abs().max() <= 0.8 + 1e-6
    unclipped = DDIMSolver(NoiseSchedule(beta_schedule="linear", beta_start=0.0015, beta_end=0.0195))
    assert unclipped.step(out, x, ts[0], ts[1])[1].abs().max() > 0.8  # the clamp did something


def test_dpmpp2m_matches_diffusers():
    s = NoiseSchedule(beta_schedule="scaled_linear")
    ts = global_timesteps(12, 1000, "leading", 1)
    ref = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=s.beta_start, beta_end=s.beta_end,
                                      beta_schedule=s.beta_schedule, algorithm_type="dpmsolver++", solver_order=2,
                                      lower_order_final=True, final_sigmas_type="zero")
    ref.set_timesteps(timesteps=ts)
    ours = DPMSolverPP2M(s)
    x_ref = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    x = x_ref.clone()
    for k, t in enumerate(ts):
        out_ref = torch.tanh(x_ref) * 0.5
        x_ref = ref.step(out_ref, t, x_ref).prev_sample
        x, _ = ours.step(torch.tanh(x) * 0.5, x, t, ts[k + 1] if k + 1 < len(ts) else -1)
        assert torch.allclose(x, x_ref, atol=1e-5, rtol=1e-4), f"step {k} differs"


def test_gamma_one_is_identity():
    g = global_timesteps(25, 1000, "leading", 1)
    m, n = local_timesteps(g, 1000, 1000, 1000, 1.0)
    assert m == g and n == g


def test_gamma_reproduces_eq8():
    g = global_timesteps(25, 1000, "leading", 1)
    m, n = local_timesteps(g, 1000, 1000, 1000, 1.5)
    for i, mi, ni in zip(g, m, n):
        t = (i + 1) / 1000
        assert mi == max(round(1000 * t ** math.sqrt(1.5)) - 1, 0)
        assert ni == max(round(1000 * t ** (1 / math.sqrt(1.5))) - 1, 0)
    assert all(a < b for a, b in zip(m, n) if a < 999)  # video is denoised ahead of audio (m/Tv = (n/Ta)^gamma)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0])
@pytest.mark.parametrize("steps", [5, 25, 50, 200])
def test_local_timesteps_strictly_decrease(gamma, steps):
    g = global_timesteps(steps, 1000, "leading", 1)
    for local in local_timesteps(g, 1000, 1000, 800, gamma):
        assert all(a > b for a, b in zip(local, local[1:]))
        assert 0 <= min(local) and max(local) <= 999


def test_different_max_timesteps():
    m = adjust_timesteps([999, 499, 0], 1000, 200, 1.0)
    assert m == [199, 99, 0]


def test_bad_schedule_values():
    with pytest.raises(ValueError, match="beta_schedule"):
        NoiseSchedule(beta_schedule="quadratic")
    with pytest.raises(ValueError, match="steps"):
        global_timesteps(0, 1000)
    with pytest.raises(ValueError, match="gamma"):
        local_timesteps([10], 1000, 1000, 1000, 0.0)
