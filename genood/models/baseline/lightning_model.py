"""PPCA as a :class:`~genood.models.base.GenerativeModel`: a first, honest density baseline for OOD.

A Gaussian with low-rank-plus-isotropic covariance on the flattened input, trained by gradient descent on
the exact marginal negative log-likelihood (Tipping & Bishop 1999, eq. 4). It exposes ``log_prob`` (nats)
and ``num_dims``, so every likelihood-family scorer applies (nll, bpd, typicality, input complexity on
images, and Ren's likelihood ratio when the evaluation config names a background checkpoint).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from genood.models.base import GenerativeModel
from genood.models.baseline.torch_model import PPCANetwork
from genood.scoring import likelihood_scorers


class PPCA(GenerativeModel):
    """Probabilistic PCA density model.

    Args:
        input_shape: shape of one ``x`` (linked from the datamodule by the CLI); flattened to D dims.
        latent_dim: q, the rank of W (1 ≤ q ≤ D).
        lr: Adam learning rate.
        init_from_data: initialise μ and σ² from the first training batch (broadcast from rank 0 under DDP).
        min_noise_var: floor on σ².
        complexity_offset_bits_per_dim: added to the model's bits/dim in the input-complexity score; 8 makes
            this continuous density on [0, 1] data a discrete 8-bit likelihood (Serrà et al. 2020, Eq. 2). Constant
            per sample, so it never changes rankings.
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, latent_dim: int = 16, lr: float = 1e-2,
                 init_from_data: bool = True, min_noise_var: float = 1e-6,
                 complexity_offset_bits_per_dim: float = 8.0):
        super().__init__(input_shape=input_shape, lr=lr)
        if self.input_shape is None:
            raise ValueError("PPCA needs input_shape (the CLI links it from the datamodule; pass it when "
                             "constructing the model directly, e.g. input_shape=(1, 8, 8))")
        self.save_hyperparameters()
        self.num_dims = math.prod(self.input_shape)
        self.init_from_data = init_from_data
        self.complexity_offset_bits_per_dim = complexity_offset_bits_per_dim
        self.net = PPCANetwork(self.num_dims, latent_dim, min_noise_var)

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"PPCA was built for inputs of shape {self.input_shape}, got a batch of shape "
                             f"{tuple(x.shape)}")
        return x.reshape(x.shape[0], -1).to(self.net.loc.dtype)

    def _maybe_init(self, x: torch.Tensor) -> None:
        """Initialise from the first training batch; under DDP every rank takes rank 0's values."""
        if not self.init_from_data or bool(self.net.initialized):
            return
        self.net.init_from_data(x)
        trainer = getattr(self, "_trainer", None)
        if trainer is not None and trainer.world_size > 1:
            with torch.no_grad():
                for p in (self.net.loc, self.net.cov_factor, self.net.log_noise_var):
                    p.copy_(trainer.strategy.broadcast(p.detach().cpu(), src=0).to(p.device))

    def loss(self, batch: dict) -> torch.Tensor:
        """Mean negative log-likelihood −log N(x; μ, WWᵀ + σ²I) in nats per sample."""
        x = self._flatten(batch["x"])
        if self.training:
            self._maybe_init(x)
        return -self.net.log_prob(x).mean()

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """``log_prob``: log p(x) in nats [B]; ``num_dims``: D for every sample [B]."""
        lp = self.net.log_prob(self._flatten(x))
        return {"log_prob": lp, "num_dims": torch.full_like(lp, float(self.num_dims))}

    def scorers(self) -> list:
        return likelihood_scorers(input_shape=self.input_shape,
                                  log_prob_offset_bits_per_dim=self.complexity_offset_bits_per_dim)
