"""DTE's "PlanarFlow" baseline (Livernoche et al., ICLR 2024; released ``baselines/normalizing_flow.py``), layer
for layer.

K = 10 planar maps applied to the data, x → z, each

    f(z) = z + s · tanh(wᵀz + b),   log|det ∂f/∂z| = log(|1 + (1 − tanh²(wᵀz + b)) wᵀs| + 10⁻⁶)

(Rezende & Mohamed 2015, eq. 10–12, with s in place of their u), w, s ~ 0.01 · N(0, I), b ~ 0.01 · N(0, 1), and
log p(x) = Σ_d log N(z_d; 0, 1) + Σ_k log|det ∂f_k/∂z|. The released layer does **not** apply Rezende &
Mohamed's û constraint (wᵀu ≥ −1) that keeps each map invertible, so this "density" need not be normalised:
it is reproduced as released, which is why it is written here and not taken from normflows (whose ``Planar``
applies the û constraint, a different map) or nflows (no planar layer).

The released scoring has a broadcasting slip: the summed log-determinant is ``[B, 1]`` and the base term
``[B]``, so ``log_prob = base + log_det`` becomes ``[B, B]`` with entry (i, j) = base_j + logdet_i, and
``predict_score`` returns ``−log_prob.mean(1)`` = −(logdet_i + mean_j base_j): the per-sample **base density**
is dropped and the sample's own log-determinant kept, plus one constant over the scored batch (the whole test
set) that no ranking sees. The released score therefore ranks by −Σ_k log|det ∂f_k(x)| alone
(``planar_released``); ``nll`` is the per-sample −(base_i + logdet_i). The training loss, −mean over the same
``[B, B]`` matrix, equals the correct −mean_i(base_i + logdet_i), so training is unaffected.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PlanarLayer(nn.Module):
    """f(z) = z + s · tanh(wᵀz + b) without the invertibility constraint (released ``PlanarFlow``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, dim) * 0.01)
        self.bias = nn.Parameter(torch.randn(1) * 0.01)
        self.scale = nn.Parameter(torch.randn(1, dim) * 0.01)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(z) ``[B, D]``, log|det ∂f/∂z| ``[B]``), the released ``log_abs_det_jacobian`` (+10⁻⁶ inside the log)."""
        a = torch.tanh(z @ self.weight.t() + self.bias)               # [B, 1]
        det = 1 + ((1 - a ** 2) * self.weight) @ self.scale.t()        # [B, 1]
        return z + a * self.scale, torch.log(det.abs() + 1e-6).squeeze(1)


class PlanarFlowNetwork(nn.Module):
    """K released planar layers on D-dimensional vectors with a standard normal base (module docstring)."""

    def __init__(self, dim: int, num_layers: int = 10):
        super().__init__()
        if dim < 1 or num_layers < 1:
            raise ValueError(f"PlanarFlowNetwork needs dim >= 1 and num_layers >= 1, got {dim}, {num_layers}")
        self.layers = nn.ModuleList(PlanarLayer(dim) for _ in range(num_layers))

    def log_prob_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ_d log N(z_d; 0, 1), Σ_k log|det ∂f_k|) per row, each ``[B]``, with z = f_K ∘ … ∘ f_1(x)."""
        z, log_det = x, x.new_zeros(x.shape[0])
        for layer in self.layers:
            z, ld = layer(z)
            log_det = log_det + ld
        base = -0.5 * (z ** 2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)
        return base, log_det

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(f(x); 0, I) + log|det ∂f/∂x| ``[B]`` (the per-row sum, not the released ``[B, B]`` matrix)."""
        base, log_det = self.log_prob_terms(x)
        return base + log_det
