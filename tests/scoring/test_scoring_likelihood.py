import math

import pytest
import torch

from genood.scoring import BitsPerDim, NegLogLikelihood, likelihood_scorers
from genood.scoring.base import check_scores


def test_nll_is_negated_log_prob():
    lp = torch.tensor([-1.0, -10.0, 3.5])
    s = NegLogLikelihood().score({"log_prob": lp})
    assert torch.equal(s, torch.tensor([1.0, 10.0, -3.5]))
    # the less likely sample is the more OOD one
    assert s.argmax() == 1


def test_bpd_math_from_outputs_and_constructor():
    lp = torch.tensor([-100.0, -200.0])
    d = 50
    expected = torch.tensor([100.0, 200.0]) / (d * math.log(2))
    s_out = BitsPerDim().score({"log_prob": lp, "num_dims": torch.full((2,), float(d))})
    s_ctor = BitsPerDim(num_dims=d).score({"log_prob": lp})
    torch.testing.assert_close(s_out, expected)
    torch.testing.assert_close(s_ctor, expected)
    # scalar num_dims works too, and the ranking equals nll's
    s_scalar = BitsPerDim().score({"log_prob": lp, "num_dims": torch.tensor(d)})
    torch.testing.assert_close(s_scalar, expected)
    assert torch.equal(s_out.argsort(), NegLogLikelihood().score({"log_prob": lp}).argsort())


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="log_prob"):
        NegLogLikelihood().score({"elbo": torch.zeros(3)})
    with pytest.raises(ValueError, match="1-D"):
        NegLogLikelihood().score({"log_prob": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match="num_dims"):
        BitsPerDim().score({"log_prob": torch.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        BitsPerDim().score({"log_prob": torch.zeros(3), "num_dims": torch.ones(4)})


def test_likelihood_scorers_sets():
    names = [s.name for s in likelihood_scorers(input_shape=(1, 8, 8))]
    assert names == ["nll", "bpd", "typicality", "complexity"]
    # complexity does not apply to vectors; a background adds the ratio
    names = [s.name for s in likelihood_scorers("bg.ckpt", input_shape=(30,))]
    assert names == ["nll", "bpd", "typicality", "likelihood_ratio"]
    for s in likelihood_scorers(input_shape=(3, 4, 4)):
        assert s.applies_to({"log_prob", "num_dims"})
        assert not s.applies_to({"elbo"})
    out = {"log_prob": -torch.rand(5) * 10, "num_dims": torch.full((5,), 16.0)}
    for s in likelihood_scorers(input_shape=(16,)):
        if s.needs_fit:
            s.fit(out)
        check_scores(s.name, s.score(out), 5)
