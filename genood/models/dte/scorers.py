"""DTE's scorers (the family README); every score is higher = more anomalous / OOD.

=================  ===================================================================  ===============
name               score                                                                reads
=================  ===================================================================  ===============
dte_np             argmax_t InvGamma posterior, β = ½ mean K-NN sq. distance (paper)    features (fit)
dte_np_data        the same on a σ² grid stretched to the training data's scale         features (fit)
dte_ig             mode of the predicted InvGamma posterior, β̂ / (α + 1) = 2β̂/d (paper)  dte_ig_beta
dte_ig_released    the released code's raw network output f(x) = ±√β̂ (sign-ambiguous)    dte_ig_raw
dte_c              expected time bin Σ_b b · p_b(x)                                     dte_c_probs
ddpm_recon         mean squared error between x and its 250-step DDPM reconstruction    ddpm_recon_mse
=================  ===================================================================  ===============
"""

from __future__ import annotations

from typing import Optional

import torch

from genood.scoring.base import Outputs, Scorer, model_output
from genood.scoring.knn import get_features, knn_sq_distances
from genood.scoring.reconstruction import ReconstructionScorer

from .posterior import invgamma_log_posterior, invgamma_mode, invgamma_shape
from .schedule import BETA_END, BETA_START, sigma2_grid

NP_GRIDS = ("paper", "data")
IG_SCORES = ("mode", "released")


class DTENonParametricScorer(Scorer):
    """DTE-NP (README, "DTE-NP"): fit = a bank of the (scaled) training features; score = t̂, the argmax over
    t = 0..T−1 of log InvGamma(σ_t²; α = d/2 − 1, β = ½ · mean of the K smallest squared distances).

    ``grid="paper"`` uses σ_t² = 1 − ᾱ_t (T = 300: σ²_max = 0.781); every point whose mean K-NN squared
    distance / d exceeds about σ²_max ties at t̂ = T − 1 (saturation; README, "Grid saturation"). ``grid="data"``
    rescales that grid so that σ²_max = ``grid_margin`` × the ``grid_quantile`` quantile of the training
    set's leave-one-out mean K-NN squared distance / d (the InvGamma mode each training point would get),
    so ID points no longer saturate; only points beyond ``grid_margin`` times the training scale tie.
    """

    needs_fit = True

    def __init__(self, name: str = "dte_np", key: str = "features", T: int = 300, K: int = 5, grid: str = "paper",
                 grid_quantile: float = 1.0, grid_margin: float = 2.0, beta_start: float = BETA_START,
                 beta_end: float = BETA_END, chunk_size: Optional[int] = None):
        if grid not in NP_GRIDS:
            raise ValueError(f"DTE-NP grid must be one of {NP_GRIDS}, got {grid!r}")
        if K < 1 or T < 2:
            raise ValueError(f"DTE-NP needs K >= 1 and T >= 2, got K={K}, T={T}")
        if not 0.0 < grid_quantile <= 1.0 or grid_margin <= 0:
            raise ValueError(f"need 0 < grid_quantile <= 1 and grid_margin > 0, got {grid_quantile}, {grid_margin}")
        self.name, self.key, self.T, self.K, self.grid = name, key, T, K, grid
        self.grid_quantile, self.grid_margin, self.chunk_size = grid_quantile, grid_margin, chunk_size
        self.requires = (key,)
        self.paper_sigma2 = sigma2_grid(T, beta_start, beta_end)
        self.sigma2: Optional[torch.Tensor] = None
        self.bank: Optional[torch.Tensor] = None

    def fit(self, outputs: Outputs) -> None:
        bank = get_features(outputs, self.key, self.name).detach()
        invgamma_shape(bank.shape[1])  # d >= 3
        if bank.shape[0] < self.K + (self.grid == "data"):
            raise ValueError(f"scorer {self.name!r}: K={self.K} needs more fit points than {bank.shape[0]}")
        self.bank = bank
        if self.grid == "paper":
            self.sigma2 = self.paper_sigma2.clone()
        else:
            loo = knn_sq_distances(bank, bank, self.K, exclude_self=True, chunk_size=self.chunk_size).mean(1)
            scale = torch.quantile(loo / bank.shape[1], self.grid_quantile).item() * self.grid_margin
            if scale <= 0:
                raise ValueError(f"scorer {self.name!r}: the training points coincide (leave-one-out K-NN distance 0); "
                                 "the data grid cannot be set, use grid='paper'")
            self.sigma2 = (self.paper_sigma2 * (scale / self.paper_sigma2[-1].item())).float()

    def beta(self, outputs: Outputs) -> torch.Tensor:
        """β = ½ · mean of the K smallest squared distances to the bank, ``[N]`` (DTE Eq. 8)."""
        if self.bank is None:
            raise RuntimeError(f"scorer {self.name!r} must be fit on ID data before scoring (call fit(outputs))")
        q = get_features(outputs, self.key, self.name)
        return 0.5 * knn_sq_distances(q, self.bank, self.K, chunk_size=self.chunk_size).mean(1)

    def log_posterior(self, outputs: Outputs) -> torch.Tensor:
        """log p(t | x) over t = 0..T−1 (normalised), ``[N, T]``."""
        beta = self.beta(outputs)
        return invgamma_log_posterior(beta, self.bank.shape[1], self.sigma2.to(beta.device))

    def score(self, outputs: Outputs) -> torch.Tensor:
        return self.log_posterior(outputs).argmax(dim=1).float()


class DTEInverseGammaScorer(Scorer):
    """DTE-IG (README, "DTE-IG"). ``ig_score="mode"`` (the paper): the mode of the predicted posterior
    InvGamma(α = d/2 − 1, β̂ = f(x)²), i.e. β̂ / (α + 1) = 2β̂ / d, a predicted σ². ``ig_score="released"``:
    the released code's raw f(x) = ±√β̂, whose sign the loss never constrains (see the model README)."""

    def __init__(self, num_dims: int, ig_score: str = "mode", name: Optional[str] = None):
        if ig_score not in IG_SCORES:
            raise ValueError(f"DTE-IG ig_score must be one of {IG_SCORES}, got {ig_score!r}")
        invgamma_shape(num_dims)
        self.num_dims, self.ig_score = num_dims, ig_score
        self.name = name or ("dte_ig" if ig_score == "mode" else "dte_ig_released")
        self.requires = ("dte_ig_beta",) if ig_score == "mode" else ("dte_ig_raw",)

    def score(self, outputs: Outputs) -> torch.Tensor:
        if self.ig_score == "mode":
            return invgamma_mode(model_output(outputs, "dte_ig_beta", self.name, 1), self.num_dims)
        return model_output(outputs, "dte_ig_raw", self.name, 1)


class DTECategoricalScorer(Scorer):
    """DTE-C (README, "DTE-C"): the expected time bin Σ_b b · p_b(x) of the classifier's softmax."""

    name = "dte_c"
    requires = ("dte_c_probs",)

    def score(self, outputs: Outputs) -> torch.Tensor:
        p = model_output(outputs, "dte_c_probs", self.name, 2)
        return p @ torch.arange(p.shape[1], dtype=p.dtype, device=p.device)


class DDPMReconstructionScorer(ReconstructionScorer):
    """The DDPM baseline (README, "DDPM reconstruction variants"): per-sample MSE between x and its reconstruction, a member of the
    reconstruction family (:mod:`genood.scoring.reconstruction`): the model returns ``x`` [N, d] and ``x_hat``
    [N, 1, d] plus the per-batch distance ``ddpm_recon_mse`` [N], which this scorer reads (one attempt, so the
    mean aggregation returns it unchanged)."""

    def __init__(self):
        super().__init__("ddpm_recon", distance="mse", aggregate="mean", distance_key="ddpm_recon_mse")
