"""Diagonal-Gaussian stochastic layers of the HVAE (reference: ``GaussianConv2d`` / ``GaussianDense``).

A layer z_i owns two heads: the posterior head q(z_i | h_i) on the inference features and, except at the
top, the conditional-prior head p(z_i | z_{i+1}) on the generative features. Each head is an activation
followed by a weight-normed 3x3 convolution (conv latents, shape ``(F, H, W)``) or a dense map (dense
latents, shape ``(F,)``) producing a mean and a pre-scale; σ = softplus_β(pre-scale) with β = ln 2 (so a 0
output gives σ = 1), clamped at ≥ 1e-6. The top prior p(z_L) = N(0, I) is fixed.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import Conv, Dense, Shape, make_activation

MIN_STD = 1e-6
LOG_2PI = math.log(2 * math.pi)


class Gaussian(NamedTuple):
    """A diagonal Gaussian's mean and std, both ``[R, *latent_shape]``."""

    mu: torch.Tensor
    sigma: torch.Tensor

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Elementwise log N(z; μ, σ²)."""
        return -0.5 * ((z - self.mu) / self.sigma) ** 2 - torch.log(self.sigma) - 0.5 * LOG_2PI


class Posterior(NamedTuple):
    """One layer's inference result: the value z used on the inference path and q's parameters."""

    z: torch.Tensor
    q: Gaussian


def std_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """σ = softplus(raw; β = ln 2) clamped at ≥ 1e-6 (softplus_β(0) = 1)."""
    return F.softplus(raw, beta=math.log(2.0)).clamp(min=MIN_STD)


def rows_mask(mask: Optional[torch.Tensor], like: torch.Tensor) -> Optional[torch.Tensor]:
    """A per-row bool mask ``[R]`` viewed to broadcast against ``like`` ``[R, ...]``."""
    return None if mask is None else mask.view(-1, *([1] * (like.ndim - 1)))


class GaussianHead(nn.Module):
    """act -> conv3x3 / dense -> (μ, σ) of a ``latent_shape`` Gaussian."""

    def __init__(self, in_shape: Shape, kind: str, features: int, activation: str, weightnorm: bool,
                 kernel_size: int = 3):
        super().__init__()
        self.act = make_activation(activation)
        if kind == "conv":
            self.net = Conv(in_shape, 2 * features, kernel_size, 1, False, weightnorm)
        else:
            self.net = Dense(in_shape, (2 * features,), weightnorm)

    def forward(self, h: torch.Tensor) -> Gaussian:
        mu, raw = self.net(self.act(h)).chunk(2, dim=1)
        return Gaussian(mu, std_from_raw(raw))


class GaussianLatent(nn.Module):
    """Stochastic layer z_i: ``kind`` "conv" (shape ``(F, H, W)`` of the inference features) or "dense"
    (shape ``(F,)``). ``p_in_shape`` None marks the top layer (prior N(0, I))."""

    def __init__(self, kind: str, features: int, q_in_shape: Shape, p_in_shape: Optional[Shape],
                 activation: str = "relu", weightnorm: bool = True):
        super().__init__()
        if kind not in ("conv", "dense"):
            raise ValueError(f"latent kind must be 'conv' or 'dense', got {kind!r}")
        if features < 1:
            raise ValueError(f"latent_features must be >= 1, got {features}")
        self.kind = kind
        self.shape: Shape = (features, *q_in_shape[1:]) if kind == "conv" else (features,)
        self.q_head = GaussianHead(q_in_shape, kind, features, activation, weightnorm)
        self.p_head = GaussianHead(p_in_shape, kind, features, activation, weightnorm) if p_in_shape else None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def posterior(self, h: torch.Tensor, eps: Optional[torch.Tensor] = None,
                  use_mode: Optional[torch.Tensor] = None) -> Posterior:
        """q(z_i | h_i) and z = μ + σ ε (ε ~ N(0, I) when not given); rows with ``use_mode`` take z = μ."""
        q = self.q_head(h)
        if eps is None:
            eps = torch.randn_like(q.mu)
        z = q.mu + q.sigma * eps
        if use_mode is not None:
            z = torch.where(rows_mask(use_mode, z), q.mu, z)
        return Posterior(z, q)

    def prior(self, d: Optional[torch.Tensor], like: torch.Tensor) -> Gaussian:
        """p(z_i | z_{i+1}) from the generative features ``d``; N(0, I) at the top (shaped like ``like``)."""
        if self.p_head is None:
            return Gaussian(torch.zeros_like(like), torch.ones_like(like))
        return self.p_head(d)
