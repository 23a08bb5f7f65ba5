"""The sub-VP SDE against closed forms and against its own drift/diffusion; the DDPM option against diffusers."""

import math

import numpy as np
import pytest
import torch

from genood.models.diffusion.ddpm import DiscreteDDPM
from genood.models.diffusion.sde import SubVPSDE


def _rk4_moments(sde, t_end, n=800):
    """Mean factor m and variance v of x(t) given x(0) = 1, from the SDE's own coefficients:
    dm/dt = f(t) m, dv/dt = 2 f(t) v + g(t)^2 (f: drift coefficient, g: diffusion), integrated with RK4."""
    def rhs(t, y):
        f = float(sde.drift_coeff(t))
        g2 = float(sde.diffusion(t)) ** 2
        return np.array([f * y[0], 2 * f * y[1] + g2])

    y, h = np.array([1.0, 0.0]), t_end / n
    for i in range(n):
        t = i * h
        k1 = rhs(t, y)
        k2 = rhs(t + h / 2, y + h / 2 * k1)
        k3 = rhs(t + h / 2, y + h / 2 * k2)
        k4 = rhs(t + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


def test_sub_vp_marginals_match_the_closed_forms_and_the_sde():
    sde = SubVPSDE(0.1, 20.0)
    for t in (1e-3, 0.1, 0.37, 0.8, 1.0):
        B = 0.1 * t + 0.5 * t * t * 19.9                               # closed-form integral of beta
        quad = np.trapezoid([0.1 + s * 19.9 for s in np.linspace(0, t, 20001)], dx=t / 20000)
        assert float(sde.int_beta(torch.tensor(t, dtype=torch.float64))) == pytest.approx(quad, rel=1e-9)
        assert float(sde.mean_coeff(t)) == pytest.approx(math.exp(-0.5 * B), rel=1e-12)
        assert float(sde.std(t)) == pytest.approx(1 - math.exp(-B), rel=1e-12)
        m, v = _rk4_moments(sde, t)                                    # the SDE itself (Eq. 12) implies them
        assert m == pytest.approx(float(sde.mean_coeff(t)), rel=1e-6)
        assert math.sqrt(v) == pytest.approx(float(sde.std(t)), rel=1e-4, abs=1e-7)
        assert float(sde.std(t)) ** 2 <= 1 - math.exp(-B)              # never above the VP variance


def test_sub_vp_mean_is_the_continuous_limit_of_ddpm_sqrt_alpha_bar():
    """DDPMScheduler with N steps and beta_i = beta(t_i)/N: sqrt(alpha_bar) at t = (i+1)/N tends to
    exp(-B(t)/2); the error shrinks like 1/N."""
    from diffusers import DDPMScheduler

    sde = SubVPSDE(0.1, 20.0)
    errors = {}
    for N in (1000, 10000, 100000):
        s = DDPMScheduler(num_train_timesteps=N, beta_start=0.1 / N, beta_end=20.0 / N, beta_schedule="linear")
        t = torch.arange(1, N + 1, dtype=torch.float64) / N
        errors[N] = (s.alphas_cumprod.double().sqrt() - sde.mean_coeff(t)).abs().max().item()
    assert errors[100000] < 2e-4
    assert errors[1000] / errors[10000] > 5 and errors[10000] / errors[100000] > 5


def test_euler_maruyama_reverse_sde_recovers_gaussian_data_with_the_exact_score():
    """Data N(0, s0^2): p_t = N(0, a^2 s0^2 + sigma^2), so the exact noise prediction is eps = sigma x / v.
    Integrating the reverse SDE from the prior with it must give back std s0."""
    sde, s0, N = SubVPSDE(0.1, 20.0), 0.5, 200
    g = torch.Generator().manual_seed(0)
    grid = sde.grid(N)
    x = torch.randn(20000, dtype=torch.float64, generator=g)
    for k, t in enumerate(grid):
        a, sigma = sde.marginal(t)
        eps = sigma * x / (a * a * s0 * s0 + sigma * sigma)
        _, x = sde.reverse_step(x, eps, k, grid, torch.randn(x.shape, dtype=torch.float64, generator=g))
    assert x.std().item() == pytest.approx(s0, rel=0.03)


def test_ddpm_reverse_step_matches_diffusers_step_for_the_same_noise():
    p = DiscreteDDPM(1000)
    for steps in (1000, 20):
        grid = p.grid(steps)
        p.scheduler.set_timesteps(steps)
        for k in (0, len(grid) // 2, len(grid) - 1):
            x, e = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
            lib = p.scheduler.step(e, grid[k], x, generator=torch.Generator().manual_seed(5)).prev_sample
            z = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(5))
            _, ours = p.reverse_step(x, e, k, grid, z)
            torch.testing.assert_close(ours, lib, rtol=1e-4, atol=1e-5)


def test_ddpm_training_inputs_match_add_noise():
    p = DiscreteDDPM(1000)
    x0, z, u = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4), torch.rand(5)
    x_t, t, target = p.training_inputs(x0, u, z)
    torch.testing.assert_close(x_t, p.scheduler.add_noise(x0, z, t), rtol=1e-5, atol=1e-6)
    assert torch.equal(target, z) and t.dtype == torch.long and (t >= 0).all() and (t < 1000).all()
