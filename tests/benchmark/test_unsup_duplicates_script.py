"""experiments/adbench_unsup_duplicates.py: KNN on the released unsupervised rows (copies of each row from the
resampling to 1,000 and the bootstrap) against the file's rows once each; checked on a file the test writes,
the AUROC against a brute-force kNN distance and a rank count."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from conftest import load_experiment


@pytest.fixture(scope="module")
def script():
    return load_experiment("adbench_unsup_duplicates")


def _write_file(root, n_normal=135, n_anomalous=15, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0, 1, (n_normal, 3)), rng.normal(0, 1, (n_anomalous, 3)) + 6])
    y = np.r_[np.zeros(n_normal), np.ones(n_anomalous)].astype(int)
    (root / "Classical").mkdir(parents=True)
    np.savez(root / "Classical" / "9_toy.npz", X=X, y=y)
    return X, y


def _brute_force_auroc(X, y, train, scored, k=5, mean=False):
    """The k-th smallest Euclidean distance (or the mean of the k smallest) from each scored row to the training
    rows (after standardising on the scored rows), and the AUROC as the share of (anomaly, normal) pairs ranked
    right, ties counting half."""
    mu, sd = X[scored].mean(0), X[scored].std(0)
    A, B = (X[train] - mu) / sd, (X[scored] - mu) / sd
    d = np.sqrt(((B[:, None, :] - A[None, :, :]) ** 2).sum(-1))
    s = np.sort(d, axis=1)[:, :k].mean(1) if mean else np.sort(d, axis=1)[:, k - 1]
    pos, neg = s[y[scored] == 1], s[y[scored] == 0]
    return 100 * ((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def test_variants_and_their_rows(script, tmp_path):
    _, y = _write_file(tmp_path)
    train, scored = script.variant_rows(y, "original rows", 0)
    assert np.array_equal(train, np.arange(150)) and np.array_equal(scored, np.arange(150))
    train, scored = script.variant_rows(y, "no bootstrap", 0)
    assert len(scored) == 1000 and np.array_equal(train, scored) and len(np.unique(scored)) < 150 + 1
    train, scored = script.variant_rows(y, "released", 0)
    assert len(train) == 1000 and not np.array_equal(np.sort(train), np.sort(scored))


def test_knn_auroc_equals_a_brute_force_count(script, tmp_path):
    X, y = _write_file(tmp_path)
    for variant in script.VARIANTS:
        train, scored = script.variant_rows(y, variant, 1)
        assert script.knn_auroc(X, y, train, scored) == pytest.approx(_brute_force_auroc(X, y, train, scored), abs=1e-6)
        assert script.knn_auroc(X, y, train, scored, k=32) == pytest.approx(
            _brute_force_auroc(X, y, train, scored, k=32), abs=1e-6)
        assert script.knn_auroc(X, y, train, scored, k=32, method="mean") == pytest.approx(
            _brute_force_auroc(X, y, train, scored, k=32, mean=True), abs=1e-6)


def test_copies_of_rows_hide_the_anomalies_and_the_table_says_so(script, tmp_path, capsys):
    root = tmp_path / "adbench"
    _write_file(root)
    paper = tmp_path / "paper.yaml"
    paper.write_text(yaml.safe_dump({"source": "test", "metric": "auroc", "scale": 100, "tables": {
        "unsupervised": {"methods": ["KNN"], "rows": {"toy": [[99.0, 0.5]]}}}}))
    (res,) = script.main(["--root", str(root), "--seeds", "0", "1", "--papers", str(paper)])
    assert res["dataset"] == "9_toy" and res["rows"] == 150 and res["paper"] == 99.0
    assert res["original rows"] > 90 and res["released"] < res["original rows"] - 30
    out = capsys.readouterr().out
    assert "| 9_toy | 150 | 99.00 |" in out and "under 1,000 rows (resampled), 1 files" in out
