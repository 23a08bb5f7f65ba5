"""DTE-IG / DTE-C training objectives and scores (methods.md §5.3–5.5, §5.9a)."""

import pytest
import torch

from genood.models.dte import DTE, DTEMLP
from genood.models.dte.posterior import ig_nll
from genood.models.dte.schedule import time_bins


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster


def test_mlp_architecture_matches_the_paper():
    net = DTEMLP(30, 7)
    kinds = [type(m).__name__ for m in net.net]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert [m.out_features for m in net.net if isinstance(m, torch.nn.Linear)] == [256, 512, 256, 7]
    assert all(m.p == 0.5 for m in net.net if isinstance(m, torch.nn.Dropout))


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
    assert names == ["dte_np", "dte_np_data", "dte_ig", "dte_ig_released", "dte_c", "knn"]
    c = {s.name: s for s in m.scorers()}["dte_c"]
    torch.testing.assert_close(c.score(out), out["dte_c_expected_bin"])
    with pytest.raises(ValueError, match="input_shape"):
        DTE(input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="d = 2"):
        DTE(input_shape=(2,))
    with pytest.raises(ValueError, match="d=8"):
        m.score_outputs(torch.randn(2, 9))


def test_separate_weight_decay_and_hidden_sizes_for_ig():
    m = DTE(input_shape=(8,), ig_hidden_sizes=(128, 128), ig_weight_decay=0.0, T_ig=300)
    groups = m.configure_optimizers().param_groups
    assert [g["weight_decay"] for g in groups] == [0.0, 5e-4]
    assert [l.out_features for l in m.ig_net.net if isinstance(l, torch.nn.Linear)] == [128, 128, 1]
    assert m.sigma2_ig.shape == (300,) and m.sigma2_c.shape == (400,)
