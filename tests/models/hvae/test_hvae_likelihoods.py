"""Observation models: the discretized logistic mixture is a distribution over the n_bins levels; the
Bernoulli log-likelihood is torch.distributions'."""

import itertools

import pytest
import torch
from torch.distributions import Bernoulli

from genood.models.hvae.likelihoods import (BernoulliLikelihood, DiscretizedLogisticMixtureLikelihood,
                                             bernoulli_log_prob, discretized_logistic_mixture_log_prob,
                                             mixture_param_count, split_mixture_params)


def _random_params(channels, n_mix, pixels, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, mixture_param_count(channels, n_mix), 1, pixels, generator=g) * scale


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("log_scale_shift", [0.0, -4.0])
def test_grey_mixture_probabilities_sum_to_one_over_256_bins(seed, log_scale_shift):
    n_bins, n_mix = 256, 10
    raw = _random_params(1, n_mix, 1, seed)
    raw[:, 2 * n_mix:3 * n_mix] += log_scale_shift  # sharp components: some bins use the pdf fallback
    x = (torch.arange(n_bins, dtype=torch.float32) / (n_bins - 1)).view(n_bins, 1, 1, 1)
    params = [p.expand(n_bins, *p.shape[1:]) for p in split_mixture_params(raw, 1, n_mix)]
    logp = discretized_logistic_mixture_log_prob(x, *params, n_bins=n_bins)
    assert torch.logsumexp(logp.double(), 0).exp().item() == pytest.approx(1.0, abs=2e-4)


def test_colour_mixture_is_a_joint_distribution_over_all_rgb_levels():
    n_bins, n_mix = 12, 4
    raw = _random_params(3, n_mix, 1, 5)
    levels = torch.arange(n_bins, dtype=torch.float32) / (n_bins - 1)
    grid = torch.tensor(list(itertools.product(range(n_bins), repeat=3)))
    x = levels[grid].view(-1, 3, 1, 1)
    params = [p.expand(len(x), *p.shape[1:]) for p in split_mixture_params(raw, 3, n_mix)]
    logp = discretized_logistic_mixture_log_prob(x, *params, n_bins=n_bins)
    assert torch.logsumexp(logp.double(), 0).exp().item() == pytest.approx(1.0, abs=1e-4)


def test_mixture_prefers_the_level_at_its_mean():
    n_bins = 256
    raw = torch.zeros(1, mixture_param_count(1, 1), 1, 1)
    raw[0, 1] = 2 * (100 / 255) - 1  # mean at level 100 in [-1, 1] units
    raw[0, 2] = -5.0                 # log-scale
    params = split_mixture_params(raw.expand(3, -1, -1, -1), 1, 1)
    x = torch.tensor([100, 101, 140], dtype=torch.float32).view(3, 1, 1, 1) / 255
    lp = discretized_logistic_mixture_log_prob(x, *params, n_bins=n_bins)
    assert lp[0] > lp[1] > lp[2]


def test_bernoulli_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 1, 8, 8, generator=g) * 4
    x = torch.bernoulli(torch.rand(5, 1, 8, 8, generator=g), generator=g)
    ref = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_log_prob(logits, x), ref)


def test_likelihood_modules_shapes():
    d = torch.randn(2, 8, 8, 8)
    x01 = torch.bernoulli(torch.full((2, 1, 8, 8), 0.5))
    assert BernoulliLikelihood((8, 8, 8), (1, 8, 8)).log_prob(x01, d).shape == (2,)
    lik = DiscretizedLogisticMixtureLikelihood((8, 8, 8), (3, 8, 8))
    x = torch.randint(0, 256, (2, 3, 8, 8)).float() / 255
    assert lik.log_prob(x, d).shape == (2,) and torch.isfinite(lik.log_prob(x, d)).all()
    assert lik.head.out_shape[0] == 100  # PixelCNN++: 10 components x (1 + 3 + 3 + 3)
    with pytest.raises(ValueError, match="n_mix"):
        DiscretizedLogisticMixtureLikelihood((8, 8, 8), (1, 8, 8), n_mix=0)
