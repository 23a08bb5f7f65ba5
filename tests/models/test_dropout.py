"""genood's Dropout against torch's nn.Dropout: the same random function (mask ~ Bernoulli(1 − p), kept
elements scaled by 1/(1 − p), identity in eval), checked on the statistics of many draws."""

import pytest
import torch

from genood.models.dropout import Dropout


@pytest.mark.parametrize("p", [0.1, 0.4, 0.5])
def test_kept_fraction_and_scale_match_nn_dropout(p):
    torch.manual_seed(0)
    x = torch.rand(400, 500) + 0.5  # no zeros, so a zero in the output is a dropped element
    ours, ref = Dropout(p).train(), torch.nn.Dropout(p).train()
    y, y_ref = ours(x), ref(x)
    kept, kept_ref = y != 0, y_ref != 0
    n = x.numel()
    tol = 5 * (p * (1 - p) / n) ** 0.5  # 5 binomial standard deviations of the kept fraction
    assert abs(kept.float().mean().item() - (1 - p)) < tol
    assert abs(kept.float().mean().item() - kept_ref.float().mean().item()) < 2 * tol
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    torch.testing.assert_close(y_ref[kept_ref], x[kept_ref] / (1 - p))
    # the masks of neighbouring elements are independent: the kept fraction of pairs is (1 - p)^2
    both = (kept[:, 1:] & kept[:, :-1]).float().mean().item()
    assert abs(both - (1 - p) ** 2) < 5 * tol


def test_gradient_is_the_mask_scaled_and_eval_is_the_identity():
    torch.manual_seed(1)
    x = torch.randn(64, 256, requires_grad=True)
    layer = Dropout(0.5).train()
    y = layer(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y.detach() != 0).float() * 2.0)
    layer.eval()
    assert layer(x) is x
    assert Dropout(0.0).train()(x) is x
    assert layer.state_dict() == {} and "p=0.5" in repr(layer)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_bad_probability_is_refused(p):
    with pytest.raises(ValueError, match=r"dropout probability must lie in \[0, 1\)"):
        Dropout(p)
