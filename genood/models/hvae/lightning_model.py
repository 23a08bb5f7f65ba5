"""HVAE as a :class:`~genood.models.base.GenerativeModel`: training recipe and OOD outputs.

Training (the paper's recipe, Section 5 and Appendix; reference ``scripts/dvae_run.py``; the family's
README, "Training recipe"): one posterior sample per step, loss per sample

    −log p(x | z) + β(epoch) · Σ_i Σ_elements max(KL_i,e, λ(epoch) / C_i)

with the single-sample KL_i,e = log q(z_i,e | ·) − log p(z_i,e | ·), β rising linearly from 1/W to 1 over the
first W = ``warmup_epochs`` epochs (the reference's deterministic warm-up), and free nats λ (``free_nats``
per layer) spread over the layer's **channel (feature) dimension** C_i, as the reference's
``FreeNats(λ, shared_dims=1)``: every element of a ``[C, H, W]`` conv latent is floored at λ / C, so the
layer's floor totals λ · H · W (λ for a dense latent). ``free_nats`` may also be a list, one λ_i per layer
(bottom first), as the reference loss accepts (``oodd/losses.py``). λ is held for ``free_nats_constant_epochs`` then
annealed linearly to 0 over ``free_nats_anneal_epochs`` (with both 0, λ stays at ``free_nats``, as the
reference's ``FreeNatsCooldown``). Validation reports the plain ELBO (β = 1, λ = 0).

Scoring (``score_outputs``, one batched network call): the importance-weighted ELBO with
``score_samples`` samples and L^{>k} with one sample for every k in ``skip_k``.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import torch

from genood.models.base import GenerativeModel
from genood.models.hvae.scorers import hvae_scorers
from genood.models.hvae.torch_model import HierarchicalVAE


def kl_warmup(epoch: int, warmup_epochs: int) -> float:
    """β at ``epoch`` (0-based): min(1, (epoch + 1) / W), or 1 without warm-up (reference ``DeterministicWarmup``)."""
    return 1.0 if warmup_epochs <= 0 else min(1.0, (epoch + 1) / warmup_epochs)


def free_nats_schedule(epoch: int, free_nats: float, constant_epochs: int, anneal_epochs: int) -> float:
    """λ at ``epoch``: ``free_nats`` for ``constant_epochs``, then linearly to 0 (both ends included, as
    ``np.linspace``) over ``anneal_epochs``, then 0 (reference ``FreeNatsCooldown``, which keeps the start
    value for ever when both durations are 0)."""
    if constant_epochs == 0 and anneal_epochs == 0:
        return float(free_nats)
    if epoch < constant_epochs:
        return float(free_nats)
    j = epoch - constant_epochs
    if j >= anneal_epochs:
        return 0.0
    return float(free_nats) * (1.0 - j / (anneal_epochs - 1)) if anneal_epochs > 1 else float(free_nats)


class HVAE(GenerativeModel):
    """Hierarchical VAE with the LLR^{>k} OOD score (Havtorn et al., ICML 2021).

    Args:
        input_shape: ``(C, H, W)``, linked from the datamodule by the CLI.
        lr: Adam learning rate (paper: 3e-4).
        stages: stage dicts, bottom first (:func:`~genood.models.hvae.torch_model.parse_stage`); default: the
            paper's FashionMNIST HVAE (L = 3).
        likelihood: "bernoulli" (binarized grey images) or "discretized_logistic_mixture" (8-bit images).
        n_mix, n_bins: mixture components / levels of the discretized logistic mixture (10, 256).
        activation, skip_connections, weightnorm: network options (reference defaults).
        drop_same_shape_skips: True reproduces the released residual block, which ignores every skip input that
            already has the block's shape (hvae-oodd ``residual.py``); False (default) adds them as intended.
        warmup_epochs: KL warm-up length W (paper: 200).
        free_nats: free-nats budget per stochastic layer (paper: 2), spread over the layer's channels (each
            element of a ``[C, H, W]`` latent is floored at free_nats / C, as the reference code); or a list
            with one budget per layer, bottom first (the reference loss takes either).
        free_nats_constant_epochs, free_nats_anneal_epochs: λ held, then annealed to 0 (paper: 200 + 200).
        skip_k: the k of L^{>k} / LLR^{>k} to score (each 1 ≤ k ≤ L; paper: 1 and 2 for L = 3).
        score_samples: importance samples S for the ELBO when scoring (paper: 1 or 1000).
        score_seed: seed of the scoring noise (a counter-based function of seed, sample index and sample id).
        score_max_rows: split a scoring call into chunks of at most this many rows (batch × samples); None =
            one call. Results do not depend on it.
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, lr: float = 3e-4,
                 stages: Optional[list[dict[str, Any]]] = None, likelihood: str = "bernoulli", n_mix: int = 10,
                 n_bins: int = 256, activation: str = "relu", skip_connections: bool = True, weightnorm: bool = True,
                 drop_same_shape_skips: bool = False,
                 warmup_epochs: int = 200, free_nats: Union[float, list[float]] = 2.0,
                 free_nats_constant_epochs: int = 200,
                 free_nats_anneal_epochs: int = 200, skip_k: Sequence[int] = (1, 2), score_samples: int = 1,
                 score_seed: int = 0, score_max_rows: Optional[int] = None):
        super().__init__(input_shape=input_shape, lr=lr)
        if self.input_shape is None:
            raise ValueError("HVAE needs input_shape (C, H, W) (the CLI links it from the datamodule; pass it when "
                             "constructing the model directly, e.g. input_shape=(1, 8, 8))")
        self.save_hyperparameters()
        self.net = HierarchicalVAE(self.input_shape, stages, likelihood, n_mix, n_bins, activation,
                                   skip_connections, weightnorm, drop_same_shape_skips)
        L = self.net.n_latents
        self.skip_k = tuple(int(k) for k in skip_k)
        if any(not 1 <= k <= L for k in self.skip_k) or len(set(self.skip_k)) != len(self.skip_k):
            raise ValueError(f"skip_k must hold distinct k with 1 <= k <= L = {L} (k = 0 gives LLR = 0), "
                             f"got {list(skip_k)}")
        for name, v in (("warmup_epochs", warmup_epochs), ("free_nats_constant_epochs", free_nats_constant_epochs),
                        ("free_nats_anneal_epochs", free_nats_anneal_epochs)):
            if v < 0:
                raise ValueError(f"{name} must be >= 0 epochs, got {v}")
        per_layer = [float(free_nats)] * L if isinstance(free_nats, (int, float)) else [float(v) for v in free_nats]
        if len(per_layer) != L or min(per_layer) < 0:
            raise ValueError(f"free_nats must be a number >= 0 or a list of {L} numbers >= 0 (one per layer, bottom "
                             f"first), got {free_nats}")
        if score_samples < 1:
            raise ValueError(f"score_samples must be >= 1, got {score_samples}")
        self.likelihood = likelihood
        self.warmup_epochs, self.free_nats = warmup_epochs, per_layer
        self.free_nats_constant_epochs, self.free_nats_anneal_epochs = free_nats_constant_epochs, free_nats_anneal_epochs
        self.score_samples, self.score_seed, self.score_max_rows = score_samples, score_seed, score_max_rows
        self.num_dims = math.prod(self.input_shape)

    # ---- schedules -------------------------------------------------------------------------------------
    def kl_weight(self) -> float:
        """β for the current epoch (1 outside training)."""
        return kl_warmup(self.current_epoch, self.warmup_epochs) if self.training else 1.0

    def free_nats_now(self) -> list[float]:
        """Free nats per layer (bottom first) for the current epoch (0 outside training)."""
        if not self.training:
            return [0.0] * len(self.free_nats)
        scale = free_nats_schedule(self.current_epoch, 1.0, self.free_nats_constant_epochs, self.free_nats_anneal_epochs)
        return [lam * scale for lam in self.free_nats]

    # ---- inputs -----------------------------------------------------------------------------------------
    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"HVAE was built for inputs of shape {self.input_shape}, got a batch of shape "
                             f"{tuple(x.shape)}")
        if self.likelihood == "bernoulli":
            if ((x != 0) & (x != 1)).any():
                raise ValueError("the Bernoulli likelihood needs binary inputs (0/1); binarize the data "
                                 "(e.g. data.init_args.binarize: dynamic) or use "
                                 "likelihood: discretized_logistic_mixture")
        elif (x < 0).any() or (x > 1).any():
            raise ValueError("the discretized logistic mixture needs inputs in [0, 1] (8-bit levels / 255)")
        return x

    # ---- GenerativeModel -------------------------------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        """Mean over the batch of −log p(x|z) + β Σ free-nats-floored KL (training); −ELBO in eval mode."""
        x = batch["x"]
        if not self.training or self.global_step == 0:
            self._check_x(x)
        fp = self.net(x)
        beta, lams = self.kl_weight(), self.free_nats_now()
        kl_loss = 0.0
        for kl, lam in zip(fp.kl, lams):  # [R, C, H, W] or [R, C]: the budget is shared over the channels only
            floored = kl.clamp(min=lam / kl.shape[1]) if lam > 0 else kl
            kl_loss = kl_loss + floored.flatten(1).sum(1)
        loss = (-fp.log_px + beta * kl_loss).mean()
        if self._trainer is not None:
            self._log_terms(fp, beta, sum(lams), x.shape[0])
        return loss

    def _log_terms(self, fp, beta: float, lam: float, n: int) -> None:
        stage = "train" if self.training else "val"
        elbo = fp.bound().mean()
        self.log(f"{stage}/elbo", elbo, batch_size=n, sync_dist=not self.training)
        self.log(f"{stage}/bpd", -elbo / (self.num_dims * math.log(2.0)), batch_size=n, sync_dist=not self.training)
        for i, kl in enumerate(fp.kl):
            self.log(f"{stage}/kl_z{i + 1}", kl.flatten(1).sum(1).mean(), batch_size=n, sync_dist=not self.training)
        if self.training:
            self.log("train/beta", beta, batch_size=n)
            self.log("train/free_nats", lam, batch_size=n)

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """One batched call: ``elbo`` (IW with ``score_samples``), ``elbo_gt{k}`` per k in ``skip_k`` (one sample),
        ``log_prob`` (= ``elbo``) and ``num_dims`` (D per sample), all ``[B]`` nats.

        ``index`` (the samples' dataset indices) seeds each sample's posterior noise, so scores do not depend
        on batch composition (exact under DDP); without it the noise is keyed by position in the batch."""
        x = self._check_x(x)
        samples = {0: self.score_samples, **{k: 1 for k in self.skip_k}}
        b = self.net.bounds(x, samples, index=index, seed=self.score_seed, max_rows=self.score_max_rows)
        out = {"elbo": b[0], "log_prob": b[0], "num_dims": torch.full_like(b[0], float(self.num_dims))}
        out.update({f"elbo_gt{k}": b[k] for k in self.skip_k})
        return out

    def scorers(self) -> list:
        return hvae_scorers(self.skip_k)

    # ---- the bounds, for direct use ---------------------------------------------------------------------
    def elbo(self, x: torch.Tensor, S: int = 1, **kwargs) -> torch.Tensor:
        """Importance-weighted ELBO with S samples in one batched call, ``[B]`` nats."""
        return self.net.elbo(x, S, **kwargs)

    def elbo_skip_lower(self, x: torch.Tensor, k: int, S: int = 1, **kwargs) -> torch.Tensor:
        """L^{>k}(x), ``[B]`` nats (k lowest latents from the conditional prior's mean, their KL dropped)."""
        return self.net.elbo_skip_lower(x, k, S, **kwargs)
