import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from genood.scoring import InputComplexity, png_bits_per_dim
from genood.scoring.complexity import to_uint8_images


def test_constant_image_compresses_far_better_than_noise():
    g = torch.Generator().manual_seed(0)
    const = torch.full((4, 3, 32, 32), 0.5)
    noise = torch.rand(4, 3, 32, 32, generator=g)
    l_const, l_noise = png_bits_per_dim(const), png_bits_per_dim(noise)
    assert l_const.shape == (4,)
    assert (l_const < 0.5).all()          # a few hundred bits for 3072 dims
    assert (l_noise > 7.5).all()          # uniform 8-bit noise is incompressible: ~8 bits/dim
    assert (l_noise > 10 * l_const).all()


def test_uint8_conversion_rounds_and_layouts():
    x = torch.tensor([0.0, 1 / 255, 0.5, 1.0]).reshape(1, 1, 2, 2)
    u8 = to_uint8_images(x)
    assert u8.shape == (1, 2, 2) and u8.dtype == np.uint8
    assert u8.reshape(-1).tolist() == [0, 1, 128, 255]
    assert to_uint8_images(torch.rand(2, 3, 5, 6)).shape == (2, 5, 6, 3)
    # data in [-1, 1] with the right data_range maps identically
    assert (to_uint8_images(x * 2 - 1, data_range=(-1, 1)) == u8).all()


def test_score_by_hand_for_one_image():
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(1, 1, 8, 8, generator=g) * 4).round() / 4   # a few grey levels
    d = 64
    log_prob = torch.tensor([-150.0])
    offset = 8.0
    scorer = InputComplexity(log_prob_offset_bits_per_dim=offset)
    extra = scorer.batch_outputs({"x": x})
    s = scorer.score({"log_prob": log_prob, "num_dims": torch.tensor([float(d)]), **extra})

    # by hand: PNG the uint8 image with Pillow, L = 8 * bytes / D; ℓ = -log2 p / D + offset
    img = Image.fromarray((x[0, 0].numpy() * 255).round().astype(np.uint8), mode="L")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=9)
    L = 8 * len(buf.getvalue()) / d
    ell = 150.0 / (d * math.log(2)) + offset
    assert extra["complexity_bits"].item() == pytest.approx(L)
    assert s.item() == pytest.approx(ell - L, rel=1e-6)


def test_sign_higher_is_more_ood():
    # same model likelihood: the simpler image (cheaper for PNG) is the more suspicious one
    g = torch.Generator().manual_seed(2)
    x = torch.cat([torch.full((1, 1, 16, 16), 0.2), torch.rand(1, 1, 16, 16, generator=g)])
    scorer = InputComplexity()
    out = {"log_prob": torch.tensor([-500.0, -500.0]), **scorer.batch_outputs({"x": x})}
    s = scorer.score(out)   # no num_dims from the model: falls back to the image's D
    assert s[0] > s[1]
    # and a worse likelihood raises the score by exactly Δ(-log2 p)/D
    out2 = dict(out, log_prob=torch.tensor([-600.0, -500.0]))
    assert (scorer.score(out2)[0] - s[0]).item() == pytest.approx(100 / (256 * math.log(2)), rel=1e-5)


def test_complexity_bad_inputs():
    with pytest.raises(ValueError, match="outside"):
        InputComplexity().batch_outputs({"x": torch.full((2, 1, 4, 4), -0.5)})
    with pytest.raises(ValueError, match="image"):
        InputComplexity().batch_outputs({"x": torch.rand(2, 30)})
    with pytest.raises(ValueError, match="channels"):
        InputComplexity().batch_outputs({"x": torch.rand(2, 5, 4, 4)})
    with pytest.raises(ValueError, match="complexity_bits"):
        InputComplexity().score({"log_prob": torch.zeros(2), "num_dims": torch.ones(2)})
