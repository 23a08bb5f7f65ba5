"""The tabular DDPM baseline (genood/models/dte/README.md): denoiser, reverse step vs diffusers, each reconstruction
variant against a step-by-step computation written as DTE's released ``ddpm.py`` does it, drop_last."""

import math

import pytest
import torch

from genood.models.counter_noise import counter_normal
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
    # equal up to float rounding of other batch sizes (the noise itself is identical); another index moves
    # the scores by far more than that
    torch.testing.assert_close(parts, whole[perm], rtol=1e-5, atol=1e-9)
    assert not torch.allclose(other, whole, rtol=1e-2)  # the noise really is keyed by the index


def _released_reconstruction(net, x, rec_t, T, noise, noised_start=False, ancestral=True):
    """DTE's released ``DDPM.reconstruct`` / ``p_sample`` (diffusion/ddpm.py) step by step, with its own schedule
    tensors (torch.linspace betas, cumprod, the padded ᾱ_{t-1}) and the noise z_t given by ``noise(t)``:

        p_mean = sqrt(1/α_t) · (x − β_t · ε_θ(x, t) / sqrt(1 − ᾱ_t))
        x ← p_mean                                  at t = 0, or without the noise term (first release)
        x ← p_mean + sqrt(posterior_variance_t) · z  otherwise (HEAD, 2aef173)

    ``noised_start``: the paper's description, x_{rec_t−1} = sqrt(ᾱ) x + sqrt(1 − ᾱ) z first."""
    betas = torch.linspace(0.0001, 0.01, T)
    alphas = 1.0 - betas
    abar = torch.cumprod(alphas, 0)
    abar_prev = torch.cat([torch.ones(1), abar[:-1]])
    posterior_variance = betas * (1.0 - abar_prev) / (1.0 - abar)
    if noised_start:
        t0 = rec_t - 1
        x = abar[t0].sqrt() * x + (1.0 - abar[t0]).sqrt() * noise(T)
    for i in reversed(range(rec_t)):
        t = torch.full((x.shape[0],), i, dtype=torch.long)
        p_mean = (1.0 / alphas[i]).sqrt() * (x - betas[i] * net(x, t) / (1.0 - abar[i]).sqrt())
        if i == 0 or not ancestral:
            x = p_mean
        else:
            x = p_mean + posterior_variance[i].sqrt() * noise(i)
    return x


@pytest.mark.parametrize("variant, noised_start, ancestral",
                         [("released", False, True), ("mean_only", False, False), ("paper", True, True)])
def test_reconstruction_variants_match_the_released_step_by_step_computation(variant, noised_start, ancestral):
    torch.manual_seed(1)
    m = TabularDDPM(input_shape=(5,), recon_t=20, recon_variant=variant, recon_seed=3).eval()
    x, index = torch.randn(8, 5), torch.arange(40, 48)

    def noise(stream):  # the model's per-sample noise for this step (counter-based, keyed by index)
        return counter_normal(3, index, torch.zeros_like(index), stream, (5,))

    with torch.no_grad():
        ours = m.reconstruct(x, index)
        ref = _released_reconstruction(m.net, x, 20, m.T, noise, noised_start, ancestral)
        scores = m.score_outputs(x, index)["ddpm_recon_mse"]
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(scores, (x - ref).pow(2).mean(1), rtol=1e-4, atol=1e-6)
    assert [s.name for s in m.scorers()] == ["ddpm_recon"]


def test_variants_differ_and_bad_options_are_clear_errors():
    torch.manual_seed(0)
    x = torch.randn(8, 5)
    scores = {}
    for variant in ("released", "mean_only", "paper"):
        torch.manual_seed(1)  # the same untrained weights for every variant
        m = TabularDDPM(input_shape=(5,), recon_t=20, recon_variant=variant).eval()
        with torch.no_grad():
            s1, s2 = m.score_outputs(x)["ddpm_recon_mse"], m.score_outputs(x)["ddpm_recon_mse"]
        assert s1.shape == (8,) and torch.isfinite(s1).all() and (s1 >= 0).all()
        torch.testing.assert_close(s1, s2)  # recon_seed makes scoring reproducible without an index
        scores[variant] = s1
    assert TabularDDPM(input_shape=(5,)).recon_variant == "released"  # the default is DTE's code at HEAD
    assert not torch.allclose(scores["released"], scores["mean_only"])
    assert not torch.allclose(scores["released"], scores["paper"])
    with pytest.raises(ValueError, match="recon_variant"):
        TabularDDPM(input_shape=(5,), recon_variant="half")
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
    with pytest.raises(ValueError, match="drop_last"):  # BatchNorm cannot train on one sample: a clear error
        m.loss({"x": X[:1]})


def test_drop_last_removes_the_partial_training_batch():
    from genood.data.tabular import TabularDataModule

    dm = TabularDataModule("wine", batch_size=59, drop_last=True)  # 60 training normals: 59 + a batch of one
    dm.setup()
    assert len(dm.train_set) == 60
    assert [len(b["x"]) for b in dm.train_dataloader()] == [59]
    keep = TabularDataModule("wine", batch_size=59)
    keep.setup()
    assert [len(b["x"]) for b in keep.train_dataloader()] == [59, 1]
    too_small = TabularDataModule("wine", batch_size=64, drop_last=True)  # one partial batch: kept, not dropped
    too_small.setup()
    assert [len(b["x"]) for b in too_small.train_dataloader()] == [60]


def test_released_early_stop_rule():
    flat = [1.0] * 51
    assert not should_stop_early(flat)                          # not before epoch 51
    assert not should_stop_early(flat + [0.9])
    assert should_stop_early(flat + [1.1])                      # above the loss 39 epochs earlier
    rising = [1.0 - 0.01 * i for i in range(60)]
    assert not should_stop_early(rising)
