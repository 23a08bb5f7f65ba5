"""Score-norm features: all levels in one stacked call equal a per-level loop, for every network; chunking
does not change them; bad inputs and settings fail clearly."""

from __future__ import annotations

import pytest
import torch

from genood.models.msma import MSMA

pytestmark = pytest.mark.usefixtures("one_thread")

NETS = {
    "unet": ((1, 8, 8), dict(network="unet", channels=(8, 16), layers_per_block=1, mid_attention=False)),
    "unet_attention_logsigma": ((3, 8, 8), dict(network="unet", channels=(8, 16), layers_per_block=1,
                                                attention_blocks=[1], level_embedding="log_sigma")),
    "refinenet": ((1, 8, 8), dict(network="refinenet", channels=[4])),
    "mlp": ((13,), dict(network="mlp", channels=(32, 32))),
    "mlp_sigma_scaled": ((13,), dict(network="mlp", channels=(32,), output_scale="sigma")),
}


def _trained_a_little(shape, kw, steps=3):
    """Perturb the initial weights (zero-initialised level embeddings would hide level mix-ups)."""
    torch.manual_seed(0)
    model = MSMA(input_shape=shape, num_levels=4, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("name", sorted(NETS))
def test_stacked_levels_equal_per_level_loop(name):
    shape, kw = NETS[name]
    model = _trained_a_little(shape, kw)
    x = torch.rand(6, *shape)
    with torch.inference_mode():
        batched = model.score_outputs(x)["score_norms"]
        loop = torch.stack([(model.sigmas[i] * model.score(x, torch.full((6,), i))).flatten(1).norm(dim=1)
                            for i in range(model.num_levels)], dim=1)
        model.score_max_rows = 5  # 24 stacked rows in chunks of 5
        chunked = model.score_outputs(x)["score_norms"]
    assert batched.shape == (6, 4)
    torch.testing.assert_close(batched, loop, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked, batched, rtol=1e-5, atol=1e-6)
    assert (batched[:, :-1] - batched[:, 1:]).abs().max() > 1e-4  # the levels differ: no level mix-up hidden


def test_one_network_call_per_batch(monkeypatch):
    shape, kw = NETS["unet"]
    model = _trained_a_little(shape, kw)
    calls = []
    forward = model.net.forward
    monkeypatch.setattr(model.net, "forward", lambda x, level: calls.append(x.shape[0]) or forward(x, level))
    with torch.inference_mode():
        model.score_outputs(torch.rand(5, *shape))
    assert calls == [5 * 4]


def test_sample_scores_do_not_depend_on_the_batch():
    shape, kw = NETS["unet"]
    model = _trained_a_little(shape, kw)
    x = torch.rand(9, *shape)
    with torch.inference_mode():
        whole = model.score_outputs(x)["score_norms"]
        parts = torch.cat([model.score_outputs(x[:4])["score_norms"], model.score_outputs(x[4:])["score_norms"]])
    torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-6)


def test_clear_errors():
    with pytest.raises(ValueError, match="use network: mlp"):
        MSMA(input_shape=(13,), network="unet")
    with pytest.raises(ValueError, match="divisible by 4"):
        MSMA(input_shape=(1, 6, 6), channels=(8, 8, 8))
    with pytest.raises(ValueError, match="norm_levels"):
        MSMA(input_shape=(13,), norm_levels=[0, 11])
    with pytest.raises(ValueError, match="flow optimizer"):
        MSMA(input_shape=(13,), flow_optimizer="sgd").scorers()[1].fit({"score_norms": torch.rand(50, 10)})
    model = MSMA(input_shape=(13,), channels=(8,))
    with pytest.raises(ValueError, match=r"built for inputs of shape \(13,\)"):
        model.score_outputs(torch.rand(2, 12))
