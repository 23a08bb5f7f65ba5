"""DTE's analytic posterior over the diffusion time (Livernoche et al. 2024, DTE-NP; the family README, "The method").

For one clean point x_0 and the variance-only forward process, p(x | σ²) = N(x; x_0, σ² I_d). With a flat
prior on σ² the posterior is an inverse gamma (DTE Eq. 6):

    p(σ² | x, x_0) ∝ (σ²)^{−d/2} exp(−‖x − x_0‖² / (2σ²)) = InvGamma(σ²; α = d/2 − 1, β = ‖x − x_0‖² / 2)

with mode β / (α + 1) = ‖x − x_0‖² / d and mean β / (α − 1) = ‖x − x_0‖² / (d − 4). DTE-NP replaces the
mixture over the training set by one InvGamma whose β is half the mean of the K smallest squared distances
(DTE Eq. 8), evaluates it on the discrete grid σ_t², normalises over t, and scores by the argmax t̂.

On a grid, log InvGamma(σ_t²; α, β) = const(α, β) − (α + 1) log σ_t² − β / σ_t²; the constant cancels in
the normalisation over t, so only the last two terms are computed (this also keeps β = 0, a test point
equal to its K nearest training points, finite). The argmax is non-decreasing in β: for grid points
s₁ < s₂ the log-ratio −(α+1) log(s₂/s₁) + β (1/s₁ − 1/s₂) rises with β. Hence DTE-NP ranks samples exactly
as the mean K-NN squared distance does, up to ties from the grid's quantisation and its saturation at
t̂ = T − 1 for mean-K-NN-distance / d beyond σ²_max (the family README, "Grid saturation").
"""

from __future__ import annotations

import torch


def invgamma_shape(d: int) -> float:
    """α = d/2 − 1, the InvGamma shape for d-dimensional data (needs d ≥ 3 so that α > 0)."""
    if d < 3:
        raise ValueError(f"DTE's inverse-gamma posterior needs d >= 3 features (alpha = d/2 - 1 > 0), got d = {d}")
    return d / 2.0 - 1.0


def invgamma_log_posterior(beta: torch.Tensor, d: int, sigma2: torch.Tensor) -> torch.Tensor:
    """log p(t | x) ∝ log InvGamma(σ_t²; α = d/2 − 1, β), normalised over the grid: ``[N, T]``.

    ``beta [N]`` (≥ 0), ``sigma2 [T]`` the grid σ_t² (> 0).
    """
    alpha = invgamma_shape(d)
    sigma2 = sigma2.to(beta)
    logits = -(alpha + 1.0) * sigma2.log()[None, :] - beta[:, None] / sigma2[None, :]
    return torch.log_softmax(logits, dim=1)


def invgamma_mode(beta: torch.Tensor, d: int) -> torch.Tensor:
    """Mode of InvGamma(α = d/2 − 1, β): β / (α + 1) = 2β / d (the predicted σ²)."""
    return beta / (invgamma_shape(d) + 1.0)


def ig_nll(beta_hat: torch.Tensor, sigma2: torch.Tensor, d: int, eps: float = 1e-5) -> torch.Tensor:
    """DTE-IG's per-sample loss −[(d/2 − 1) log(β̂ + ε) − β̂ / σ²] (released ``DTEInverseGamma.compute_loss``; README, "DTE-IG"): the InvGamma negative
    log-likelihood −log InvGamma(σ²; α = d/2 − 1, β̂) without its β̂-free terms (lgamma(α), (α+1) log σ²)."""
    return -(invgamma_shape(d) * torch.log(beta_hat + eps) - beta_hat / sigma2)
