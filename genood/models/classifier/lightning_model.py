"""A supervised image classifier as a :class:`~genood.models.base.GenerativeModel`.

It trains by cross-entropy on the batch's class labels ``y`` and exposes, per sample, ``logits [B, K]`` and
``features [B, D]`` (the penultimate pooled vector the linear head reads). Its scorers are the post-hoc
baselines of FlowCon's tables: ``msp``, ``energy``, ``mahalanobis``, ``knn_feature``
(:mod:`genood.models.classifier.scorers`). FlowCon (:mod:`genood.models.flowcon`) reuses the same network
and optimiser settings for its classifier phase.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from genood.models.base import GenerativeModel

from .scorers import classifier_scorers
from .torch_model import ClassifierNet, crop_flip, load_classifier_state

OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "cosine")
AUGMENTATIONS = ("none", "crop_flip")


def make_optimizer(params, kind: str, lr: float, weight_decay: float, momentum: float = 0.9,
                   nesterov: bool = False) -> torch.optim.Optimizer:
    """SGD (with momentum / Nesterov), Adam (L2 weight decay) or AdamW (decoupled weight decay)."""
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}")


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def augment_batch(x: torch.Tensor, augment: str) -> torch.Tensor:
    """Training-time augmentation applied on the model's device ("none" or "crop_flip", the CIFAR recipe)."""
    if augment == "crop_flip":
        if x.ndim != 4:
            raise ValueError(f"augment='crop_flip' needs image batches [B, C, H, W], got {tuple(x.shape)}")
        return crop_flip(x)
    return x


def labels_of(batch: dict, num_classes: int, who: str) -> torch.Tensor:
    """The batch's class labels, checked to lie in [0, num_classes)."""
    y = torch.as_tensor(batch["y"], device=batch["x"].device).long()
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{who}: class labels must lie in [0, {num_classes}) (num_classes={num_classes}); the batch "
                         f"has labels {sorted(set(y.tolist()))[:10]}. Unlabelled data (y = -1) cannot train a classifier; "
                         "set num_classes to cover every ID label")
    return y


class Classifier(GenerativeModel):
    """Cross-entropy classifier with the MSP / energy / Mahalanobis / kNN-feature OOD scorers.

    Args:
        input_shape: ``(C, H, W)``, linked from the datamodule by the CLI.
        num_classes: number of classes (labels 0..K−1; held-out digit classes simply never occur).
        backbone: ``digits_cnn``, ``resnet18`` (CIFAR stem) or ``wrn40_2`` (see ``torch_model.py``).
        ckpt: optional path of weights to start from (a genood Classifier/FlowCon checkpoint, a
            Heatmap-OOD / FlowCon release classifier, or a ``ClassifierNet`` state dict); with
            ``--trainer.max_epochs=0`` the run only evaluates it.
        lr, optimizer, momentum, nesterov, weight_decay: the optimiser (``sgd``, ``adam`` or ``adamw``).
        lr_schedule: ``constant`` or ``cosine`` (annealed to 0 over ``trainer.max_epochs``, stepped per epoch).
        augment: ``none`` or ``crop_flip`` (random 4-pixel-padded crop + horizontal flip, batched on device).
        input_mean, input_std: input normalisation inside the network (0.5 / 0.5 maps [0, 1] to [−1, 1]).
        wrn_dropout: dropout inside the WRN blocks (0.3, the Heatmap-OOD classifiers).
        knn_k: k of ``knn_feature`` (50, Sun et al. 2022 on CIFAR-10).
        energy_temperature: T of ``energy`` (1).
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, num_classes: int = 10, backbone: str = "digits_cnn",
                 ckpt: Optional[str] = None, lr: float = 0.05, optimizer: str = "sgd", momentum: float = 0.9,
                 nesterov: bool = False, weight_decay: float = 5e-4, lr_schedule: str = "cosine", augment: str = "none",
                 input_mean: float = 0.5, input_std: float = 0.5, wrn_dropout: float = 0.3, knn_k: int = 50,
                 energy_temperature: float = 1.0):
        super().__init__(input_shape=input_shape, lr=lr)
        if self.input_shape is None or len(self.input_shape) != 3:
            raise ValueError(f"Classifier needs image inputs: input_shape must be (C, H, W), got {input_shape} (the CLI "
                             "links it from an image datamodule)")
        check_choice("optimizer", optimizer, OPTIMIZERS)
        check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
        check_choice("augment", augment, AUGMENTATIONS)
        self.save_hyperparameters()
        self.net = ClassifierNet(backbone, num_classes, int(self.input_shape[0]), input_mean, input_std, wrn_dropout)
        if ckpt:
            load_classifier_state(self.net, ckpt)
        self.num_classes = num_classes
        self.optimizer, self.momentum, self.nesterov = optimizer, momentum, nesterov
        self.weight_decay, self.lr_schedule, self.augment = weight_decay, lr_schedule, augment
        self.knn_k, self.energy_temperature = knn_k, energy_temperature

    def loss(self, batch: dict) -> torch.Tensor:
        y = labels_of(batch, self.num_classes, type(self).__name__)
        x = augment_batch(batch["x"], self.augment) if self.training else batch["x"]
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        if self._trainer is not None and not self.training:
            self.log("val/acc", (logits.argmax(1) == y).float().mean(), sync_dist=True, batch_size=y.shape[0])
        return loss

    def configure_optimizers(self):
        opt = make_optimizer(self.parameters(), self.optimizer, self.lr, self.weight_decay, self.momentum, self.nesterov)
        if self.lr_schedule == "constant":
            return opt
        t_max = max(1, int(self.trainer.max_epochs or 1))
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max)}

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        features, _ = self.net.embed(x)
        return {"logits": self.net.head(features), "features": features}

    def scorers(self) -> list:
        return classifier_scorers(self.knn_k, self.energy_temperature)
