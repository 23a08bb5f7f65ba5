"""The image flow as a :class:`~genood.models.base.GenerativeModel`: trained by the negative log-likelihood of
the dequantized images, scored by the discrete log-likelihood log P(x) so that every likelihood-family scorer
(``nll``, ``bpd``, ``typicality``, ``complexity``, and ``likelihood_ratio`` with a background checkpoint) applies.

Training (RealNVP §4.1, Glow §5): each step draws fresh uniform dequantization noise, u = (k + ε)/n, and
minimises the mean over the batch of −[log p(u) − D log n] (nats per image; the logged ``bpd`` divides by D ln 2).

Scoring is deterministic per sample (see :mod:`genood.models.flow.dequantization`): ``score_dequantization``
``"noise"`` (default) evaluates log p at u = (k + ε)/n with counter-based noise ε keyed by
(``score_seed``, the sample's dataset index, sample id), the single-draw evaluation of the RealNVP/Glow code made
batch- and rank-invariant, and with ``score_samples`` S > 1 the importance-weighted bound
log (1/S) Σ_s p(u_s) − D log n; ``"center"`` evaluates it at the bin centres ε = ½.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from genood.models.base import GenerativeModel
from genood.models.flow.dequantization import (counter_uniform, dequantize, discrete_log_likelihood,
                                               importance_weighted, index_or_position, to_levels)
from genood.models.flow.torch_model import FlowNetwork
from genood.scoring import likelihood_scorers

DEQUANTIZATION = ("noise", "center")
OPTIMIZERS = ("adam", "adamax")


class ImageFlow(GenerativeModel):
    """A multiscale RealNVP / Glow trained by maximum likelihood on uniformly dequantized images.

    Args:
        input_shape: (C, H, W), linked from the datamodule by the CLI.
        lr: learning rate (RealNVP and Glow: 1e-3).
        architecture, levels, steps, hidden_channels, resnet_blocks, preprocessing, logit_alpha, learn_prior,
            use_lu, net_actnorm: the network (:class:`~genood.models.flow.torch_model.FlowNetwork`).
        n_bins: grey levels per channel of the data (256 for 8-bit images, 17 for scikit-learn's digits);
            inputs arrive as k / (n_bins − 1).
        optimizer: "adam" (RealNVP) or "adamax" (Glow's code default).
        weight_decay: L2 coefficient added to the gradients (RealNVP: 5e-5; Ren et al.'s background model:
            the L2 regularisation of the background).
        warmup_steps: linear learning-rate warm-up over this many optimizer steps (Glow: 10 epochs).
        score_dequantization: "noise" (index-keyed uniform noise, S = ``score_samples`` draws) or "center".
        score_samples: S, dequantization draws per sample when scoring with "noise" (one batched call).
        score_seed: seed of the scoring noise.
        score_max_rows: split a scoring call into chunks of at most this many images (batch × S); None = one
            call. Results do not depend on it.
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, lr: float = 1e-3, architecture: str = "glow",
                 levels: int = 2, steps: int = 8, hidden_channels: int = 64, resnet_blocks: int = 2,
                 preprocessing: str = "logit", logit_alpha: float = 0.05, learn_prior: bool = True,
                 use_lu: bool = False, net_actnorm: bool = True, n_bins: int = 256, optimizer: str = "adam",
                 weight_decay: float = 0.0, warmup_steps: int = 0, score_dequantization: str = "noise",
                 score_samples: int = 1, score_seed: int = 0, score_max_rows: Optional[int] = None):
        super().__init__(input_shape=input_shape, lr=lr)
        if self.input_shape is None:
            raise ValueError("ImageFlow needs input_shape (C, H, W) (the CLI links it from the datamodule; pass it "
                             "when constructing the model directly, e.g. input_shape=(1, 8, 8))")
        self.save_hyperparameters()
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2 (grey levels per channel), got {n_bins}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if score_dequantization not in DEQUANTIZATION:
            raise ValueError(f"score_dequantization must be one of {DEQUANTIZATION}, got {score_dequantization!r}")
        if score_samples < 1 or (score_dequantization == "center" and score_samples != 1):
            raise ValueError(f"score_samples must be >= 1 (and 1 with score_dequantization='center'), got "
                             f"{score_samples}")
        if weight_decay < 0 or warmup_steps < 0:
            raise ValueError(f"weight_decay and warmup_steps must be >= 0, got {weight_decay}, {warmup_steps}")
        if score_max_rows is not None and score_max_rows < 1:
            raise ValueError(f"score_max_rows must be >= 1 or None, got {score_max_rows}")
        self.net = FlowNetwork(self.input_shape, architecture, levels, steps, hidden_channels, resnet_blocks,
                               preprocessing, logit_alpha, learn_prior, use_lu, net_actnorm)
        self.num_dims = math.prod(self.input_shape)
        self.n_bins = int(n_bins)
        self.optimizer_name, self.weight_decay, self.warmup_steps = optimizer, weight_decay, warmup_steps
        self.score_dequantization, self.score_samples = score_dequantization, score_samples
        self.score_seed, self.score_max_rows = score_seed, score_max_rows

    # ---- inputs and initialisation ------------------------------------------------------------------------
    def _levels(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"ImageFlow was built for inputs of shape {self.input_shape}, got a batch of shape "
                             f"{tuple(x.shape)}")
        return to_levels(x, self.n_bins).to(self.net.flow.q0[0].loc.dtype)

    def _maybe_initialize(self, u: torch.Tensor) -> None:
        """ActNorm's data-dependent initialisation on the first training batch; under DDP every rank then takes
        rank 0's values, so the replicas start identical."""
        if self.net.initialized:
            return
        self.net.initialize(u)
        trainer = getattr(self, "_trainer", None)
        if trainer is not None and trainer.world_size > 1:
            with torch.no_grad():
                for m in self.net.actnorms():
                    for p in (m.s, m.t):
                        p.copy_(trainer.strategy.broadcast(p.detach().cpu(), src=0).to(p.device))

    # ---- the likelihood -----------------------------------------------------------------------------------
    def discrete_log_prob(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """log P(x) in nats ``[B]`` of the images x (levels k/(n−1)), estimated as ``score_dequantization`` says;
        deterministic given (``score_seed``, index)."""
        k = self._levels(x)
        B = k.shape[0]
        if self.score_dequantization == "center":
            u, S = dequantize(k, torch.full_like(k, 0.5), self.n_bins), 1
        else:
            S = self.score_samples
            idx = index_or_position(index, B, k.device).repeat(S)
            sample_id = torch.arange(S, device=k.device).repeat_interleave(B)
            noise = counter_uniform(self.score_seed, idx, sample_id, self.input_shape, dtype=k.dtype)
            u = dequantize(k.repeat(S, 1, 1, 1), noise, self.n_bins)          # row s·B + b
        rows = u.shape[0] if self.score_max_rows is None else self.score_max_rows
        log_density = torch.cat([self.net.log_prob(chunk) for chunk in u.split(rows)])
        return discrete_log_likelihood(importance_weighted(log_density, S), self.num_dims, self.n_bins)

    # ---- GenerativeModel ------------------------------------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        """Training: mean −[log p((k + ε)/n) − D log n] with fresh ε ~ U[0, 1)^D. Evaluation: the scoring
        estimate's mean negative log-likelihood (deterministic)."""
        x = batch["x"]
        if self.training:
            k = self._levels(x)
            u = dequantize(k, torch.rand_like(k), self.n_bins)
            self._maybe_initialize(u)
            lp = discrete_log_likelihood(self.net.log_prob(u), self.num_dims, self.n_bins)
        else:
            lp = self.discrete_log_prob(x, batch.get("index"))
        loss = -lp.mean()
        if self._trainer is not None:
            stage = "train" if self.training else "val"
            self.log(f"{stage}/bpd", loss / (self.num_dims * math.log(2.0)), batch_size=x.shape[0],
                     sync_dist=not self.training)
        return loss

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """``log_prob``: log P(x) of the discrete image in nats ``[B]``; ``num_dims``: D ``[B]``."""
        if not self.net.initialized:
            raise RuntimeError("ImageFlow: the ActNorm layers were never initialised (the model has not seen a "
                               "training batch), so scores would depend on the first scored batch. Train it, load "
                               "a trained checkpoint, or call model.net.initialize(u) on ID data first.")
        lp = self.discrete_log_prob(x, index)
        return {"log_prob": lp, "num_dims": torch.full_like(lp, float(self.num_dims))}

    def scorers(self) -> list:
        # log_prob already is the discrete likelihood, directly comparable to PNG's code length: no offset
        return likelihood_scorers(input_shape=self.input_shape, log_prob_offset_bits_per_dim=0.0)

    def configure_optimizers(self):
        cls = torch.optim.Adam if self.optimizer_name == "adam" else torch.optim.Adamax
        opt = cls(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if not self.warmup_steps:
            return opt
        warm = self.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- for direct use ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, num_samples: int) -> torch.Tensor:
        """Images drawn from the model, quantized to the data's levels and returned as k / (n − 1)."""
        u = self.net.sample(num_samples)
        k = torch.floor(u * self.n_bins).clamp_(0, self.n_bins - 1)
        return k / (self.n_bins - 1)
