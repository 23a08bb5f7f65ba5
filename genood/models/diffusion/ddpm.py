"""The discrete DDPM (Ho et al. 2020) as an option beside the sub-VP SDE, on diffusers' ``DDPMScheduler``.

Training: t ~ U{0, …, T − 1}, x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) z (``DDPMScheduler.add_noise``), loss = mean over
pixels of ‖ε_θ(x_t, t) − z‖² (DDPM Eq. 14). Linear β from 1e-4 to 0.02 over T = 1000: the VP SDE with
β_min = 0.1, β_max = 20 discretised with N = 1000 (Song et al. 2021, Eq. 10–11).

Sampling visits the scheduler's timesteps for ``steps`` inference steps (``set_timesteps``; all T when
steps = T) and takes ancestral steps with the fixed-small variance (DDPM Eq. 6–7, ``variance_type=
"fixed_small"``); :meth:`DiscreteDDPM.reverse_step` computes the same value as ``DDPMScheduler.step`` for the
same noise z (tested), but takes z as an argument so that the noise can be keyed per sample.
"""

from __future__ import annotations

import torch

from .sde import _bcast


class DiscreteDDPM:
    """ε-prediction DDPM with diffusers' ``DDPMScheduler`` (module docstring)."""

    name = "ddpm"

    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        from diffusers import DDPMScheduler

        self.T = int(num_train_timesteps)
        self.scheduler = DDPMScheduler(num_train_timesteps=self.T, beta_start=beta_start, beta_end=beta_end,
                                       beta_schedule="linear", variance_type="fixed_small", clip_sample=False,
                                       prediction_type="epsilon")
        self.alphas_cumprod = self.scheduler.alphas_cumprod.double()

    def training_inputs(self, x0: torch.Tensor, u: torch.Tensor, z: torch.Tensor):
        """``(x_t, network time, target)``: t = ⌊u T⌋, x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) z, target z."""
        t = (u.double() * self.T).long().clamp_(0, self.T - 1)
        abar = self.alphas_cumprod.to(x0.device)[t]
        x_t = _bcast(abar.sqrt(), x0) * x0 + _bcast((1 - abar).sqrt(), x0) * z
        return x_t, t.to(x0.device), z

    def grid(self, steps: int) -> list[int]:
        """The scheduler's timesteps for ``steps`` inference steps, highest first."""
        if not 1 <= steps <= self.T:
            raise ValueError(f"the DDPM process takes 1 <= steps <= T = {self.T}, got {steps}")
        self.scheduler.set_timesteps(steps)
        return [int(t) for t in self.scheduler.timesteps]

    def net_time(self, t: int) -> int:
        return t

    def _abar(self, t: int) -> float:
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def marginal(self, t: int) -> tuple[float, float]:
        a = self._abar(t)
        return a ** 0.5, (1.0 - a) ** 0.5

    def known_at(self, k: int, grid: list[int]) -> tuple[float, float]:
        return self.marginal(grid[k])

    def last_known(self, k_last: int, grid: list[int]) -> tuple[float, float]:
        """After the last step (to t = −1, ᾱ = 1) the known pixels are the data itself."""
        return 1.0, 0.0

    def reverse_step(self, x: torch.Tensor, eps: torch.Tensor, k: int, grid: list[int], z: torch.Tensor):
        """x_{t'} from x_t, t = grid[k], t' = grid[k + 1] (−1 after the last): the posterior mean
        μ = √ᾱ_{t'} β'_t / (1 − ᾱ_t) x̂_0 + √α'_t (1 − ᾱ_{t'}) / (1 − ᾱ_t) x_t with x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t,
        α'_t = ᾱ_t / ᾱ_{t'}, β'_t = 1 − α'_t, plus √β̃ z with β̃ = (1 − ᾱ_{t'}) / (1 − ᾱ_t) β'_t (none at t = 0)."""
        t = grid[k]
        prev = grid[k + 1] if k + 1 < len(grid) else -1
        a_t, a_prev = self._abar(t), self._abar(prev)
        beta = 1.0 - a_t / a_prev
        x0 = (x - (1.0 - a_t) ** 0.5 * eps) / a_t ** 0.5
        mean = (a_prev ** 0.5 * beta / (1.0 - a_t)) * x0 + ((1.0 - beta) ** 0.5 * (1.0 - a_prev) / (1.0 - a_t)) * x
        if t == 0:
            return mean, mean
        var = max((1.0 - a_prev) / (1.0 - a_t) * beta, 1e-20)
        return mean, mean + var ** 0.5 * z

    def __repr__(self) -> str:
        return f"DiscreteDDPM(T={self.T})"
