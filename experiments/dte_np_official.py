"""DTE-NP and KNN, genood against the official code, on ADBench files with the released split.

    python experiments/dte_np_official.py --official /path/to/DTE --root /path/to/adbench [--datasets 40_vowels 6_cardio] [--seeds 0 1]

For each dataset and seed, the released split (``TabularDataModule(split="released")``, the released
``DataGenerator``'s points) is scored by the official ``DTENonParametric`` (``diffusion/non_param_dte.py`` of a
checkout of https://github.com/vicliv/DTE; not vendored here), by genood's ``dte_np`` scorer, by PyOD's ``KNN``
(fit on the training split, ``decision_function`` on the test split, as ADBench's wrapper runs it) and by
genood's ``knn`` scorer. Prints the AUROC of each, the fraction of test points on which the two DTE-NP scores
(argmax time steps) agree exactly, and the largest difference of the KNN distances.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--official", required=True, help="checkout of github.com/vicliv/DTE")
    p.add_argument("--root", required=True, help="folder holding ADBench's .npz files")
    p.add_argument("--datasets", nargs="*", default=None, help="file stems (default: every .npz under --root)")
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--max-train", type=int, default=None, help="skip datasets with more training points")
    a = p.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(a.official).resolve()))
    from diffusion.non_param_dte import DTENonParametric  # the official module
    from pyod.models.knn import KNN

    from genood.data.tabular import TabularDataModule
    from genood.models.dte.scorers import DTENonParametricScorer
    from genood.scoring.knn import KNNScorer

    names = a.datasets or sorted(f.stem for f in Path(a.root).rglob("*.npz"))
    print("| dataset | seed | train | official DTE-NP | genood DTE-NP | equal t̂ | PyOD KNN | genood KNN | max abs Δ dist |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        for seed in a.seeds:
            dm = TabularDataModule(dataset=name, root=a.root, split="released", seed=seed)
            dm.setup()
            if a.max_train and len(dm.X_train) > a.max_train:
                continue
            Xtr, Xte, y = dm.X_train.astype(np.float64), dm.X_test.astype(np.float64), dm.y_test
            official = DTENonParametric(seed=seed).fit(Xtr).predict_score(Xte)
            ours_np = DTENonParametricScorer()
            ours_np.fit({"features": torch.from_numpy(dm.X_train)})
            ours = ours_np.score({"features": torch.from_numpy(dm.X_test)}).numpy()
            np.random.seed(seed)
            pyod = KNN().fit(Xtr).decision_function(Xte)
            knn = KNNScorer("knn", key="features", k=5)
            knn.fit({"features": torch.from_numpy(dm.X_train)})
            ours_knn = knn.score({"features": torch.from_numpy(dm.X_test)}).numpy()
            auc = lambda s: 100 * roc_auc_score(y, s)  # noqa: E731
            print(f"| {name} | {seed} | {len(Xtr)} | {auc(official):.2f} | {auc(ours):.2f} | "
                  f"{np.mean(official == ours):.4f} | {auc(pyod):.2f} | {auc(ours_knn):.2f} | "
                  f"{np.abs(pyod - ours_knn).max():.2e} |", flush=True)


if __name__ == "__main__":
    main()
