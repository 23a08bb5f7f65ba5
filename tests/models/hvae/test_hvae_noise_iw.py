"""Counter-based scoring noise and importance weighting."""

import math

import pytest
import torch
from scipy import stats

from genood.models.counter_noise import counter_normal, mix32
from genood.models.hvae.torch_model import HierarchicalVAE, log_mean_exp


def _lowbias32_reference(v: int) -> int:
    v &= 0xFFFFFFFF
    v ^= v >> 16
    v = (v * 0x7FEB352D) & 0xFFFFFFFF
    v ^= v >> 15
    v = (v * 0x846CA68B) & 0xFFFFFFFF
    return v ^ (v >> 16)


def test_mix32_matches_python_reference_and_is_injective():
    vals = [0, 1, 2, 12345, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xDEADBEEF]
    out = mix32(torch.tensor(vals, dtype=torch.long)).tolist()
    assert out == [_lowbias32_reference(v) for v in vals]
    block = mix32(torch.arange(1 << 16, dtype=torch.long))
    assert block.unique().numel() == 1 << 16


def test_counter_normal_is_standard_normal_and_keyed_by_counter():
    idx = torch.arange(2000)
    sid = torch.zeros(2000, dtype=torch.long)
    z = counter_normal(0, idx, sid, 0, (50,))
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01
    assert stats.kstest(z.flatten().numpy(), "norm").pvalue > 1e-3
    corr = torch.corrcoef(z[:, :10].T)  # elements of a row are uncorrelated
    assert (corr - torch.eye(10)).abs().max() < 0.1
    # a row depends only on (seed, index, sample id, stream): any subset / order gives the same rows
    perm = torch.randperm(2000)[:37]
    torch.testing.assert_close(counter_normal(0, idx[perm], sid[perm], 0, (50,)), z[perm], rtol=0, atol=0)
    for other in (counter_normal(1, idx, sid, 0, (50,)), counter_normal(0, idx, sid + 1, 0, (50,)),
                  counter_normal(0, idx, sid, 1, (50,))):
        assert torch.corrcoef(torch.stack([z.flatten(), other.flatten()]))[0, 1].abs() < 0.02


def test_log_mean_exp():
    v = torch.tensor([[0.0, 1.0], [2.0, -3.0], [1.0, 1.0]])
    torch.testing.assert_close(log_mean_exp(v, 0), torch.log(v.exp().mean(0)))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    stages = [{"channels": 8, "blocks": 1, "stride": 2, "latent": "conv", "latent_features": 2},
              {"channels": 8, "blocks": 1, "stride": 2, "latent": "dense", "latent_features": 6},
              {"channels": 8, "blocks": 1, "stride": 1, "latent": "dense", "latent_features": 4}]
    return HierarchicalVAE((1, 8, 8), stages).eval()


def test_iw_elbo_is_the_log_mean_exp_of_distinct_single_sample_bounds(net):
    x = torch.bernoulli(torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    S, idx = 5, torch.arange(6) + 40
    with torch.no_grad():
        iw = net.elbo(x, S, index=idx, seed=9)
        rows = torch.stack([net.row_bounds(x, torch.zeros(6, dtype=torch.long), idx, torch.full((6,), s), 9)
                            for s in range(S)])
    torch.testing.assert_close(iw, log_mean_exp(rows, 0), rtol=1e-5, atol=1e-4)
    assert rows.std(0).min() > 1e-3  # the S samples use different noise


def test_iw_elbo_does_not_decrease_with_more_samples(net):
    x = torch.bernoulli(torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
    means = {S: [] for S in (1, 16, 64)}
    with torch.no_grad():
        for seed in range(4):
            for S in means:
                means[S].append(net.elbo(x, S, seed=seed).mean().item())
    m = {S: sum(v) / len(v) for S, v in means.items()}
    tol = 0.05
    assert m[16] >= m[1] - tol and m[64] >= m[16] - tol
    assert m[64] > m[1] + 0.1            # importance weighting tightens the bound
    assert m[64] - m[1] < math.log(64)   # the -log S term is there (a plain log-sum-exp would add log 64)
