"""Standard image benchmarks (MNIST, FashionMNIST, KMNIST, CIFAR10, CIFAR100, SVHN) through torchvision.

Splits follow the likelihood-OOD papers' protocol (HVAE's evaluation protocol, hvae-oodd ``scripts/ood-llr.py``; genood/models/hvae/README.md):

* ID train = the torchvision train split (SVHN: ``"train"``), less a seeded ``val_fraction`` held out as
  ``val_set``; ``train_set`` and ``fit_set`` are the rest (``fit_set`` never dynamically binarized);
* ID test = the test split (SVHN: ``"test"``; ``svhn_id_eval_split="extra"`` follows the HVAE repository,
  whose SVHN "validation" split, used for the ID scores, is the ``extra`` split);
* OOD sets = their test splits, converted to the ID shape (resize + grey/colour conversion);
* ``equal_size=True`` caps every eval set (ID test included) to the smallest one's size with a seeded
  random subset (HVAE's protocol); ``max_per_set`` caps further, for quick runs.

Inputs are float tensors in [0, 1] of shape ``[C, H, W]``; images stay ``uint8`` in memory and are converted
per item. Nothing is read before :meth:`setup`; see :mod:`genood.data.vision_sets` for the file layout, the
checksum option and the near/far table.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .base import BINARIZE_MODES, ID_GROUP, OOD_GROUPS, EvalSet, IndexedDataset, OODDataModule
from .synthetic import SYNTHETIC_SETS, set_salt, set_seed, synthetic_images
from .vision_sets import (DEFAULT_OOD, VISION_SETS, ImageConverter, canonical_name, load_split, ood_group,
                          open_split)

SVHN_ID_EVAL_SPLITS = ("test", "extra")


def _ood_name(name: str) -> str:
    """A torchvision dataset's table key, or a synthetic set's name (:mod:`genood.data.synthetic`)."""
    if str(name).lower() in SYNTHETIC_SETS:
        return str(name).lower()
    try:
        return canonical_name(name)
    except ValueError:
        raise ValueError(f"unknown OOD set {name!r}; valid: {', '.join(VISION_SETS)} or the synthetic sets "
                         f"{', '.join(SYNTHETIC_SETS)}") from None


def seeded_subset(n: int, k: Optional[int], seed: int) -> Optional[torch.Tensor]:
    """Sorted indices of a seeded random ``k``-subset of ``range(n)``, or None when ``k`` keeps everything."""
    if k is None or k >= n:
        return None
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:k].sort().values


class VisionDataModule(OODDataModule):
    """One torchvision dataset as ID data, others as OOD sets (see the module docstring for the splits).

    Args:
        id_dataset: mnist, fashionmnist, kmnist, cifar10, cifar100 or svhn (case-insensitive).
        ood_datasets: OOD set names (None = the other sets of the same modality, e.g. fashionmnist ->
            [mnist, kmnist], cifar10 -> [svhn, cifar100]); the synthetic sets of :mod:`genood.data.synthetic`
            (uniform_noise, gaussian_noise, constant, blank, black; group "far") may be listed too: they are
            generated at the ID shape, as many images as the capped set size.
        root: folder holding the datasets in torchvision's layout.
        download: let torchvision download missing files (in ``prepare_data``, i.e. once per node).
        image_size: side length of every input (None = the ID set's native size).
        channels: 1 or 3 (None = the ID set's native channels); grey <-> colour conversion as needed.
        binarize: "none"; "dynamic" (fresh Bernoulli draws for training, seeded static draws for val, fit
            and eval sets); "static" (seeded draws everywhere). Needs 1-channel inputs.
        equal_size: cap every eval set to the smallest one's size (seeded random subsets). Each set's subset
            and its synthetic images are seeded by (seed, set name) only, so listing fewer sets or another order
            keeps every set as it was, as long as the cap stays the same (the smallest listed set, or
            ``max_per_set`` when that is smaller).
        max_per_set: further cap on each eval set's size.
        max_train: seeded cap on the ID train split (before the validation hold-out), for quick runs.
        val_fraction: share of the ID train split held out as ``val_set`` (seeded; 0 = none).
        ood_groups: overrides of the near/far table, e.g. ``{"mnist": "near"}``.
        svhn_id_eval_split: "test" or "extra" (the HVAE repository's choice) when svhn is the ID set.
        verify_checksums: keep torchvision's md5 check of CIFAR/SVHN files at every load; False trusts files
            that are present (torchvision still checks what it downloads).
    """

    def __init__(self, id_dataset: str = "fashionmnist", ood_datasets: Optional[Sequence[str]] = None,
                 root: str = "data", download: bool = False, image_size: Optional[int] = None,
                 channels: Optional[int] = None, binarize: str = "none", equal_size: bool = True,
                 max_per_set: Optional[int] = None, max_train: Optional[int] = None, val_fraction: float = 0.1,
                 ood_groups: Optional[dict[str, str]] = None, svhn_id_eval_split: str = "test",
                 verify_checksums: bool = True, batch_size: int = 128, eval_batch_size: Optional[int] = None,
                 num_workers: int = 0, seed: int = 0):
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        self.id_dataset = canonical_name(id_dataset)
        names = DEFAULT_OOD[self.id_dataset] if ood_datasets is None else [_ood_name(n) for n in ood_datasets]
        if self.id_dataset in names:
            raise ValueError(f"{self.id_dataset!r} is the ID dataset; remove it from ood_datasets")
        if len(set(names)) != len(names):
            raise ValueError(f"ood_datasets names a dataset twice: {list(ood_datasets)}")
        self.ood_datasets = list(names)
        self.groups = {n: "far" if n in SYNTHETIC_SETS else ood_group(self.id_dataset, n) for n in names}
        for name, group in (ood_groups or {}).items():
            key = _ood_name(name)
            if key not in self.groups:
                raise ValueError(f"ood_groups names {name!r}, which is not among ood_datasets {self.ood_datasets}")
            if group not in OOD_GROUPS:
                raise ValueError(f"ood_groups[{name!r}] must be one of {OOD_GROUPS}, got {group!r}")
            self.groups[key] = group

        c, h, _ = VISION_SETS[self.id_dataset].shape
        if channels is not None and channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (colour), got {channels!r}")
        if image_size is not None and (int(image_size) != image_size or image_size < 1):
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
        self.channels = channels or c
        self.image_size = int(image_size or h)
        if binarize not in BINARIZE_MODES:
            raise ValueError(f"binarize must be one of {BINARIZE_MODES}, got {binarize!r}")
        if binarize != "none" and self.channels != 1:
            raise ValueError(f"binarize={binarize!r} needs 1-channel inputs, but {self.id_dataset} gives "
                             f"{self.channels} channels; set channels=1 (grey) or binarize='none'")
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
        for arg, v in (("max_per_set", max_per_set), ("max_train", max_train)):
            if v is not None and v < 1:
                raise ValueError(f"{arg} must be a positive integer or None, got {v}")
        if svhn_id_eval_split not in SVHN_ID_EVAL_SPLITS:
            raise ValueError(f"svhn_id_eval_split must be one of {SVHN_ID_EVAL_SPLITS}, got {svhn_id_eval_split!r}")
        self.root = str(root)
        self.download = download
        self.binarize = binarize
        self.equal_size = equal_size
        self.max_per_set = max_per_set
        self.max_train = max_train
        self.val_fraction = val_fraction
        self.svhn_id_eval_split = svhn_id_eval_split
        self.verify_checksums = verify_checksums

    @property
    def id_eval_split(self) -> str:
        return self.svhn_id_eval_split if self.id_dataset == "svhn" else "test"

    def _needed_splits(self) -> list[tuple[str, str]]:
        return ([(self.id_dataset, "train"), (self.id_dataset, self.id_eval_split)]
                + [(n, "test") for n in self.ood_datasets if n not in SYNTHETIC_SETS])

    def prepare_data(self) -> None:
        """Download missing files (Lightning calls this once per node, before ``setup`` on every rank)."""
        if self.download:
            for name, split in self._needed_splits():
                open_split(name, self.root, split, download=True, verify_checksums=self.verify_checksums)

    def _wrap(self, x: torch.Tensor, y: torch.Tensor, train: bool, salt: int) -> IndexedDataset:
        mode = self.binarize if (train or self.binarize == "none") else "static"
        converter = ImageConverter(self.channels, (self.image_size, self.image_size))
        return IndexedDataset(x, y, transform=converter, binarize=mode, binarize_seed=self.seed * 101 + salt)

    def _load(self, name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return load_split(name, self.root, split, download=self.download, verify_checksums=self.verify_checksums)

    def build(self) -> None:
        x, y = self._load(self.id_dataset, "train")
        keep = seeded_subset(len(y), self.max_train, self.seed + 7)
        if keep is not None:
            x, y = x[keep], y[keep]
        n = len(y)
        n_val = int(round(self.val_fraction * n))
        if self.val_fraction > 0:
            n_val = min(max(n_val, 1), n - 1)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
        xt, yt = x[train_idx], y[train_idx]
        self.train_set = self._wrap(xt, yt, train=True, salt=0)
        self.fit_set = self._wrap(xt, yt, train=False, salt=1)
        self.val_set = self._wrap(x[val_idx], y[val_idx], train=False, salt=2) if n_val else self.fit_set
        del x, y

        raw = [(self.id_dataset, ID_GROUP, *self._load(self.id_dataset, self.id_eval_split))]
        raw += [(n, self.groups[n], *self._load(n, "test")) for n in self.ood_datasets if n not in SYNTHETIC_SETS]
        cap = min(len(r[3]) for r in raw) if self.equal_size else None
        if self.max_per_set is not None:
            cap = self.max_per_set if cap is None else min(cap, self.max_per_set)
        n_synthetic = cap if cap is not None else len(raw[0][3])
        for name in (n for n in self.ood_datasets if n in SYNTHETIC_SETS):
            images = synthetic_images(name, n_synthetic, self.input_shape, set_seed(self.seed, name))
            raw.append((name, self.groups[name], (images * 255).round().to(torch.uint8),
                        torch.full((n_synthetic,), -1, dtype=torch.long)))
        raw = [raw[0]] + sorted(raw[1:], key=lambda r: self.ood_datasets.index(r[0]))  # the configured order
        self.eval_sets = []
        for name, group, ex, ey in raw:
            keep = seeded_subset(len(ey), cap, set_seed(self.seed, name))  # per set, whatever else is listed
            if keep is not None:
                ex, ey = ex[keep], ey[keep]
            self.eval_sets.append(EvalSet(name, self._wrap(ex, ey, train=False, salt=set_salt(name)), group))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(channels, image_size, image_size)``, known from the configuration without reading any file."""
        return (self.channels, self.image_size, self.image_size)
