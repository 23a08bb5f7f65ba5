"""MSMA's detectors on the score-norm vectors n(x) ∈ R^L (released ``ood_detection_helper``).
Every score is higher = more OOD; the fitted ones fit on the ID fit split's vectors (gathered over ranks).

==================  ==========================================================================  =========
name                score                                                                       fit
==================  ==========================================================================  =========
msma_gmm            −log p_GMM(n(x)): StandardScaler + full-covariance Gaussian mixture, the     yes
                    number of components chosen by K-fold held-out log-likelihood over a grid
msma_flow           −log p_MAF(n(x)): a masked autoregressive flow (``flow.py``)                 yes
msma_knn            distance to the 5th nearest training vector (:class:`genood.scoring.knn.    yes
                    KNNScorer`; the released code's ``NearestNeighbors(5, kd_tree)``)
msma_norm_l{i}      n_i(x) = ‖σ_i s_θ(x, σ_i)‖ alone (i = 1 … L, σ_1 = σ_max)                    no
==================  ==========================================================================  =========
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from genood.scoring.base import Outputs, Scorer
from genood.scoring.knn import get_features

from .flow import FlowFit, build_maf, fit_maf

PAPER_GMM_COMPONENTS = tuple(range(2, 21, 2))


def _vectors(outputs: Outputs, key: str, scorer: str) -> torch.Tensor:
    return get_features(outputs, key, scorer).detach()


class ScoreNormScorer(Scorer):
    """One level's score norm n_i(x) (released ``compute_weighted_scores``); ``level`` is 1-based as the
    paper's σ_i (σ_1 = σ_max)."""

    def __init__(self, level: int, key: str = "score_norms"):
        if level < 1:
            raise ValueError(f"score-norm levels are numbered from 1 (σ_1 = σ_max), got {level}")
        self.level, self.key = int(level), key
        self.name = f"msma_norm_l{self.level}"
        self.requires = (key,)

    def score(self, outputs: Outputs) -> torch.Tensor:
        n = _vectors(outputs, self.key, self.name)
        if n.shape[1] < self.level:
            raise ValueError(f"scorer {self.name!r}: the model gives {n.shape[1]} levels, there is no level {self.level}")
        return n[:, self.level - 1]


class GMMScorer(Scorer):
    """−log p of a Gaussian mixture on standardised score-norm vectors (released ``train_gmm``).

    ``Pipeline([StandardScaler, GaussianMixture(covariance_type)])``; the number of components is the grid
    value with the highest mean held-out log-likelihood in ``folds``-fold cross-validation
    (``GridSearchCV(cv=KFold(folds))``, unshuffled folds as the released code's ``cv=10``; ties go to the
    smaller value), then refit on every fit vector. Paper: grid {2, 4, …, 20}, 10 folds, full covariance.
    ``seed`` fixes the k-means initialisation (the released code leaves it random). −log p is in the
    standardised space (a constant shift from the raw space's: rankings are the same). Fits run with one
    BLAS/OpenMP thread per process (on small vectors, threads only contend: a 20-component fit on 1,000
    vectors took 13.5 s with 2 threads on a loaded 2-core machine, 0.9 s with 1); ``n_jobs`` parallelises
    the grid over processes instead (the released code used 10).
    """

    needs_fit = True

    def __init__(self, name: str = "msma_gmm", key: str = "score_norms",
                 components: Sequence[int] = PAPER_GMM_COMPONENTS, folds: int = 10, covariance_type: str = "full",
                 seed: int = 0, n_jobs: Optional[int] = 1, reg_covar: float = 1e-6, max_iter: int = 100):
        components = sorted({int(c) for c in components})
        if not components or components[0] < 1:
            raise ValueError(f"scorer {name!r}: components must be a non-empty list of positive integers, got {components}")
        if folds < 2 and len(components) > 1:
            raise ValueError(f"scorer {name!r}: choosing among {components} components needs folds >= 2, got {folds}")
        self.name, self.key, self.components, self.folds = name, key, components, int(folds)
        self.covariance_type, self.seed, self.n_jobs = covariance_type, seed, n_jobs
        self.reg_covar, self.max_iter = reg_covar, max_iter
        self.requires = (key,)
        self.model = None
        self.selected_components: Optional[int] = None
        self.cv_loglik: dict[int, float] = {}

    def _pipeline(self, n_components: int):
        from sklearn.mixture import GaussianMixture
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        return Pipeline([("scaler", StandardScaler()),
                         ("gmm", GaussianMixture(n_components=n_components, covariance_type=self.covariance_type,
                                                 reg_covar=self.reg_covar, max_iter=self.max_iter,
                                                 random_state=self.seed))])

    def fit(self, outputs: Outputs) -> None:
        x = _vectors(outputs, self.key, self.name).double().cpu().numpy()
        n = x.shape[0]
        if len(self.components) == 1:
            if n < self.components[0]:
                raise ValueError(f"scorer {self.name!r}: {self.components[0]} components need at least as many fit "
                                 f"vectors, got {n}")
            self.selected_components = self.components[0]
            with threadpool_limits(1):
                self.model = self._pipeline(self.selected_components).fit(x)
            return
        smallest_train_fold = n - -(-n // self.folds)
        if n < self.folds or self.components[-1] > smallest_train_fold:
            raise ValueError(f"scorer {self.name!r}: {self.folds}-fold selection over {self.components} components "
                             f"needs training folds of at least {self.components[-1]} vectors; {n} fit vectors give "
                             f"{smallest_train_fold}. Lower gmm_components / gmm_folds or fit on more data")
        from sklearn.model_selection import GridSearchCV, KFold

        search = GridSearchCV(self._pipeline(self.components[0]), {"gmm__n_components": self.components},
                              cv=KFold(self.folds), n_jobs=self.n_jobs, refit=False)
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.filterwarnings("ignore", message=".*did not converge.*")
            search.fit(x)
        means = np.asarray(search.cv_results_["mean_test_score"], dtype=np.float64)
        self.cv_loglik = {c: float(m) for c, m in zip(self.components, means)}
        if not np.isfinite(means).any():
            raise ValueError(f"scorer {self.name!r}: every GMM in the grid {self.components} failed to fit in "
                             "cross-validation (degenerate score-norm vectors?)")
        self.selected_components = self.components[int(np.nanargmax(means))]  # first (smallest) of tied bests
        with threadpool_limits(1):
            self.model = self._pipeline(self.selected_components).fit(x)

    def log_prob(self, outputs: Outputs) -> torch.Tensor:
        if self.model is None:
            raise RuntimeError(f"scorer {self.name!r} must be fit on ID data before scoring (call fit(outputs))")
        x = _vectors(outputs, self.key, self.name)
        with threadpool_limits(1):
            return torch.from_numpy(self.model.score_samples(x.double().cpu().numpy()))

    def score(self, outputs: Outputs) -> torch.Tensor:
        return -self.log_prob(outputs)


class FlowScorer(Scorer):
    """−log p of a masked autoregressive flow on the score-norm vectors (released ``train_flow``; ``flow.py``).

    The fit vectors are split (seeded) into a training part and a ``val_fraction`` validation part; the
    flow keeps the weights of its best validation epoch and stops after ``patience`` epochs without
    improvement (``val_fraction=0``: train on everything for ``epochs`` epochs, as the released code, which
    only *monitored* the ID test set). ``standardize`` fits the flow on vectors standardised with the
    training part's mean and standard deviation (the released code fits the raw vectors). Training is on
    the CPU, seeded, on one thread: the same fit vectors give the same scores on every run and every DDP
    world size. Scores are computed in float64 so that far-OOD vectors keep a finite −log p.
    """

    needs_fit = True

    def __init__(self, name: str = "msma_flow", key: str = "score_norms", hidden_features: int = 128,
                 hidden_layers: int = 2, num_layers: int = 1, optimizer: str = "adadelta", lr: float = 0.01,
                 batch_size: int = 128, epochs: int = 1000, val_fraction: float = 0.1, patience: Optional[int] = 100,
                 standardize: bool = False, seed: int = 0):
        if not 0 <= val_fraction < 1:
            raise ValueError(f"scorer {name!r}: val_fraction must lie in [0, 1), got {val_fraction}")
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"scorer {name!r}: epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
        self.name, self.key = name, key
        self.hidden_features, self.hidden_layers, self.num_layers = hidden_features, hidden_layers, num_layers
        self.optimizer, self.lr, self.batch_size, self.epochs = optimizer, lr, batch_size, epochs
        self.val_fraction, self.patience, self.standardize, self.seed = val_fraction, patience, standardize, seed
        self.requires = (key,)
        self.flow = None
        self.report: Optional[FlowFit] = None
        self.mean: Optional[torch.Tensor] = None
        self.std: Optional[torch.Tensor] = None

    def fit(self, outputs: Outputs) -> None:
        n = _vectors(outputs, self.key, self.name).shape[0]
        n_val = int(round(self.val_fraction * n)) if self.val_fraction > 0 else 0
        if self.val_fraction > 0 and not 1 <= n_val < n:
            raise ValueError(f"scorer {self.name!r}: {n} fit vectors are too few for a validation split of "
                             f"{self.val_fraction}; set flow_val_fraction: 0")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # bit-for-bit the same flow whatever the process's thread setting
        try:  # the evaluator calls fit inside the test loop's inference mode: train outside it
            with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng(devices=[]):
                x = _vectors(outputs, self.key, self.name).float().cpu().clone()
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
                x_val, x_train = (x[perm[:n_val]], x[perm[n_val:]]) if n_val else (None, x)
                if self.standardize:
                    self.mean, self.std = x_train.mean(0), x_train.std(0).clamp_min(1e-12)
                else:
                    self.mean, self.std = torch.zeros(x.shape[1]), torch.ones(x.shape[1])
                if x_val is not None:
                    x_val = (x_val - self.mean) / self.std
                torch.manual_seed(self.seed)
                self.flow = build_maf(x.shape[1], self.hidden_features, self.hidden_layers, self.num_layers)
                self.report = fit_maf(self.flow, (x_train - self.mean) / self.std, x_val, optimizer=self.optimizer,
                                      lr=self.lr, batch_size=self.batch_size, epochs=self.epochs,
                                      patience=self.patience if n_val else None, seed=self.seed)
        finally:
            torch.set_num_threads(threads)

    def log_prob(self, outputs: Outputs) -> torch.Tensor:
        """log p of the (standardised, when configured) vectors under the flow, float64 ``[N]``."""
        if self.flow is None:
            raise RuntimeError(f"scorer {self.name!r} must be fit on ID data before scoring (call fit(outputs))")
        x = _vectors(outputs, self.key, self.name).double().cpu()
        flow = copy_double(self.flow)
        with torch.no_grad():
            return flow.log_prob((x - self.mean.double()) / self.std.double())

    def score(self, outputs: Outputs) -> torch.Tensor:
        return -self.log_prob(outputs)


def copy_double(module: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy of ``module`` in eval mode (the original is left as it is)."""
    import copy

    return copy.deepcopy(module).double().eval()
