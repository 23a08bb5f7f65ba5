"""TabularDataModule: embedded tasks, protocols' split sizes, train-only scaling, ADBench .npz loading, errors."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_wine

from genood.data.tabular import EMBEDDED_TASKS, TabularDataModule, load_embedded


def _setup(**kw) -> TabularDataModule:
    dm = TabularDataModule(**kw)
    dm.setup()
    return dm


@pytest.mark.parametrize("name,n_normal,n_anom,d", [("wine", 119, 10, 13), ("wdbc", 357, 10, 30), ("digits", 1619, 178, 64)])
def test_embedded_task_sizes_and_semi_split(name, n_normal, n_anom, d):
    X, y = load_embedded(name)
    assert X.shape == (n_normal + n_anom, d) and (y == 1).sum() == n_anom
    dm = _setup(dataset=name, protocol="semi", seed=3)
    n_train = int(round(n_normal / 2))
    sets = dm.test_sets()
    assert [s.name for s in sets] == [name, "anomalies"] and [s.group for s in sets] == ["id", "far"]
    assert len(dm.train_set) == n_train and (dm.y_train == 0).all()           # normals only
    assert len(sets[0].dataset) == n_normal - n_train and len(sets[1].dataset) == n_anom
    assert not set(dm.train_rows) & set(dm.test_rows)                           # disjoint
    assert sorted(dm.train_rows.tolist() + dm.test_rows.tolist()) == list(range(len(y)))
    assert dm.val_set is dm.train_set and dm.fit_set is dm.train_set
    s = sets[1].dataset[0]
    assert s["x"].dtype == torch.float32 and s["x"].shape == (d,) and s["y"] == 1 and s["index"] == 0
    assert dm.input_shape == (d,)


def test_embedded_anomalies_are_the_right_class_and_fixed():
    X, y = load_embedded("wdbc")
    bc = load_breast_cancer()
    malignant = {tuple(r) for r in bc.data[bc.target == 0]}
    benign = {tuple(r) for r in bc.data[bc.target == 1]}
    assert all(tuple(r) in malignant for r in X[y == 1]) and all(tuple(r) in benign for r in X[y == 0])
    X2, _ = load_embedded("wdbc")
    np.testing.assert_array_equal(X, X2)
    Xw, yw = load_embedded("wine")
    w = load_wine()
    cultivar1 = {tuple(r) for r in w.data[w.target == 0]}
    assert all(tuple(r) in cultivar1 for r in Xw[yw == 1]) and not any(tuple(r) in cultivar1 for r in Xw[yw == 0])
    # the datamodule's seed moves the split, never the task
    a, b = _setup(dataset="wdbc", seed=0), _setup(dataset="wdbc", seed=1)
    assert not np.array_equal(a.train_rows, b.train_rows)
    np.testing.assert_array_equal(np.sort(a.test_rows[a.y_test == 1]), np.sort(b.test_rows[b.y_test == 1]))


def test_unsupervised_protocol_is_a_bootstrap_tested_on_everything():
    dm = _setup(dataset="wine", protocol="unsupervised", seed=0)
    X, y = load_embedded("wine")
    assert len(dm.train_set) == len(y) and len(np.unique(dm.train_rows)) < len(y)   # with replacement
    np.testing.assert_array_equal(dm.test_rows, np.arange(len(y)))
    sets = dm.test_sets()
    assert len(sets[0].dataset) == (y == 0).sum() and len(sets[1].dataset) == (y == 1).sum()
    assert (dm.y_train == 1).any()  # contaminated


def test_scaling_is_fit_on_the_training_split_only():
    dm = _setup(dataset="wdbc", protocol="semi", seed=0)
    X, _ = load_embedded("wdbc")
    raw_train, raw_test = X[dm.train_rows], X[dm.test_rows]
    mu, sd = raw_train.mean(0), raw_train.std(0)
    np.testing.assert_allclose(dm.X_train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(dm.X_train.std(0), 1, atol=1e-3)
    np.testing.assert_allclose(dm.X_test, (raw_test - mu) / sd, rtol=1e-4, atol=1e-4)
    # scaling with the test split's own statistics would give other values
    assert np.abs(dm.X_test.mean(0)).max() > 0.05
    raw = _setup(dataset="wdbc", standardize=False, seed=0)
    np.testing.assert_allclose(raw.X_test, raw_test.astype(np.float32))


def test_npz_loading_by_name_suffix_and_nan_fill(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)) * 3 + 1
    X[0, 2] = np.nan
    y = np.r_[np.zeros(50), np.ones(10)]
    sub = tmp_path / "Classical"
    sub.mkdir()
    np.savez(sub / "7_toy.npz", X=X, y=y)
    for name in ("toy", "7_toy", "TOY"):
        dm = _setup(dataset=name, root=str(tmp_path), protocol="semi", seed=0)
        assert dm.input_shape == (5,) and len(dm.train_set) == 25 and len(dm.test_sets()[1].dataset) == 10
        assert np.isfinite(dm.X_train).all() and np.isfinite(dm.X_test).all()
    dm = _setup(dataset="toy", root=str(tmp_path), protocol="unsupervised", seed=0)
    assert len(dm.train_set) == 60
    big = _setup(dataset="toy", root=str(tmp_path), max_samples=30, seed=0)
    assert len(big.train_rows) + len(big.test_rows) == 30  # subsampled before the split
    over = _setup(dataset="toy", root=str(tmp_path), oversample_to=200, protocol="unsupervised", seed=0)
    assert len(over.train_set) == 200


def test_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="embedded tasks are"):
        TabularDataModule(dataset="nope")
    with pytest.raises(ValueError, match="protocol"):
        TabularDataModule(dataset="wdbc", protocol="supervised")
    with pytest.raises(FileNotFoundError, match="ADBench") as e:
        _setup(dataset="missing", root=str(tmp_path))
    assert str(tmp_path) in str(e.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _setup(dataset="missing", root=str(tmp_path / "absent"))
    np.savez(tmp_path / "noy.npz", X=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="lacks"):
        _setup(dataset="noy", root=str(tmp_path))
    np.savez(tmp_path / "bady.npz", X=np.zeros((5, 3)), y=np.arange(5))
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        _setup(dataset="bady", root=str(tmp_path))
    np.savez(tmp_path / "1_dup.npz", X=np.zeros((5, 3)), y=np.zeros(5))
    np.savez(tmp_path / "2_dup.npz", X=np.zeros((5, 3)), y=np.zeros(5))
    with pytest.raises(ValueError, match="several files"):
        _setup(dataset="dup", root=str(tmp_path))
    assert set(EMBEDDED_TASKS) == {"wine", "wdbc", "digits"}
