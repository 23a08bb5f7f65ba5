"""The HVAE bounds: ELBO against torch.distributions, L^{>0} = ELBO, layer exclusion for k >= 1, the prior
*mean* for skipped layers, one batched call = separate calls, batch-composition independence."""


import pytest
import torch
from torch.distributions import Bernoulli, Normal

from genood.models.hvae.stochastic import Gaussian, Posterior
from genood.models.hvae.torch_model import HierarchicalVAE

STAGES = [
    {"channels": 8, "blocks": 1, "stride": 2, "latent": "conv", "latent_features": 2},
    {"channels": 8, "blocks": 1, "stride": 2, "latent": "dense", "latent_features": 6},
    {"channels": 8, "blocks": 1, "stride": 1, "latent": "dense", "latent_features": 4},
]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    m = HierarchicalVAE((1, 8, 8), STAGES)
    with torch.no_grad():  # make the conditional priors differ from N(0, I) so that the tests have teeth
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.eval()


@pytest.fixture(scope="module")
def x():
    return torch.bernoulli(torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(1)))


def _noise(net, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, *s, generator=g) for s in net.latent_shapes]


def test_elbo_matches_torch_distributions(net, x):
    with torch.no_grad():
        fp = net(x, eps=_noise(net, len(x)))
        logits = net.likelihood.head(net.likelihood.act(_decoder_output(net, fp.posteriors)))
        ref = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
        for post, prior in zip(fp.posteriors, fp.priors):
            lq = Normal(post.q.mu, post.q.sigma).log_prob(post.z)
            lp = Normal(prior.mu, prior.sigma).log_prob(post.z)
            ref = ref - (lq - lp).flatten(1).sum(1)
    torch.testing.assert_close(fp.bound(), ref, rtol=1e-5, atol=1e-4)
    assert torch.allclose(fp.priors[-1].mu, torch.zeros(())) and torch.allclose(fp.priors[-1].sigma, torch.ones(()))


def _decoder_output(net, posteriors, decode_from_p=None):
    """Re-run the generative path and capture the features the likelihood head reads."""
    feats = {}
    orig = net.likelihood.log_prob

    def capture(x, d):
        feats["d"] = d
        return orig(x, d)

    net.likelihood.log_prob = capture
    try:
        net.generate(posteriors, torch.zeros(len(posteriors[0].z), *net.input_shape), decode_from_p)
    finally:
        del net.likelihood.log_prob
    return feats["d"]


def test_skip_bound_with_k0_is_the_elbo(net, x):
    with torch.no_grad():
        elbo = net.elbo(x, S=1, seed=3)
        l_gt0 = net.elbo_skip_lower(x, 0, seed=3)
        l_gt1 = net.elbo_skip_lower(x, 1, seed=3)
    assert torch.equal(elbo, l_gt0)  # LLR^{>0} = 0 exactly on the same posterior samples
    assert (elbo - l_gt1).abs().max() > 1e-2  # and k = 1 is a different bound


@pytest.mark.parametrize("k", [1, 2])
def test_layers_at_or_below_k_do_not_enter_the_skip_bound(net, x, k):
    """Changing q (parameters and samples) of layers <= k leaves L^{>k} and the upper KL terms unchanged at
    fixed z_{>k}; the same change moves the ELBO."""
    n = len(x)
    decode = [torch.full((n,), i < k) for i in range(net.n_latents)]
    with torch.no_grad():
        posts = net.infer(x, eps=_noise(net, n), use_mode=decode)
        g = torch.Generator().manual_seed(7)
        junk = [Posterior(torch.randn(p.z.shape, generator=g) * 3,
                          Gaussian(torch.randn(p.z.shape, generator=g), torch.rand(p.z.shape, generator=g) + 0.1))
                if i < k else p for i, p in enumerate(posts)]
        a, b = net.generate(posts, x, decode), net.generate(junk, x, decode)
        for i in range(k, net.n_latents):
            torch.testing.assert_close(a.kl[i], b.kl[i], rtol=0, atol=0)
        for i in range(k):
            assert torch.count_nonzero(a.kl[i]) == 0 and torch.count_nonzero(b.kl[i]) == 0
        torch.testing.assert_close(a.bound(), b.bound(), rtol=0, atol=0)
        e_a, e_b = net.generate(posts, x), net.generate(junk, x)
    assert (e_a.bound() - e_b.bound()).abs().max() > 1e-2  # the ELBO does read those layers


def test_skipped_layers_take_the_conditional_prior_mean(net, x):
    """Decoding z_1 from p means using p(z_1 | z_2)'s mean: it changes log p(x|z) but not the upper KL terms."""
    n = len(x)
    with torch.no_grad():
        posts = net.infer(x, eps=_noise(net, n))
        skip = net.generate(posts, x, [torch.ones(n, dtype=torch.bool), None, None])
        forced = list(posts)
        forced[0] = Posterior(skip.priors[0].mu, posts[0].q)
        manual = net.generate(forced, x)
        plain = net.generate(posts, x)
    torch.testing.assert_close(skip.log_px, manual.log_px, rtol=0, atol=1e-6)
    for i in (1, 2):
        torch.testing.assert_close(skip.kl[i], plain.kl[i], rtol=0, atol=0)
    assert (skip.log_px - plain.log_px).abs().max() > 1e-2


def test_inference_passes_q_mean_for_skipped_layers(net, x):
    """As the reference ood-llr.py (use_mode = decode_from_p): rows that skip layer i infer with q's mean."""
    n = len(x)
    with torch.no_grad():
        posts = net.infer(x, eps=_noise(net, n), use_mode=[torch.ones(n, dtype=torch.bool), None, None])
    torch.testing.assert_close(posts[0].z, posts[0].q.mu, rtol=0, atol=0)
    assert not torch.allclose(posts[1].z, posts[1].q.mu)


def test_one_batched_call_equals_separate_calls(net, x):
    with torch.no_grad():
        joint = net.bounds(x, {0: 3, 1: 1, 2: 1}, seed=5)
        alone = {0: net.elbo(x, 3, seed=5), 1: net.elbo_skip_lower(x, 1, seed=5), 2: net.elbo_skip_lower(x, 2, seed=5)}
        chunked = net.bounds(x, {0: 3, 1: 1, 2: 1}, seed=5, max_rows=5)
    for k in (0, 1, 2):
        torch.testing.assert_close(joint[k], alone[k], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(joint[k], chunked[k], rtol=1e-5, atol=1e-4)


def test_scores_do_not_depend_on_batch_composition(net, x):
    idx = torch.arange(100, 100 + len(x))
    with torch.no_grad():
        full = net.bounds(x, {0: 4, 2: 1}, index=idx, seed=1)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        shuffled = net.bounds(x[perm], {0: 4, 2: 1}, index=idx[perm], seed=1)
        half = net.bounds(x[:5], {0: 4, 2: 1}, index=idx[:5], seed=1)
        other_seed = net.bounds(x, {0: 4, 2: 1}, index=idx, seed=2)
    for k in (0, 2):
        torch.testing.assert_close(full[k][perm], shuffled[k], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(full[k][:5], half[k], rtol=1e-5, atol=1e-4)
    assert (full[0] - other_seed[0]).abs().max() > 1e-3


def test_bad_arguments_raise_clear_errors(net, x):
    with pytest.raises(ValueError, match="k must be in"):
        net.bounds(x, {4: 1})
    with pytest.raises(ValueError, match="importance samples"):
        net.elbo(x, 0)
    with pytest.raises(ValueError, match="unknown key"):
        HierarchicalVAE((1, 8, 8), [{**STAGES[0], "chanels": 3}])
    with pytest.raises(ValueError, match="spatial size"):
        HierarchicalVAE((1, 10, 10), [{**STAGES[0], "stride": 4}])
    with pytest.raises(ValueError, match="likelihood"):
        HierarchicalVAE((1, 8, 8), STAGES, likelihood="gaussian")
