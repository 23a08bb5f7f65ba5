"""MSMA's features and objective against closed forms for Gaussian data N(0, s²I), whose noised density
N(0, (s² + σ²)I) has the exact score −x / (s² + σ²), so the score norms are known in closed form."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import roc_auc_score

from genood.models.msma import GMMScorer, dsm_loss, geometric_sigmas, score_norms
from genood.models.msma.objective import perturb

S = 0.5  # data standard deviation


def analytic_score(s: float, sigmas: torch.Tensor):
    """s(x, σ_i) = −x / (s² + σ_i²), as a (rows, level index) -> score function."""
    def fn(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        var = (s ** 2 + sigmas[level] ** 2).to(x.dtype)
        return -x / var.view(-1, *([1] * (x.ndim - 1)))
    return fn


def test_geometric_levels_match_the_paper():
    sig = geometric_sigmas(1.0, 0.01, 10)
    assert sig[0].item() == pytest.approx(1.0) and sig[-1].item() == pytest.approx(0.01)
    ratios = sig[1:] / sig[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 0.01 ** (1 / 9)))  # constant ratio 10^(-2/9)


def test_features_equal_the_closed_form_sigma_norm_over_variance():
    """n_i(x) = ‖σ_i · (−x / (s² + σ_i²))‖ = σ_i ‖x‖ / (s² + σ_i²): weighted by σ_i, not σ_i²."""
    torch.manual_seed(0)
    sigmas = geometric_sigmas(1.0, 0.01, 10)
    x = S * torch.randn(7, 3, 4, 4, dtype=torch.float64)
    got = score_norms(analytic_score(S, sigmas), x, sigmas)
    norm = x.flatten(1).norm(dim=1, keepdim=True)
    expected = sigmas[None] * norm / (S ** 2 + sigmas[None] ** 2)
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=0)
    assert not torch.allclose(got.double(), sigmas[None] ** 2 * norm / (S ** 2 + sigmas[None] ** 2))


def test_gmm_on_analytic_features_separates_wider_gaussian():
    torch.manual_seed(1)
    sigmas = geometric_sigmas(1.0, 0.01, 10)
    fn = analytic_score(S, sigmas)
    d = 64
    fit = score_norms(fn, S * torch.randn(600, d), sigmas)
    ind = score_norms(fn, S * torch.randn(300, d), sigmas)
    ood = score_norms(fn, 2 * S * torch.randn(300, d), sigmas)
    gmm = GMMScorer(components=[1, 2, 4], folds=5)
    gmm.fit({"score_norms": fit})
    s_id, s_ood = gmm.score({"score_norms": ind}), gmm.score({"score_norms": ood})
    auroc = roc_auc_score([0] * len(s_id) + [1] * len(s_ood), torch.cat([s_id, s_ood]).numpy())
    assert auroc > 0.99


@pytest.mark.parametrize("sigma", [1.0, 0.1, 0.01])
def test_dsm_loss_is_minimised_by_the_analytic_score(sigma):
    """E[½σ²‖s*(x̃) + (x̃ − x)/σ²‖²] = D s² / (2(s² + σ²)) at the true score; any other score is worse."""
    g = torch.Generator().manual_seed(2)
    n, d = 20000, 16
    x = S * torch.randn(n, d, generator=g, dtype=torch.float64)
    eps = torch.randn(n, d, generator=g, dtype=torch.float64)
    sig = torch.full((n,), sigma, dtype=torch.float64)
    x_tilde = perturb(x, sig, eps)
    true_score = -x_tilde / (S ** 2 + sigma ** 2)
    best = dsm_loss(true_score, x_tilde, x, sig).item()
    assert best == pytest.approx(d * S ** 2 / (2 * (S ** 2 + sigma ** 2)), rel=0.02)
    # deviations of order 1/σ (the loss weighs the score by σ², so smaller ones drown in Monte Carlo noise)
    other = torch.randn(n, d, generator=g, dtype=torch.float64)
    for wrong in (true_score + 0.05 / sigma, true_score + 0.2 * other / sigma, -x_tilde / (2 * sigma ** 2)):
        assert dsm_loss(wrong, x_tilde, x, sig).item() > best


def test_dsm_loss_reference_computation():
    """The released ``dsm_loss`` step by step: target = (x̃ − x)/σ²; ½ Σ (score + target)² · σ²; batch mean."""
    torch.manual_seed(3)
    x, score = torch.randn(5, 1, 3, 3), torch.randn(5, 1, 3, 3)
    sig = torch.tensor([1.0, 0.5, 0.1, 0.05, 0.01])
    x_tilde = x + sig.view(-1, 1, 1, 1) * torch.randn_like(x)
    expected = 0.0
    for b in range(5):
        target = (x_tilde[b] - x[b]) / sig[b] ** 2
        expected += 0.5 * float(((score[b] + target) ** 2).sum()) * float(sig[b]) ** 2
    assert dsm_loss(score, x_tilde, x, sig).item() == pytest.approx(expected / 5, rel=1e-5)
    assert math.isfinite(expected)
