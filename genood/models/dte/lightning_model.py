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

Only the networks ("heads") that the run's scorers read are built and trained (``heads=None``, the
default: the CLI passes the selected scorers to :meth:`DTE.select_outputs`), so
``--evaluation.scorers=[dte_c]`` trains DTE-C alone, as the released ``DTECategorical`` does, and
``[dte_np, knn]`` trains nothing. ``heads=[ig, c]`` builds both whatever the scorers.

The non-parametric DTE-NP and the kNN baseline need no training: they read ``features`` (the scaled
input itself) and fit a bank on the ID fit split.

``score_outputs(x)`` returns ``features [B, d]``, ``dte_ig_raw [B]`` (f(x)), ``dte_ig_beta [B]`` (β̂),
``dte_c_probs [B, num_bins]`` and ``dte_c_expected_bin [B]``; scorers: ``dte_np``, ``dte_np_data``,
``dte_ig``, ``dte_ig_released``, ``dte_c``, ``knn``, ``knn_mean`` (see :mod:`genood.models.dte.scorers`).
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from genood.models.base import GenerativeModel, fused_adam
from genood.scoring.knn import KNNScorer

from .posterior import ig_nll, invgamma_shape
from .schedule import BETA_END, BETA_START, sigma2_grid, time_bins, variance_only_noise
from .scorers import DTECategoricalScorer, DTEInverseGammaScorer, DTENonParametricScorer
from .torch_model import DTEMLP

C_LOSSES = ("released", "logits")
HEADS = ("ig", "c")
HEAD_OUTPUTS = {"ig": frozenset({"dte_ig_raw", "dte_ig_beta"}), "c": frozenset({"dte_c_probs", "dte_c_expected_bin"})}


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
        knn_k: the kNN baselines' k: ``knn`` the distance to the k-th neighbour, ``knn_mean`` the mean distance
            to the k nearest (PyOD's ``KNN(method="largest" / "mean")``; 5, PyOD's default). With 32, on the
            released unsupervised rows, they give DTE's published unsupervised KNN and DTE-NP columns (README).
        heads: the networks to build, a subset of ``["ig", "c"]``; None (default): those the run's scorers
            read (both when every scorer runs; none for ``dte_np`` / ``knn`` alone).
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, lr: float = 1e-4, weight_decay: float = 5e-4,
                 hidden_sizes: Sequence[int] = (256, 512, 256), dropout: float = 0.5, T_ig: int = 400,
                 T_c: int = 400, num_bins: int = 7, c_loss: str = "released", ig_eps: float = 1e-5,
                 np_T: int = 300, np_K: int = 5,
                 np_grid_margin: float = 2.0, np_grid_quantile: float = 1.0, knn_k: int = 5,
                 beta_start: float = BETA_START, beta_end: float = BETA_END, heads: Optional[Sequence[str]] = None):
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
        if heads is not None and not set(heads) <= set(HEADS):
            raise ValueError(f"heads must be a subset of {list(HEADS)}, got {list(heads)}")
        self.save_hyperparameters()
        self.weight_decay = weight_decay
        self.T_ig, self.T_c, self.num_bins, self.ig_eps, self.c_loss_kind = T_ig, T_c, num_bins, ig_eps, c_loss
        self.np_T, self.np_K, self.knn_k = np_T, np_K, knn_k
        self.np_grid_margin, self.np_grid_quantile = np_grid_margin, np_grid_quantile
        self.beta_start, self.beta_end = beta_start, beta_end
        self.heads_fixed = heads is not None
        self.ig_net = DTEMLP(self.d, 1, hidden_sizes, dropout) if heads is None or "ig" in heads else None
        self.c_net = DTEMLP(self.d, num_bins, hidden_sizes, dropout) if heads is None or "c" in heads else None
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

    @property
    def heads(self) -> list[str]:
        """The networks this model trains and scores with (``"ig"``, ``"c"``)."""
        return [h for h, net in (("ig", self.ig_net), ("c", self.c_net)) if net is not None]

    def select_outputs(self, scorers: Sequence) -> None:
        """Keep only the heads the given scorers read (unless ``heads`` was set explicitly)."""
        if self.heads_fixed:
            return
        needed = set().union(*(set(s.requires) for s in scorers)) if scorers else set()
        if not needed & HEAD_OUTPUTS["ig"]:
            self.ig_net = None
        if not needed & HEAD_OUTPUTS["c"]:
            self.c_net = None

    def loss(self, batch: dict) -> torch.Tensor:
        x0 = self._x(batch["x"])
        losses = {}
        if self.ig_net is not None:
            losses["ig"] = self.ig_loss(x0)
        if self.c_net is not None:
            losses["c"] = self.c_loss(x0)
        if not losses:
            raise RuntimeError("DTE has no network to train (only dte_np / knn scorers): train with max_epochs=0")
        if len(losses) > 1:
            for name, value in losses.items():
                self.log_loss(f"loss_{name}", value, x0.shape[0])
        return sum(losses.values())

    def setup(self, stage: str) -> None:
        if not self.heads:  # nothing to optimise is the point here, not a mistake worth a warning
            warnings.filterwarnings("ignore", message=r".*configure_optimizers. returned .None., this fit will run "
                                                      "with no optimizer")

    def on_train_start(self) -> None:
        if not self.heads:  # DTE-NP and kNN need no training: their banks are fit at evaluation time
            self.trainer.should_stop = True

    def training_step(self, batch: dict, batch_idx: int):
        return super().training_step(batch, batch_idx) if self.heads else None

    def validation_step(self, batch: dict, batch_idx: int):
        return super().validation_step(batch, batch_idx) if self.heads else None

    def configure_optimizers(self):
        if not self.heads:
            return None
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay, **fused_adam())

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
        out = {"features": self._x(x)}
        if self.ig_net is not None:
            out.update(self.ig_outputs(x))
        if self.c_net is not None:
            out.update(self.c_outputs(x))
        return out

    def scorers(self) -> list:
        np_args = dict(T=self.np_T, K=self.np_K, beta_start=self.beta_start, beta_end=self.beta_end)
        return [DTENonParametricScorer("dte_np", grid="paper", **np_args),
                DTENonParametricScorer("dte_np_data", grid="data", grid_margin=self.np_grid_margin,
                                       grid_quantile=self.np_grid_quantile, **np_args),
                *([DTEInverseGammaScorer(self.d, ig_score="mode"), DTEInverseGammaScorer(self.d, ig_score="released")]
                  if self.ig_net is not None else []),
                *([DTECategoricalScorer()] if self.c_net is not None else []),
                KNNScorer("knn", key="features", k=self.knn_k),
                KNNScorer("knn_mean", key="features", k=self.knn_k, reduction="mean")]
