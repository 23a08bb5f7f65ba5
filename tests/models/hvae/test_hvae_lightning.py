"""The HVAE LightningModule: the training recipe (warm-up, free nats), score outputs, scorers, configs."""

from pathlib import Path

import pytest
import torch
import yaml

from genood.models.hvae import HVAE
from genood.models.hvae.lightning_model import free_nats_schedule, kl_warmup

ROOT = Path(__file__).resolve().parents[3]
STAGES = [{"channels": 8, "blocks": 1, "stride": 2, "latent": "conv", "latent_features": 2},
          {"channels": 8, "blocks": 1, "stride": 2, "latent": "dense", "latent_features": 6},
          {"channels": 8, "blocks": 1, "stride": 1, "latent": "dense", "latent_features": 4}]


def _model(**kw):
    torch.manual_seed(0)
    return HVAE((1, 8, 8), stages=STAGES, **kw)


def _binary(n=6, seed=0):
    return torch.bernoulli(torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)))


def test_warmup_and_free_nats_schedules_follow_the_reference():
    assert [kl_warmup(e, 4) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert kl_warmup(0, 0) == 1.0
    vals = [free_nats_schedule(e, 2.0, 2, 3) for e in range(7)]
    assert vals == [2.0, 2.0, 2.0, 1.0, 0.0, 0.0, 0.0]  # np.linspace(2, 0, 3) after 2 constant epochs
    # the reference FreeNatsCooldown with both durations 0 keeps its start value for ever
    assert [free_nats_schedule(e, 2.0, 0, 0) for e in (0, 1, 500)] == [2.0, 2.0, 2.0]
    assert [free_nats_schedule(e, 2.0, 3, 0) for e in (2, 3, 9)] == [2.0, 0.0, 0.0]


def _reference_free_nats_kl(kl_layers, lam):
    """The reference loss term (oodd/losses.py: FreeNats(λ, shared_dims=1), then a sum per sample), written
    as an explicit loop: every element of a [B, C, ...] KL tensor is floored at λ / C, C = its dim 1."""
    totals = torch.zeros(kl_layers[0].shape[0], dtype=torch.float64)
    for kl in kl_layers:
        per_element = lam / kl.shape[1]
        for b in range(kl.shape[0]):
            for v in kl[b].flatten().tolist():
                totals[b] += max(v, per_element)
    return totals


def test_training_loss_floors_kl_per_channel_as_the_reference():
    m = _model(warmup_epochs=4, free_nats=3.0, free_nats_constant_epochs=5, free_nats_anneal_epochs=5).train()
    assert m.net.latent_shapes[0] == (2, 4, 4)  # a conv latent: the floor is λ / C, not λ / (C·H·W)
    x = _binary()
    torch.manual_seed(1)
    loss = m.loss({"x": x})
    torch.manual_seed(1)
    fp = m.net(x)
    beta, lam = 0.25, 3.0
    kl = _reference_free_nats_kl([k.detach().double() for k in fp.kl], lam)
    torch.testing.assert_close(loss.double(), (-fp.log_px.detach().double() + beta * kl).mean(), rtol=1e-5, atol=1e-4)
    # with every KL element at 0 the floored total of z1 is λ·H·W = 48 nats (λ = 3 for each dense layer)
    zeros = [torch.zeros_like(k) for k in fp.kl]
    assert _reference_free_nats_kl(zeros, lam).tolist() == [3.0 * 16 + 3.0 + 3.0] * len(x)
    m.eval()  # validation / evaluation: the plain negative ELBO
    torch.manual_seed(1)
    loss_eval = m.loss({"x": x})
    torch.manual_seed(1)
    torch.testing.assert_close(loss_eval, -m.net(x).bound().mean())


def test_free_nats_floor_binds_on_a_conv_latent():
    """A floor the loss can feel: with a huge λ every KL element sits below λ / C, so the KL part of the
    training loss is exactly β · λ · (H·W for conv, 1 for dense) per layer and carries no gradient."""
    m = _model(warmup_epochs=0, free_nats=1e4, free_nats_constant_epochs=5, free_nats_anneal_epochs=5).train()
    x = _binary()
    torch.manual_seed(1)
    loss = m.loss({"x": x})
    torch.manual_seed(1)
    fp = m.net(x)
    torch.testing.assert_close(loss, (-fp.log_px).mean() + 1e4 * (16 + 1 + 1))


def test_score_outputs_and_scorers():
    m = _model(skip_k=[1, 3], score_samples=4).eval()
    x = _binary(5)
    with torch.inference_mode():
        out = m.score_outputs(x, index=torch.arange(5) + 10)
        via_test_step = m.test_step({"x": x, "index": torch.arange(5) + 10, "y": torch.zeros(5)}, 0)
        again = m.score_outputs(x, index=torch.arange(5) + 10)
    assert set(out) == {"elbo", "elbo_gt1", "elbo_gt3", "log_prob", "num_dims"}
    assert all(v.shape == (5,) for v in out.values())
    assert torch.equal(out["log_prob"], out["elbo"]) and (out["num_dims"] == 64).all()
    for k in out:
        torch.testing.assert_close(out[k], via_test_step[k])
        torch.testing.assert_close(out[k], again[k], rtol=0, atol=0)  # deterministic scoring
    scores = {s.name: s.score(out) for s in m.scorers()}
    assert list(scores) == ["neg_elbo", "neg_elbo_gt1", "neg_elbo_gt3", "llr_gt1", "llr_gt3"]
    torch.testing.assert_close(scores["neg_elbo"], -out["elbo"])
    torch.testing.assert_close(scores["neg_elbo_gt3"], -out["elbo_gt3"])
    torch.testing.assert_close(scores["llr_gt1"], out["elbo"] - out["elbo_gt1"])


def test_invalid_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="input_shape"):
        HVAE(None, stages=STAGES)
    with pytest.raises(ValueError, match="skip_k"):
        _model(skip_k=[0])
    with pytest.raises(ValueError, match="skip_k"):
        _model(skip_k=[4])
    with pytest.raises(ValueError, match="score_samples"):
        _model(score_samples=0)
    with pytest.raises(ValueError, match="binary"):
        _model().score_outputs(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _model(likelihood="discretized_logistic_mixture").score_outputs(torch.rand(2, 1, 8, 8) + 1)
    with pytest.raises(ValueError, match="shape"):
        _model().score_outputs(torch.zeros(2, 1, 9, 9))


@pytest.mark.parametrize("name, shape, latents", [
    ("digits", (1, 8, 8), [(4, 4, 4), (16,), (8,)]),
    ("fashionmnist", (1, 28, 28), [(8, 14, 14), (16,), (8,)]),
    ("cifar10", (3, 32, 32), [(128, 16, 16), (64, 8, 8), (32,)]),
])
def test_configs_build_the_papers_latent_shapes(name, shape, latents):
    cfg = yaml.safe_load((ROOT / "configs" / "hvae" / f"{name}.yaml").read_text())
    assert cfg["model"]["class_path"] == "genood.models.hvae.HVAE"
    model = HVAE(shape, **cfg["model"]["init_args"])
    assert model.net.latent_shapes == latents
    assert model.skip_k == (1, 2) and model.score_samples == 1
    if name != "digits":  # the paper's recipe
        args = cfg["model"]["init_args"]
        assert (args["lr"], args["warmup_epochs"], args["free_nats"]) == (3e-4, 200, 2.0)
        assert cfg["data"]["init_args"]["batch_size"] == 128


def test_drop_same_shape_skips_reproduces_the_released_residual_block():
    """hvae-oodd's ResBlockConv2d merges the skip input with ``y + aux_op(act(aux)) if aux_op is not None else y``:
    a skip input that already has conv1's output shape (no aux_op built) is ignored; a resampled one is used."""
    from genood.models.hvae.layers import ResBlock

    torch.manual_seed(0)
    x = torch.randn(3, 8, 4, 4)
    for drop in (False, True):
        torch.manual_seed(1)
        same = ResBlock((8, 4, 4), 8, 3, aux_shape=(8, 4, 4), drop_same_shape_skips=drop)
        a1, a2 = torch.randn(3, 8, 4, 4), torch.randn(3, 8, 4, 4)
        assert torch.equal(same(x, a1), same(x, a2)) == drop  # released: the same-shape skip has no effect
        torch.manual_seed(1)
        resampled = ResBlock((8, 4, 4), 8, 3, aux_shape=(8, 8, 8), drop_same_shape_skips=drop)
        b1, b2 = torch.randn(3, 8, 8, 8), torch.randn(3, 8, 8, 8)
        assert not torch.equal(resampled(x, b1), resampled(x, b2))  # a resampled skip is used either way
    m = _model(drop_same_shape_skips=True)
    assert not m.net.q_stacks[1].blocks[0].uses_aux  # stage 2 reads h1 of its own shape: dropped as released
    assert _model().net.q_stacks[1].blocks[0].uses_aux


def test_free_nats_per_layer_list():
    """The reference loss also takes one budget per layer (oodd/losses.py: ``free_nats`` float or list)."""
    m = _model(warmup_epochs=0, free_nats=[1e4, 0.0, 2e4], free_nats_constant_epochs=5,
               free_nats_anneal_epochs=5).train()
    x = _binary()
    torch.manual_seed(1)
    loss = m.loss({"x": x})
    torch.manual_seed(1)
    fp = m.net(x)
    expected = -fp.log_px + 1e4 * 16 + fp.kl[1].flatten(1).sum(1) + 2e4  # z2 unfloored
    torch.testing.assert_close(loss, expected.mean())
    with pytest.raises(ValueError, match="one per layer"):
        _model(free_nats=[1.0, 2.0])
