"""Image datasets seen through a trained classifier: penultimate feature vectors for the vector models (DTE,
kNN, any model on ``(d,)`` inputs).

:class:`FeatureDataModule` wraps an image :class:`~genood.data.base.OODDataModule` (e.g. the embedded
digits) and a classifier checkpoint (a genood ``Classifier`` or ``FlowCon`` run's ``last.ckpt``). In
:meth:`build` it extracts every split's penultimate pooled features **once** (eval mode, batched, under
``torch.inference_mode``, on ``device``) and keeps them in memory; the splits, the OOD sets (names and
near/far groups), the class labels and each sample's ``index`` are those of the wrapped datamodule, so
evaluation stays exact under DDP. ``standardize`` (default, as the tabular path does for DTE) centres and
scales every feature with the training split's mean and standard deviation.

The training split's features are extracted from the wrapped ``fit_set`` (the training images without
training-time randomness such as dynamic binarisation), so ``train_set`` and ``fit_set`` hold the same vectors.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch.utils.data import DataLoader, Dataset

from .base import EvalSet, IndexedDataset, OODDataModule


def _device(device: str) -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


@torch.inference_mode()
def extract_features(net, dataset: Dataset, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [N, D] float32 on the CPU, labels [N])`` of ``dataset`` in index order, one batched pass."""
    feats, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        feats.append(net.embed(batch["x"].to(device))[0].float().cpu())
        labels.append(torch.as_tensor(batch["y"]))
    if not feats:
        raise ValueError("cannot extract features of an empty split")
    return torch.cat(feats), torch.cat(labels).long()


class FeatureDataModule(OODDataModule):
    """Penultimate classifier features of an image datamodule's splits, as ``(d,)`` vectors.

    Args:
        datamodule: the image datamodule (its splits and OOD sets are kept one-to-one).
        classifier_ckpt: a genood ``Classifier`` / ``FlowCon`` checkpoint (``<run>/last.ckpt``).
        standardize: scale features with the training split's mean / std (constant features keep scale 1).
        extract_batch_size: images per forward pass during extraction.
        device: where extraction runs (``auto``: this rank's GPU when there is one, else the CPU).
        batch_size, eval_batch_size, num_workers, seed: loaders of the feature vectors (see OODDataModule).
    """

    def __init__(self, datamodule: OODDataModule, classifier_ckpt: str, standardize: bool = True,
                 extract_batch_size: int = 512, device: str = "auto", batch_size: int = 64,
                 eval_batch_size: Optional[int] = None, num_workers: int = 0, seed: int = 0):
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers, seed=seed)
        if not isinstance(datamodule, OODDataModule):
            raise TypeError(f"FeatureDataModule wraps a genood OODDataModule, got {type(datamodule).__name__}")
        self.inner = datamodule
        self.classifier_ckpt = str(classifier_ckpt)
        self.standardize = standardize
        self.extract_batch_size = extract_batch_size
        self.device = device
        self.mean: Optional[torch.Tensor] = None
        self.std: Optional[torch.Tensor] = None

    def build(self) -> None:
        from genood.models.classifier.torch_model import classifier_from_checkpoint

        self.inner.setup("fit")
        dev = _device(self.device)
        net = classifier_from_checkpoint(self.classifier_ckpt, map_location=dev).eval()
        shape = tuple(self.inner.input_shape)
        if len(shape) != 3 or shape[0] != net.in_channels:
            raise ValueError(f"classifier {self.classifier_ckpt!r} reads {net.in_channels}-channel images, but "
                             f"{type(self.inner).__name__} gives inputs of shape {shape}")

        def features(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
            return extract_features(net, ds, self.extract_batch_size, dev)

        train_ds = self.inner.fit_set if self.inner.fit_set is not None else self.inner.train_set
        x_train, y_train = features(train_ds)
        if self.standardize:
            self.mean = x_train.mean(0)
            std = x_train.std(0)
            self.std = torch.where(std > 0, std, torch.ones_like(std))
        wrap = lambda xy: IndexedDataset(self._scale(xy[0]), xy[1])  # noqa: E731
        self.train_set = self.fit_set = wrap((x_train, y_train))
        val = self.inner.val_set
        self.val_set = self.fit_set if val is None or val is train_ds else wrap(features(val))
        self.eval_sets = [EvalSet(s.name, wrap(features(s.dataset)), s.group) for s in self.inner.test_sets()]

    def _scale(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std if self.standardize else x
