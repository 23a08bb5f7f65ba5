"""FlowCon's vector RealNVP: invertibility, log-determinant vs autograd, identity at initialisation, and the
released coupling computed step by step (mask by multiplication, s ← w ⊙ tanh(s), learned base density)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from genood.models.flowcon.torch_model import FlowConRealNVP

pytestmark = pytest.mark.usefixtures("one_thread")


def randomised_flow(dim: int = 8, seed: int = 0, scale: float = 0.1, **kw) -> FlowConRealNVP:
    """A flow whose zero-initialised heads (last coupling layers, base density) and scales are perturbed,
    so every coupling does something."""
    torch.manual_seed(seed)
    flow = FlowConRealNVP(dim, **kw)
    with torch.no_grad():
        heads = [c.transform_net.net[-1] for c in flow.transform._transforms] + [flow.prior]
        for p in (p for h in heads for p in h.parameters()):
            p.normal_(std=scale)
        for name, p in flow.named_parameters():
            if "original0" in name:  # weight-norm gain g: w = g · v/|v|
                p.uniform_(0.3, 1.5)
    return flow


def test_inverse_of_forward_is_identity():
    flow = randomised_flow(8).eval()
    f = torch.randn(64, 8)
    z, logdet, _, _ = flow(f)
    assert (z - f).abs().max() > 0.1  # the flow is not trivially the identity
    assert logdet.abs().max() > 0.01
    torch.testing.assert_close(flow.inverse(z), f, atol=1e-5, rtol=0)


def test_summed_scales_equal_autograd_log_det_at_d8():
    flow = randomised_flow(8, scale=0.2).double().eval()
    f = torch.randn(6, 8, dtype=torch.float64)
    _, logdet, _, _ = flow(f)
    for i in range(f.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], f[i])
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign > 0
        assert logdet[i].item() == pytest.approx(logabs.item(), abs=1e-10)


def test_identity_and_standard_normal_base_at_initialisation():
    torch.manual_seed(0)
    flow = FlowConRealNVP(8)
    f = torch.randn(32, 8)
    with torch.no_grad():
        z, logdet, mu, log_sd = flow(f)
    assert torch.equal(z, f)
    assert torch.equal(logdet, torch.zeros(32))
    assert torch.equal(mu, torch.zeros(32, 8)) and torch.equal(log_sd, torch.zeros(32, 8))
    expected = norm.logpdf(f.numpy()).sum(1)  # N(0, I)
    np.testing.assert_allclose(FlowConRealNVP.log_base(z, mu, log_sd).numpy(), expected, rtol=1e-6)
    # the weight-normalised scale starts at w = 1 in every coupling
    for c in flow.transform._transforms:
        torch.testing.assert_close(c.scale.weight, torch.ones(4))


def released_forward(flow: FlowConRealNVP, x: torch.Tensor):
    """The released ``CouplingLayerTabular`` / ``RealNVPTabular.forward`` written out step by step with our
    parameters: x_id = x·b, x_change = x·(1 − b) (b = 1 on the fixed half: the first half when i is even,
    the second when odd), (s, t) = NN(x_id) chunked in two D-vectors and masked to the changing half,
    s = w·tanh(s), x_change = (x_change + t)·exp(s), logdet += Σ s; the base (μ, log σ) = prior(fixed half)
    of the *last* coupling."""
    d = x.shape[1]
    split = d // 2
    logdet = torch.zeros(x.shape[0], dtype=x.dtype)
    mean = log_sd = None
    for i, c in enumerate(flow.transform._transforms):
        b = torch.zeros(1, d, dtype=x.dtype)
        if i % 2 == 0:
            b[:, :split] = 1
        else:
            b[:, split:] = 1
        x_id, x_change = x * b, x * (1 - b)
        fixed = b[0].bool()
        # the released first layer is Linear(D, 256) on the masked vector: ours, with zero columns inserted
        lin0 = c.transform_net.net[0]
        w_full = torch.zeros(lin0.out_features, d, dtype=x.dtype)
        w_full[:, fixed] = lin0.weight
        h = x_id @ w_full.T + lin0.bias
        for layer in list(c.transform_net.net)[1:]:
            h = layer(h)
        n = int((~fixed).sum())
        s_half, t_half = h[:, :n], h[:, n:]
        s = torch.zeros_like(x)
        t = torch.zeros_like(x)
        s[:, ~fixed], t[:, ~fixed] = s_half, t_half   # released: st.chunk(2) then masked by (1 - b)
        w = torch.ones(d, dtype=x.dtype)
        w[~fixed] = c.scale.weight
        s = (w * torch.tanh(s)) * (1 - b)
        x_change = (x_change + t * (1 - b)) * torch.exp(s)
        logdet = logdet + s.sum(-1)
        x = x_id * b + x_change * (1 - b)
        valid = x_id[:, :split] if i % 2 == 0 else x_id[:, split:]
        if i == len(flow.transform._transforms) - 1:
            mean, log_sd = flow.prior(valid).chunk(2, 1)
    return x, mean, log_sd, logdet


@pytest.mark.parametrize("dim,n", [(8, 8), (10, 3)])
def test_matches_the_released_coupling_step_by_step(dim, n):
    flow = randomised_flow(dim, seed=1, n_couplings=n).double().eval()
    x = torch.randn(16, dim, dtype=torch.float64)
    with torch.no_grad():
        ours = flow(x)
        ref = released_forward(flow, x)
    for a, b in zip((ours[0], ours[2], ours[3], ours[1]), ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_dropout_only_in_training_and_clear_shape_error():
    flow = randomised_flow(8, dropout=0.5)
    f = torch.randn(4, 8)
    with torch.no_grad():
        flow.eval()
        assert torch.equal(flow(f)[0], flow(f)[0])
        flow.train()
        assert not torch.equal(flow(f)[0], flow(f)[0])
        assert math.isfinite(float(flow(f)[1].sum()))
    with pytest.raises(ValueError, match="built for D=8"):
        flow(torch.randn(4, 6))
