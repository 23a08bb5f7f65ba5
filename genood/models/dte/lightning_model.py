"""DTE: Diffusion Time Estimation (Livernoche, Jain, Hezaveh, Ravanbakhsh; ICLR 2024; the family README).

One :class:`DTE` module trains the two parametric estimators side by side, as **independent networks**:

* DTE-IG: an MLP f(x); β̂ = f(x)²; per-sample loss −[(d/2 − 1) log(β̂ + 1e-5) − β̂ / σ_t²], the InvGamma
  negative log-likelihood of the true σ_t² without the terms that do not depend on β̂ (released
  ``DTEInverseGamma.compute_loss``; README, "DTE-IG");
* DTE-C: an MLP with ``num_bins`` (7) softmax outputs trained to classify the bin clamp(⌊7t/T⌋, 0, 6).
  ``c_loss="released"`` (default) is the released ``DTECategorical`` loss: ``nn.CrossEntropyLoss`` applied
  to the network's *softmax probabilities* (its MLP ends in a softmax), i.e. a second softmax over
  probabilities; ``c_loss="logits"`` applies the cross-entropy to the logits (the usual classifier loss).
  Both score with the softmax probabilities (README, "DTE-C as released").

Each network draws its own t ~ U{0..T−1} and ε for x_t = x_0 + σ_t ε (variance only). The two losses are
summed; since the networks share no parameter and Adam (with L2 weight decay) updates every parameter
from its own gradient only, this equals training each network separately on the same mini-batches.

The non-parametric DTE-NP and the kNN baseline need no training: they read ``features`` (the scaled
input itself) and fit a bank on the ID fit split.

``score_outputs(x)`` returns ``features [B, d]``, ``dte_ig_raw [B]`` (f(x)), ``dte_ig_beta [B]`` (β̂),
``dte_c_probs [B, num_bins]`` and ``dte_c_expected_bin [B]``; scorers: ``dte_np``, ``dte_np_data``,
``dte_ig``, ``dte_ig_released``, ``dte_c``, ``knn`` (see :mod:`genood.models.dte.scorers`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from genood.models.base import GenerativeModel
from genood.scoring.knn import KNNScorer

from .posterior import ig_nll, invgamma_shape
from .schedule import BETA_END, BETA_START, sigma2_grid, time_bins, variance_only_noise
from .scorers import DTECategoricalScorer, DTEInverseGammaScorer, DTENonParametricScorer
from .torch_model import DTEMLP

C_LOSSES = ("released", "logits")


class DTE(GenerativeModel):
    """DTE-IG and DTE-C networks plus the DTE-NP / kNN scorers on the raw features.

    Args (the released recipe, ``diffusion/dte.py`` class defaults, as defaults):
        input_shape: ``(d,)``, linked from the datamodule by the CLI.
        lr, weight_decay: Adam, 1e-4 and 5e-4.
        hidden_sizes, dropout: the MLP, (256, 512, 256) and 0.5.
        T_ig, T_c: diffusion steps of DTE-IG / DTE-C (400 each, as the released classes in every commit);
            num_bins: DTE-C's classes (7).
        c_loss: "released" (cross-entropy on softmax probabilities, the released code) or "logits".
        ig_eps: the 1e-5 inside log(β̂ + ε).
        np_T, np_K: DTE-NP's grid length (300) and neighbours (5); np_grid_margin / np_grid_quantile set
            the ``dte_np_data`` grid (see :class:`DTENonParametricScorer`).
        knn_k: the kNN baseline's k (distance to the k-th neighbour; 5, PyOD's default).
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, lr: float = 1e-4, weight_decay: float = 5e-4,
                 hidden_sizes: Sequence[int] = (256, 512, 256), dropout: float = 0.5, T_ig: int = 400,
                 T_c: int = 400, num_bins: int = 7, c_loss: str = "released", ig_eps: float = 1e-5,
                 np_T: int = 300, np_K: int = 5,
                 np_grid_margin: float = 2.0, np_grid_quantile: float = 1.0, knn_k: int = 5,
                 beta_start: float = BETA_START, beta_end: float = BETA_END):
        super().__init__(input_shape=input_shape, lr=lr)
        if self.input_shape is None or len(self.input_shape) != 1:
            raise ValueError(f"DTE works on feature vectors: input_shape must be (d,), got {input_shape}; "
                             "use a tabular datamodule (the CLI links input_shape from it)")
        self.d = int(self.input_shape[0])
        invgamma_shape(self.d)
        if num_bins < 2:
            raise ValueError(f"DTE-C needs num_bins >= 2, got {num_bins}")
        if c_loss not in C_LOSSES:
            raise ValueError(f"c_loss must be one of {C_LOSSES}, got {c_loss!r}")
        self.save_hyperparameters()
        self.weight_decay = weight_decay
        self.T_ig, self.T_c, self.num_bins, self.ig_eps, self.c_loss_kind = T_ig, T_c, num_bins, ig_eps, c_loss
        self.np_T, self.np_K, self.knn_k = np_T, np_K, knn_k
        self.np_grid_margin, self.np_grid_quantile = np_grid_margin, np_grid_quantile
        self.beta_start, self.beta_end = beta_start, beta_end
        self.ig_net = DTEMLP(self.d, 1, hidden_sizes, dropout)
        self.c_net = DTEMLP(self.d, num_bins, hidden_sizes, dropout)
        self.register_buffer("sigma2_ig", sigma2_grid(T_ig, beta_start, beta_end), persistent=False)
        self.register_buffer("sigma2_c", sigma2_grid(T_c, beta_start, beta_end), persistent=False)

    # ---- the two objectives -------------------------------------------------------------------
    def ig_loss(self, x0: torch.Tensor) -> torch.Tensor:
        """DTE-IG: mean over the batch of −[(d/2 − 1) log(β̂ + ε) − β̂ / σ_t²], β̂ = f(x_t)² (README, "DTE-IG")."""
        t = torch.randint(0, self.T_ig, (x0.shape[0],), device=x0.device)
        s2 = self.sigma2_ig[t]
        beta_hat = self.ig_net(variance_only_noise(x0, s2, torch.randn_like(x0))).squeeze(1).pow(2)
        return ig_nll(beta_hat, s2, self.d, self.ig_eps).mean()

    def c_loss(self, x0: torch.Tensor) -> torch.Tensor:
        """DTE-C: cross-entropy against the bin clamp(⌊num_bins·t/T⌋, 0, num_bins−1) of x_t, applied to the
        softmax probabilities p (``c_loss="released"``: −log softmax(p)_y = −p_y + log Σ_b exp(p_b), as the
        released ``nn.CrossEntropyLoss()(softmax output, target)``) or to the logits (``"logits"``)."""
        t = torch.randint(0, self.T_c, (x0.shape[0],), device=x0.device)
        logits = self.c_net(variance_only_noise(x0, self.sigma2_c[t], torch.randn_like(x0)))
        inputs = torch.softmax(logits, dim=1) if self.c_loss_kind == "released" else logits
        return F.cross_entropy(inputs, time_bins(t, self.T_c, self.num_bins))

    def _x(self, x: torch.Tensor) -> torch.Tensor:
        return self.flat_inputs(x, self.d)

    def loss(self, batch: dict) -> torch.Tensor:
        x0 = self._x(batch["x"])
        ig, c = self.ig_loss(x0), self.c_loss(x0)
        if self._trainer is not None:
            stage = "train" if self.training else "val"
            self.log(f"{stage}/loss_ig", ig, batch_size=x0.shape[0], sync_dist=not self.training)
            self.log(f"{stage}/loss_c", c, batch_size=x0.shape[0], sync_dist=not self.training)
        return ig + c

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    # ---- scoring ----------------------------------------------------------------------------------
    def ig_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """DTE-IG's raw f(x) and β̂ = f(x)² on clean inputs (one MLP pass)."""
        raw = self.ig_net(self._x(x)).squeeze(1)
        return {"dte_ig_raw": raw, "dte_ig_beta": raw.pow(2)}

    def c_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """DTE-C's bin probabilities and expected bin on clean inputs (one MLP pass)."""
        p = torch.softmax(self.c_net(self._x(x)), dim=1)
        return {"dte_c_probs": p, "dte_c_expected_bin": p @ torch.arange(self.num_bins, dtype=p.dtype, device=p.device)}

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        return {"features": self._x(x), **self.ig_outputs(x), **self.c_outputs(x)}

    def scorers(self) -> list:
        np_args = dict(T=self.np_T, K=self.np_K, beta_start=self.beta_start, beta_end=self.beta_end)
        return [DTENonParametricScorer("dte_np", grid="paper", **np_args),
                DTENonParametricScorer("dte_np_data", grid="data", grid_margin=self.np_grid_margin,
                                       grid_quantile=self.np_grid_quantile, **np_args),
                DTEInverseGammaScorer(self.d, ig_score="mode"),
                DTEInverseGammaScorer(self.d, ig_score="released"),
                DTECategoricalScorer(),
                KNNScorer("knn", key="features", k=self.knn_k)]
