"""The ImageFlow LightningModule: the training objective, ActNorm's initialisation, deterministic scoring,
the scorers it exposes and its errors."""

import math

import pytest
import torch

from genood.models.flow import ImageFlow

SMALL = dict(architecture="glow", levels=2, steps=2, hidden_channels=8, n_bins=17)


def _digits_like(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 17, (n, 1, 8, 8), generator=g).float() / 16


def _trained_once(**kw):
    torch.manual_seed(0)
    m = ImageFlow((1, 8, 8), **{**SMALL, **kw}).train()
    m.loss({"x": _digits_like(32, seed=5)})  # the first training batch initialises ActNorm
    return m.eval()


def test_training_loss_is_the_dequantized_negative_log_likelihood():
    m = _trained_once()
    m.train()
    x = _digits_like()
    torch.manual_seed(3)
    loss = m.loss({"x": x})
    torch.manual_seed(3)
    u = (torch.round(x * 16) + torch.rand_like(x)) / 17  # fresh uniform noise inside each of the 17 bins
    expected = -(m.net.log_prob(u) - 64 * math.log(17)).mean()
    torch.testing.assert_close(loss, expected)


def test_actnorm_is_initialised_on_the_first_training_batch():
    """Glow §3.1: after the data-dependent initialisation the first ActNorm's output has zero mean and unit
    variance per channel on that batch. Before it, scoring refuses to run (it would depend on the batch)."""
    torch.manual_seed(0)
    m = ImageFlow((1, 8, 8), **SMALL)
    with pytest.raises(RuntimeError, match="never initialised"):
        m.eval().score_outputs(_digits_like())
    assert not m.net.initialized
    m.train()
    x = _digits_like(64, seed=1)
    m.loss({"x": x})
    assert m.net.initialized
    fresh = ImageFlow((1, 8, 8), **SMALL)
    fresh.load_state_dict(m.state_dict())
    assert fresh.net.initialized      # the initialisation is part of the weights
    m.load_state_dict(ImageFlow((1, 8, 8), **SMALL).state_dict())
    assert not m.net.initialized      # and loading un-initialised weights undoes it
    m.loss({"x": x})
    # the data-side level's first step: squeeze, then its first layer in the data → latent direction is ActNorm
    level = m.net.flow.flows[-1]
    step = level[-2]                       # the GlowBlock nearest the data (normflows runs the list backwards)
    actnorm = step.flows[-1]
    torch.manual_seed(123)
    u = (torch.round(x * 16) + torch.rand_like(x)) / 17
    y, _ = m.net.flow.transform.inverse(u)
    h, _ = level[-1].inverse(y)            # squeeze
    out, _ = actnorm.inverse(h)
    # a fresh noise draw: moments close to, not exactly, the initialisation batch's
    assert out.mean(dim=(0, 2, 3)).abs().max() < 0.1
    assert (out.std(dim=(0, 2, 3)) - 1).abs().max() < 0.1


def test_background_flow_from_a_checkpoint_scores_each_sample_with_its_index(tmp_path):
    """Ren et al.'s background: the same flow trained with PerturbInputs, loaded from its checkpoint by the
    likelihood_ratio scorer. The scorer passes the samples' indices, so the background's dequantization noise
    is keyed like the main model's and the ratio does not depend on the batch (exact under DDP)."""
    import lightning as L
    from torch.utils.data import DataLoader

    from genood.data.base import IndexedDataset
    from genood.scoring import LikelihoodRatio
    from genood.scoring.ratio import PerturbInputs

    L.seed_everything(0, verbose=False)
    data = IndexedDataset(_digits_like(128, seed=2), torch.zeros(128, dtype=torch.long))
    background = ImageFlow((1, 8, 8), **SMALL)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[PerturbInputs(mu=0.2)])
    trainer.fit(background, DataLoader(data, batch_size=64))
    trainer.save_checkpoint(tmp_path / "bg.ckpt")
    background.eval()
    lr = LikelihoodRatio(background_ckpt=str(tmp_path / "bg.ckpt"), model_class="genood.models.flow.ImageFlow")
    x, index = _digits_like(8, seed=3), torch.arange(50, 58)
    with torch.inference_mode():
        expected = background.score_outputs(x, index=index)["log_prob"]
        got = lr.batch_outputs({"x": x, "index": index})["background_log_prob"]
        got_shuffled = lr.batch_outputs({"x": x.flip(0), "index": index.flip(0)})["background_log_prob"]
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got_shuffled, expected.flip(0))
    assert lr.background.net.initialized  # ActNorm's initialisation travels with the checkpoint


def test_score_is_the_same_alone_in_a_shuffled_batch_and_in_chunks():
    m = _trained_once(score_samples=3)
    x, index = _digits_like(10), torch.arange(100, 110)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full = m.score_outputs(x, index=index)["log_prob"]
        shuffled = m.score_outputs(x[perm], index=index[perm])["log_prob"]
        alone = torch.stack([m.score_outputs(x[i:i + 1], index=index[i:i + 1])["log_prob"][0] for i in range(4)])
        m.score_max_rows = 4
        chunked = m.score_outputs(x, index=index)["log_prob"]
    torch.testing.assert_close(shuffled, full[perm])
    torch.testing.assert_close(alone, full[:4], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(chunked, full, atol=1e-4, rtol=1e-5)


def test_scoring_noise_is_keyed_by_index_and_seed_and_the_centre_option_is_deterministic():
    m = _trained_once()
    x = _digits_like(6)
    with torch.inference_mode():
        a = m.score_outputs(x, index=torch.arange(6))["log_prob"]
        b = m.score_outputs(x, index=torch.arange(6) + 1000)["log_prob"]
        m.score_seed = 1
        c = m.score_outputs(x, index=torch.arange(6))["log_prob"]
        m.score_dequantization = "center"
        d1 = m.score_outputs(x, index=torch.arange(6))["log_prob"]
        d2 = m.score_outputs(x, index=torch.arange(6) + 1000)["log_prob"]
    assert (a - b).abs().min() > 0 and (a - c).abs().min() > 0
    torch.testing.assert_close(d1, d2)


def test_inputs_between_levels_are_rounded_to_the_nearest_level():
    m = _trained_once(score_dequantization="center")
    x = _digits_like(5)
    jitter = (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.9 / 16
    with torch.inference_mode():
        on_grid = m.score_outputs(x)["log_prob"]
        off_grid = m.score_outputs((x + jitter).clamp(0, 1))["log_prob"]
    torch.testing.assert_close(on_grid, off_grid)


def test_outputs_and_scorers():
    m = _trained_once()
    with torch.inference_mode():
        out = m.score_outputs(_digits_like(4), index=torch.arange(4))
    assert set(out) == {"log_prob", "num_dims"}
    assert out["log_prob"].shape == (4,) and torch.isfinite(out["log_prob"]).all()
    assert (out["num_dims"] == 64).all()
    assert [s.name for s in m.scorers()] == ["nll", "bpd", "typicality", "complexity"]
    assert m.scorers()[3].offset == 0.0  # log_prob already is the discrete likelihood PNG is compared with
    samples = m.sample(3)
    assert samples.shape == (3, 1, 8, 8) and torch.all((samples * 16 - torch.round(samples * 16)).abs() < 1e-5)


def test_bad_inputs_and_arguments_fail_clearly():
    m = _trained_once()
    with pytest.raises(ValueError, match="inputs of shape"):
        m.score_outputs(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"inputs in \[0, 1\]"):
        m.score_outputs(torch.rand(2, 1, 8, 8) * 255)
    with pytest.raises(ValueError, match="divisible by 8"):
        ImageFlow((1, 12, 12), architecture="glow", levels=3)
    with pytest.raises(ValueError, match="even width"):
        ImageFlow((1, 12, 12), architecture="realnvp", levels=3)
    with pytest.raises(ValueError, match="score_dequantization"):
        ImageFlow((1, 8, 8), score_dequantization="random")
    with pytest.raises(ValueError, match="architecture"):
        ImageFlow((1, 8, 8), architecture="maf")
    with pytest.raises(ValueError, match="input_shape"):
        ImageFlow()


def test_warmup_schedule_is_linear():
    m = ImageFlow((1, 8, 8), **SMALL, lr=1e-3, warmup_steps=4, optimizer="adamax")
    conf = m.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.Adamax)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


@pytest.mark.gpu
def test_training_step_and_scoring_on_cuda():
    m = _trained_once().cuda()
    m.train()
    x = _digits_like(16).cuda()
    loss = m.loss({"x": x})
    loss.backward()
    assert torch.isfinite(loss)
    m.eval()
    with torch.inference_mode():
        gpu = m.score_outputs(x, index=torch.arange(16, device="cuda"))["log_prob"].cpu()
    with torch.inference_mode():
        cpu = m.cpu().score_outputs(x.cpu(), index=torch.arange(16))["log_prob"]
    torch.testing.assert_close(gpu, cpu, atol=1e-2, rtol=1e-4)
