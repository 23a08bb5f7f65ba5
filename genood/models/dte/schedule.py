"""The noise schedules DTE and its DDPM baseline share (the family README, "The method" and "DDPM reconstruction variants").

Both use DDPM's linear β schedule from 1e-4 to 1e-2 (note: not diffusers' default 0.02) over T steps,
taken from diffusers' :class:`~diffusers.DDPMScheduler` (``beta_schedule="linear"``), so ᾱ_t = Π_{s≤t}(1 − β_s)
is exactly the library's ``alphas_cumprod``. Timesteps are 0-indexed, t = 0..T−1.

DTE diffuses **without drift** ("variance only", the released code's ``drift=False``):

    x_t = x_0 + σ_t ε,   σ_t² = 1 − ᾱ_t,   ε ~ N(0, I)                                  (DTE Eq. 3)

so σ_t² ∈ [1e-4, 0.781] for T = 300 and [1e-4, 0.868] for T = 400. The DDPM baseline uses the usual
x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (DDPM Eq. 4).
"""

from __future__ import annotations

import torch

BETA_START = 1e-4
BETA_END = 1e-2


def make_ddpm_scheduler(T: int, beta_start: float = BETA_START, beta_end: float = BETA_END):
    """diffusers' DDPMScheduler with DTE's linear β, ε-prediction, the fixed-small posterior variance β̃_t,
    and **no clipping** of the predicted x_0 (standard-scaled tabular data are not confined to [−1, 1])."""
    from diffusers import DDPMScheduler

    if T < 2:
        raise ValueError(f"the diffusion needs T >= 2 steps, got {T}")
    return DDPMScheduler(num_train_timesteps=T, beta_start=beta_start, beta_end=beta_end, beta_schedule="linear",
                         prediction_type="epsilon", variance_type="fixed_small", clip_sample=False)


def sigma2_grid(T: int, beta_start: float = BETA_START, beta_end: float = BETA_END) -> torch.Tensor:
    """σ_t² = 1 − ᾱ_t for t = 0..T−1 (float32 ``[T]``), DTE's variance-only noise levels."""
    return (1.0 - make_ddpm_scheduler(T, beta_start, beta_end).alphas_cumprod).float()


def variance_only_noise(x0: torch.Tensor, sigma2_t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = x_0 + σ_t ε (DTE Eq. 3) for per-sample variances ``sigma2_t [B]`` and inputs ``x0 [B, d]``."""
    return x0 + sigma2_t.sqrt().unsqueeze(1) * noise


def time_bins(t: torch.Tensor, T: int, num_bins: int) -> torch.Tensor:
    """DTE-C's class of timestep t: clamp(⌊num_bins · t / T⌋, 0, num_bins − 1) (long ``[B]``)."""
    return torch.div(t * num_bins, T, rounding_mode="floor").clamp(0, num_bins - 1).long()
