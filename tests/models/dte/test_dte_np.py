"""DTE-NP: the argmax of the InvGamma posterior on the σ² grid (genood/models/dte/README.md, "DTE-NP")."""

import numpy as np
import pytest
import torch
from scipy.stats import invgamma, spearmanr

from genood.models.dte.posterior import invgamma_log_posterior
from genood.models.dte.schedule import sigma2_grid
from genood.models.dte.scorers import DTENonParametricScorer


def _mean_k_sq(q, bank, k=5):
    d2 = ((q[:, None, :].double() - bank[None, :, :].double()) ** 2).sum(-1)
    return d2.sort(dim=1).values[:, :k].mean(1).numpy()


def _data(d=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    bank = torch.randn(300, d, generator=g)
    scales = torch.rand(600, 1, generator=g) * 2.0        # from inside the data to far outside
    q = torch.randn(600, d, generator=g) * scales
    return bank, q


def test_sigma2_grid_is_the_ddpm_linear_schedule():
    s300, s400 = sigma2_grid(300), sigma2_grid(400)
    betas = np.linspace(1e-4, 1e-2, 300)
    np.testing.assert_allclose(s300.numpy(), 1 - np.cumprod(1 - betas), rtol=1e-3)  # float32, as released
    assert abs(s300[-1].item() - 0.781) < 1e-3 and abs(s400[-1].item() - 0.868) < 1e-3


def test_dte_np_is_the_invgamma_argmax_and_ranks_as_mean_knn_distance():
    bank, q = _data()
    d = bank.shape[1]
    s = DTENonParametricScorer(T=300, K=5)
    s.fit({"features": bank})
    t_hat = s.score({"features": q}).numpy()
    m = _mean_k_sq(q, bank)
    # reference: scipy's InvGamma(a = d/2 - 1, scale = beta) log-density on the grid, as the released code
    grid = sigma2_grid(300).double().numpy()
    ref = np.array([np.argmax(invgamma.logpdf(grid, a=d / 2 - 1, scale=mi / 2)) for mi in m])
    np.testing.assert_array_equal(t_hat, ref)
    # monotone in the mean 5-NN squared distance: ranks agree up to ties of the grid
    order = np.argsort(m, kind="stable")
    assert (np.diff(t_hat[order]) >= 0).all()
    sat = t_hat == 299
    assert sat.any() and (~sat).sum() > 100
    assert m[sat].min() / d > 0.75 * grid[-1]               # ties at T-1 only where the grid saturates
    rho = spearmanr(t_hat[~sat], m[~sat]).statistic
    assert rho > 0.999
    # the posterior is normalised over t
    lp = s.log_posterior({"features": q[:5]})
    torch.testing.assert_close(lp.exp().sum(1), torch.ones(5), rtol=1e-5, atol=1e-5)


def test_data_grid_removes_saturation_of_in_distribution_points():
    bank, q = _data(d=40, seed=1)
    paper = DTENonParametricScorer(grid="paper")
    data = DTENonParametricScorer(name="dte_np_data", grid="data")
    paper.fit({"features": bank})
    data.fit({"features": bank})
    inlier = torch.randn(200, 40, generator=torch.Generator().manual_seed(5))  # same law as the bank
    tp, td = paper.score({"features": inlier}), data.score({"features": inlier})
    assert (tp == 299).float().mean() > 0.9              # standard-normal data: mean 5-NN dist^2/d ~ 1.5 > 0.78
    assert (td == 299).sum() == 0 and td.unique().numel() > 20
    assert data.sigma2[-1] > paper.sigma2[-1]
    m = _mean_k_sq(inlier, bank)
    assert spearmanr(td.numpy(), m).statistic > 0.99


def test_time_recovery_in_high_dimension():
    d, T = 2000, 300   # ‖x - x_0‖²/d has relative sd sqrt(2/d) = 3%
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(100, d, generator=g)
    s = DTENonParametricScorer(T=T, K=1)          # one clean point: the exact single-x_0 posterior
    s.fit({"features": bank})
    grid = sigma2_grid(T)
    ts = torch.tensor([20, 60, 120, 180, 240, 290])
    x0 = bank[torch.arange(len(ts))]
    x = x0 + grid[ts].sqrt()[:, None] * torch.randn(len(ts), d, generator=g)
    t_hat = s.score({"features": x})
    rel = (grid[t_hat.long()] / grid[ts] - 1).abs()     # InvGamma mode ‖x - x_0‖²/d ≈ σ_t²
    assert (rel < 0.12).all(), (ts, t_hat)
    assert ((t_hat - ts.float()).abs() <= 15).all(), (ts, t_hat)


def test_log_posterior_handles_zero_beta_and_small_d():
    lp = invgamma_log_posterior(torch.tensor([0.0, 1.0]), 10, sigma2_grid(50))
    assert torch.isfinite(lp).all() and lp[0].argmax() == 0
    with pytest.raises(ValueError, match="d >= 3"):
        DTENonParametricScorer().fit({"features": torch.randn(20, 2)})
    with pytest.raises(ValueError, match="grid"):
        DTENonParametricScorer(grid="wide")
