"""Classical anomaly detectors as genood scorers, fit on the ID fit split's raw inputs (higher = more OOD).

* :class:`genood.scoring.knn.KNNScorer` (re-used): Euclidean distance to the k-th nearest ID training
  point, PyOD's ``KNN(method="largest")`` and the kNN baseline of ADBench / DTE (k = 5).
* :class:`IsolationForestScorer`: scikit-learn's ``IsolationForest`` (Liu, Ting & Zhou, ICDM 2008);
  the score is the negated ``score_samples``, i.e. the paper's anomaly score s(x, ψ) = 2^{−E[h(x)]/c(ψ)}.
* :class:`ECODScorer` (the peers' ``ecod_inductive``): ECOD (Li, Zhao, Hu, Botta, Ionescu, Chen; TKDE 2022) as
  PyOD's ``ECOD`` computes it, made inductive (see :func:`ecod_scores`).

Every score is computed per sample from the fitted ID statistics only, so it never depends on which other
samples are scored with it (batch- and rank-invariant, like every genood scorer). PyOD's detectors as the
papers ran them (transductive ECOD and COPOD included) are in :mod:`genood.models.peers.pyod_scorer`.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

from genood.scoring.base import Outputs, Scorer
from genood.scoring.knn import CHUNK_ELEMENTS, get_features


def ecod_tail_counts(queries: torch.Tensor, sorted_bank: torch.Tensor, chunk_size: Optional[int] = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query and feature, ``(#{bank ≤ x}, #{bank ≥ x})`` ``[N, D]`` from the bank sorted per feature
    (``sorted_bank`` ``[D, n]``, each row ascending); ``torch.searchsorted`` in query chunks."""
    out_le, out_ge = [], []
    n_feat, n = sorted_bank.shape
    if chunk_size is None:
        chunk_size = max(1, CHUNK_ELEMENTS // max(1, n_feat))
    for start in range(0, queries.shape[0], chunk_size):
        q = queries[start:start + chunk_size].T.contiguous()  # [D, B]
        le = torch.searchsorted(sorted_bank, q, right=True)   # bank values <= x
        lt = torch.searchsorted(sorted_bank, q, right=False)  # bank values < x
        out_le.append(le.T)
        out_ge.append((n - lt).T)
    if not out_le:
        empty = queries.new_zeros((0, n_feat), dtype=torch.long)
        return empty, empty
    return torch.cat(out_le), torch.cat(out_ge)


def ecod_scores(queries: torch.Tensor, sorted_bank: torch.Tensor, skew_sign: torch.Tensor,
                chunk_size: Optional[int] = None) -> torch.Tensor:
    """ECOD outlier score of each query against an ID bank, ``[N]``, higher = more OOD.

    PyOD's ``ECOD.decision_function`` appends the scored rows to the training data and takes per-feature
    empirical CDFs over the union, so a score depends on the other rows of the call. Here each query is
    appended *alone*: with n bank rows, the left and right tail probabilities of feature j are

        F_l(x_j) = (1 + #{bank_j ≤ x_j}) / (n + 1),     F_r(x_j) = (1 + #{bank_j ≥ x_j}) / (n + 1),

    exactly PyOD's values for a one-row call, U_l = −log F_l, U_r = −log F_r, the skewness-chosen tail
    U_s = U_l where the ID feature's skewness is negative, U_r where positive, U_l + U_r where zero (PyOD's
    ``U_l·(−sign(γ−1)) + U_r·sign(γ+1)``), and the score Σ_j max(U_l, U_r, U_s) (PyOD's per-feature maximum).
    The skewness sign γ is taken from the bank (PyOD: from the bank plus the scored rows).
    """
    n = sorted_bank.shape[1]
    le, ge = ecod_tail_counts(queries, sorted_bank, chunk_size)
    u_l = -torch.log((le + 1).double() / (n + 1))
    u_r = -torch.log((ge + 1).double() / (n + 1))
    s = skew_sign.to(u_l.device, torch.float64)
    u_skew = u_l * -torch.sign(s - 1) + u_r * torch.sign(s + 1)
    return torch.maximum(torch.maximum(u_l, u_r), u_skew).sum(1)


def skewness_sign(bank: torch.Tensor) -> torch.Tensor:
    """Sign of each feature's sample skewness (the biased moment estimator g1, as ``scipy.stats.skew``)
    ``[D]``; 0 for constant features, whose skewness is undefined."""
    x = bank.double()
    centred = x - x.mean(0)
    m2, m3 = centred.pow(2).mean(0), centred.pow(3).mean(0)
    scale = x.abs().amax(0).clamp_min(1e-300)
    constant = m2.sqrt() <= 1e-12 * scale
    return torch.where(constant, torch.zeros_like(m3), torch.sign(m3))


class ECODScorer(Scorer):
    """ECOD (empirical-CDF outlier detection) on ``outputs[key]`` fit on the ID fit split, per sample
    (inductive); see :func:`ecod_scores`. Parameter-free. The papers' transductive ECOD is the peers' ``ecod``
    (:class:`genood.models.peers.pyod_scorer.PyODScorer`)."""

    needs_fit = True

    def __init__(self, name: str = "ecod_inductive", key: str = "features", chunk_size: Optional[int] = None):
        self.name, self.key, self.chunk_size = name, key, chunk_size
        self.requires = (key,)
        self.sorted_bank: Optional[torch.Tensor] = None
        self.skew_sign: Optional[torch.Tensor] = None

    def fit(self, outputs: Outputs) -> None:
        bank = get_features(outputs, self.key, self.name)
        if bank.shape[0] < 2:
            raise ValueError(f"scorer {self.name!r} needs at least 2 fit rows, got {bank.shape[0]}")
        self.sorted_bank = bank.T.contiguous().sort(dim=1).values  # [D, n]
        self.skew_sign = skewness_sign(bank)

    def score(self, outputs: Outputs) -> torch.Tensor:
        if self.sorted_bank is None:
            raise RuntimeError(f"scorer {self.name!r} must be fit on ID data before scoring (call fit(outputs))")
        q = get_features(outputs, self.key, self.name)
        if q.shape[1] != self.sorted_bank.shape[0]:
            raise ValueError(f"scorer {self.name!r} was fit on {self.sorted_bank.shape[0]} features, got "
                             f"{q.shape[1]}")
        return ecod_scores(q.to(self.sorted_bank.device, self.sorted_bank.dtype), self.sorted_bank,
                           self.skew_sign, self.chunk_size)


class IsolationForestScorer(Scorer):
    """scikit-learn's ``IsolationForest`` fit on the ID fit split's ``outputs[key]``; the score is
    ``-score_samples(x)`` (higher = shorter average path = more OOD). Runs on the CPU."""

    needs_fit = True

    def __init__(self, name: str = "iforest", key: str = "features", n_estimators: int = 100,
                 max_samples: Union[int, float, str] = "auto", random_state: Optional[int] = 0):
        self.name, self.key = name, key
        self.n_estimators, self.max_samples, self.random_state = n_estimators, max_samples, random_state
        self.requires = (key,)
        self.forest = None

    def fit(self, outputs: Outputs) -> None:
        from sklearn.ensemble import IsolationForest

        bank = get_features(outputs, self.key, self.name).detach().cpu().double().numpy()
        self.forest = IsolationForest(n_estimators=self.n_estimators, max_samples=self.max_samples,
                                      random_state=self.random_state).fit(bank)

    def score(self, outputs: Outputs) -> torch.Tensor:
        if self.forest is None:
            raise RuntimeError(f"scorer {self.name!r} must be fit on ID data before scoring (call fit(outputs))")
        q = get_features(outputs, self.key, self.name)
        s = -self.forest.score_samples(q.detach().cpu().double().numpy())
        return torch.from_numpy(np.ascontiguousarray(s)).to(q.device)
