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
