import pytest
import torch

from genood.scoring import Typicality, typicality_batch_test


def test_entropy_is_fit_mean_and_score_is_abs_deviation():
    nll_fit = torch.tensor([10.0, 12.0, 14.0, 20.0])
    t = Typicality()
    t.fit({"log_prob": -nll_fit})
    assert t.entropy == pytest.approx(14.0)
    nll = torch.tensor([14.0, 4.0, 30.0, 13.5])
    s = t.score({"log_prob": -nll})
    torch.testing.assert_close(s, torch.tensor([0.0, 10.0, 16.0, 0.5]))
    # too likely counts as OOD just like too unlikely (the point of the test)
    assert s[1] > s[3] and s[2] > s[3]
    assert s[0] == 0


def test_unfitted_typicality_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        Typicality().score({"log_prob": torch.zeros(2)})


def test_batch_test_rejects_shifted_and_keeps_id_at_alpha():
    g = torch.Generator().manual_seed(0)
    nll_val = torch.randn(2000, generator=g) * 3 + 50
    M, alpha = 10, 0.05
    id_batches = torch.randn(2000, M, generator=g) * 3 + 50          # fresh ID batches
    r_id = typicality_batch_test(id_batches, nll_val, M=M, K=2000, alpha=alpha, seed=1)
    rate = r_id.reject.float().mean().item()
    assert 0.02 < rate < 0.09, rate                                  # ≈ alpha
    # the threshold is the bootstrap (1 - alpha) quantile of |mean - H|, ≈ z_{0.975} σ/√M for Gaussian NLLs
    assert r_id.threshold == pytest.approx(1.96 * 3 / M ** 0.5, rel=0.1)
    shifted = torch.randn(200, M, generator=g) * 3 + 45              # too likely (5.3 s.e. of a batch mean)
    r_ood = typicality_batch_test(shifted.reshape(-1), nll_val, M=M, K=2000, alpha=alpha, seed=1)
    assert r_ood.epsilon.shape == (200,)
    assert r_ood.reject.float().mean() > 0.9
    # an explicit training entropy is used as given
    assert typicality_batch_test(shifted, nll_val, M=M, entropy=45.0).entropy == 45.0


def test_batch_test_bad_shapes():
    with pytest.raises(ValueError, match="batches of"):
        typicality_batch_test(torch.zeros(7), torch.zeros(10), M=3)
    with pytest.raises(ValueError, match="alpha"):
        typicality_batch_test(torch.zeros(6), torch.zeros(10), M=3, alpha=1.5)
