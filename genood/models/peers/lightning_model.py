"""Classical peers as a genood model: nothing to train, raw inputs as features, one scorer per detector.

Running the peers through the ordinary CLI (instead of a separate code path) means they get the entry's
own datamodule (the same ID fit split and the same evaluation sets as a deep model on that config), the
same DDP-exact gathering, metrics, run folder and provenance. Use it on any config's data with an overlay:

    python -m genood.train --config configs/hvae/digits.yaml --config configs/peers/overlay.yaml   # knn, iforest, ecod_inductive
    python -m genood.train --config configs/dte/adbench.yaml --config configs/peers/pyod.yaml ...  # every classical column of DTE's tables
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence, Union

import torch

from genood.models.base import GenerativeModel
from genood.models.peers.pyod_scorer import PYOD_DETECTORS, PyODScorer, released_kwargs
from genood.models.peers.scorers import ECODScorer, IsolationForestScorer
from genood.scoring.knn import KNNScorer

GENOOD_DETECTORS = ("knn", "iforest", "ecod_inductive")  # genood's own implementations (scorers.py, scoring/knn.py)
DETECTORS = GENOOD_DETECTORS + tuple(PYOD_DETECTORS)
DEFAULT_DETECTORS = ("knn", "iforest", "ecod_inductive")
CONSTANT_FEATURES = ("released", "pyod")  # ECOD / COPOD on a constant feature: the papers' PyOD, or PyOD 3.6.7


def _run_seed() -> int:
    """The run's seed: after ``seed_everything(s)`` (the CLI calls it before building the model) torch's
    initial seed is s."""
    return int(torch.initial_seed() % 2**32)


class ClassicalPeers(GenerativeModel):
    """Classical anomaly detectors on the flattened raw inputs (pixels or tabular features), fit on the
    datamodule's ID fit split; see ``genood/models/peers/README.md``.

    Args:
        input_shape: shape of one ``x`` (linked from the datamodule by the CLI).
        detectors: the scorers to build, by name (each name is the scorer's name): genood's ``knn``
            (k-th-neighbour distance), ``iforest`` (scikit-learn Isolation Forest), ``ecod_inductive`` (ECOD per
            sample), and PyOD's detectors run as ADBench / DTE ran them: ``cblof``, ``copod`` and ``ecod``
            (transductive), ``feature_bagging``, ``hbos``, ``iforest_pyod``, ``loda``, ``lof``, ``mcd``, ``ocsvm``,
            ``pca``. None = ``knn``, ``iforest``, ``ecod_inductive``.
        knn_neighbors: k of the k-th-neighbour distance (ADBench / DTE / PyOD default 5).
        iforest_estimators: trees of genood's Isolation Forest (scikit-learn / PyOD default 100).
        iforest_max_samples: sub-sample size per tree (``"auto"`` = min(256, n), the paper's ψ = 256).
        iforest_seed: the forest's ``random_state``; None takes the run's seed (``seed_everything``).
        pyod_seed: the seed set in numpy's legacy global generator before each PyOD detector is fit (ADBench's
            ``set_seed``); None takes the run's seed.
        pyod_kwargs: constructor arguments per PyOD detector, e.g. ``{lof: {n_neighbors: 10}}``; detectors not
            named keep PyOD's defaults (the papers' setting).
        ecod_copod_constant_features: ``"released"`` (default): as the papers' PyOD (< 1.0.9), a feature constant
            over the training rows plus the scored rows makes every ECOD / COPOD score NaN, set to 0 as DTE's
            ``run.py`` does (AUROC 0.5: Table 1's 50.0 on mnist, optdigits, ...); ``"pyod"``: PyOD 3.6.7's fix
            (that feature's skewness read as 0). See :mod:`genood.models.peers.pyod_scorer`.
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, detectors: Optional[list[str]] = None,
                 knn_neighbors: int = 5, iforest_estimators: int = 100,
                 iforest_max_samples: Union[int, float, str] = "auto", iforest_seed: Optional[int] = None,
                 pyod_seed: Optional[int] = None, pyod_kwargs: Optional[dict[str, dict[str, Any]]] = None,
                 ecod_copod_constant_features: str = "released"):
        super().__init__(input_shape=input_shape)
        if ecod_copod_constant_features not in CONSTANT_FEATURES:
            raise ValueError(f"ecod_copod_constant_features must be one of {CONSTANT_FEATURES}, got "
                             f"{ecod_copod_constant_features!r}")
        if knn_neighbors < 1:
            raise ValueError(f"knn_neighbors must be >= 1, got {knn_neighbors}")
        if iforest_estimators < 1:
            raise ValueError(f"iforest_estimators must be >= 1, got {iforest_estimators}")
        detectors = list(DEFAULT_DETECTORS if detectors is None else detectors)
        unknown = [d for d in detectors if d not in DETECTORS]
        if unknown:
            hint = " (genood's per-sample ECOD is now 'ecod_inductive'; 'ecod' is PyOD's)" if "ecod" in unknown else ""
            raise ValueError(f"unknown detector(s) {unknown}; choose from {list(DETECTORS)}{hint}")
        if not detectors or len(set(detectors)) != len(detectors):
            raise ValueError(f"detectors must be a non-empty list without repeats, got {detectors}")
        pyod_kwargs = dict(pyod_kwargs or {})
        stray = [k for k in pyod_kwargs if k not in PYOD_DETECTORS or k not in detectors]
        if stray:
            raise ValueError(f"pyod_kwargs names {stray}, which are not PyOD detectors among detectors={detectors}; "
                             f"PyOD detectors: {list(PYOD_DETECTORS)}")
        self.save_hyperparameters()
        self.detectors = detectors
        self.knn_neighbors = knn_neighbors
        self.iforest_estimators, self.iforest_max_samples = iforest_estimators, iforest_max_samples
        self.iforest_seed = _run_seed() if iforest_seed is None else int(iforest_seed)
        self.pyod_seed = _run_seed() if pyod_seed is None else int(pyod_seed)
        self.pyod_kwargs = pyod_kwargs
        self.ecod_copod_constant_features = ecod_copod_constant_features

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """``features``: the input flattened to ``[B, D]`` float vectors (float64 inputs stay float64: the
        PyOD detectors then see the rows the papers' numpy pipeline gave them, see ``TabularDataModule.dtype``)."""
        x = x.flatten(1)
        return {"features": x if x.dtype == torch.float64 else x.float()}

    def scorers(self) -> list:
        return [self._scorer(name) for name in self.detectors]

    def _scorer(self, name: str):
        if name == "knn":
            return KNNScorer(name="knn", key="features", k=self.knn_neighbors, reduction="kth")
        if name == "iforest":
            return IsolationForestScorer(n_estimators=self.iforest_estimators, max_samples=self.iforest_max_samples,
                                         random_state=self.iforest_seed)
        if name == "ecod_inductive":
            return ECODScorer(name="ecod_inductive")
        path, transductive = PYOD_DETECTORS[name]
        released = name in ("ecod", "copod") and self.ecod_copod_constant_features == "released"
        return PyODScorer(name, path, transductive=transductive, seed=self.pyod_seed,
                          kwargs=released_kwargs(name, self.pyod_kwargs.get(name)), constant_features_nan=released)

    # ---- nothing to train: a fit with max_epochs > 0 stops at once --------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        raise RuntimeError("ClassicalPeers has no training loss: its detectors fit on the ID fit split at "
                           "evaluation time (use trainer.max_epochs=0)")

    def setup(self, stage: str) -> None:
        # Lightning warns that a fit without an optimizer runs without one: for the peers that is the point
        warnings.filterwarnings("ignore", message=r".*configure_optimizers. returned .None., this fit will run "
                                                  "with no optimizer")

    def on_train_start(self) -> None:
        self.trainer.should_stop = True

    def on_train_batch_start(self, batch, batch_idx):
        return -1  # skip the rest of the epoch

    def training_step(self, batch: dict, batch_idx: int):
        return None

    def validation_step(self, batch: dict, batch_idx: int):
        return None

    def configure_optimizers(self):
        return None  # nothing to optimise (see setup)
