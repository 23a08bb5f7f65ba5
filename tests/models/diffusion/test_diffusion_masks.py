"""LMD's lift step: mask geometry (Liu et al. 2023; the released mask_utils.py). 1 = known pixel."""

import math

import pytest
import torch

from genood.models.diffusion.masks import make_masks


def _masks(kind, size, r=4, index=None, **kw):
    att = torch.arange(r)
    idx = torch.zeros(r, dtype=torch.long) if index is None else index
    return make_masks(kind, size, att, idx, **kw)[:, 0]


def test_checkerboard_alt_geometry_at_32_pixels_with_8_blocks():
    m = _masks("checkerboard_alt", 32, r=4, blocks=8)
    assert m.shape == (4, 32, 32)
    assert set(m.unique().tolist()) == {0.0, 1.0}
    for j in range(4):
        assert m[j].mean().item() == 0.5                         # exactly half the pixels known
    for j in range(3):
        assert torch.equal(m[j] + m[j + 1], torch.ones(32, 32))  # consecutive attempts cover every pixel once
    assert torch.equal(m[0], m[2]) and m[0, 0, 0] == 1           # even attempts: M (top-left block known)
    # every 4x4 block is constant, and neighbouring blocks differ (brute force over the 8x8 block grid)
    for bi in range(8):
        for bj in range(8):
            block = m[0, 4 * bi:4 * bi + 4, 4 * bj:4 * bj + 4]
            assert torch.all(block == block[0, 0])
            assert block[0, 0].item() == float((bi + bj) % 2 == 0)


def test_checkerboard_block_size_follows_the_blocks_setting():
    m = _masks("checkerboard", 8, r=3, blocks=8)                  # the digits config: 1-pixel blocks
    assert torch.equal(m[0], m[1]) and torch.equal(m[1], m[2])    # fixed, no alternation
    assert torch.equal(m[0][:2, :2], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    m4 = _masks("checkerboard_alt", 16, r=2, blocks=4)
    assert torch.equal(m4[0][:4, :4], torch.ones(4, 4)) and torch.equal(m4[0][:4, 4:8], torch.zeros(4, 4))
    with pytest.raises(ValueError, match="divisible by mask_blocks"):
        _masks("checkerboard_alt", 10, blocks=8)


def test_center_mask_hides_the_central_half_square():
    m = _masks("center", 32, r=2)
    assert torch.equal(m[0], m[1])
    assert m[0, 8:24, 8:24].sum() == 0 and m[0].sum() == 32 * 32 - 16 * 16


def test_random_mask_known_patch_count_and_keying():
    idx = torch.tensor([5, 5, 6])
    att = torch.tensor([0, 1, 0])
    m = make_masks("random", 32, att, idx, seed=3, patch=4, ratio=0.3)[:, 0]
    n_known = math.ceil(64 * 0.3)
    for row in m:
        patches = row.view(8, 4, 8, 4).permute(0, 2, 1, 3).reshape(64, 16)
        assert torch.all(patches == patches[:, :1])               # constant within each 4x4 patch
        assert int(patches[:, 0].sum()) == n_known
    assert not torch.equal(m[0], m[1]) and not torch.equal(m[0], m[2])
    # a row's mask depends on (seed, index, attempt) only, not on the other rows
    alone = make_masks("random", 32, att[2:], idx[2:], seed=3, patch=4, ratio=0.3)[:, 0]
    assert torch.equal(alone[0], m[2])
