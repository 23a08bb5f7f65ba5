"""The classifier baselines against closed forms: MSP / energy (scipy), Mahalanobis on an analytic two-Gaussian
case, kNN on normalised features (numpy brute force); class labels reach Scorer.fit but never Scorer.score."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis
from scipy.special import logsumexp, softmax

from genood.evaluation.results import SetOutputs, score_sets
from genood.models.classifier.scorers import EnergyScorer, KNNFeatureScorer, MahalanobisScorer, MSPScorer
from genood.scoring.base import LABELS_KEY, Scorer


def test_msp_and_energy_closed_forms():
    logits = torch.randn(50, 7, dtype=torch.float64) * 3
    l = logits.numpy()
    np.testing.assert_allclose(MSPScorer().score({"logits": logits}).numpy(), -softmax(l, axis=1).max(1), rtol=1e-6)
    np.testing.assert_allclose(EnergyScorer().score({"logits": logits}).numpy(), -logsumexp(l, axis=1), rtol=1e-6)
    np.testing.assert_allclose(EnergyScorer(2.0).score({"logits": logits}).numpy(), -2.0 * logsumexp(l / 2.0, axis=1),
                               rtol=1e-6)
    # a confident prediction is less OOD than a flat one, for both
    sharp, flat = torch.tensor([[10.0, 0, 0]]), torch.tensor([[0.0, 0, 0]])
    assert MSPScorer().score({"logits": sharp}) < MSPScorer().score({"logits": flat})
    assert EnergyScorer().score({"logits": sharp}) < EnergyScorer().score({"logits": flat})


def analytic_two_gaussians(d: int = 4):
    """Fit points whose class means are exactly μ_0, μ_1 and whose tied within-class scatter is exactly Σ:
    μ_k ± √d · L e_i for i = 1..d (L Lᵀ = Σ), 2d points per class."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(d, d))
    sigma = a @ a.T + d * np.eye(d)
    chol = np.linalg.cholesky(sigma)
    mus = np.stack([np.zeros(d), np.full(d, 3.0)])
    pts, labels = [], []
    for k, mu in enumerate(mus):
        for i in range(d):
            for sign in (1.0, -1.0):
                pts.append(mu + sign * np.sqrt(d) * chol[:, i])
                labels.append(k)
    return np.array(pts), np.array(labels), mus, sigma


def test_mahalanobis_ranks_exactly_by_the_closed_form_distance():
    fit_x, fit_y, mus, sigma = analytic_two_gaussians(4)
    scorer = MahalanobisScorer()
    scorer.fit({"features": torch.tensor(fit_x), LABELS_KEY: torch.tensor(fit_y)})
    np.testing.assert_allclose(scorer.means.numpy(), mus, atol=1e-12)
    np.testing.assert_allclose(np.linalg.inv(scorer.precision.numpy()), sigma, rtol=1e-9)

    q = np.random.default_rng(1).normal(scale=4.0, size=(300, 4)) + 1.5
    vi = np.linalg.inv(sigma)
    closed = np.array([min(scipy_mahalanobis(x, mu, vi) ** 2 for mu in mus) for x in q])
    ours = scorer.score({"features": torch.tensor(q)}).numpy()
    np.testing.assert_allclose(ours, closed, rtol=1e-9)
    assert np.array_equal(np.argsort(ours, kind="stable"), np.argsort(closed, kind="stable"))


def test_mahalanobis_needs_labels_and_ignores_unlabelled_rows():
    fit_x, fit_y, mus, _ = analytic_two_gaussians(3)
    with pytest.raises(ValueError, match="class labels"):
        MahalanobisScorer().fit({"features": torch.tensor(fit_x)})
    extra = np.vstack([fit_x, np.full((5, 3), 100.0)])  # unlabelled outliers (y = -1) must not move the fit
    s = MahalanobisScorer()
    s.fit({"features": torch.tensor(extra), LABELS_KEY: torch.tensor(np.r_[fit_y, [-1] * 5])})
    np.testing.assert_allclose(s.means.numpy(), mus, atol=1e-12)


def test_knn_feature_is_the_kth_neighbour_of_normalised_features():
    rng = np.random.default_rng(2)
    bank, q = rng.normal(size=(80, 6)), rng.normal(size=(20, 6))
    s = KNNFeatureScorer(k=7)
    s.fit({"features": torch.tensor(bank)})
    nb = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    nq = q / np.linalg.norm(q, axis=1, keepdims=True)
    brute = np.array([np.sort(np.linalg.norm(nb - v, axis=1))[6] for v in nq])
    np.testing.assert_allclose(s.score({"features": torch.tensor(q)}).numpy(), brute, rtol=1e-5)
    # normalised features: rescaling a query leaves its score unchanged (Sun et al. 2022)
    torch.testing.assert_close(s.score({"features": torch.tensor(q) * 9.0}), s.score({"features": torch.tensor(q)}))


class _Spy(Scorer):
    name, requires, needs_fit = "spy", ("features",), True

    def fit(self, outputs):
        self.fit_keys, self.fit_labels = set(outputs), outputs[LABELS_KEY].clone()

    def score(self, outputs):
        self.score_keys = set(outputs)
        return outputs["features"][:, 0]


def test_the_evaluator_gives_fit_labels_but_never_score_labels():
    f = torch.randn(10, 2)
    fit = SetOutputs("__fit__", "id", torch.arange(10), torch.arange(10) % 3, {"features": f})
    sets = [SetOutputs("id", "id", torch.arange(4), torch.zeros(4, dtype=torch.long), {"features": f[:4]}),
            SetOutputs("ood", "far", torch.arange(3), torch.full((3,), -1), {"features": f[:3]})]
    spy = _Spy()
    score_sets([spy], fit, sets)
    assert spy.fit_keys == {"features", LABELS_KEY}
    assert torch.equal(spy.fit_labels, torch.arange(10) % 3)
    assert spy.score_keys == {"features"}
    clash = SetOutputs("__fit__", "id", torch.arange(10), torch.arange(10), {"features": f, LABELS_KEY: f[:, 0]})
    with pytest.raises(ValueError, match="reserved"):
        score_sets([_Spy()], clash, sets)
