"""Seconds per PyOD peer (fit on the training split + one decision_function on the whole test set), one thread.

Runs each detector of ``configs/peers/pyod.yaml`` exactly as the peers do (genood.models.peers.PyODScorer: seeded
numpy global generator, PyOD defaults) on ADBench files split by TabularDataModule (semi protocol: train on half
of the normals, test on the rest plus every anomaly, standard-scaled), and prints n_train, n_test, d, the fit and
score seconds and the AUROC. Numba-compiled detectors (HBOS, CBLOF's helpers) are warmed up on a tiny table
first, so the one-off compilation (seconds, once per process) is reported apart.

    python experiments/pyod_peers_speed.py --root /path/to/adbench --datasets 6_cardio 23_mammography
    python experiments/pyod_peers_speed.py --root /path/to/adbench --datasets 10_cover --max-samples 50000
    python experiments/pyod_peers_speed.py --root /path/to/adbench --split released --seeds 0 1 2 --detectors cblof

``--split released`` is DTE's released split (the one DTE's Tables 1-2 and ``experiments/benchmarks/adbench.yaml``
use); the detectors get the same constructor arguments as ``genood.models.peers`` (``released_kwargs``).

Say the machine load (``uptime``) next to any number taken from it.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from genood.models.peers.pyod_scorer import PYOD_DETECTORS, PyODScorer, released_kwargs  # noqa: E402
from genood.scoring.knn import KNNScorer  # noqa: E402


def _scorer(name: str, seed: int):
    if name == "knn":
        return KNNScorer(name="knn", k=5)
    path, transductive = PYOD_DETECTORS[name]
    return PyODScorer(name, path, transductive=transductive, seed=seed, kwargs=released_kwargs(name))


def main() -> None:
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    from genood.data.tabular import TabularDataModule

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="folder of ADBench .npz files (searched recursively)")
    p.add_argument("--datasets", nargs="+", default=["6_cardio", "23_mammography"])
    p.add_argument("--detectors", nargs="+", default=[*PYOD_DETECTORS, "knn"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--split", choices=["random", "released"], default="random",
                   help="genood's random split or DTE's released one (TabularDataModule split)")
    p.add_argument("--max-samples", type=int, default=50_000, help="subsample larger files to this many points")
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    with threadpool_limits(1):
        tiny = {"features": torch.randn(64, 4)}
        t0 = time.perf_counter()
        for name in args.detectors:  # compile / import once
            s = _scorer(name, 0)
            s.fit(tiny)
            s.score(tiny)
        print(f"imports + numba compilation (once per process): {time.perf_counter() - t0:.1f} s")
        print("| dataset | seed | n_train | n_test | d | detector | fit s | score s | total s | AUROC |")
        print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
        for ds, seed in ((ds, seed) for ds in args.datasets for seed in args.seeds):
            dm = TabularDataModule(ds, root=args.root, seed=seed, split=args.split, max_samples=args.max_samples,
                                   dtype="float64")  # as configs/peers/pyod.yaml: the rows PyOD saw in the papers
            dm.setup()
            train = {"features": torch.from_numpy(dm.X_train)}
            test = {"features": torch.from_numpy(dm.X_test)}
            for name in args.detectors:
                s = _scorer(name, seed)
                t0 = time.perf_counter()
                s.fit(train)
                t1 = time.perf_counter()
                score = s.score(test).double().numpy()
                t2 = time.perf_counter()
                auc = roc_auc_score(dm.y_test, score)
                print(f"| {ds} | {seed} | {len(dm.X_train)} | {len(dm.X_test)} | {dm.X_train.shape[1]} | {name} | "
                      f"{t1 - t0:.2f} | {t2 - t1:.2f} | {t2 - t0:.2f} | {100 * auc:.1f} |", flush=True)


if __name__ == "__main__":
    main()
