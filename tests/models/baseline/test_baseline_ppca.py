import math

import pytest
import torch
from sklearn.decomposition import PCA

from genood.models.baseline import PPCA, PPCANetwork
from genood.scoring.base import check_scores


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster


def _ppca_data(n=1500, d=8, q=2, noise_var=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, q, generator=g) * 2
    mu = torch.randn(d, generator=g)
    return torch.randn(n, q, generator=g) @ w.T + mu + torch.randn(n, d, generator=g) * noise_var ** 0.5, noise_var


def test_log_prob_matches_dense_gaussian():
    net = PPCANetwork(num_dims=6, latent_dim=2)
    with torch.no_grad():
        net.loc.normal_(), net.cov_factor.normal_(), net.log_noise_var.fill_(math.log(0.5))
    x = torch.randn(7, 6)
    cov = net.cov_factor @ net.cov_factor.T + net.noise_var * torch.eye(6)
    dense = torch.distributions.MultivariateNormal(net.loc, cov).log_prob(x)
    torch.testing.assert_close(net.log_prob(x), dense, rtol=1e-5, atol=1e-5)


def test_gradient_descent_reaches_the_closed_form_ml_likelihood():
    x, noise_var = _ppca_data()
    d, q = x.shape[1], 2
    torch.manual_seed(0)
    model = PPCA(input_shape=(d,), latent_dim=q, lr=5e-2)
    opt = model.configure_optimizers()
    model.train()
    for _ in range(300):
        opt.zero_grad()
        loss = model.loss({"x": x})
        loss.backward()
        opt.step()
    assert bool(model.net.initialized)
    model.eval()
    with torch.no_grad():
        out = model.score_outputs(x)
    # sklearn's PCA.score_samples is the Tipping-Bishop ML PPCA log-likelihood (with n-1 variances)
    sk = PCA(n_components=q).fit(x.numpy()).score_samples(x.numpy())
    assert out["log_prob"].mean().item() == pytest.approx(float(sk.mean()), abs=0.01)
    torch.testing.assert_close(out["log_prob"].double(), torch.from_numpy(sk).double(), atol=0.05, rtol=0)
    assert model.net.noise_var.item() == pytest.approx(noise_var, rel=0.15)
    assert torch.equal(out["num_dims"], torch.full((x.shape[0],), float(d)))


def test_image_inputs_flatten_and_all_likelihood_scorers_run():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 1, 4, 4, generator=g)
    model = PPCA(input_shape=(1, 4, 4), latent_dim=3)
    model.train()
    model.loss({"x": x}).backward()
    model.eval()
    with torch.no_grad():
        out = model.score_outputs(x)
    assert out["log_prob"].shape == (40,)
    scorers = model.scorers()
    assert [s.name for s in scorers] == ["nll", "bpd", "typicality", "complexity"]
    for s in scorers:
        out.update(s.batch_outputs({"x": x}))
    for s in scorers:
        if s.needs_fit:
            s.fit(out)
        check_scores(s.name, s.score(out), 40)
    # complexity uses the model's bits/dim + 8 (discrete 8-bit likelihood of a continuous density)
    (c,) = [s for s in scorers if s.name == "complexity"]
    bpd = -out["log_prob"] / (16 * math.log(2))
    torch.testing.assert_close(c.score(out), bpd + 8 - out["complexity_bits"])


def test_ppca_bad_construction_and_inputs():
    with pytest.raises(ValueError, match="input_shape"):
        PPCA()
    with pytest.raises(ValueError, match="latent_dim"):
        PPCA(input_shape=(4,), latent_dim=5)
    with pytest.raises(ValueError, match="shape"):
        PPCA(input_shape=(1, 4, 4)).score_outputs(torch.rand(2, 1, 5, 5))
