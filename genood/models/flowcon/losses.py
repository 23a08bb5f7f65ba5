"""FlowCon's training objective (Aathreya & Canavan, ECCV 2024, Sec. 3.2–3.3; released ``losses.py``).

With z_i the latent of sample i, (μ_j, σ_j) sample j's predicted base Gaussian and D the feature dimension,

    ℓ_ij = Σ_d log N(z_{i,d}; μ_{j,d}, σ_{j,d}) / (D ln 2)          (bits/dim; ``pairwise_log_p``)

* flow term (the released ``nllLoss``, n_bins = 32):
      L_flow = mean_i −[ −D ln n_bins + mean_batch(log|det J|) + D ln 2 · ℓ_ii ] / (D ln 2)
  The log-determinant enters as the **batch mean**, exactly as released; it only shifts the loss by a
  constant per batch for the ranking, but its gradient is the mean of the per-sample gradients.
* Bhattacharyya-inspired supervised contrastive term (the released ``conLoss``):
      a_ij = τ (ℓ_ij + ℓ_ii)                          (τ = ½ gives log √(p_i(z_i) p_j(z_i)))
      b_ij = (exp(a_ij − max_k a_ik) + 1e-5) / τ₂     (so b ∈ (0, 1/τ₂])
      log P_ij = b_ij − log Σ_{k≠i} exp(b_ik)
      L_con,i = −(1/|P(i)|) Σ_{j∈P(i)} log P_ij,  P(i) = {j ≠ i: y_j = y_i}; 0 when P(i) is empty.
* total: L = λ · L_flow + mean_i L_con,i  (λ = 0.07; 0.3 for CIFAR-100 / ResNet-18).
"""

from __future__ import annotations

import math

import torch

from .torch_model import gaussian_log_p


def pairwise_log_p(z: torch.Tensor, mu: torch.Tensor, log_sd: torch.Tensor) -> torch.Tensor:
    """ℓ ``[B, B]``: ℓ_ij = Σ_d log N(z_i,d; μ_j,d, σ_j,d) / (D ln 2), as the released ``[B, B, D]`` broadcast."""
    d = z.shape[1]
    return gaussian_log_p(z[:, None, :], mu[None], log_sd[None]).sum(dim=2) / (d * math.log(2))


def flow_loss(log_p_ii: torch.Tensor, logdet: torch.Tensor, dim: int, n_bins: int = 32) -> torch.Tensor:
    """L_flow from ℓ_ii ``[B]`` (bits/dim) and the per-sample log-determinants ``[B]`` (nats), with the
    released batch-mean log-determinant."""
    ln2d = dim * math.log(2)
    ll = -dim * math.log(n_bins) + logdet.mean() + log_p_ii * ln2d
    return (-ll / ln2d).mean()


def contrastive_loss(log_p: torch.Tensor, labels: torch.Tensor, tau: float = 1.5, tau2: float = 0.1) -> torch.Tensor:
    """Per-sample L_con,i ``[B]`` from the ``[B, B]`` matrix ℓ (bits/dim) and the labels ``[B]``."""
    b = log_p.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=log_p.device)
    same = (labels[:, None] == labels[None, :]) & ~eye
    a = tau * (log_p + log_p.diagonal()[:, None])
    bij = (torch.exp(a - a.amax(dim=1, keepdim=True)) + 1e-5) / tau2
    log_den = torch.logsumexp(bij.masked_fill(eye, float("-inf")), dim=1, keepdim=True)
    log_prob = bij - log_den
    n_pos = same.sum(dim=1)
    # where() rather than a product with the mask: a batch of one has an empty denominator (log 0 = −inf)
    return -torch.where(same, log_prob, torch.zeros_like(log_prob)).sum(dim=1) / n_pos.clamp_min(1)
