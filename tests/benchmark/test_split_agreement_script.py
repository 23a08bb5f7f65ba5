"""experiments/adbench_split_agreement.py groups datasets by what the released split draws (nothing,
resampling below 1,000 rows, subsampling above 50,000) and compares the deterministic detectors' mean AUROC
over seeds with the published value; checked on files and cells the test writes, with hand-computed Δs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import load_experiment


@pytest.fixture(scope="module")
def script():
    return load_experiment("adbench_split_agreement")


def _cell(task, seed, rows, base="dte_np_semi", status="finished"):
    return {"base": base, "task": task, "seed": seed, "status": status,
            "rows": [{"scorer": s, "auroc": v} for s, v in rows.items()]}


def test_groups_and_deltas(script, tmp_path, capsys):
    root = tmp_path / "adbench"
    (root / "Classical").mkdir(parents=True)
    for name, n in {"1_small": 300, "2_mid": 2000, "3_big": 50_001}.items():
        np.savez(root / "Classical" / f"{name}.npz", X=np.zeros((n, 1)), y=np.zeros(n))
    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump({
        "source": "test", "metric": "auroc", "scale": 100,
        "tables": {"semi": {"methods": ["KNN", "PCA"],
                            "rows": {"small": [[80.0, 1.0], [70.0, 0.0]], "mid": [[90.0, 0.0], [60.0, 0.0]],
                                     "big": [[50.0, 0.5], [None, None]]}}}}))
    cells = [_cell("1_small", 0, {"knn": 0.81, "pca": 0.70}), _cell("1_small", 1, {"knn": 0.80, "pca": 0.70}),
             _cell("2_mid", 0, {"knn": 0.90, "pca": 0.605}), _cell("2_mid", 1, {"knn": 0.90, "pca": 0.605}),
             _cell("3_big", 0, {"knn": 0.52, "pca": 0.9}),
             _cell("2_mid", 2, {"knn": 0.10}, status="failed"),  # never counted
             _cell("2_mid", 3, {"knn": 0.10}, base="dte_np_unsup"),  # another protocol: never counted
             _cell("2_mid", 4, {"dte_np": 0.10})]  # not a deterministic PyOD detector
    out = tmp_path / "bench"
    out.mkdir()
    (out / "cells.json").write_text(json.dumps({"cells": cells}))
    rows = script.main(["--out", str(out), "--root", str(root), "--papers", str(paper)])
    small, mid, big = (script.size_group(n) for n in (300, 2000, 50_001))
    assert set(rows) == {("KNN", small), ("PCA", small), ("KNN", mid), ("PCA", mid), ("KNN", big)}
    assert rows[("KNN", small)] == [(pytest.approx(0.5), "1_small", 2)]  # mean 80.5 vs 80.0
    assert rows[("PCA", small)] == [(pytest.approx(0.0), "1_small", 2)]
    assert rows[("KNN", mid)] == [(pytest.approx(0.0), "2_mid", 2)]
    assert rows[("PCA", mid)] == [(pytest.approx(0.5), "2_mid", 2)]
    assert rows[("KNN", big)] == [(pytest.approx(2.0), "3_big", 1)]  # PCA has no published value there
    text = capsys.readouterr().out
    assert "| KNN | as shipped (nothing drawn): 1 | 2 | 1 of 1 | 0.00 | 0.00 (2_mid) |" in text
    assert "| PCA | as shipped (nothing drawn): 1 | 2 | 0 of 1 | 0.50 | 0.50 (2_mid) |" in text
