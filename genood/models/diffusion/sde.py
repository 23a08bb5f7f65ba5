"""The continuous-time sub-VP SDE (Song et al., ICLR 2021, §3.4), the process LMD's models are trained with.

diffusers 0.42 ships no VP or sub-VP SDE scheduler (only ``ScoreSdeVeScheduler``), so the equations live here.
With a linear noise rate on t ∈ [0, 1],

    β(t) = β_min + t (β_max − β_min),      B(t) = ∫_0^t β(s) ds = β_min t + ½ t² (β_max − β_min),

the sub-VP SDE (Eq. 12) is

    dx = −½ β(t) x dt + √(β(t) (1 − e^{−2 B(t)})) dw,

with the Gaussian perturbation kernel (Appendix B, Eq. 29)

    p_0t(x(t) | x(0)) = N( x(0) e^{−½ B(t)},  [1 − e^{−B(t)}]² I ).

Its mean equals the VP SDE's (Eq. 11, whose variance is 1 − e^{−B(t)}); the sub-VP variance is the VP one
squared, so never larger. The VP mean is the continuous limit of DDPM's √ᾱ: with N steps and
β_i = β(t_i) / N, log ᾱ = Σ log(1 − β_i) → −B(t) as N → ∞.

Training (denoising score matching, Eq. 7, the released ``losses.py`` with ``reduce_mean=True`` and
``likelihood_weighting=False``): t ~ U(ε_train, 1) with ε_train = 1e-5, x_t = e^{−½B} x_0 + σ(t) z, loss =
mean over pixels of ‖ε_θ(x_t, 999 t) − z‖²; the score is s_θ(x, t) = −ε_θ(x, 999 t) / σ(t) (the network sees
t scaled by 999, as the released ``get_score_fn`` does for continuous-time VP-family models).

Sampling: the reverse-time SDE (Eq. 6) dx = [f(x, t) − g(t)² ∇_x log p_t(x)] dt + g(t) dw̄, integrated with
Euler–Maruyama on N times t_k = linspace(1, ε, N) (ε = 1e-3 for the sub-VP SDE in the released
``get_sde_and_eps``) with the released step size Δt = 1/N:

    x̄ = x − [f(x, t_k) − g(t_k)² s_θ(x, t_k)] Δt,     x ← x̄ + g(t_k) √Δt z.
"""

from __future__ import annotations

import math

import torch


class SubVPSDE:
    """The sub-VP SDE with a linear β(t) (module docstring). Times are floats or tensors in [0, 1]."""

    name = "subvp"
    time_scale = 999.0  # the network is conditioned on 999 t

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, sample_eps: float = 1e-3,
                 train_eps: float = 1e-5):
        if not 0 < beta_min < beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
        if not 0 < sample_eps < 1 or not 0 < train_eps < 1:
            raise ValueError(f"sample_eps and train_eps must lie in (0, 1), got {sample_eps}, {train_eps}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self.sample_eps, self.train_eps = float(sample_eps), float(train_eps)

    # ---- the process ------------------------------------------------------------------------------------
    def beta(self, t):
        """β(t) = β_min + t (β_max − β_min)."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def int_beta(self, t):
        """B(t) = ∫_0^t β(s) ds = β_min t + ½ t² (β_max − β_min)."""
        return self.beta_min * t + 0.5 * t * t * (self.beta_max - self.beta_min)

    def mean_coeff(self, t):
        """e^{−½ B(t)}: the perturbation kernel's mean is this times x(0) (the VP SDE's, Eq. 29)."""
        return torch.exp(-0.5 * self.int_beta(torch.as_tensor(t, dtype=torch.float64)))

    def std(self, t):
        """σ(t) = 1 − e^{−B(t)}: the sub-VP perturbation kernel's standard deviation (Eq. 29)."""
        return -torch.expm1(-self.int_beta(torch.as_tensor(t, dtype=torch.float64)))

    def drift_coeff(self, t):
        """f(x, t) = −½ β(t) x: the coefficient of x."""
        return -0.5 * self.beta(torch.as_tensor(t, dtype=torch.float64))

    def diffusion(self, t):
        """g(t) = √(β(t) (1 − e^{−2 B(t)})) (Eq. 12)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        return torch.sqrt(self.beta(t) * -torch.expm1(-2.0 * self.int_beta(t)))

    # ---- training --------------------------------------------------------------------------------------
    def training_inputs(self, x0: torch.Tensor, u: torch.Tensor, z: torch.Tensor):
        """``(x_t, network time, target)`` for uniforms ``u`` ``[B]`` and noise ``z`` like ``x0``:
        t = ε_train + (1 − ε_train) u, x_t = e^{−½B} x_0 + σ(t) z, target z."""
        t = self.train_eps + (1.0 - self.train_eps) * u.double()
        a = _bcast(self.mean_coeff(t), x0)
        s = _bcast(self.std(t), x0)
        return a * x0 + s * z, (self.time_scale * t).to(x0.dtype), z

    # ---- sampling (the inpainter's interface) ----------------------------------------------------------
    def grid(self, steps: int) -> list[float]:
        """The N times visited, linspace(1, ε, N) (the released ``get_pc_inpainter``)."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        return torch.linspace(1.0, self.sample_eps, steps, dtype=torch.float64).tolist()

    def net_time(self, t: float) -> float:
        return self.time_scale * t

    def marginal(self, t: float) -> tuple[float, float]:
        """(mean coefficient, std) of p_0t at ``t``."""
        return float(self.mean_coeff(t)), float(self.std(t))

    def reverse_step(self, x: torch.Tensor, eps: torch.Tensor, k: int, grid: list[float], z: torch.Tensor):
        """One Euler–Maruyama step of the reverse SDE from t_k with Δt = 1/N: returns (x̄, x̄ + g √Δt z)."""
        t = grid[k]
        dt = 1.0 / len(grid)
        beta, g = float(self.beta(t)), float(self.diffusion(t))
        score = eps * (-1.0 / float(self.std(t)))
        mean = x + (0.5 * beta * x + g * g * score) * dt   # x − [f − g² s] Δt with f = −½ β x
        return mean, mean + (g * math.sqrt(dt)) * z

    def last_known(self, k_last: int, grid: list[float]) -> tuple[float, float]:
        """(mean coefficient, std) of the known pixels written after the last step: the released inpainter
        overwrites them at the step's own time t_k (here ε)."""
        return self.marginal(grid[k_last])

    def known_at(self, k: int, grid: list[float]) -> tuple[float, float]:
        """(mean coefficient, std) of the forward-diffused known pixels fed to the network at step k."""
        return self.marginal(grid[k])

    def __repr__(self) -> str:
        return f"SubVPSDE(beta_min={self.beta_min}, beta_max={self.beta_max}, sample_eps={self.sample_eps})"


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.ndim - 1)))
