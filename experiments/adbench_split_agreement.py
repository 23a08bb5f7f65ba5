"""Where the released split draws and where it does not: the deterministic detectors against the paper.

    python experiments/adbench_split_agreement.py --out benchmarks/adbench --root /path/to/adbench

Reads the cells of a finished ``experiments/benchmarks/adbench.yaml`` run (``--out``: its ``cells.json``) and
compares the semi-supervised AUROC of the detectors that draw no random number (KNN, PCA, OCSVM, COPOD, ECOD,
HBOS, LOF: the score is a function of the training and test rows) with DTE's published Table 1, per dataset,
grouped by what the released ``data_generator.py`` does to the file:

- 1,000 to 50,000 rows: nothing is drawn (train = the first half of the normals in file order), so every seed
  gives the same split and a detector equals the paper exactly if the split is the released one;
- under 1,000 rows: resampled with replacement to 1,000, a draw per seed;
- over 50,000 rows: subsampled to 50,000, a draw per seed.

A group whose values match the paper exactly when nothing is drawn but not when something is means the
published runs drew different rows than the released code does with seeds 0-4 on these files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genood.benchmark.spec import dataset_key, load_paper_file  # noqa: E402
from genood.data.tabular import RELEASED_MAX_SIZE, RELEASED_MIN_SIZE, find_adbench_file  # noqa: E402

DETERMINISTIC = {"knn": "KNN", "pca": "PCA", "ocsvm": "OCSVM", "copod": "COPOD", "ecod": "ECOD", "hbos": "HBOS",
                 "lof": "LOF"}
ENTRIES = ("dte_np_semi", "peers_semi")
EXACT = 0.01  # AUROC points: the published tables print two decimals


def size_group(n_rows: int) -> str:
    if n_rows < RELEASED_MIN_SIZE:
        return f"< {RELEASED_MIN_SIZE:,} rows (resampled per seed)"
    if n_rows > RELEASED_MAX_SIZE:
        return f"> {RELEASED_MAX_SIZE:,} rows (subsampled per seed)"
    return "as shipped (nothing drawn)"


def agreement(cells: list[dict], paper: dict, root: str) -> dict[tuple[str, str], list[tuple[float, str, int]]]:
    """(detector, size group) -> [(|ours − published| in AUROC points, dataset, number of seeds)] over the
    finished semi-supervised cells that have a published value."""
    column = {m: i for i, m in enumerate(paper["methods"])}
    scores = defaultdict(dict)  # (method, task) -> seed -> AUROC %
    for c in cells:
        if c["status"] != "finished" or c["base"] not in ENTRIES:
            continue
        for r in c.get("rows") or []:
            if r["scorer"] in DETERMINISTIC:
                scores[(DETERMINISTIC[r["scorer"]], c["task"])][c["seed"]] = 100 * r["auroc"]
    rows = defaultdict(list)
    for (method, task), by_seed in scores.items():
        published = paper["rows"].get(dataset_key(task))
        if method not in column or published is None or published[column[method]][0] is None:
            continue
        with np.load(find_adbench_file(task, root)) as f:
            group = size_group(len(f["y"]))
        delta = float(np.mean(list(by_seed.values()))) - published[column[method]][0]
        rows[(method, group)].append((abs(delta), task, len(by_seed)))
    return dict(rows)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the benchmark's output folder (holds cells.json)")
    p.add_argument("--root", required=True, help="folder of ADBench's .npz files (for the row counts)")
    p.add_argument("--papers", default=str(REPO / "experiments/benchmarks/papers/dte_adbench.yaml"))
    a = p.parse_args(argv)
    paper = load_paper_file(a.papers, "--papers")["tables"]["semi"]
    rows = agreement(json.loads((Path(a.out) / "cells.json").read_text())["cells"], paper, a.root)
    print("| detector | files | seeds | equal to the paper (|Δ| < 0.01) | mean |Δ| | largest |Δ| |")
    print("|---|---|---:|---:|---:|---|")
    for (method, group), vals in sorted(rows.items()):
        d = np.array([v[0] for v in vals])
        worst = max(vals)
        seeds = sorted({v[2] for v in vals})
        print(f"| {method} | {group}: {len(vals)} | {'/'.join(map(str, seeds))} | {int((d < EXACT).sum())} of "
              f"{len(vals)} | {d.mean():.2f} | {worst[0]:.2f} ({worst[1]}) |")
    return rows


if __name__ == "__main__":
    main()
