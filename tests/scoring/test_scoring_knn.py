"""KNNScorer / knn_sq_distances against a brute-force float64 reference."""

import numpy as np
import pytest
import torch

from genood.scoring.knn import KNNScorer, knn_sq_distances


def _brute(q, b):
    d2 = ((q[:, None, :].double() - b[None, :, :].double()) ** 2).sum(-1)
    return d2.sort(dim=1).values


def test_knn_sq_distances_match_brute_force_in_any_chunking():
    g = torch.Generator().manual_seed(0)
    bank, q = torch.randn(70, 6, generator=g), torch.randn(33, 6, generator=g) * 2
    ref = _brute(q, bank)[:, :4]
    for chunk in (None, 1, 7, 1000):
        got = knn_sq_distances(q, bank, 4, chunk_size=chunk)
        assert got.shape == (33, 4)
        torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)
    loo = knn_sq_distances(bank, bank, 3, exclude_self=True, chunk_size=16)
    torch.testing.assert_close(loo.double(), _brute(bank, bank)[:, 1:4], rtol=1e-4, atol=1e-4)


def test_knn_scorer_kth_and_mean():
    g = torch.Generator().manual_seed(1)
    bank, q = torch.randn(50, 4, generator=g), torch.randn(20, 4, generator=g)
    ref = _brute(q, bank).sqrt()
    kth = KNNScorer(k=5)
    kth.fit({"features": bank})
    torch.testing.assert_close(kth.score({"features": q}).double(), ref[:, 4], rtol=1e-4, atol=1e-4)
    mean = KNNScorer(name="knn_mean", k=3, reduction="mean")
    mean.fit({"features": bank})
    torch.testing.assert_close(mean.score({"features": q}).double(), ref[:, :3].mean(1), rtol=1e-4, atol=1e-4)
    far = q + 10.0
    assert (kth.score({"features": far}) > kth.score({"features": q})).all()  # higher = more OOD


def test_knn_scorer_errors():
    s = KNNScorer(k=5)
    with pytest.raises(RuntimeError, match="fit"):
        s.score({"features": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="at least 5"):
        s.fit({"features": torch.zeros(3, 3)})
    with pytest.raises(ValueError, match="'features'"):
        s.fit({"log_prob": torch.zeros(3)})
    with pytest.raises(ValueError, match="reduction"):
        KNNScorer(reduction="median")


def test_shared_knn_computes_each_search_once_and_gives_the_same_values(monkeypatch):
    """Inside shared_knn() a repeated (queries, bank, k) search reuses the first result (DTE-NP on two grids and
    the kNN distance read the same features); other queries, k or exclude_self still compute afresh."""
    import genood.scoring.knn as knn

    g = torch.Generator().manual_seed(0)
    bank, q, q2 = torch.randn(50, 4, generator=g), torch.randn(20, 4, generator=g), torch.randn(20, 4, generator=g)
    plain = knn.knn_sq_distances(q, bank, 5)
    calls = []
    real = knn._knn_sq_distances
    monkeypatch.setattr(knn, "_knn_sq_distances", lambda *a: calls.append(1) or real(*a))
    with knn.shared_knn():
        a, b = knn.knn_sq_distances(q, bank, 5), knn.knn_sq_distances(q, bank, 5)
        a.add_(1.0)  # a caller's in-place change does not reach the shared result
        c = knn.knn_sq_distances(q, bank, 5)
        knn.knn_sq_distances(q2, bank, 5), knn.knn_sq_distances(q, bank, 3), knn.knn_sq_distances(bank, bank, 5, True)
    assert len(calls) == 4
    torch.testing.assert_close(b, plain) and torch.testing.assert_close(c, plain)
    knn.knn_sq_distances(q, bank, 5)
    assert len(calls) == 5  # outside the block nothing is kept
