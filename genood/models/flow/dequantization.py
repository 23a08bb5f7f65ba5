"""Uniform dequantization of discrete images and the discrete likelihood it bounds (Theis, van den Oord &
Bethge 2016, "A note on the evaluation of generative models", §3.1; the RealNVP and Glow recipes).

An image with ``n_bins`` grey levels per channel is the integer array k ∈ {0, …, n−1}^D; genood's datamodules
hand it over as x = k / (n − 1) ∈ [0, 1] (256 levels for 8-bit data, 17 for scikit-learn's digits). A continuous
density p on [0, 1]^D defines a discrete model through the bins of width 1/n,

    P(k) = ∫_{[k/n, (k+1)/n)} p(u) du = n^{−D} · E_{ε ~ U[0,1)^D} [ p((k + ε)/n) ],

so log P(k) ≥ E_ε[log p((k + ε)/n)] − D log n (Jensen), the quantity a flow trained on (k + ε)/n maximises,
and log P(k) ≥ log (1/S) Σ_s p((k + ε_s)/n) − D log n for S samples (tighter as S grows; the importance-weighted
bound with the uniform proposal). ``− D log n`` is what turns the continuous density of the rescaled image into
the probability of the discrete one; with n = 256 the bits/dim −log₂ P(k)/D are the usual 8-bit numbers that
RealNVP and Glow report (their code adds D log 256 to the continuous NLL the same way).

Scoring must not depend on a sample's batch or DDP rank, so evaluation noise is either the bin centre
(ε = ½, a midpoint-rule estimate of the same integral, not a bound) or counter-based uniform noise keyed by
(seed, sample index, sample id) (:func:`counter_uniform`).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from genood.models.counter_noise import counter_normal


def to_levels(x: torch.Tensor, n_bins: int, tol: float = 1e-4) -> torch.Tensor:
    """The integer level k = round(x (n − 1)) ∈ {0, …, n − 1} of each entry of x ∈ [0, 1], as floats.

    Inputs between levels (a continuous OOD set, a perturbed training batch) are rounded to the nearest
    level, as saving them as an image with ``n_bins`` levels would. Values outside [0, 1] raise a ValueError.
    """
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    if x.numel() and (x.min() < -tol or x.max() > 1 + tol):
        raise ValueError(f"the image flow expects inputs in [0, 1] (level k of n_bins={n_bins} as k/(n_bins-1)); got "
                         f"values in [{x.min().item():.4g}, {x.max().item():.4g}]. Check the datamodule's scaling.")
    x = x if x.is_floating_point() else x.float()
    return torch.round(x * (n_bins - 1)).clamp_(0, n_bins - 1)


def dequantize(levels: torch.Tensor, noise: torch.Tensor, n_bins: int) -> torch.Tensor:
    """u = (k + ε) / n ∈ [0, 1): the point of level k's bin at offset ε ∈ [0, 1)."""
    return (levels + noise) / n_bins


def counter_uniform(seed: int, index: torch.Tensor, sample_id: torch.Tensor, shape: Sequence[int],
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U(0, 1) noise ``[R, *shape]`` whose row r depends only on (seed, index[r], sample_id[r], element).

    The counter-based N(0, 1) draws of :func:`genood.models.counter_noise.counter_normal` mapped through the
    normal CDF (in float64, so the map is exact to float32 precision); never exactly 0 or 1.
    """
    z = counter_normal(seed, index, sample_id, stream=0x51F7, shape=shape, dtype=torch.float64)
    u = torch.special.ndtr(z)
    return u.clamp_(1e-7, 1 - 1e-7).to(dtype)


def discrete_log_likelihood(log_density: torch.Tensor, num_dims: int, n_bins: int) -> torch.Tensor:
    """log P(k) estimate from the continuous log-density of u = (k + ε)/n: log p(u) − D log n (nats)."""
    return log_density - num_dims * math.log(n_bins)


def importance_weighted(log_density: torch.Tensor, num_samples: int) -> torch.Tensor:
    """log (1/S) Σ_s p(u_s) from ``[S·B]`` log-densities stacked sample-major (row s·B + b) → ``[B]``."""
    if num_samples == 1:
        return log_density
    return torch.logsumexp(log_density.view(num_samples, -1), dim=0) - math.log(num_samples)


def index_or_position(index: Optional[torch.Tensor], batch_size: int, device: torch.device) -> torch.Tensor:
    """The samples' dataset indices, or (without them) their positions in the batch."""
    if index is None:
        return torch.arange(batch_size, device=device)
    index = torch.as_tensor(index, device=device).long().reshape(-1)
    if index.shape[0] != batch_size:
        raise ValueError(f"index has {index.shape[0]} entries for a batch of {batch_size}")
    return index
