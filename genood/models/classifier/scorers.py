"""Post-hoc OOD scores of a trained classifier (every score is **higher = more OOD**).

===============  ==========================================================================  ===============
name             score                                                                       reads
===============  ==========================================================================  ===============
msp              −max_k softmax(f(x))_k (Hendrycks & Gimpel, ICLR 2017)                      logits
energy           −T · logsumexp_k f_k(x) / T, T = 1: the free energy E(x) (Liu et al. 2020)  logits
mahalanobis      min_k (h − μ_k)ᵀ Σ⁻¹ (h − μ_k), class means and one tied covariance of the   features (fit:
                 penultimate features h fit on the ID fit split (Lee et al. 2018, Eq. 2;      + labels)
                 no input preprocessing, no layer ensemble)
knn_feature      distance from h/‖h‖ to its k-th nearest normalised ID fit feature, k = 50   features (fit)
                 (Sun et al., ICML 2022, Sec. 3)
===============  ==========================================================================  ===============

Class-conditional fits read the fit split's class labels from ``outputs["labels"]``
(:data:`genood.scoring.base.LABELS_KEY`), which the evaluator adds to the fit outputs only.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from genood.scoring.base import LABELS_KEY, Outputs, Scorer
from genood.scoring.knn import KNNScorer, get_features


def _logits(outputs: Outputs, scorer: str) -> torch.Tensor:
    if "logits" not in outputs:
        raise ValueError(f"scorer {scorer!r} needs the model output 'logits' [N, K]; the outputs only have {sorted(outputs)}")
    v = outputs["logits"]
    if v.ndim != 2:
        raise ValueError(f"scorer {scorer!r}: 'logits' must be [N, K], got {tuple(v.shape)}")
    return v.float()


def fit_labels(outputs: Outputs, scorer: str, n: int) -> torch.Tensor:
    """The fit split's class labels ``[n]``, checked: present, one per row, and at least one labelled row."""
    if LABELS_KEY not in outputs:
        raise ValueError(f"scorer {scorer!r} fits class-conditional statistics and needs the fit split's class labels "
                         f"(outputs[{LABELS_KEY!r}], added by the evaluator); got only {sorted(outputs)}")
    y = outputs[LABELS_KEY].long().reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"scorer {scorer!r}: {y.shape[0]} labels for {n} fit rows")
    if not (y >= 0).any():
        raise ValueError(f"scorer {scorer!r}: the fit split has no class labels (all -1); it needs a labelled ID split")
    return y


class MSPScorer(Scorer):
    """Maximum softmax probability, negated (Hendrycks & Gimpel 2017)."""

    name = "msp"
    requires = ("logits",)

    def score(self, outputs: Outputs) -> torch.Tensor:
        return -torch.softmax(_logits(outputs, self.name), dim=1).amax(dim=1)


class EnergyScorer(Scorer):
    """Free energy E(x; f) = −T · log Σ_k exp(f_k(x) / T) (Liu et al. 2020, Eq. 5); higher = more OOD."""

    requires = ("logits",)

    def __init__(self, temperature: float = 1.0, name: str = "energy"):
        if temperature <= 0:
            raise ValueError(f"energy temperature must be positive, got {temperature}")
        self.temperature, self.name = float(temperature), name

    def score(self, outputs: Outputs) -> torch.Tensor:
        t = self.temperature
        return -t * torch.logsumexp(_logits(outputs, self.name) / t, dim=1)


class MahalanobisScorer(Scorer):
    """Lee et al. (NeurIPS 2018) on the penultimate features, without input preprocessing or feature
    ensembles: μ_k = mean of class k's fit features, Σ = (1/N) Σ_k Σ_{i: y_i = k} (h_i − μ_k)(h_i − μ_k)ᵀ
    (the tied, maximum-likelihood covariance, as their ``sample_estimator`` with scikit-learn's
    ``EmpiricalCovariance``), precision P = pinv(Σ); score = min_k (h − μ_k)ᵀ P (h − μ_k) (their confidence is
    the max of the negative). Computed in float64 on the features' device."""

    needs_fit = True

    def __init__(self, name: str = "mahalanobis", key: str = "features"):
        self.name, self.key = name, key
        self.requires = (key,)
        self.means: Optional[torch.Tensor] = None
        self.precision: Optional[torch.Tensor] = None
        self.classes: Optional[torch.Tensor] = None

    def _features64(self, outputs: Outputs) -> torch.Tensor:
        get_features(outputs, self.key, self.name)  # checks presence and shape
        return outputs[self.key].flatten(1).double()

    def fit(self, outputs: Outputs) -> None:
        h = self._features64(outputs)
        y = fit_labels(outputs, self.name, h.shape[0])
        keep = y >= 0
        h, y = h[keep], y[keep]
        self.classes, inverse = torch.unique(y, return_inverse=True)
        counts = torch.bincount(inverse, minlength=len(self.classes)).double()
        sums = torch.zeros(len(self.classes), h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, inverse, h)
        self.means = sums / counts[:, None]
        centred = h - self.means[inverse]
        cov = centred.T @ centred / h.shape[0]
        self.precision = torch.linalg.pinv(cov, hermitian=True)

    def distances(self, outputs: Outputs) -> torch.Tensor:
        """Squared Mahalanobis distances to every class mean, ``[N, K]`` (float64)."""
        if self.means is None:
            raise RuntimeError(f"scorer {self.name!r} must be fit on ID data before scoring (call fit(outputs))")
        h = self._features64(outputs)
        p, mu = self.precision.to(h.device), self.means.to(h.device)
        hp = h @ p
        # (h - μ)ᵀP(h - μ) = hᵀPh − 2 hᵀPμ + μᵀPμ, all classes in one matmul
        d = (hp * h).sum(1, keepdim=True) - 2.0 * hp @ mu.T + ((mu @ p) * mu).sum(1)[None]
        return d.clamp_min(0.0)

    def score(self, outputs: Outputs) -> torch.Tensor:
        return self.distances(outputs).amin(dim=1)


class KNNFeatureScorer(KNNScorer):
    """Deep nearest neighbours (Sun, Ming, Zhu, Li; ICML 2022): L2-normalise the penultimate features, fit a
    bank on the ID fit split, score = Euclidean distance to the k-th nearest bank vector (k = 50, their
    CIFAR-10 setting; the paper's ID score is its negative)."""

    def __init__(self, name: str = "knn_feature", key: str = "features", k: int = 50,
                 chunk_size: Optional[int] = None):
        super().__init__(name=name, key=key, k=k, reduction="kth", chunk_size=chunk_size)

    def _normalised(self, outputs: Outputs) -> dict:
        return {self.key: F.normalize(get_features(outputs, self.key, self.name), dim=1)}

    def fit(self, outputs: Outputs) -> None:
        super().fit(self._normalised(outputs))

    def score(self, outputs: Outputs) -> torch.Tensor:
        return super().score(self._normalised(outputs))


def classifier_scorers(knn_k: int = 50, energy_temperature: float = 1.0) -> list[Scorer]:
    """The four post-hoc baselines in the order of FlowCon's tables."""
    return [MSPScorer(), EnergyScorer(energy_temperature), MahalanobisScorer(), KNNFeatureScorer(k=knn_k)]
