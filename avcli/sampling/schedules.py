"""Noise schedules of the base models and the per-modality timestep adjustment of seed 000 (eq. 8).

Indices are diffusers-style: a timestep index i in [0, T-1] is the paper's t = i + 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "cosine")
SPACINGS = ("leading", "trailing", "linspace")


@dataclass(frozen=True)
class NoiseSchedule:
    """One modality's diffusion schedule, as its base model was trained (diffusers scheduler config fields)."""

    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000
    prediction_type: str = "epsilon"  # epsilon | v_prediction | sample
    set_alpha_to_one: bool = False
    timestep_spacing: str = "leading"
    steps_offset: int = 1
    # diffusers' DDIMScheduler fields: clamp every x0 estimate to [-range, range] before the update. Needed for
    # an epsilon model on a schedule whose last alpha-bar is ~0 (x0 = (x - s eps) / a divides by ~0.005)
    clip_sample: bool = False
    clip_sample_range: float = 1.0

    def __post_init__(self) -> None:
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"unknown beta_schedule {self.beta_schedule!r}; expected one of {BETA_SCHEDULES}")
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"unknown prediction_type {self.prediction_type!r}")
        if self.timestep_spacing not in SPACINGS:
            raise ValueError(f"unknown timestep_spacing {self.timestep_spacing!r}; expected one of {SPACINGS}")
        if self.num_train_timesteps < 2:
            raise ValueError("num_train_timesteps must be >= 2")
        if self.clip_sample and not self.clip_sample_range > 0:
            raise ValueError(f"clip_sample_range must be > 0, got {self.clip_sample_range}")

    def betas(self) -> torch.Tensor:
        return make_betas(self.beta_schedule, self.beta_start, self.beta_end, self.num_train_timesteps)

    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas(), dim=0)

    def final_alpha_cumprod(self) -> torch.Tensor:
        return torch.tensor(1.0) if self.set_alpha_to_one else self.alphas_cumprod()[0]

    @classmethod
    def from_dict(cls, d: dict) -> "NoiseSchedule":
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in names})


def make_betas(schedule: str, beta_start: float, beta_end: float, T: int) -> torch.Tensor:
    """Betas in float32, computed exactly as diffusers does so schedules match its schedulers bit for bit."""
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    if schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float32) ** 2
    if schedule in ("squaredcos_cap_v2", "cosine"):
        def abar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = [min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)]
        return torch.tensor(betas, dtype=torch.float32)
    raise ValueError(f"unknown beta schedule {schedule!r}; expected one of {BETA_SCHEDULES}")


def global_timesteps(num_steps: int, T: int, spacing: str = "leading", steps_offset: int = 0) -> list[int]:
    """The global timestep indices of an N-step sampler, largest first (diffusers' spacing rules)."""
    if not 1 <= num_steps <= T:
        raise ValueError(f"steps must be between 1 and {T}, got {num_steps}")
    if spacing == "leading":
        ratio = T // num_steps
        ts = [i * ratio + steps_offset for i in range(num_steps)]
    elif spacing == "trailing":
        ratio = T / num_steps
        ts = [int(round(T - i * ratio)) - 1 for i in range(num_steps)][::-1]
    elif spacing == "linspace":
        ts = [int(round(x)) for x in torch.linspace(0, T - 1, num_steps, dtype=torch.float64).tolist()]
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}")
    return sorted(ts, reverse=True)


def adjust_timesteps(global_ts: list[int], T: int, T_local: int, exponent: float) -> list[int]:
    """Map global indices to a modality's local ones: round(T_local (t/T)^exponent), t = index + 1 (eq. 8).

    The result is clamped to [0, T_local - 1] and made strictly decreasing: where rounding makes low-noise steps
    collide, each is lifted one index above its successor (walking up from the clean end), so no step is wasted.
    """
    local = []
    for i in global_ts:
        t = (i + 1) / T
        local.append(min(max(int(round(T_local * t**exponent)) - 1, 0), T_local - 1))
    for k in range(len(local) - 2, -1, -1):
        local[k] = max(local[k], local[k + 1] + 1)
    if local and local[0] > T_local - 1:
        raise ValueError(f"{len(global_ts)} steps cannot have strictly decreasing local timesteps below {T_local}")
    return local


def local_timesteps(global_ts: list[int], T: int, T_video: int, T_audio: int, gamma: float) -> tuple[list[int], list[int]]:
    """(m(t), n(t)) of seed 000 eq. 8: video exponent sqrt(gamma), audio exponent 1/sqrt(gamma)."""
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    s = math.sqrt(gamma)
    return adjust_timesteps(global_ts, T, T_video, s), adjust_timesteps(global_ts, T, T_audio, 1.0 / s)
