"""FlowCon's loss terms against brute-force loops of the released ``FlowConLoss`` and the properties the
paper relies on (SupCon: batch-permutation invariant, 0 without positives, lower when classes cluster)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from genood.models.flowcon.losses import contrastive_loss, flow_loss, pairwise_log_p


def brute_log_p(z, mu, log_sd):
    """ℓ_ij by scipy, one (i, j) at a time, in bits/dim."""
    b, d = z.shape
    out = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            out[i, j] = norm.logpdf(z[i], loc=mu[j], scale=np.exp(log_sd[j])).sum() / (d * math.log(2))
    return out


def brute_con(log_p, labels, tau=1.5, tau2=0.1):
    """The released ``conLoss`` one sample at a time."""
    b = len(labels)
    out = np.zeros(b)
    for i in range(b):
        a = [tau * (log_p[i, j] + log_p[i, i]) for j in range(b)]
        m = max(a)
        bij = [(math.exp(a[j] - m) + 1e-5) / tau2 for j in range(b)]
        den = math.log(sum(math.exp(bij[k]) for k in range(b) if k != i))
        pos = [j for j in range(b) if j != i and labels[j] == labels[i]]
        out[i] = -sum(bij[j] - den for j in pos) / len(pos) if pos else 0.0
    return out


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 5, generator=g, dtype=torch.float64)
    mu = 0.5 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    log_sd = 0.3 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3])
    return z, mu, log_sd, labels


def test_pairwise_log_p_matches_scipy(batch):
    z, mu, log_sd, _ = batch
    np.testing.assert_allclose(pairwise_log_p(z, mu, log_sd).numpy(), brute_log_p(z.numpy(), mu.numpy(), log_sd.numpy()),
                               rtol=1e-12)


def test_flow_loss_is_the_released_nll_with_batch_mean_logdet(batch):
    z, mu, log_sd, _ = batch
    logdet = torch.tensor([0.3, -1.2, 0.5, 2.0, 0.0, -0.4, 1.1], dtype=torch.float64)
    d = z.shape[1]
    ll = pairwise_log_p(z, mu, log_sd).diagonal()
    # released: init_loss = −ln(n_bins)·D; loss = init + logdet.mean() + log_p_nll (nats); (−loss/(ln2·D)).mean()
    expected = np.mean([-(-math.log(32) * d + logdet.mean().item() + ll[i].item() * d * math.log(2)) / (math.log(2) * d)
                        for i in range(7)])
    assert flow_loss(ll, logdet, d, 32).item() == pytest.approx(expected, rel=1e-12)
    # the batch-mean log-determinant: moving log-det mass between samples leaves the loss unchanged
    shuffled = logdet.clone()
    shuffled[0], shuffled[1] = logdet[0] + 1.0, logdet[1] - 1.0
    assert flow_loss(ll, shuffled, d).item() == pytest.approx(flow_loss(ll, logdet, d).item(), rel=1e-12)


def test_contrastive_loss_matches_the_released_loop(batch):
    z, mu, log_sd, labels = batch
    lp = pairwise_log_p(z, mu, log_sd)
    np.testing.assert_allclose(contrastive_loss(lp, labels).numpy(), brute_con(lp.numpy(), labels.tolist()), rtol=1e-10)


def test_contrastive_loss_is_permutation_invariant(batch):
    z, mu, log_sd, labels = batch
    perm = torch.tensor([3, 6, 0, 5, 1, 4, 2])
    a = contrastive_loss(pairwise_log_p(z, mu, log_sd), labels)
    b = contrastive_loss(pairwise_log_p(z[perm], mu[perm], log_sd[perm]), labels[perm])
    torch.testing.assert_close(b, a[perm])
    assert b.mean().item() == pytest.approx(a.mean().item(), rel=1e-12)


def test_contrastive_loss_is_zero_without_positives(batch):
    z, mu, log_sd, _ = batch
    unique = torch.arange(7)
    assert torch.equal(contrastive_loss(pairwise_log_p(z, mu, log_sd), unique), torch.zeros(7, dtype=z.dtype))
    one = contrastive_loss(pairwise_log_p(z[:1], mu[:1], log_sd[:1]), unique[:1])  # a batch of one: 0, not NaN
    assert torch.equal(one, torch.zeros(1, dtype=z.dtype))


def test_contrastive_loss_decreases_when_same_class_latents_move_together():
    """Two classes; each latent's Gaussian is centred on itself (μ_j = z_j, σ = 1). Pulling each class's
    latents towards their class centre (by a factor 1 − α) lowers L_con monotonically."""
    g = torch.Generator().manual_seed(3)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    centres = torch.tensor([[2.0, 0.0, 0.0], [-2.0, 0.0, 0.0]], dtype=torch.float64)
    noise = 1.5 * torch.randn(8, 3, generator=g, dtype=torch.float64)
    losses = []
    for alpha in (0.0, 0.3, 0.6, 0.9):
        z = centres[labels] + (1 - alpha) * noise
        lp = pairwise_log_p(z, z, torch.zeros_like(z))
        losses.append(contrastive_loss(lp, labels).mean().item())
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
