"""The data contract every genood datamodule keeps (the README, "Exact evaluation on many GPUs").

Every sample is a dict ``{"x": Tensor, "y": int, "index": int}``: ``y`` is the class label (or -1 when
there is none), ``index`` the sample's position in its own dataset. Evaluation gathers
``(dataset, index)`` across DDP ranks and drops the DistributedSampler's padded duplicates, so a
multi-process run scores every sample exactly once.

A datamodule exposes:

* ``train_dataloader`` / ``val_dataloader``: in-distribution data for fitting the generative model;
* ``fit_dataloader``: the ID data on which scorers fit their statistics (typicality entropy, kNN bank,
  GMM, ...), ID train by default, with no augmentation and no shuffling;
* ``test_sets()``: an ordered mapping ``name -> EvalSet`` whose first entry is the ID test split
  (``group == "id"``) and whose other entries are the OOD sets (``group`` "near" or "far").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

import lightning as L

ID_GROUP = "id"
OOD_GROUPS = ("near", "far")


BINARIZE_MODES = ("none", "dynamic", "static")


class IndexedDataset(Dataset):
    """Wraps ``(x, y)`` data so each item is ``{"x", "y", "index"}``.

    ``data`` is either a tensor of inputs (with ``labels`` beside it) or any map-style dataset returning
    ``(x, y)``. ``transform`` maps ``x`` (a tensor, or whatever the dataset yields) to a float tensor.

    ``binarize`` (inputs in [0, 1]): ``"dynamic"`` draws x ~ Bernoulli(intensity) afresh at every access
    (training, as HVAE's recipe); ``"static"`` draws once per sample from a generator seeded by
    ``(binarize_seed, index)``, so evaluation is deterministic and identical on every DDP rank.
    """

    def __init__(self, data, labels: Optional[torch.Tensor] = None, transform: Optional[Callable] = None,
                 binarize: str = "none", binarize_seed: int = 0):
        if binarize not in BINARIZE_MODES:
            raise ValueError(f"binarize must be one of {BINARIZE_MODES}, got {binarize!r}")
        self.data = data
        self.labels = labels
        self.transform = transform
        self.binarize = binarize
        self.binarize_seed = binarize_seed

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict:
        if self.labels is not None or isinstance(self.data, torch.Tensor):
            x = self.data[index]
            y = int(self.labels[index]) if self.labels is not None else -1
        else:
            x, y = self.data[index]
        if self.transform is not None:
            x = self.transform(x)
        if self.binarize == "dynamic":
            x = torch.bernoulli(x)
        elif self.binarize == "static":
            g = torch.Generator().manual_seed(self.binarize_seed * 1_000_003 + index)
            x = torch.bernoulli(x, generator=g)
        return {"x": x, "y": int(y), "index": index}


class TensorRows(Dataset):
    """In-memory rows ``x [N, ...]`` with labels ``y [N]`` whose DataLoader batches are slices, not stacks of
    per-sample dicts: ``__getitems__`` (which torch's DataLoader calls with a whole batch of indices) returns
    one batched ``{"x", "y", "index"}`` with a single tensor index, and :meth:`OODDataModule._loader` passes
    it through without collation. For small vector models (DTE's MLP, the tabular flows) the per-sample
    ``__getitem__`` + ``default_collate`` path costs more than the network's step. ``dataset[i]`` still
    returns one sample's dict."""

    batched = True  # the loader passes __getitems__'s batch through (see OODDataModule._loader)

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if len(x) != len(y):
            raise ValueError(f"TensorRows: x has {len(x)} rows, y {len(y)}")
        self.x, self.y = x, y.long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict:
        return {"x": self.x[index], "y": int(self.y[index]), "index": int(index)}

    def __getitems__(self, indices: list) -> dict:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {"x": self.x[idx], "y": self.y[idx], "index": idx}


def pass_through(batch):
    """The collate function of :class:`TensorRows` loaders: the batch is already one dict of tensors."""
    return batch


@dataclass
class EvalSet:
    """One evaluation set: the ID test split (group "id") or a named OOD set (group "near"/"far")."""

    name: str
    dataset: Dataset
    group: str

    def __post_init__(self):
        if self.group not in (ID_GROUP, *OOD_GROUPS):
            raise ValueError(f"EvalSet {self.name!r}: group must be one of {(ID_GROUP, *OOD_GROUPS)}, got {self.group!r}")


class EpochSeededSampler(Sampler):
    """Shuffles with ``seed + epoch`` so that a run resumed from a checkpoint sees the same order as an
    uninterrupted one (Lightning calls ``set_epoch`` on samplers that have it)."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class OODDataModule(L.LightningDataModule):
    """Base class: subclasses fill ``self.train_set``, ``self.val_set``, ``self.fit_set`` and
    ``self.eval_sets`` (a list of :class:`EvalSet`, ID test first) in :meth:`setup`."""

    def __init__(self, batch_size: int = 128, eval_batch_size: Optional[int] = None, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.drop_last = False  # drop the last partial training batch (a subclass may expose it as an argument)
        self.train_set: Optional[Dataset] = None
        self.val_set: Optional[Dataset] = None
        self.fit_set: Optional[Dataset] = None
        self.eval_sets: list[EvalSet] = []
        self._is_setup = False

    # subclasses implement
    def build(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self, stage: Optional[str] = None) -> None:
        if not self._is_setup:
            self.build()
            if not self.eval_sets or self.eval_sets[0].group != ID_GROUP:
                raise RuntimeError(f"{type(self).__name__}.build() must put the ID test set first in eval_sets")
            self._is_setup = True

    def _loader(self, dataset: Dataset, shuffle: bool, batch_size: int, drop_last: bool = False) -> DataLoader:
        sampler = EpochSeededSampler(len(dataset), self.seed) if shuffle else None
        collate = {"collate_fn": pass_through} if getattr(dataset, "batched", False) else {}
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, drop_last=drop_last,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0, **collate)

    def train_dataloader(self) -> DataLoader:
        """Shuffled ID training batches. ``drop_last`` drops the trailing partial batch, except when the whole
        training split is smaller than one batch (e.g. wine's 60 training normals at batch 64): then its one
        partial batch is kept rather than dropping every sample."""
        drop_last = self.drop_last and len(self.train_set) >= self.batch_size
        return self._loader(self.train_set, shuffle=True, batch_size=self.batch_size, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set if self.val_set is not None else self.fit_set, shuffle=False,
                            batch_size=self.eval_batch_size)

    def fit_dataloader(self) -> DataLoader:
        return self._loader(self.fit_set if self.fit_set is not None else self.train_set, shuffle=False,
                            batch_size=self.eval_batch_size)

    def test_sets(self) -> list[EvalSet]:
        self.setup("test")
        return list(self.eval_sets)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(s.dataset, shuffle=False, batch_size=self.eval_batch_size) for s in self.test_sets()]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one ``x`` (e.g. ``(1, 8, 8)`` or ``(30,)``)."""
        self.setup("fit")
        return tuple(self.train_set[0]["x"].shape)
