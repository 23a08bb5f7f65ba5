"""Probabilistic PCA as a plain torch module (Tipping & Bishop 1999, "Probabilistic principal component
analysis", JRSS-B 61(3)).

Generative model (eq. 2–3):  z ~ N(0, I_q),  x = W z + μ + ε,  ε ~ N(0, σ² I_D), so that marginally

    x ~ N(μ, C),   C = W Wᵀ + σ² I_D                                              (eq. 4)
    log p(x) = −½ [D log 2π + log|C| + (x − μ)ᵀ C⁻¹ (x − μ)].

``torch.distributions.LowRankMultivariateNormal`` evaluates this with the Woodbury identity and the matrix
determinant lemma in O(D q²), never forming the D×D matrix. The maximum-likelihood solution is closed form
(eq. 7–8: W spans the top-q sample-covariance eigenvectors, σ² = mean of the discarded eigenvalues);
here it is reached by gradient descent on the exact marginal NLL, so the same module trains under DDP and
on any device.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.distributions import LowRankMultivariateNormal


class PPCANetwork(nn.Module):
    """A Gaussian density N(μ, WWᵀ + σ²I) on D-dimensional vectors with a rank-q factor W.

    σ² = exp(log_noise_var) + min_noise_var, so the covariance stays positive definite even on data with
    constant dimensions (e.g. the blank border pixels of digits).
    """

    def __init__(self, num_dims: int, latent_dim: int = 16, min_noise_var: float = 1e-6):
        super().__init__()
        if num_dims < 1:
            raise ValueError(f"PPCANetwork: num_dims must be >= 1, got {num_dims}")
        if not 1 <= latent_dim <= num_dims:
            raise ValueError(f"PPCANetwork: latent_dim must be in [1, num_dims={num_dims}], got {latent_dim}")
        if min_noise_var < 0:
            raise ValueError(f"PPCANetwork: min_noise_var must be >= 0, got {min_noise_var}")
        self.num_dims, self.latent_dim, self.min_noise_var = num_dims, latent_dim, float(min_noise_var)
        self.loc = nn.Parameter(torch.zeros(num_dims))
        self.cov_factor = nn.Parameter(0.01 * torch.randn(num_dims, latent_dim))
        self.log_noise_var = nn.Parameter(torch.zeros(()))
        self.register_buffer("initialized", torch.tensor(False))

    @property
    def noise_var(self) -> torch.Tensor:
        """σ² (a 0-d tensor)."""
        return self.log_noise_var.exp() + self.min_noise_var

    def distribution(self) -> LowRankMultivariateNormal:
        """The marginal N(μ, WWᵀ + σ²I) (Tipping & Bishop eq. 4)."""
        return LowRankMultivariateNormal(self.loc, self.cov_factor, self.noise_var.expand(self.num_dims))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats for a batch ``[B, D]`` → ``[B]``."""
        if x.ndim != 2 or x.shape[1] != self.num_dims:
            raise ValueError(f"PPCANetwork.log_prob expects [B, {self.num_dims}], got {tuple(x.shape)}")
        return self.distribution().log_prob(x)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> None:
        """Start from the batch's moments: μ = the batch mean, σ² = its mean per-dimension variance (the
        isotropic fit), and a small random W (1/10 of that scale) that gradient descent then grows."""
        if x.ndim != 2 or x.shape[1] != self.num_dims or x.shape[0] < 2:
            raise ValueError(f"PPCANetwork.init_from_data needs >= 2 rows of shape [B, {self.num_dims}], got "
                             f"{tuple(x.shape)}")
        x = x.to(self.loc.dtype)
        self.loc.copy_(x.mean(0))
        var = x.var(0, unbiased=False).mean().clamp_min(max(self.min_noise_var, 1e-12) * 2)
        self.log_noise_var.fill_(math.log(max(var.item() - self.min_noise_var, 1e-12)))
        w = torch.randn(self.cov_factor.shape, generator=generator, device="cpu").to(self.cov_factor)
        self.cov_factor.copy_(w * 0.1 * var.sqrt())
        self.initialized.fill_(True)
