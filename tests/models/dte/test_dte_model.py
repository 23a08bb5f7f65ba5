"""DTE-IG / DTE-C training objectives and scores (genood/models/dte/README.md; the released diffusion/dte.py)."""

import math

import pytest
import torch

from genood.models.dte import DTE, DTEMLP
from genood.models.dte.posterior import ig_nll
from genood.models.dte.schedule import time_bins
from genood.models.dropout import Dropout


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster


def test_mlp_architecture_matches_the_paper():
    net = DTEMLP(30, 7)
    kinds = [type(m).__name__ for m in net.net]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert [m.out_features for m in net.net if isinstance(m, torch.nn.Linear)] == [256, 512, 256, 7]
    assert [m.p for m in net.net if isinstance(m, Dropout)] == [0.5, 0.5]


def test_time_bins():
    t = torch.arange(400)
    b = time_bins(t, 400, 7)
    assert b.min() == 0 and b.max() == 6 and (b == torch.clamp((7 * t) // 400, 0, 6)).all()
    assert b[57] == 0 and b[58] == 1 and b[399] == 6


def test_ig_loss_is_the_invgamma_nll_up_to_beta_free_terms():
    d, s2 = 30, torch.tensor([0.01, 0.3, 0.8])
    alpha = d / 2 - 1
    b1, b2 = torch.tensor([0.5, 2.0, 7.0]), torch.tensor([1.5, 0.2, 3.0])
    ref = lambda b: -torch.distributions.InverseGamma(torch.tensor(alpha), b).log_prob(s2)
    torch.testing.assert_close(ig_nll(b1, s2, d, eps=0.0) - ig_nll(b2, s2, d, eps=0.0), ref(b1) - ref(b2))
    # its minimiser over β̂ for a known σ² is the InvGamma mode matching σ²: β̂* = α σ², mode β̂*/(α+1) ≈ σ²
    grid = torch.linspace(0.01, 20, 20000)
    best = grid[ig_nll(grid, torch.tensor(0.3), d, eps=0.0).argmin()]
    assert abs(best.item() - alpha * 0.3) < 2e-3


def test_ig_released_score_is_sign_ambiguous_and_mode_is_not():
    torch.manual_seed(0)
    m = DTE(input_shape=(10,), hidden_sizes=(16, 16)).eval()
    x = torch.randn(32, 10)
    out = m.score_outputs(x)
    torch.manual_seed(1)
    loss = m.ig_loss(x)
    last = m.ig_net.net[-1]
    with torch.no_grad():
        last.weight.neg_()
        last.bias.neg_()
    flipped = m.score_outputs(x)
    torch.manual_seed(1)
    torch.testing.assert_close(m.ig_loss(x), loss)                          # same objective
    torch.testing.assert_close(flipped["dte_ig_raw"], -out["dte_ig_raw"])   # released score flips
    scorers = {s.name: s for s in m.scorers()}
    torch.testing.assert_close(scorers["dte_ig"].score(flipped), scorers["dte_ig"].score(out))
    torch.testing.assert_close(scorers["dte_ig"].score(out), out["dte_ig_beta"] * 2 / 10)


def test_expected_bin_and_ig_mode_rise_with_t_after_short_training():
    torch.manual_seed(0)
    d = 16
    g = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(4, d, generator=g)
    X = centres[torch.arange(256) % 4] + 0.05 * torch.randn(256, d, generator=g)
    m = DTE(input_shape=(d,), lr=1e-3, hidden_sizes=(64, 64), dropout=0.0)
    opt = m.configure_optimizers()
    for _ in range(800):
        opt.zero_grad()
        m.loss({"x": X[torch.randint(0, 256, (64,))]}).backward()
        opt.step()
    m.eval()
    ts = [0, 60, 120, 180, 240, 300, 399]
    with torch.no_grad():
        noised = [X + m.sigma2_c[t].sqrt() * torch.randn_like(X) for t in ts]
        bins = torch.tensor([m.c_outputs(xn)["dte_c_expected_bin"].mean() for xn in noised])
        modes = torch.tensor([m.ig_outputs(xn)["dte_ig_beta"].mean() * 2 / d for xn in noised])
    assert (bins.diff() > 0).all(), bins
    assert bins[0] < 1.0 and bins[-1] > 4.0, bins       # ≈ 0 on clean training data, late bins at t = T-1
    assert (modes.diff() > 0).all(), modes


def test_scorers_and_outputs():
    m = DTE(input_shape=(8,), hidden_sizes=(16, 16)).eval()
    out = m.score_outputs(torch.randn(5, 8))
    assert set(out) == {"features", "dte_ig_raw", "dte_ig_beta", "dte_c_probs", "dte_c_expected_bin"}
    assert out["dte_c_probs"].shape == (5, 7) and out["dte_ig_beta"].shape == (5,)
    names = [s.name for s in m.scorers()]
    assert names == ["dte_np", "dte_np_data", "dte_ig", "dte_ig_released", "dte_c", "knn", "knn_mean"]
    c = {s.name: s for s in m.scorers()}["dte_c"]
    torch.testing.assert_close(c.score(out), out["dte_c_expected_bin"])
    with pytest.raises(ValueError, match="input_shape"):
        DTE(input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="d = 2"):
        DTE(input_shape=(2,))
    with pytest.raises(ValueError, match="d=8"):
        m.score_outputs(torch.randn(2, 9))


def test_ig_and_c_use_the_released_class_defaults():
    """Every commit of the released DTEInverseGamma / DTECategorical: hidden (256, 512, 256), weight decay
    5e-4, T = 400 for both networks."""
    m = DTE(input_shape=(8,))
    (group,) = m.configure_optimizers().param_groups
    assert group["weight_decay"] == 5e-4 and group["lr"] == 1e-4
    for net, out in ((m.ig_net, 1), (m.c_net, 7)):
        assert [l.out_features for l in net.net if isinstance(l, torch.nn.Linear)] == [256, 512, 256, out]
    assert m.sigma2_ig.shape == (400,) and m.sigma2_c.shape == (400,)
    assert m.c_loss_kind == "released"


def _released_c_loss(probs, target):
    """nn.CrossEntropyLoss()(probs, target) as the released DTECategorical computes it (its MLP ends in a
    softmax), written out per sample: −log(exp(p_y) / Σ_b exp(p_b)), averaged."""
    total = 0.0
    for p, y in zip(probs.tolist(), target.tolist()):
        total += -math.log(math.exp(p[y]) / sum(math.exp(v) for v in p))
    return total / len(target)


@pytest.mark.parametrize("c_loss", ["released", "logits"])
def test_c_loss_is_the_released_double_softmax_or_the_logits_cross_entropy(c_loss):
    torch.manual_seed(0)
    m = DTE(input_shape=(6,), hidden_sizes=(16, 16), c_loss=c_loss).eval()
    x0 = torch.randn(32, 6)
    torch.manual_seed(5)
    loss = m.c_loss(x0)
    torch.manual_seed(5)  # the same t and ε, drawn in the same order as c_loss draws them
    t = torch.randint(0, m.T_c, (32,))
    logits = m.c_net(x0 + m.sigma2_c[t].sqrt().unsqueeze(1) * torch.randn_like(x0)).detach()
    target = torch.clamp((7 * t) // 400, 0, 6)
    if c_loss == "released":
        expected = _released_c_loss(torch.softmax(logits.double(), 1), target)
    else:
        expected = sum(-torch.log_softmax(logits.double(), 1)[i, y].item() for i, y in enumerate(target.tolist())) / 32
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_released_c_loss_is_bounded_below_by_its_double_softmax():
    """A property of the released loss (not of a usual cross-entropy): even a certain, correct prediction
    (one-hot probabilities) costs log(1 + (K − 1)/e) = 1.1636 nats for K = 7 bins, and a uniform one log K."""
    m = DTE(input_shape=(6,), hidden_sizes=(16, 16))
    big = torch.full((1, 7), -50.0)
    big[0, 3] = 50.0
    released = torch.nn.functional.cross_entropy(torch.softmax(big, 1), torch.tensor([3]))
    assert released.item() == pytest.approx(math.log(1 + 6 / math.e), rel=1e-6)
    assert torch.nn.functional.cross_entropy(big, torch.tensor([3])).item() < 1e-6  # the logits loss goes to 0
    uniform = torch.nn.functional.cross_entropy(torch.softmax(torch.zeros(1, 7), 1), torch.tensor([3]))
    assert uniform.item() == pytest.approx(math.log(7), rel=1e-6)
    with pytest.raises(ValueError, match="c_loss"):
        DTE(input_shape=(6,), c_loss="softmax")
    assert m.c_loss_kind == "released"
