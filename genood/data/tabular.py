"""Tabular anomaly-detection data: ADBench ``.npz`` files and three embedded, offline tasks.

Every task is a matrix ``X [n, d]`` with labels ``y`` (1 = anomaly, 0 = normal), split by a named protocol
(DTE's ``run.py`` / ADBench's ``DataGenerator``; Livernoche et al. 2024, experimental setup):

* ``"semi"`` (DTE's semi-supervised setting): train on a random 50% of the normal points; test on the
  other normals plus every anomaly. The training split holds no anomaly.
* ``"unsupervised"`` (ADBench / DTE ``run.py --setting unsup``): train on a bootstrap resample (with
  replacement, n draws) of the full contaminated data; test on the full data. The test set contains the
  training points by design (by design of the protocol; see ``genood/models/dte/README.md``).

Standard scaling (mean 0, variance 1 per feature; constant features keep scale 1) is fit on the training
split only and applied to every split. Missing values (NaN) are replaced by the training mean, i.e. 0
after scaling (ADBench fills with the column mean).

Evaluation sets: the ID set (named after the dataset, group ``"id"``) holds the normal test points, the
OOD set ``"anomalies"`` (group ``"far"``) the anomalous ones. ``val_set = fit_set = train``: no label is
ever used for fitting. Each sample is ``{"x": float32 [d], "y": 0/1 anomaly label, "index": i}``.

Embedded tasks (scikit-learn's bundled copies, no download):

* ``"wine"``: the UCI wine data behind ADBench's ``wine`` — cultivars 2 and 3 are normal (119 points),
  10 points of cultivar 1 are the anomalies (129 points, 13 features). scikit-learn numbers the
  cultivars 0, 1, 2, so its classes 1 + 2 are normal and 10 of its class 0 are drawn.
* ``"wdbc"``: the breast-cancer (WDBC) data behind ADBench's ``WDBC`` — all 357 benign points are normal,
  10 malignant points are the anomalies (367 points, 30 features).
* ``"digits"``: scikit-learn's 8×8 digits flattened to 64 features; digit 0 (178 points) is anomalous,
  the other 1,619 are normal.

The 10 anomalies of ``wine`` and ``wdbc`` are drawn without replacement by
``numpy.random.default_rng(ANOMALY_SEED = 0)`` from the anomalous class, independently of the datamodule's
``seed`` (which only drives the protocol's split): the task is the same in every run. ADBench made the
same kind of subsample, but its exact 10 points are not recoverable from scikit-learn's copies, so our
numbers compare with ADBench's in kind, not digit for digit.

Differences from the released DTE ``DataGenerator`` worth knowing (documented, not reproduced):
it takes the *first* half of the normals in file order (not a random half), and it resamples datasets
with fewer than 1,000 points up to 1,000 with replacement *before* splitting, so duplicated points can
sit in both the train and test splits of small sets (wine, WDBC). We split the original points by
default; ``oversample_to=1000`` reproduces the resampling (the published small-set numbers rely on it:
a test normal with an exact copy in the training split has K-NN distance 0).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .base import EvalSet, IndexedDataset, OODDataModule

EMBEDDED_TASKS = ("wine", "wdbc", "digits")
PROTOCOLS = ("semi", "unsupervised")
ANOMALY_SEED = 0
N_EMBEDDED_ANOMALIES = 10
ADBENCH_HINT = ("ADBench's .npz files (arrays X [n, d] and y [n], y = 1 for an anomaly) come from "
                "https://github.com/Minqi824/ADBench (folder adbench/datasets/Classical, CV_by_ResNet18, "
                "NLP_by_BERT) or `pip install adbench` followed by adbench.myutils.Utils().download_datasets()")


def _subsample_class(X: np.ndarray, is_anomaly: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep every normal point and ``n`` anomalies drawn with the fixed ``ANOMALY_SEED``."""
    rng = np.random.default_rng(ANOMALY_SEED)
    anomalies = np.flatnonzero(is_anomaly)
    keep = np.sort(np.concatenate([np.flatnonzero(~is_anomaly), rng.choice(anomalies, n, replace=False)]))
    return X[keep], is_anomaly[keep].astype(np.int64)


def load_embedded(name: str) -> tuple[np.ndarray, np.ndarray]:
    """One embedded task as ``(X float64 [n, d], y int64 [n])`` with y = 1 for an anomaly."""
    from sklearn import datasets

    if name == "wine":
        d = datasets.load_wine()
        return _subsample_class(d.data, d.target == 0, N_EMBEDDED_ANOMALIES)
    if name == "wdbc":
        d = datasets.load_breast_cancer()  # target 0 = malignant, 1 = benign
        return _subsample_class(d.data, d.target == 0, N_EMBEDDED_ANOMALIES)
    if name == "digits":
        d = datasets.load_digits()
        return d.data.astype(np.float64), (d.target == 0).astype(np.int64)
    raise ValueError(f"unknown embedded tabular task {name!r}; embedded tasks: {list(EMBEDDED_TASKS)}")


def find_adbench_file(name: str, root: str | Path) -> Path:
    """The ``.npz`` for ``name`` under ``root`` (searched recursively): ``<name>.npz``, or ADBench's
    numbered form ``<k>_<name>.npz`` (e.g. ``breastw`` finds ``4_breastw.npz``); names compare
    case-insensitively. Raises FileNotFoundError naming the folder and where the files come from."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"tabular dataset {name!r}: folder {str(root)!r} does not exist. {ADBENCH_HINT}")
    direct = root / f"{name}.npz"
    if direct.is_file():
        return direct
    pattern = re.compile(rf"^(\d+_)?{re.escape(name)}\.npz$", re.IGNORECASE)
    hits = sorted(p for p in root.rglob("*.npz") if pattern.match(p.name))
    if not hits:
        raise FileNotFoundError(f"tabular dataset {name!r}: no {name}.npz or <k>_{name}.npz under {str(root)!r}. "
                                f"{ADBENCH_HINT}")
    if len(hits) > 1:
        raise ValueError(f"tabular dataset {name!r} matches several files under {str(root)!r}: "
                         f"{[str(h) for h in hits]}; pass the exact file stem (e.g. {hits[0].stem!r})")
    return hits[0]


def load_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """An ADBench-style ``.npz`` as ``(X float64 [n, d], y int64 [n])``; checks shapes and labels."""
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in ("X", "y") if k not in f.files]
        if missing:
            raise ValueError(f"{str(path)!r} lacks array(s) {missing}; an ADBench file holds X [n, d] and y [n] "
                             f"(y = 1 for an anomaly); it has {f.files}")
        X, y = np.asarray(f["X"], dtype=np.float64), np.asarray(f["y"])
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(f"{str(path)!r}: need X [n, d] and y [n], got X {X.shape} and y {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{str(path)!r}: y must be 0 (normal) or 1 (anomaly), got values {np.unique(y)[:10]}")
    return X, y.astype(np.int64)


def load_tabular(name: str, root: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    """An embedded task (``wine``, ``wdbc``, ``digits``) or an ADBench ``.npz`` found under ``root``."""
    if name in EMBEDDED_TASKS:
        return load_embedded(name)
    if root is None:
        raise ValueError(f"unknown tabular dataset {name!r}: the embedded tasks are {list(EMBEDDED_TASKS)}; "
                         "for an ADBench dataset pass root=<folder holding the .npz files>")
    return load_npz(find_adbench_file(name, root))


def protocol_split(y: np.ndarray, protocol: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)`` of a protocol (module docstring). ``train`` may repeat rows
    (``unsupervised`` bootstraps); ``test`` lists each row once, in data order."""
    rng = np.random.default_rng(seed)
    n = len(y)
    if protocol == "semi":
        normals = np.flatnonzero(y == 0)
        perm = rng.permutation(normals)
        n_train = int(round(0.5 * len(normals)))
        train = np.sort(perm[:n_train])
        test = np.sort(np.concatenate([perm[n_train:], np.flatnonzero(y == 1)]))
        return train, test
    if protocol == "unsupervised":
        return rng.integers(0, n, size=n), np.arange(n)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")


class TabularDataModule(OODDataModule):
    """A tabular anomaly-detection task split by a named protocol (see the module docstring).

    Args:
        dataset: ``"wine"``, ``"wdbc"``, ``"digits"`` (embedded), or an ADBench name found under ``root``.
        root: folder with ADBench ``.npz`` files (searched recursively); unused for embedded tasks.
        protocol: ``"semi"`` (train on half the normals) or ``"unsupervised"`` (bootstrap of all data).
        standardize: standard-scale with statistics of the training split (DTE: "crucial").
        max_samples: subsample larger datasets to this many points first (seeded, without replacement),
            as DTE's ``run.py`` does with 50,000; None keeps everything.
        oversample_to: ADBench's ``DataGenerator`` (used by DTE's ``run.py``) resamples datasets smaller
            than 1,000 points up to 1,000 *with replacement* before splitting, so copies of one point can
            land in both train and test. ``oversample_to=1000`` reproduces that (for comparison with the
            published tables); the default None splits the original points (no leakage).
        seed: drives the split (and the bootstrap / subsample); the embedded anomalies never change.
        drop_last: drop the last partial training batch (DTE's released DDPM loader does; its DTE loader
            does not); a training split smaller than one batch keeps its one partial batch.

    After ``setup()``: ``X_train``, ``X_test`` (scaled float32 numpy), ``y_train``, ``y_test``,
    ``train_rows``, ``test_rows`` (rows of the loaded data) and ``scaler`` (the fitted StandardScaler or None).
    """

    def __init__(self, dataset: str = "wdbc", root: Optional[str] = None, protocol: str = "semi",
                 standardize: bool = True, batch_size: int = 64, eval_batch_size: Optional[int] = None,
                 num_workers: int = 0, seed: int = 0, max_samples: Optional[int] = 50_000,
                 oversample_to: Optional[int] = None, drop_last: bool = False):
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        self.drop_last = drop_last
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
        if dataset not in EMBEDDED_TASKS and root is None:
            raise ValueError(f"unknown tabular dataset {dataset!r}: the embedded tasks are {list(EMBEDDED_TASKS)}; "
                             "for an ADBench dataset pass root=<folder holding the .npz files>")
        if max_samples is not None and max_samples < 2:
            raise ValueError(f"max_samples must be None or at least 2, got {max_samples}")
        self.dataset = dataset
        self.root = root
        self.protocol = protocol
        self.standardize = standardize
        if oversample_to is not None and oversample_to < 2:
            raise ValueError(f"oversample_to must be None or at least 2, got {oversample_to}")
        self.max_samples = max_samples
        self.oversample_to = oversample_to
        self.scaler = None

    def build(self) -> None:
        X, y = load_tabular(self.dataset, self.root)
        if self.max_samples is not None and len(y) > self.max_samples:
            keep = np.sort(np.random.default_rng(self.seed).choice(len(y), self.max_samples, replace=False))
            X, y = X[keep], y[keep]
        if self.oversample_to is not None and len(y) < self.oversample_to:
            rows = np.random.default_rng(self.seed).choice(len(y), self.oversample_to, replace=True)
            X, y = X[rows], y[rows]
        if self.protocol == "semi" and (y == 0).sum() < 2:
            raise ValueError(f"dataset {self.dataset!r} has {(y == 0).sum()} normal point(s); the semi protocol needs >= 2")
        train, test = protocol_split(y, self.protocol, self.seed)
        X_train, X_test = X[train], X[test]
        if self.standardize:
            from sklearn.preprocessing import StandardScaler

            self.scaler = StandardScaler().fit(X_train)  # ignores NaN when fitting
            X_train, X_test = self.scaler.transform(X_train), self.scaler.transform(X_test)
            fill_train = fill_test = 0.0  # the training mean after scaling
        else:
            fill_train = fill_test = np.nan_to_num(np.nanmean(X_train, axis=0))
        X_train = np.where(np.isnan(X_train), fill_train, X_train)
        X_test = np.where(np.isnan(X_test), fill_test, X_test)

        self.X_train, self.X_test = X_train.astype(np.float32), X_test.astype(np.float32)
        self.y_train, self.y_test = y[train], y[test]
        self.train_rows, self.test_rows = train, test

        def wrap(x: np.ndarray, labels: np.ndarray) -> IndexedDataset:
            return IndexedDataset(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels))

        self.train_set = wrap(self.X_train, self.y_train)
        self.val_set = self.fit_set = self.train_set
        normal, anomalous = self.y_test == 0, self.y_test == 1
        if not normal.any() or not anomalous.any():
            raise ValueError(f"dataset {self.dataset!r} ({self.protocol}): the test split has {normal.sum()} normal and "
                             f"{anomalous.sum()} anomalous points; both must be present")
        self.eval_sets = [EvalSet(self.dataset, wrap(self.X_test[normal], self.y_test[normal]), "id"),
                          EvalSet("anomalies", wrap(self.X_test[anomalous], self.y_test[anomalous]), "far")]

    @property
    def num_features(self) -> int:
        """d, the number of features."""
        return self.input_shape[0]
