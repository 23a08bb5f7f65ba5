"""The embedded, offline default benchmark: scikit-learn's digits (1,797 real 8x8 handwritten digits).

ID data are the digit classes not held out, intensities scaled from 0..16 to [0, 1], shape ``[1, S, S]``
(``S = image_size``, 8 natively; larger sizes are bilinear upsamplings). OOD sets are built only from data
that ships with scikit-learn, each with a near/far group:

=================  =====  ===========================================================================
name               group  what it is
=================  =====  ===========================================================================
heldout            near   test images of the held-out digit classes (only when ``held_out_classes``)
flipped            near   ID test digits flipped upside down
half_masked        near   ID test digits with the right half of the image set to black
inverted           far    ID test digits with intensities inverted (1 - x)
natural_patches    far    grey patches of scikit-learn's bundled sample photographs, area-downsampled
uniform_noise      far    i.i.d. U(0, 1) pixels
gaussian_noise     far    i.i.d. N(0.5, 0.25^2) pixels clipped to [0, 1]
constant           far    one intensity per image, drawn U(0, 1) (a low-complexity set)
blank              far    all-dark images with faint N(0, 0.05^2) speckle clipped at 0
black              far    all-zero images: the simplest input there is
=================  =====  ===========================================================================

Low-complexity inputs are where plain likelihood fails (Nalisnick et al. 2019a): a density model trained on
digits gives ``black`` and ``half_masked`` a higher likelihood than its own test digits, because most of
their pixels are the background it predicts best (the HVAE's LLR^{>k} test relies on this set).
Every generated set (:mod:`genood.data.synthetic`, ``natural_patches``) and every evaluation binarization is
seeded by ``(seed, set name)`` only (:func:`~genood.data.synthetic.set_seed`), so a set is the same on every
run and every DDP rank, whichever other sets are requested and in whatever order.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .base import EvalSet, IndexedDataset, OODDataModule
from .synthetic import set_salt, set_seed, synthetic_images

DIGITS_OOD_SETS = {
    "heldout": "near",
    "flipped": "near",
    "half_masked": "near",
    "inverted": "far",
    "natural_patches": "far",
    "uniform_noise": "far",
    "gaussian_noise": "far",
    "constant": "far",
    "blank": "far",
    "black": "far",
}


def load_digit_images(image_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as float tensors ``[N, 1, S, S]`` in [0, 1] and labels ``[N]``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return _resize(x, image_size), torch.tensor(d.target, dtype=torch.long)


def natural_patches(n: int, image_size: int, seed: int, patch: int = 32) -> torch.Tensor:
    """``n`` grey ``patch``x``patch`` crops of scikit-learn's sample photographs, area-downsampled to
    ``image_size`` and scaled to [0, 1]."""
    from sklearn.datasets import load_sample_images

    g = torch.Generator().manual_seed(seed)
    photos = [torch.tensor(im, dtype=torch.float32).mean(-1) / 255.0 for im in load_sample_images().images]
    which = torch.randint(len(photos), (n,), generator=g)
    crops = []
    for k, photo in enumerate(photos):  # loop over the 2 photographs, not over samples
        m = int((which == k).sum())
        h, w = photo.shape
        top = torch.randint(h - patch + 1, (m,), generator=g)
        left = torch.randint(w - patch + 1, (m,), generator=g)
        rows = top[:, None] + torch.arange(patch)[None]           # [m, patch]
        cols = left[:, None] + torch.arange(patch)[None]
        crops.append(photo[rows[:, :, None], cols[:, None, :]])  # [m, patch, patch]
    x = torch.cat(crops).unsqueeze(1)
    x = x[torch.randperm(n, generator=g)]
    return F.adaptive_avg_pool2d(x, image_size).clamp(0, 1)


def _resize(x: torch.Tensor, image_size: int) -> torch.Tensor:
    if x.shape[-1] == image_size:
        return x
    return F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp(0, 1)


class DigitsDataModule(OODDataModule):
    """scikit-learn digits as ID data, with OOD sets built from shipped data only (see module docstring).

    Args:
        held_out_classes: digit classes removed from ID and used as the ``heldout`` near-OOD set.
        ood_sets: names of OOD sets to evaluate (None = all that apply).
        image_size: side length (8 = native resolution).
        binarize: "none", or "dynamic" (fresh Bernoulli draws for training, seeded static draws for
            evaluation), or "static" (seeded draws everywhere), for Bernoulli-likelihood models.
        test_fraction / val_fraction: stratified, seeded splits of the ID classes.
        ood_size: samples per synthetic/patch OOD set (None = as many as the ID test split).
    """

    def __init__(self, held_out_classes: Sequence[int] = (), ood_sets: Optional[Sequence[str]] = None,
                 image_size: int = 8, binarize: str = "none", test_fraction: float = 0.3,
                 val_fraction: float = 0.1, ood_size: Optional[int] = None, batch_size: int = 128,
                 eval_batch_size: Optional[int] = None, num_workers: int = 0, seed: int = 0):
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        self.held_out_classes = sorted(int(c) for c in held_out_classes)
        if any(c < 0 or c > 9 for c in self.held_out_classes) or len(self.held_out_classes) >= 10:
            raise ValueError(f"held_out_classes must be distinct digits 0-9 leaving at least one ID class, got {list(held_out_classes)}")
        if ood_sets is not None:
            unknown = [s for s in ood_sets if s not in DIGITS_OOD_SETS]
            if unknown:
                raise ValueError(f"unknown digits OOD set(s) {unknown}; valid: {sorted(DIGITS_OOD_SETS)}")
            if len(set(ood_sets)) != len(ood_sets):
                raise ValueError(f"ood_sets names a set twice: {list(ood_sets)}")
            if "heldout" in ood_sets and not self.held_out_classes:
                raise ValueError("OOD set 'heldout' needs held_out_classes (e.g. --data.init_args.held_out_classes=[8,9])")
        if binarize not in ("none", "dynamic", "static"):
            raise ValueError(f"binarize must be 'none', 'dynamic' or 'static', got {binarize!r}")
        if not (0 < test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
            raise ValueError(f"need 0 < test_fraction, 0 <= val_fraction, sum < 1; got {test_fraction}, {val_fraction}")
        self.ood_set_names = list(ood_sets) if ood_sets is not None else None
        self.image_size = image_size
        self.binarize = binarize
        self.test_fraction = test_fraction
        self.val_fraction = val_fraction
        self.ood_size = ood_size

    def _wrap(self, x: torch.Tensor, y: torch.Tensor, train: bool, salt: int) -> IndexedDataset:
        mode = self.binarize if (train or self.binarize == "none") else "static"
        return IndexedDataset(x, y, binarize=mode, binarize_seed=self.seed * 101 + salt)

    def build(self) -> None:
        from sklearn.model_selection import train_test_split

        x, y = load_digit_images(self.image_size)
        is_id = ~torch.isin(y, torch.tensor(self.held_out_classes, dtype=torch.long))
        x_id, y_id = x[is_id], y[is_id]
        idx = np.arange(len(y_id))
        rest, test = train_test_split(idx, test_size=self.test_fraction, stratify=y_id.numpy(), random_state=self.seed)
        val_share = self.val_fraction / (1 - self.test_fraction)
        if self.val_fraction > 0:
            train, val = train_test_split(rest, test_size=val_share, stratify=y_id.numpy()[rest], random_state=self.seed)
        else:
            train, val = rest, rest[:0]
        self.train_set = self._wrap(x_id[train], y_id[train], train=True, salt=0)
        self.fit_set = self._wrap(x_id[train], y_id[train], train=False, salt=1)
        self.val_set = self._wrap(x_id[val], y_id[val], train=False, salt=2) if len(val) else self.fit_set
        x_test, y_test = x_id[test], y_id[test]
        self.eval_sets = [EvalSet("digits", self._wrap(x_test, y_test, train=False, salt=3), "id")]

        n_ood = self.ood_size or len(test)
        names = self.ood_set_names
        if names is None:
            names = [n for n in DIGITS_OOD_SETS if n != "heldout" or self.held_out_classes]
        for name in names:  # each set seeded by its name alone, not by its place in the list
            ox, oy = self._ood_images(name, x[~is_id], y[~is_id], x_test, y_test, n_ood, set_seed(self.seed, name))
            self.eval_sets.append(EvalSet(name, self._wrap(ox, oy, train=False, salt=set_salt(name)),
                                          DIGITS_OOD_SETS[name]))

    def _ood_images(self, name, x_out, y_out, x_test, y_test, n, seed):
        none = lambda k: torch.full((k,), -1, dtype=torch.long)  # noqa: E731 - labels of unlabeled sets
        if name == "heldout":
            return x_out, y_out
        if name == "flipped":
            return x_test.flip(-2), y_test
        if name == "inverted":
            return 1.0 - x_test, y_test
        if name == "half_masked":
            keep = torch.ones_like(x_test)
            keep[..., x_test.shape[-1] // 2:] = 0
            return x_test * keep, y_test
        if name == "natural_patches":
            return natural_patches(n, self.image_size, seed), none(n)
        return synthetic_images(name, n, (1, self.image_size, self.image_size), seed), none(n)
