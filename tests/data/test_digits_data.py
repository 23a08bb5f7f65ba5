"""The embedded digits benchmark: splits, OOD sets, determinism, errors."""

from __future__ import annotations

import pytest
import torch

from genood.data.digits import DIGITS_OOD_SETS, DigitsDataModule


def test_splits_and_sets():
    dm = DigitsDataModule(held_out_classes=[8, 9])
    dm.setup()
    n_id = 1797 - 174 - 180  # digits 8 and 9 have 174 and 180 images
    assert len(dm.train_set) + len(dm.val_set) + len(dm.eval_sets[0].dataset) == n_id
    sets = dm.test_sets()
    assert sets[0].name == "digits" and sets[0].group == "id"
    assert {s.name: s.group for s in sets[1:]} == DIGITS_OOD_SETS
    ys = {int(dm.train_set[i]["y"]) for i in range(len(dm.train_set))}
    assert ys == set(range(8))
    held = next(s for s in sets if s.name == "heldout").dataset
    assert {held[i]["y"] for i in range(len(held))} == {8, 9}
    for s in sets:
        item = s.dataset[len(s.dataset) - 1]
        assert item["x"].shape == (1, 8, 8) and item["index"] == len(s.dataset) - 1
        assert 0.0 <= float(item["x"].min()) and float(item["x"].max()) <= 1.0


def test_ood_sets_mean_what_they_say():
    dm = DigitsDataModule(ood_sets=["inverted", "flipped", "constant", "blank", "black", "half_masked"], seed=3)
    sets = {s.name: s.dataset for s in dm.test_sets()}
    x_id = torch.stack([sets["digits"][i]["x"] for i in range(len(sets["digits"]))])
    inv = torch.stack([sets["inverted"][i]["x"] for i in range(len(sets["inverted"]))])
    flip = torch.stack([sets["flipped"][i]["x"] for i in range(len(sets["flipped"]))])
    const = torch.stack([sets["constant"][i]["x"] for i in range(len(sets["constant"]))])
    blank = torch.stack([sets["blank"][i]["x"] for i in range(len(sets["blank"]))])
    half = torch.stack([sets["half_masked"][i]["x"] for i in range(len(sets["half_masked"]))])
    torch.testing.assert_close(half[..., :4], x_id[..., :4])
    assert (half[..., 4:] == 0).all() and (x_id[..., 4:] > 0).any()
    assert all(float(sets["black"][i]["x"].abs().sum()) == 0 for i in range(len(sets["black"])))
    torch.testing.assert_close(inv, 1 - x_id)
    torch.testing.assert_close(flip, x_id.flip(-2))
    assert (const.flatten(1).std(1) == 0).all() and const.flatten(1)[:, 0].std() > 0.2
    assert blank.mean() < 0.05


def test_synthetic_sets_are_seeded_and_binarization_static_for_eval():
    a = DigitsDataModule(binarize="dynamic", seed=1).test_sets()
    b = DigitsDataModule(binarize="dynamic", seed=1).test_sets()
    for sa, sb in zip(a, b):
        torch.testing.assert_close(sa.dataset[5]["x"], sb.dataset[5]["x"])
        assert set(sa.dataset[5]["x"].unique().tolist()) <= {0.0, 1.0}
    dm = DigitsDataModule(binarize="dynamic", seed=1)
    dm.setup()
    draws = torch.stack([dm.train_set[0]["x"] for _ in range(20)])
    assert (draws.std(0) > 0).any()  # training draws are fresh every access


def test_image_size_and_natural_patches():
    dm = DigitsDataModule(image_size=16, ood_sets=["natural_patches"], ood_size=50)
    sets = dm.test_sets()
    assert dm.input_shape == (1, 16, 16)
    patches = torch.stack([sets[1].dataset[i]["x"] for i in range(50)])
    assert patches.shape == (50, 1, 16, 16) and patches.flatten(1).std(1).mean() > 0.01


@pytest.mark.parametrize("kwargs, match", [
    ({"ood_sets": ["nope"]}, "unknown digits OOD set.*valid"),
    ({"ood_sets": ["heldout"]}, "needs held_out_classes"),
    ({"ood_sets": ["blank", "black", "blank"]}, "names a set twice"),
    ({"held_out_classes": [10]}, "held_out_classes"),
    ({"binarize": "yes"}, "binarize"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DigitsDataModule(**kwargs)


def _set_tensors(dm: DigitsDataModule) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``name -> (x, y, index)`` of every eval set, read item by item as the loaders do."""
    out = {}
    for s in dm.test_sets():
        items = [s.dataset[i] for i in range(len(s.dataset))]
        out[s.name] = (torch.stack([it["x"] for it in items]), torch.tensor([it["y"] for it in items]),
                       torch.tensor([it["index"] for it in items]))
    return out


@pytest.mark.parametrize("binarize", ["none", "dynamic"])
def test_a_set_depends_only_on_seed_and_name_not_on_the_requested_list(binarize):
    """Requesting a subset of the OOD sets, in another order, gives each set the same samples, labels, indices
    and (static, evaluation) binarization draws as the full list (issue 17, bug 1)."""
    full = _set_tensors(DigitsDataModule(held_out_classes=[8, 9], binarize=binarize, seed=2))
    names = list(DIGITS_OOD_SETS)
    assert list(full) == ["digits", *names]
    for subset in (names[::-1][:6], ["blank", "constant"], ["constant"], ["natural_patches", "gaussian_noise"]):
        part = _set_tensors(DigitsDataModule(held_out_classes=[8, 9], ood_sets=subset, binarize=binarize, seed=2))
        assert list(part) == ["digits", *subset]
        for name, (x, y, index) in part.items():
            fx, fy, findex = full[name]
            assert torch.equal(x, fx) and torch.equal(y, fy) and torch.equal(index, findex), (subset, name)
    # the seed still matters: another seed draws other noise
    other = _set_tensors(DigitsDataModule(held_out_classes=[8, 9], ood_sets=["blank"], binarize=binarize, seed=3))
    assert not torch.equal(other["blank"][0], full["blank"][0])
