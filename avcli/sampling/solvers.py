"""Per-modality solvers (DDIM, DPM-Solver++ 2M) that step one latent on its own schedule and local timesteps.

A solver is stateful over one sampling run (DPM-Solver++ keeps the previous x0 estimate). Every method works on
indices into the modality's own alphas_cumprod; prev index -1 means "the clean end" (final alpha).
"""

from __future__ import annotations

import math

import torch

from avcli.sampling.noise import randn

from avcli.sampling.schedules import NoiseSchedule


def predict_x0_eps(model_output: torch.Tensor, x: torch.Tensor, abar: torch.Tensor,
                   prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a network output into (x0 estimate, epsilon estimate) at cumulative alpha `abar` (eq. 6)."""
    a, s = abar.sqrt(), (1 - abar).sqrt()
    if prediction_type == "epsilon":
        eps = model_output
        x0 = (x - s * eps) / a
    elif prediction_type == "v_prediction":
        x0 = a * x - s * model_output
        eps = a * model_output + s * x
    elif prediction_type == "sample":
        x0 = model_output
        eps = (x - a * x0) / s
    else:
        raise ValueError(f"unknown prediction_type {prediction_type!r}")
    return x0, eps


class Solver:
    name = "base"

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule
        self.alphas_cumprod = schedule.alphas_cumprod()
        self.final_abar = schedule.final_alpha_cumprod()

    def abar(self, index: int) -> torch.Tensor:
        return self.alphas_cumprod[index] if index >= 0 else self.final_abar

    def to_x0_eps(self, model_output, x, index):
        return predict_x0_eps(model_output, x, self.abar(index).to(x.dtype), self.schedule.prediction_type)

    def clip(self, x0: torch.Tensor) -> torch.Tensor:
        """The schedule's clip_sample (diffusers): x0 estimates clamped to +-clip_sample_range."""
        if not self.schedule.clip_sample:
            return x0
        r = self.schedule.clip_sample_range
        return x0.clamp(-r, r)

    def step(self, model_output, x, index, prev_index, generator=None):  # -> (x_prev, x0)
        raise NotImplementedError


class DDIMSolver(Solver):
    """DDIM (eq. 5) with eta; eta = 0 is deterministic. Matches diffusers' DDIMScheduler.step."""

    name = "ddim"

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0):
        super().__init__(schedule)
        if eta < 0:
            raise ValueError("eta must be >= 0")
        self.eta = eta

    def step(self, model_output, x, index, prev_index, generator=None):
        abar_t = self.abar(index).to(x.dtype)
        abar_prev = self.abar(prev_index).to(x.dtype)
        x0, eps = predict_x0_eps(model_output, x, abar_t, self.schedule.prediction_type)
        x0 = self.clip(x0)  # as diffusers: the direction term keeps the model's epsilon
        variance = (1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)
        sigma = self.eta * variance.clamp(min=0).sqrt()
        x_prev = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma**2).clamp(min=0).sqrt() * eps
        if self.eta > 0:
            noise = randn(generator, tuple(x.shape), x.dtype).to(x.device)
            x_prev = x_prev + sigma * noise
        return x_prev, x0


class DPMSolverPP2M(Solver):
    """DPM-Solver++ (2M, data prediction, midpoint) with first-order first and final steps.

    lambda(t) = log(alpha_t / sigma_t); follows Lu et al. 2022 (multistep second order update).
    """

    name = "dpmpp2m"

    def __init__(self, schedule: NoiseSchedule):
        super().__init__(schedule)
        self.final_abar = torch.tensor(1.0)  # the last step lands on clean data (diffusers' final_sigmas_type="zero")
        self._prev_x0: torch.Tensor | None = None
        self._prev_lambda: float | None = None

    def _lam(self, abar: torch.Tensor) -> float:
        a = float(abar)
        return 0.5 * math.log(a) - 0.5 * math.log(max(1 - a, 1e-20))

    def step(self, model_output, x, index, prev_index, generator=None):
        abar_t = self.abar(index)
        abar_prev = self.abar(prev_index)
        x0, _ = predict_x0_eps(model_output, x, abar_t.to(x.dtype), self.schedule.prediction_type)
        x0 = self.clip(x0)  # a data-prediction solver: the clamp acts on what it integrates
        if float(abar_prev) >= 1.0 - 1e-12:  # clean end: the data estimate is the answer
            self._prev_x0 = None
            return x0, x0
        lam_t, lam_s = self._lam(abar_t), self._lam(abar_prev)
        h = lam_s - lam_t
        sigma_s, sigma_t = math.sqrt(1 - float(abar_prev)), math.sqrt(1 - float(abar_t))
        alpha_s = math.sqrt(float(abar_prev))
        is_last = prev_index < 0
        if self._prev_x0 is None or is_last:
            d = x0
        else:
            h_last = lam_t - self._prev_lambda
            r = h_last / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * self._prev_x0
        x_prev = (sigma_s / sigma_t) * x - alpha_s * math.expm1(-h) * d
        self._prev_x0, self._prev_lambda = x0, lam_t
        return x_prev, x0


SOLVERS = {"ddim": DDIMSolver, "dpmpp2m": DPMSolverPP2M}


def make_solver(name: str, schedule: NoiseSchedule, eta: float = 0.0) -> Solver:
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")
    return DDIMSolver(schedule, eta) if name == "ddim" else DPMSolverPP2M(schedule)
