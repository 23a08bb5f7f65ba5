"""MSMA's noise levels, training objective and score-norm features (Mahmood, Oliva, Styner, ICLR 2021).

* Noise levels (released ``utils.get_sigma_levels``): L geometric levels from σ_1 = σ_max down to
  σ_L = σ_min, σ_i = exp(linspace(ln σ_max, ln σ_min, L)); the paper uses L = 10, σ_max = 1, σ_min = 0.01.
* Denoising score matching with λ(σ) = σ² (NCSN, Song & Ermon 2019, Eq. 5-6; released ``losses.dsm_loss``):

      ℓ(θ) = E_x E_i E_{x̃ ~ N(x, σ_i² I)} [ ½ σ_i² ‖s_θ(x̃, σ_i) + (x̃ − x) / σ_i²‖² ],

  the squared norm summed over all pixels and channels, averaged over the batch, one uniformly random level
  index i per example.
* Score-norm features (the paper's method; released ``compute_weighted_scores``): for a **clean** input x (no
  noise added) and every level i,

      n_i(x) = ‖σ_i · s_θ(x, σ_i)‖₂,

  the L2 norm over all pixels and channels, weighted by σ_i (not σ_i²). n(x) ∈ R^L is the vector the
  auxiliary density models (GMM, flow, kNN) are fit on.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [R, ...], level index [R]) -> score [R, ...]


def geometric_sigmas(sigma_max: float = 1.0, sigma_min: float = 0.01, num_levels: int = 10) -> torch.Tensor:
    """σ_1 > … > σ_L, geometric from ``sigma_max`` to ``sigma_min`` (float64 ``[L]``; paper: 1 → 0.01, L = 10)."""
    if num_levels < 1:
        raise ValueError(f"num_levels must be >= 1, got {num_levels}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if num_levels == 1:
        return torch.tensor([float(sigma_min)], dtype=torch.float64)  # the released code's single-level case
    logs = torch.linspace(torch.log(torch.tensor(float(sigma_max))).item(),
                          torch.log(torch.tensor(float(sigma_min))).item(), num_levels, dtype=torch.float64)
    return logs.exp()


def _per_example(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """σ ``[B]`` broadcast against ``like`` ``[B, ...]``."""
    return sigma.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def dsm_loss(score: torch.Tensor, x_tilde: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Batch mean of ½ σ² ‖score + (x̃ − x)/σ²‖² (sum over every non-batch dimension); ``sigma`` is ``[B]``."""
    s = _per_example(sigma, x)
    target = (x_tilde - x) / s.pow(2)
    return (0.5 * (score + target).pow(2).flatten(1).sum(1) * s.flatten().pow(2)).mean()


def perturb(x: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x̃ = x + σ ε with σ ``[B]`` per example."""
    return x + _per_example(sigma, x) * noise


def score_norms(score_fn: ScoreFn, x: torch.Tensor, sigmas: torch.Tensor, max_rows: Optional[int] = None) -> torch.Tensor:
    """n_i(x) = ‖σ_i s(x, σ_i)‖₂ for every level, ``[B, L]`` float32 (released ``compute_weighted_scores``).

    All levels go through **one** call of ``score_fn``: the batch is stacked L times along the batch
    dimension (level-major rows: level 0 for every sample, then level 1, ...), with the level index of each
    row. ``max_rows`` splits that stacked batch into chunks of at most this many rows (bounded memory on
    large images); the result does not depend on it.
    """
    B, L = x.shape[0], sigmas.shape[0]
    rows = x.repeat(L, *([1] * (x.ndim - 1)))                                  # [L*B, ...]
    levels = torch.arange(L, device=x.device).repeat_interleave(B)            # [L*B]
    step = rows.shape[0] if not max_rows else max(1, int(max_rows))
    out = []
    for start in range(0, rows.shape[0], step):
        lv = levels[start:start + step]
        s = score_fn(rows[start:start + step], lv).float()
        w = s.flatten(1) * sigmas.to(device=x.device, dtype=torch.float32)[lv, None]
        out.append(torch.linalg.vector_norm(w, dim=1))
    return torch.cat(out).view(L, B).T.contiguous()
