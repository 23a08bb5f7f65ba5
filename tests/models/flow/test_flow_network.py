"""The flow network: invertibility, the log-determinant against autograd's, and the dequantized logit
likelihood against its closed form on a flow that is the identity."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from genood.models.flow import FlowNetwork, ImageFlow

TINY = (1, 4, 4)  # D = 16


def _randomized(net: FlowNetwork, seed: int = 0, scale: float = 0.3) -> FlowNetwork:
    """Give every parameter a random value (the zero-initialised heads make a fresh flow nearly trivial),
    then run ActNorm's initialisation on random data."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    net.initialize(torch.rand(32, *net.input_shape, generator=g, dtype=next(net.parameters()).dtype))
    with torch.no_grad():  # and move ActNorm away from its data-dependent values too
        for m in net.actnorms():
            m.s.add_(0.2 * torch.randn(m.s.shape, generator=g, dtype=m.s.dtype))
            m.t.add_(0.2 * torch.randn(m.t.shape, generator=g, dtype=m.t.dtype))
    return net


NETS = {
    "glow": dict(architecture="glow", levels=2, steps=2, hidden_channels=8),
    "glow_shift": dict(architecture="glow", levels=1, steps=3, hidden_channels=8, preprocessing="shift"),
    "realnvp": dict(architecture="realnvp", levels=2, steps=2, hidden_channels=8, resnet_blocks=1),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_inverse_of_forward_is_the_identity(name):
    torch.manual_seed(0)
    net = _randomized(FlowNetwork(TINY, **NETS[name]).double())
    u = torch.rand(6, *TINY, dtype=torch.float64) * 0.98 + 0.01
    z, logdet = net.encode(u)
    assert len(z) == net.levels and sum(zi[0].numel() for zi in z) == 16
    back, logdet_back = net.decode(z)
    torch.testing.assert_close(back, u, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(logdet_back, -logdet, atol=1e-9, rtol=1e-9)  # the inverse map's log|det| flips sign
    assert logdet.abs().min() > 1e-2  # the randomised flow is far from volume-preserving


@pytest.mark.parametrize("name", sorted(NETS))
def test_log_det_matches_autograd_jacobian(name):
    torch.manual_seed(1)
    net = _randomized(FlowNetwork(TINY, **NETS[name]).double(), seed=1)
    u = torch.rand(1, *TINY, dtype=torch.float64) * 0.9 + 0.05
    _, logdet = net.encode(u)

    def flat_latents(v):
        return torch.cat([zi.reshape(1, -1) for zi in net.encode(v)[0]], dim=1)

    reference = []
    for ui in u:  # autograd's full 16 x 16 Jacobian of u -> (z_1, ..., z_L), one image at a time
        J = torch.autograd.functional.jacobian(lambda v: flat_latents(v[None]).reshape(-1), ui, vectorize=True)
        J = J.reshape(16, 16)
        reference.append(torch.linalg.slogdet(J)[1])
    torch.testing.assert_close(logdet, torch.stack(reference), atol=1e-8, rtol=1e-8)
    # and log p(u) is the base density of z plus that log-det
    z, _ = net.encode(u)
    torch.testing.assert_close(net.log_prob(u), net.base_log_prob(z) + logdet, atol=1e-8, rtol=1e-8)


# ---- the dequantized likelihood on a flow that is the identity --------------------------------------------------
def _identity_flow(preprocessing: str, n_bins: int, **kw) -> ImageFlow:
    """RealNVP couplings with zero-initialised heads (shift 0, log-scale w·tanh(0) = 0) and the unit Gaussian
    base: the model is N(0, I) on y = g(u), g the pre-processing."""
    m = ImageFlow((1, 2, 2), architecture="realnvp", levels=1, steps=2, hidden_channels=4, resnet_blocks=1,
                  preprocessing=preprocessing, learn_prior=False, n_bins=n_bins, **kw).double().eval()
    return m


def _y(u, preprocessing, alpha=0.05):
    return np.log(alpha + (1 - 2 * alpha) * u) - np.log1p(-(alpha + (1 - 2 * alpha) * u)) if preprocessing == "logit" \
        else u - 0.5


LEVELS = torch.tensor([[0, 16, 3, 8], [0, 0, 0, 0], [16, 16, 15, 1]], dtype=torch.float64)  # 17-level images


@pytest.mark.parametrize("preprocessing", ["logit", "shift"])
def test_bin_centre_log_likelihood_is_the_midpoint_formula(preprocessing):
    """log P(k) ≈ Σ_d [log φ(y(u_d)) + log |y'(u_d)|] − D log n at u = (k + ½)/n, computed with scipy."""
    n, alpha = 17, 0.05
    m = _identity_flow(preprocessing, n, score_dequantization="center")
    x = (LEVELS / (n - 1)).view(-1, 1, 2, 2)
    with torch.inference_mode():
        got = m.score_outputs(x)["log_prob"].numpy()
    u = (LEVELS.numpy() + 0.5) / n
    s = alpha + (1 - 2 * alpha) * u
    log_jac = np.log(1 - 2 * alpha) - np.log(s) - np.log1p(-s) if preprocessing == "logit" else 0.0 * u
    expected = (norm.logpdf(_y(u, preprocessing)) + log_jac).sum(1) - 4 * math.log(n)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def _exact_log_bin_probability(preprocessing: str, n: int) -> np.ndarray:
    k = LEVELS.numpy()
    return np.log(norm.cdf(_y((k + 1) / n, preprocessing)) - norm.cdf(_y(k / n, preprocessing))).sum(1)


@pytest.mark.parametrize("preprocessing, S", [("logit", 2 ** 14), ("shift", 2 ** 10)])
def test_dequantized_likelihood_converges_to_the_exact_bin_probability(preprocessing, S):
    """For the identity flow each pixel is independent and the bin probability is closed form:
    P(k) = Π_d [Φ(y((k_d + 1)/n)) − Φ(y(k_d/n))]. The importance-weighted estimate with S uniform draws
    reaches it (Monte-Carlo error ~ 1/√S; the logit density varies more within the edge bins, hence more S)."""
    n = 17
    m = _identity_flow(preprocessing, n, score_samples=S)
    with torch.inference_mode():
        many = m.score_outputs((LEVELS / (n - 1)).view(-1, 1, 2, 2), index=torch.arange(3))["log_prob"].numpy()
    np.testing.assert_allclose(many, _exact_log_bin_probability(preprocessing, n), atol=1e-2)


def test_few_dequantization_draws_bound_the_likelihood_from_below():
    """E[log (1/S) Σ_s p(u_s)] − D log n ≤ log P(k) (Jensen), tighter for S = 16 than for S = 1: averaged over
    1000 index-keyed replicates of an image whose logit density varies within its bins (levels 0 and 16)."""
    n = 17
    exact = _exact_log_bin_probability("logit", n)[0]
    reps = (LEVELS[:1] / (n - 1)).view(1, 1, 2, 2).expand(1000, -1, -1, -1)
    means = {}
    for S in (1, 16):
        m = _identity_flow("logit", n, score_samples=S)
        with torch.inference_mode():
            draws = m.score_outputs(reps, index=torch.arange(1000))["log_prob"].numpy()
        assert draws.std() > 0  # the noise is really used, one stream per index
        means[S] = draws.mean()
    assert means[1] < means[16] < exact, (means, exact)
