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
ever used for fitting. Each sample is ``{"x": float32 [d], "y": 0/1 anomaly label, "index": i}`` (``dtype``
chooses float64 for detectors that run in numpy, as the papers' PyOD columns did).

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

Two ways to split (``split``):

* ``"random"`` (default): the protocols above on the original points, a seeded random half of the normals
  (``numpy.random.default_rng(seed)``); ``oversample_to`` / ``max_samples`` optionally resample first.
* ``"released"``: DTE's released ``data_generator.py`` (``DataGenerator.generator(la=0, max_size=50000)``)
  and ``run.py`` end to end, with the same random generator (numpy's legacy Mersenne Twister seeded with
  ``seed``, as ADBench's ``Utils.set_seed`` seeds the global one), so the same seed selects the same points
  (:func:`released_split`). A dataset under 1,000 points is resampled with replacement to 1,000 (so copies
  of one point can sit in both splits: a test normal with an exact copy in the training split has K-NN
  distance 0, which the published small-set numbers rely on); one over ``max_samples`` (50,000) is
  subsampled. ``semi`` trains on the *first* ``round(0.5 · n_normal)`` normals in file order (Python's
  round, half to even) and tests on the rest plus every anomaly, so on sets of 1,000 points or more the
  split is the same for every seed; ``unsupervised`` bootstraps the whole set as ``run.py`` does, with the
  scaler fit on the whole set. Missing values are filled as released: training NaNs with the scaled
  training column mean, test NaNs with the scaled *test* column mean.

Inputs are checked when loaded: an infinite value, or a column with no finite value, is a one-line error
naming the file; NaN values are imputed (training mean) and reported once on the console, or refused with
``nan_policy="error"``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .base import EvalSet, OODDataModule, TensorRows

EMBEDDED_TASKS = ("wine", "wdbc", "digits")
PROTOCOLS = ("semi", "unsupervised")
SPLITS = ("random", "released")
NAN_POLICIES = ("impute", "error")
DTYPES = ("float32", "float64")
RELEASED_MIN_SIZE = 1000  # ADBench DataGenerator's n_samples_threshold (generate_duplicates=True)
RELEASED_MAX_SIZE = 50_000  # DTE's run.py: generator(la=0, max_size=50000)
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


def released_split(y: np.ndarray, protocol: str, seed: int, max_size: int = RELEASED_MAX_SIZE,
                   min_size: int = RELEASED_MIN_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(train, test, scale)`` into ``y`` that DTE's released code selects (``data_generator.py``
    ``DataGenerator(seed, test_size=0.5, normal=True).generator(la=0, max_size=max_size)`` for ``semi``;
    ``DataGenerator(seed, test_size=0)`` then ``run.py``'s bootstrap for ``unsupervised``); ``scale`` are the
    rows the StandardScaler is fit on. Rows may repeat (resampling, bootstrap).

    The released code seeds numpy's legacy global generator (``np.random.seed(seed)``) before each draw;
    a ``RandomState(seed)`` is the same Mersenne Twister stream, without touching the global state:

    1. ``n < min_size``: re-seed, ``choice(n, min_size, replace=True)``;
    2. more than ``max_size`` rows: re-seed, ``choice(rows, max_size, replace=False)``;
    3. ``semi``: train = the first ``round(0.5 · n_normal)`` normals in that order, test = the other normals
       then every anomaly (no draw);
    4. ``unsupervised``: train = test = all rows; ``choice(anomalies, 0, replace=False)`` (the labelled-anomaly
       draw with ``la = 0``) still shuffles a permutation of the anomalies, then ``run.py`` draws the bootstrap
       ``choice(n, n, replace=True)`` from the same stream.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
    rows = np.arange(len(y))
    rng = np.random.RandomState(seed)
    if len(rows) < min_size:
        rng = np.random.RandomState(seed)
        rows = rng.choice(np.arange(len(rows)), min_size, replace=True)
    if len(rows) > max_size:
        rng = np.random.RandomState(seed)
        rows = rows[rng.choice(np.arange(len(rows)), max_size, replace=False)]
    labels = y[rows]
    normal, anomalous = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    if protocol == "semi":
        n_train = round(0.5 * normal.size)  # Python's round: half to even, as released
        train = rows[normal[:n_train]]
        return train, rows[np.append(normal[n_train:], anomalous)], train
    rng.permutation(anomalous.size)  # choice(idx_anomaly, 0, replace=False) draws this permutation
    return rows[rng.choice(np.arange(len(rows)), len(rows), replace=True)], rows, rows


def check_values(X: np.ndarray, source: str, nan_policy: str = "impute") -> None:
    """One-line errors for inputs no split can use: an infinite value, a column without any finite value,
    or (``nan_policy="error"``) any NaN; otherwise NaNs are reported once on the console (how many, which
    columns), since they are imputed."""
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {list(NAN_POLICIES)}, got {nan_policy!r}")
    inf = np.isinf(X)
    if inf.any():
        rows, cols = np.nonzero(inf)
        raise ValueError(f"{source}: {int(inf.sum())} infinite value(s) (first at row {rows[0]}, column {cols[0]}; "
                         f"columns {_listed(np.unique(cols))}); replace them (e.g. by NaN, which is imputed) or drop "
                         "those rows")
    nan = np.isnan(X)
    if not nan.any():
        return
    cols = np.flatnonzero(nan.any(0))
    empty = np.flatnonzero(nan.all(0))
    if empty.size:
        raise ValueError(f"{source}: column(s) {_listed(empty)} hold no value at all (every entry is NaN); drop "
                         "them from X")
    if nan_policy == "error":
        raise ValueError(f"{source}: {int(nan.sum())} NaN value(s) in column(s) {_listed(cols)}; fill them, or set "
                         "data.init_args.nan_policy=impute to impute the training mean")
    print(f"genood: {source}: {int(nan.sum())} NaN value(s) in column(s) {_listed(cols)} are imputed with the "
          "training mean (data.init_args.nan_policy=error refuses them)")


def _listed(idx: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    return f"[{shown}{', ...' if len(idx) > limit else ''}]"


def column_means(X: np.ndarray) -> np.ndarray:
    """Per-column mean over the non-NaN entries, 0 for a column with none (``[d]``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice": such a column gets 0
        return np.nan_to_num(np.nanmean(X, axis=0))


def fill_nan(X: np.ndarray, fill) -> np.ndarray:
    """``X`` with each NaN replaced by its column's value in ``fill`` (``[d]`` or a scalar)."""
    return np.where(np.isnan(X), fill, X) if np.isnan(X).any() else X


class TabularDataModule(OODDataModule):
    """A tabular anomaly-detection task split by a named protocol (see the module docstring).

    Args:
        dataset: ``"wine"``, ``"wdbc"``, ``"digits"`` (embedded), or an ADBench file stem (``40_vowels``,
            ``43_WDBC``; the bare name ``vowels`` works too) found under ``root``.
        root: folder with ADBench ``.npz`` files (searched recursively); unused for embedded tasks.
        protocol: ``"semi"`` (train on half the normals) or ``"unsupervised"`` (bootstrap of all data).
        split: ``"random"`` (a seeded random half of the normals; the default) or ``"released"`` (DTE's
            released ``data_generator.py`` / ``run.py``, point for point; module docstring).
        standardize: standard-scale with statistics of the training split (DTE: "crucial").
        max_samples: subsample larger datasets to this many points first (seeded, without replacement),
            as DTE's ``run.py`` does with 50,000; None keeps everything.
        oversample_to: (``split="random"``) resample datasets smaller than this up to it *with
            replacement* before splitting, as ADBench's ``DataGenerator`` does with 1,000 (copies of one
            point then land in both train and test); the default None splits the original points (no
            leakage). ``split="released"`` always does it with 1,000.
        seed: drives the split (and the bootstrap / subsample); the embedded anomalies never change.
        drop_last: drop the last partial training batch (DTE's released DDPM loader does; its DTE loader
            does not); a training split smaller than one batch keeps its one partial batch.
        nan_policy: ``"impute"`` (fill NaNs, reported once on the console) or ``"error"`` (refuse them).
        dtype: ``"float32"`` (what torch models train on; the default) or ``"float64"``: the scaled features
            as the papers' numpy pipeline handed them to PyOD (ADBench's ``DataGenerator`` and DTE's ``run.py``
            never cast). The classical peers need it (``configs/peers/pyod.yaml`` sets it): rounding to float32
            moves points that sit on a histogram bin edge into the next bin, so HBOS on 7_Cardiotocography
            (released split, seed 0) gives 59.22 in float32 and the published 61.24 in float64.

    After ``setup()``: ``X_train``, ``X_test`` (scaled numpy arrays of ``dtype``), ``y_train``, ``y_test``,
    ``train_rows``, ``test_rows`` (rows of the loaded data) and ``scaler`` (the fitted StandardScaler or None).
    """

    def __init__(self, dataset: str = "wdbc", root: Optional[str] = None, protocol: str = "semi",
                 split: str = "random", standardize: bool = True, batch_size: int = 64,
                 eval_batch_size: Optional[int] = None, num_workers: int = 0, seed: int = 0,
                 max_samples: Optional[int] = 50_000, oversample_to: Optional[int] = None, drop_last: bool = False,
                 nan_policy: str = "impute", dtype: str = "float32"):
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        self.drop_last = drop_last
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
        if nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {list(NAN_POLICIES)}, got {nan_policy!r}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        if dataset not in EMBEDDED_TASKS and root is None:
            raise ValueError(f"unknown tabular dataset {dataset!r}: the embedded tasks are {list(EMBEDDED_TASKS)}; "
                             "for an ADBench dataset pass root=<folder holding the .npz files>")
        if max_samples is not None and max_samples < 2:
            raise ValueError(f"max_samples must be None or at least 2, got {max_samples}")
        if oversample_to is not None and oversample_to < 2:
            raise ValueError(f"oversample_to must be None or at least 2, got {oversample_to}")
        if split == "released" and oversample_to is not None:
            raise ValueError(f"split='released' resamples datasets under {RELEASED_MIN_SIZE} points to {RELEASED_MIN_SIZE} "
                             "itself; leave oversample_to null (it is for split='random')")
        self.dataset = dataset
        self.root = root
        self.protocol = protocol
        self.split = split
        self.standardize = standardize
        self.max_samples = max_samples
        self.oversample_to = oversample_to
        self.nan_policy = nan_policy
        self.dtype = dtype
        self.scaler = None

    def load(self) -> tuple[np.ndarray, np.ndarray, str]:
        """``(X, y, source)``: the task's arrays, checked (:func:`check_values`), and where they came from."""
        if self.dataset in EMBEDDED_TASKS:
            (X, y), source = load_embedded(self.dataset), f"embedded task {self.dataset!r}"
        else:
            path = find_adbench_file(self.dataset, self.root)
            (X, y), source = load_npz(path), str(path)
        check_values(X, source, self.nan_policy)
        return X, y, source

    def rows(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row indices ``(train, test, scale)`` of the loaded data under ``split`` / ``protocol``."""
        if self.split == "released":
            max_size = self.max_samples if self.max_samples is not None else len(y)
            return released_split(y, self.protocol, self.seed, max_size=max_size)
        rows = np.arange(len(y))
        if self.max_samples is not None and len(rows) > self.max_samples:
            rows = np.sort(np.random.default_rng(self.seed).choice(len(rows), self.max_samples, replace=False))
        if self.oversample_to is not None and len(rows) < self.oversample_to:
            rows = rows[np.random.default_rng(self.seed).choice(len(rows), self.oversample_to, replace=True)]
        if self.protocol == "semi" and (y[rows] == 0).sum() < 2:
            raise ValueError(f"dataset {self.dataset!r} has {(y[rows] == 0).sum()} normal point(s); the semi protocol "
                             "needs >= 2")
        train, test = protocol_split(y[rows], self.protocol, self.seed)
        return rows[train], rows[test], rows[train]

    def build(self) -> None:
        X, y, source = self.load()
        train, test, scale_rows = self.rows(y)
        if len(train) == 0:
            raise ValueError(f"{source}: the {self.protocol} protocol leaves no training point")
        X_train, X_test = X[train], X[test]
        if self.standardize:
            from sklearn.preprocessing import StandardScaler

            self.scaler = StandardScaler().fit(X[scale_rows])  # ignores NaN when fitting
            X_train, X_test = self.scaler.transform(X_train), self.scaler.transform(X_test)
        if self.split == "released":  # each split's own (scaled) column means, as released
            X_train, X_test = fill_nan(X_train, column_means(X_train)), fill_nan(X_test, column_means(X_test))
        else:  # the training mean (0 after scaling)
            fill = 0.0 if self.standardize else column_means(X_train)
            X_train, X_test = fill_nan(X_train, fill), fill_nan(X_test, fill)

        self.X_train, self.X_test = X_train.astype(self.dtype), X_test.astype(self.dtype)
        self.y_train, self.y_test = y[train], y[test]
        self.train_rows, self.test_rows = train, test

        self.train_set = TensorRows(torch.from_numpy(np.ascontiguousarray(self.X_train)), torch.from_numpy(self.y_train))
        self.val_set = self.fit_set = self.train_set
        normal, anomalous = self.y_test == 0, self.y_test == 1
        if not normal.any() or not anomalous.any():
            raise ValueError(f"dataset {self.dataset!r} ({self.protocol}): the test split has {normal.sum()} normal and "
                             f"{anomalous.sum()} anomalous points; both must be present")

        def subset(mask: np.ndarray) -> TensorRows:
            return TensorRows(torch.from_numpy(np.ascontiguousarray(self.X_test[mask])),
                              torch.from_numpy(self.y_test[mask]))

        self.eval_sets = [EvalSet(self.dataset, subset(normal), "id"), EvalSet("anomalies", subset(anomalous), "far")]

    @property
    def num_features(self) -> int:
        """d, the number of features."""
        return self.input_shape[0]
