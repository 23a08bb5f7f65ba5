"""PyOD's classical detectors as genood scorers, run the way the DTE paper's numbers were produced.

DTE's ``run.py`` (Livernoche et al., ICLR 2024) runs every classical column of its Tables 1 and 2 through
ADBench's wrapper ``adbench/baseline/PyOD.py`` (Han et al., NeurIPS 2022):

1. ``Utils.set_seed(seed)``: ``np.random.seed(seed)``, ``random.seed(seed)``, ``torch.manual_seed(seed)``;
2. ``Detector().fit(X_train)`` with **PyOD's default constructor arguments**, so ``random_state=None`` and the
   detectors that draw randomness (IForest, LODA, CBLOF's k-means, FeatureBagging, MCD) draw it from numpy's
   legacy global generator that step 1 has just seeded;
3. ``score = detector.decision_function(X_test)``, one call on the **whole** test set (the held-out normals
   and every anomaly together), PyOD's convention higher = more outlying (genood's);
4. ``score[np.isnan(score)] = 0`` before the AUROC (genood sets infinite scores to 0 as well).

**PCA's solver (the papers' scikit-learn).** PyOD's ``PCA`` divides each principal component's distance by its
explained-variance ratio. scikit-learn < 1.5, which the papers ran, computed ``PCA(svd_solver="auto")`` with
``n_components=None`` by the full LAPACK SVD, whose smallest singular values on data with a constant or
collinear feature are tiny but non-zero; scikit-learn ≥ 1.5's "auto" takes the covariance eigendecomposition
for tall data, which returns exactly 0, so every score is infinite (an AUROC of 0.5 after step 4: ADBench's
mnist, optdigits, Cardiotocography). :func:`released_kwargs` passes ``svd_solver="full"``, which gives the
published values again (seed 0, released split: mnist 90.21, optdigits 58.17, Cardiotocography 78.89, as in
DTE's Table 1); a model's ``pyod_kwargs`` override it.

**PCA's axis signs (the papers' scikit-learn).** PyOD's PCA score depends on the sign of each principal axis,
which scikit-learn 1.5 changed; the ``pca`` scorer runs :class:`genood.models.peers.papers_pca.PapersPCA`, PyOD's
PCA with the axes signed as before (44_Wilt: 26.07 as published, 46.4 with today's signs;
``pyod_kwargs: {pca: {axis_signs: sklearn}}`` gives today's).

**CBLOF's k-means (the papers' scikit-learn).** PyOD's ``CBLOF`` builds ``KMeans(n_clusters)`` with
scikit-learn's default restarts: 10 k-means++ starts before scikit-learn 1.4, one (``n_init="auto"``) since.
One start finds other clusters and sometimes none that CBLOF can split into large and small ones ("Could not
form valid cluster separation": 41_Waveform, seed 1, released split). :func:`released_kwargs` hands CBLOF a
``KMeans(n_clusters, n_init=10)`` drawing from the seeded global generator, as the papers' did: on the
released split, seeds 0-2, 12_fault 59.4 (published 59.00; one start: 61.0) and 27_PageBlocks 91.26 (91.23;
one start: 90.05).

**Precision (the papers' numpy).** ADBench's pipeline handed PyOD the scaled rows in float64; genood's tabular
data is float32 unless ``TabularDataModule(dtype="float64")``, which ``configs/peers/pyod.yaml`` sets. Rounding
to float32 moves rows that sit on one of HBOS's bin edges into the next bin (7_Cardiotocography, released split:
59.22 in float32, the published 61.24 in float64). Features reach the scorers in the dtype the data has.

:class:`PyODScorer` does exactly that for any PyOD detector: it seeds numpy's legacy global generator and
Python's ``random`` with the run's seed immediately before constructing and fitting the detector on the ID
fit split (and puts both generators back afterwards, so no other scorer sees the change; torch is not
seeded: no detector here uses it), and scores with ``decision_function``. Detectors whose
``decision_function`` depends on the scored batch (PyOD 3.6.7: ``ECOD`` and ``COPOD``, which append the batch
to the training data before taking their empirical CDFs) are ``transductive``: the evaluator calls them once
on every evaluation set together (:mod:`genood.scoring.base`), which on a tabular task is step 3 exactly.
The other detectors of :data:`PYOD_DETECTORS` score each row from the fitted model alone (checked in the
PyOD 3.6.7 source), so scoring the sets one at a time gives the same numbers.

**Constant features in ECOD and COPOD (the papers' PyOD).** Both take the sign of each feature's skewness
over the training rows plus the scored batch. With SciPy ≥ 1.9, ``scipy.stats.skew`` of a constant feature is
NaN; PyOD before 1.0.9 (ADBench pins 1.0.0) passed that NaN on, so one constant feature made *every* score
NaN, which ``run.py`` turns into 0: an AUROC of exactly 0.5. That is the 50.0 (0.0) of DTE's Table 1 for ECOD
and COPOD on mnist, optdigits, MNIST-C, FashionMNIST, SVHN, MVTec-AD, census and backdoor. PyOD 1.0.9
("hot fix for errors in ECOD and COPOD due to the issue of scipy", March 2023) reads the NaN as 0.
``constant_features_nan=True`` reproduces the papers' behaviour (the peers' default, ``ecod_copod_constant_features:
released``); False keeps PyOD 3.6.7's fix.
"""

from __future__ import annotations

import contextlib
import importlib
import random
import warnings
from typing import Any, Iterator, Mapping, Optional, Union

import numpy as np
import torch

from genood.scoring.base import Outputs, Scorer
from genood.scoring.knn import get_features

# scorer name -> (PyOD class path, transductive): the classical columns of DTE's Tables 1 and 2 run by PyOD.
# KNN is genood's ``knn`` (genood.scoring.knn.KNNScorer = PyOD's KNN with its defaults, tested equal);
# ``iforest_pyod`` is PyOD's IForest seeded as above (genood's ``iforest`` passes random_state=seed instead).
PYOD_DETECTORS: dict[str, tuple[str, bool]] = {
    "cblof": ("pyod.models.cblof.CBLOF", False),
    "copod": ("pyod.models.copod.COPOD", True),
    "ecod": ("pyod.models.ecod.ECOD", True),
    "feature_bagging": ("pyod.models.feature_bagging.FeatureBagging", False),
    "hbos": ("pyod.models.hbos.HBOS", False),
    "iforest_pyod": ("pyod.models.iforest.IForest", False),
    "loda": ("pyod.models.loda.LODA", False),
    "lof": ("pyod.models.lof.LOF", False),
    "mcd": ("pyod.models.mcd.MCD", False),
    "ocsvm": ("pyod.models.ocsvm.OCSVM", False),
    "pca": ("genood.models.peers.papers_pca.PapersPCA", False),  # PyOD's PCA, axes signed as the papers' sklearn
}

def released_kwargs(name: str, kwargs: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """Constructor arguments of detector ``name`` that make today's libraries compute what the papers' did
    (module docstring: "PCA's solver", "CBLOF's k-means"), with ``kwargs`` (a model's ``pyod_kwargs``) on top."""
    kwargs = dict(kwargs or {})
    if name == "pca":
        return {"svd_solver": "full", **kwargs}
    if name == "cblof" and "clustering_estimator" not in kwargs:
        from sklearn.cluster import KMeans

        return {"clustering_estimator": KMeans(n_clusters=kwargs.get("n_clusters", 8), n_init=10), **kwargs}
    return kwargs


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed numpy's legacy global generator and Python's ``random`` with ``seed`` (ADBench's ``set_seed``)
    for the block, then restore both states."""
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def import_detector(path: str) -> type:
    """The PyOD class at ``path`` (``"pyod.models.ecod.ECOD"``), with a clear error when it cannot be imported."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ImportError(f"cannot import the PyOD detector {path!r} ({type(e).__name__}: {e}); genood needs "
                          "pyod==3.6.7 (and combo for FeatureBagging): pip install -e .") from e


def _has_nan_skewness(X: np.ndarray) -> bool:
    """Whether ``scipy.stats.skew`` (as PyOD < 1.0.9's ECOD / COPOD call it, over the rows ``X``) is NaN for
    some feature: SciPy ≥ 1.9 returns NaN for a constant feature."""
    from scipy.stats import skew

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return bool(np.isnan(skew(X, axis=0)).any())


class PyODScorer(Scorer):
    """A PyOD detector fit on the ID fit split's ``outputs[key]`` and scored by ``decision_function``, run as
    ADBench / DTE ran it (module docstring).

    Args:
        name: the scorer's name.
        detector: a PyOD detector class, or its import path (``"pyod.models.lof.LOF"``).
        transductive: True for detectors whose ``decision_function(X)`` depends on the whole batch ``X``
            (ECOD, COPOD): the evaluator then calls :meth:`score` once on every evaluation set together.
        seed: seeds numpy's legacy global generator and Python's ``random`` right before the detector is
            constructed and fit (ADBench's ``set_seed``).
        kwargs: constructor arguments; empty = PyOD's defaults, as the papers ran them.
        key: the output holding the ``[N, D]`` vectors.
        nan_to_zero: replace NaN (and infinite) scores by 0, as DTE's ``run.py`` does with NaN before its AUROC (a
            warning says how many).
        constant_features_nan: every score is NaN when a feature is constant over the fit rows plus the scored
            batch (its SciPy skewness is NaN): the papers' PyOD < 1.0.9 ECOD / COPOD (module docstring).
    """

    needs_fit = True

    def __init__(self, name: str, detector: Union[str, type], transductive: bool = False, seed: int = 0,
                 kwargs: Optional[Mapping[str, Any]] = None, key: str = "features", nan_to_zero: bool = True,
                 constant_features_nan: bool = False):
        self.name, self.key, self.requires = name, key, (key,)
        self.detector_class = detector
        self.transductive = bool(transductive)
        self.seed, self.kwargs, self.nan_to_zero = int(seed), dict(kwargs or {}), nan_to_zero
        self.constant_features_nan = constant_features_nan
        self.detector = None
        self.fit_rows: Optional[np.ndarray] = None  # kept only for constant_features_nan

    def _rows(self, outputs: Outputs) -> tuple[np.ndarray, torch.Tensor]:
        x = get_features(outputs, self.key, self.name)
        return x.detach().cpu().double().numpy(), x

    def fit(self, outputs: Outputs) -> None:
        cls = import_detector(self.detector_class) if isinstance(self.detector_class, str) else self.detector_class
        X, _ = self._rows(outputs)
        self.fit_rows = X if self.constant_features_nan else None
        with seeded_global_rngs(self.seed):
            try:
                self.detector = cls(**self.kwargs).fit(X)
            except TypeError as e:
                if self.kwargs:
                    raise ValueError(f"scorer {self.name!r}: {cls.__name__}({self.kwargs}) failed: {e}; check the "
                                     "detector's constructor arguments in the model's pyod_kwargs") from e
                raise
            except ValueError as e:  # e.g. CBLOF: no valid large/small cluster split for this k-means draw
                raise ValueError(f"scorer {self.name!r}: {cls.__name__} could not be fit on {X.shape[0]} rows x "
                                 f"{X.shape[1]} features (seed {self.seed}): {e}. Leave {self.name!r} out of the "
                                 "model's detectors, or give it other constructor arguments in pyod_kwargs") from e

    def score(self, outputs: Outputs) -> torch.Tensor:
        if self.detector is None:
            raise RuntimeError(f"scorer {self.name!r} must be fit on ID data before scoring (call fit(outputs))")
        X, x = self._rows(outputs)
        s = np.asarray(self.detector.decision_function(X), dtype=np.float64).reshape(-1)
        if self.constant_features_nan and _has_nan_skewness(np.concatenate([self.fit_rows, X])):
            s = np.full_like(s, np.nan)  # PyOD < 1.0.9: the NaN skewness reaches every row's sum
        bad = ~np.isfinite(s)
        if self.nan_to_zero and bad.any():
            warnings.warn(f"scorer {self.name!r}: {int(bad.sum())} of {len(s)} scores are NaN or infinite and are set "
                          "to 0, as DTE's run.py does with NaN", RuntimeWarning, stacklevel=2)
            s = np.where(bad, 0.0, s)
        return torch.from_numpy(np.ascontiguousarray(s)).to(x.device)

    def __repr__(self) -> str:
        return f"PyODScorer(name={self.name!r}, transductive={self.transductive})"
