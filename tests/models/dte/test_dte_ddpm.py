"""The tabular DDPM baseline (methods.md §5.6): denoiser, reverse step vs diffusers, reconstruction score."""

import pytest
import torch

from genood.models.dte import TabularDDPM, TabularResNetDenoiser
from genood.models.dte.ddpm_lightning_model import should_stop_early


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster


def test_denoiser_shapes_and_time_dependence():
    net = TabularResNetDenoiser(7).eval()
    x = torch.randn(5, 7)
    a, b = net(x, torch.full((5,), 3)), net(x, torch.full((5,), 700))
    assert a.shape == (5, 7) and not torch.allclose(a, b)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == 4   # 3 blocks + head
    assert net.first_layer.out_features == 128 and net.blocks[0].body[1].out_features == 256


def test_posterior_mean_inverts_a_perfect_noise_prediction_and_matches_diffusers():
    m = TabularDDPM(input_shape=(6,)).eval()
    x0, eps = torch.randn(4, 6), torch.randn(4, 6)
    x_0noised = m.scheduler.add_noise(x0, eps, torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(m.posterior_mean(eps, 0, x_0noised), x0, rtol=1e-4, atol=1e-4)  # DDPM Eq. 11 at t=0
    for t in (0, 1, 100, 999):
        xt, e = torch.randn(4, 6), torch.randn(4, 6)
        g = torch.Generator().manual_seed(7)
        lib = m.scheduler.step(e, t, xt, generator=g).prev_sample
        z = torch.randn(4, 6, generator=torch.Generator().manual_seed(7))
        var = 0.0 if t == 0 else float(m.scheduler._get_variance(t))
        assert m.posterior_std(t) == pytest.approx(var ** 0.5, rel=1e-5)
        torch.testing.assert_close(lib, m.posterior_mean(e, t, xt) + m.posterior_std(t) * z, rtol=1e-4, atol=1e-5)


def test_index_keyed_noise_makes_scores_independent_of_the_batch():
    """What makes ddpm_recon exact under DDP: a sample's score depends on its index, not its batch-mates."""
    torch.manual_seed(0)
    m = TabularDDPM(input_shape=(5,), recon_t=15).eval()
    x, index = torch.randn(10, 5), torch.arange(100, 110)
    perm = torch.randperm(10)
    with torch.no_grad():
        whole = m.score_outputs(x, index)["ddpm_recon_mse"]
        parts = torch.cat([m.score_outputs(x[perm[:3]], index[perm[:3]])["ddpm_recon_mse"],
                           m.score_outputs(x[perm[3:]], index[perm[3:]])["ddpm_recon_mse"]])
        other = m.score_outputs(x, index + 1)["ddpm_recon_mse"]
    torch.testing.assert_close(parts, whole[perm], rtol=0, atol=0)
    assert not torch.allclose(other, whole)  # the noise really is keyed by the index


def test_reconstruction_options():
    torch.manual_seed(0)
    x = torch.randn(8, 5)
    scores = {}
    for start in ("noised", "clean"):
        for sampling in ("ancestral", "mean"):
            torch.manual_seed(1)                      # the same untrained weights for every option
            m = TabularDDPM(input_shape=(5,), recon_t=20, recon_start=start, recon_sampling=sampling).eval()
            with torch.no_grad():
                s1, s2 = m.score_outputs(x)["ddpm_recon_mse"], m.score_outputs(x)["ddpm_recon_mse"]
            assert s1.shape == (8,) and torch.isfinite(s1).all() and (s1 >= 0).all()
            torch.testing.assert_close(s1, s2)       # recon_seed makes scoring reproducible
            scores[start, sampling] = s1
            assert [s.name for s in m.scorers()] == ["ddpm_recon"]
            torch.testing.assert_close(m.scorers()[0].score({"ddpm_recon_mse": s1}), s1)
    assert not torch.allclose(scores["noised", "mean"], scores["clean", "mean"])
    assert not torch.allclose(scores["clean", "ancestral"], scores["clean", "mean"])
    with pytest.raises(ValueError, match="recon_start"):
        TabularDDPM(input_shape=(5,), recon_start="half")
    with pytest.raises(ValueError, match="recon_t"):
        TabularDDPM(input_shape=(5,), recon_t=2000)


def test_training_lowers_the_noise_prediction_loss():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 6, generator=g)[torch.arange(256) % 2] * 2 + 0.1 * torch.randn(256, 6, generator=g)
    m = TabularDDPM(input_shape=(6,), lr=1e-3)
    opt = m.configure_optimizers()

    def eval_loss():
        m.eval()
        torch.manual_seed(123)
        with torch.no_grad():
            return sum(m.loss({"x": X}).item() for _ in range(5)) / 5

    before = eval_loss()
    m.train()
    for _ in range(300):
        opt.zero_grad()
        m.loss({"x": X[torch.randint(0, 256, (64,))]}).backward()
        opt.step()
    after = eval_loss()
    assert after < 0.6 * before, (before, after)
    m.train()
    assert m.loss({"x": X[:1]}).item() == 0.0      # a batch of one (BatchNorm) is skipped


def test_released_early_stop_rule():
    flat = [1.0] * 51
    assert not should_stop_early(flat)                          # not before epoch 51
    assert not should_stop_early(flat + [0.9])
    assert should_stop_early(flat + [1.1])                      # above the loss 39 epochs earlier
    rising = [1.0 - 0.01 * i for i in range(60)]
    assert not should_stop_early(rising)
