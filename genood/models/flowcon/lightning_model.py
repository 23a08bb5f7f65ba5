"""FlowCon (Aathreya & Canavan, ECCV 2024) as a :class:`~genood.models.base.GenerativeModel`.

One ``python -m genood.train`` run has up to two phases:

1. **classifier phase** (only without ``backbone_ckpt``): ``classifier_epochs`` epochs of cross-entropy on the
   batch's labels, training the backbone + linear head (:class:`~genood.models.classifier.ClassifierNet`);
2. **flow phase** (the remaining ``trainer.max_epochs``): the classifier is **frozen** (eval mode, no
   gradient, never stepped again) and the RealNVP (:class:`~.torch_model.FlowConRealNVP`) trains on its pooled
   last-stage features, re-extracted from every training batch (under the model's ``augment``, the paper's
   crop + flip for CIFAR) with λ·L_flow + L_con (:mod:`.losses`), AdamW, lr 1e-5, weight decay 1e-5, constant
   learning rate (the released ``CosineAnnealingLR`` is created but never stepped; ``flow_lr_schedule="cosine"``
   steps it, an option, not the default).

Validation logs ``val/loss`` = L_flow + L_con on the ID validation split in the flow phase (the released
checkpoint criterion, which used the ID *test* split) and +inf in the classifier phase, so ``best.ckpt`` is a
flow-phase checkpoint; ``val/acc`` is the classifier's accuracy.

``score_outputs`` (one pass, per sample, no batch statistic anywhere): ``logits``, ``features``
(penultimate), ``flow_z``, ``flow_logdet``, ``flow_mu``, ``flow_log_sd`` and ``flow_log_p`` (Σ_d log N(z;
μ(z_a), σ(z_a)) in bits/dim). Scorers: ``flowcon``, ``flowcon_class``, ``flowcon_full`` (:mod:`.scorers`) and
the backbone's ``msp``, ``energy``, ``mahalanobis``, ``knn_feature``, so one run gives one table.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from genood.models.base import GenerativeModel
from genood.models.classifier.lightning_model import (AUGMENTATIONS, LR_SCHEDULES, OPTIMIZERS, augment_batch,
                                                      check_choice, labels_of, make_optimizer)
from genood.models.classifier.scorers import classifier_scorers
from genood.models.classifier.torch_model import ClassifierNet, load_classifier_state

from .losses import contrastive_loss, flow_loss, pairwise_log_p
from .scorers import FlowConClassScorer, FlowConFullScorer, FlowConScorer
from .torch_model import FlowConRealNVP

FLOW_INPUTS = ("last_stage", "penultimate")
FLOW_LR_SCHEDULES = ("constant", "cosine")


class FlowCon(GenerativeModel):
    """Frozen classifier features → RealNVP with a learned base density, trained by flow NLL + Bhattacharyya SupCon.

    Args:
        input_shape: ``(C, H, W)``, linked from the datamodule by the CLI.
        num_classes, backbone, input_mean, input_std, wrn_dropout: the classifier (``digits_cnn``,
            ``resnet18`` or ``wrn40_2``; see :class:`~genood.models.classifier.ClassifierNet`).
        backbone_ckpt: weights of a trained classifier (a genood Classifier/FlowCon checkpoint, a Heatmap-OOD /
            FlowCon release classifier ``.pt``, or a ``ClassifierNet`` state dict). Given: no classifier phase.
        classifier_epochs: cross-entropy epochs before the flow phase when ``backbone_ckpt`` is None.
        classifier_lr, classifier_optimizer, classifier_momentum, classifier_nesterov,
            classifier_weight_decay, classifier_lr_schedule: the classifier phase's optimiser
            (``cosine`` anneals to 0 over ``classifier_epochs``).
        augment: training augmentation for both phases (``none``; ``crop_flip`` = the CIFAR recipe).
        flow_input: ``last_stage`` (the paper: pooled last residual stage; WRN before its final BN-ReLU) or
            ``penultimate``.
        n_couplings, hidden, dropout: the flow (8, 256, 0; dropout 0.5 only in the CIFAR-100 / ResNet-18 recipe).
        lam, tau, tau2, n_bins: λ (0.07; 0.3 for CIFAR-100 / ResNet-18), τ (1.5), τ₂ (0.1), n_bins (32).
        lr, weight_decay: the flow's AdamW (1e-5, 1e-5).
        flow_lr_schedule: ``constant`` (as released) or ``cosine`` (the released
            ``CosineAnnealingLR(T_max=flow_t_max, eta_min=flow_min_lr)`` actually stepped once per flow epoch).
        knn_k: k of the backbone's ``knn_feature`` baseline (50).
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, num_classes: int = 10, backbone: str = "digits_cnn",
                 backbone_ckpt: Optional[str] = None, classifier_epochs: int = 0, classifier_lr: float = 0.05,
                 classifier_optimizer: str = "sgd", classifier_momentum: float = 0.9, classifier_nesterov: bool = False,
                 classifier_weight_decay: float = 5e-4, classifier_lr_schedule: str = "cosine", augment: str = "none",
                 input_mean: float = 0.5, input_std: float = 0.5, wrn_dropout: float = 0.3,
                 flow_input: str = "last_stage", n_couplings: int = 8, hidden: int = 256, dropout: float = 0.0,
                 lam: float = 0.07, tau: float = 1.5, tau2: float = 0.1, n_bins: int = 32, lr: float = 1e-5,
                 weight_decay: float = 1e-5, flow_lr_schedule: str = "constant", flow_t_max: int = 100,
                 flow_min_lr: float = 1e-6, knn_k: int = 50):
        super().__init__(input_shape=input_shape, lr=lr)
        if self.input_shape is None or len(self.input_shape) != 3:
            raise ValueError(f"FlowCon needs image inputs: input_shape must be (C, H, W), got {input_shape} (the CLI "
                             "links it from an image datamodule)")
        check_choice("classifier_optimizer", classifier_optimizer, OPTIMIZERS)
        check_choice("classifier_lr_schedule", classifier_lr_schedule, LR_SCHEDULES)
        check_choice("augment", augment, AUGMENTATIONS)
        check_choice("flow_input", flow_input, FLOW_INPUTS)
        check_choice("flow_lr_schedule", flow_lr_schedule, FLOW_LR_SCHEDULES)
        if not backbone_ckpt and classifier_epochs < 1:
            raise ValueError("FlowCon needs a trained classifier: pass backbone_ckpt (a classifier checkpoint) or "
                             "classifier_epochs >= 1 to train one in this run before the flow phase")
        if tau <= 0 or tau2 <= 0 or n_bins < 1:
            raise ValueError(f"need tau > 0, tau2 > 0, n_bins >= 1; got {tau}, {tau2}, {n_bins}")
        self.save_hyperparameters()
        self.automatic_optimization = False  # two phases, two optimisers
        self.classifier = ClassifierNet(backbone, num_classes, int(self.input_shape[0]), input_mean, input_std,
                                        wrn_dropout)
        if backbone_ckpt:
            load_classifier_state(self.classifier, backbone_ckpt)
        self.flow_start_epoch = 0 if backbone_ckpt else int(classifier_epochs)
        self.num_classes, self.augment, self.flow_input = num_classes, augment, flow_input
        self.dim = self.classifier.last_stage_dim if flow_input == "last_stage" else self.classifier.feature_dim
        self.flow = FlowConRealNVP(self.dim, n_couplings, hidden, dropout)
        self.lam, self.tau, self.tau2, self.n_bins = lam, tau, tau2, n_bins
        self.weight_decay, self.knn_k = weight_decay, knn_k

    # ---- phases ---------------------------------------------------------------------------------
    @property
    def in_classifier_phase(self) -> bool:
        return self.current_epoch < self.flow_start_epoch

    def train(self, mode: bool = True):
        """Lightning switches the whole module to train mode each epoch; the frozen backbone stays in eval."""
        super().train(mode)
        if mode and not self.in_classifier_phase:
            self.classifier.eval()
        return self

    def setup(self, stage: str) -> None:
        # The two phases train disjoint parameters, so each step leaves some unused: DDP must be told before
        # it wraps the module (Lightning calls this hook first). Lightning keeps the DDP kwargs in a private
        # attribute; the public spelling is --trainer.strategy=ddp_find_unused_parameters_true.
        from lightning.pytorch.strategies import DDPStrategy

        strategy = self.trainer.strategy if self._trainer is not None else None
        if stage == "fit" and isinstance(strategy, DDPStrategy) and hasattr(strategy, "_ddp_kwargs"):
            strategy._ddp_kwargs.setdefault("find_unused_parameters", True)

    def on_fit_start(self) -> None:
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and 0 <= max_epochs <= self.flow_start_epoch:
            raise ValueError(f"trainer.max_epochs={max_epochs} leaves no flow epoch after classifier_epochs="
                             f"{self.flow_start_epoch}; set max_epochs > classifier_epochs (the flow trains for the rest)")

    # ---- features ---------------------------------------------------------------------------------
    def _flow_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        penultimate, last_stage = self.classifier.embed(x)
        return penultimate, (last_stage if self.flow_input == "last_stage" else penultimate)

    def frozen_features(self, x: torch.Tensor) -> torch.Tensor:
        """The flow's input from the frozen classifier (eval mode, no gradient)."""
        self.classifier.eval()
        with torch.no_grad():
            return self._flow_features(x)[1]

    # ---- objectives -------------------------------------------------------------------------------
    def flowcon_losses(self, features: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """L_flow, mean L_con and λ·L_flow + L_con on one batch of features (:mod:`.losses`)."""
        z, logdet, mu, log_sd = self.flow(features)
        log_p = pairwise_log_p(z, mu, log_sd)
        l_flow = flow_loss(log_p.diagonal(), logdet, self.dim, self.n_bins)
        l_con = contrastive_loss(log_p, y, self.tau, self.tau2).mean()
        return {"flow": l_flow, "con": l_con, "total": self.lam * l_flow + l_con}

    def loss(self, batch: dict) -> torch.Tensor:
        y = labels_of(batch, self.num_classes, type(self).__name__)
        x = augment_batch(batch["x"], self.augment) if self.training else batch["x"]
        if self.in_classifier_phase:
            return F.cross_entropy(self.classifier(x), y)
        losses = self.flowcon_losses(self.frozen_features(x), y)
        if self._trainer is not None and self.training:
            self.log("train/loss_flow", losses["flow"], batch_size=y.shape[0])
            self.log("train/loss_con", losses["con"], batch_size=y.shape[0])
        return losses["total"]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)  # the loss, checked finite and logged
        opt = self._optimizer("classifier" if self.in_classifier_phase else "flow")
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        y = labels_of(batch, self.num_classes, type(self).__name__)
        n = y.shape[0]
        acc = (self.classifier(batch["x"]).argmax(1) == y).float().mean()
        self.log("val/acc", acc, sync_dist=True, batch_size=n)
        if self.in_classifier_phase:
            self.log("val/loss", torch.tensor(math.inf, device=y.device), prog_bar=True, sync_dist=True, batch_size=n)
            return
        losses = self.flowcon_losses(self.frozen_features(batch["x"]), y)
        self.log("val/loss", losses["flow"] + losses["con"], prog_bar=True, sync_dist=True, batch_size=n)
        self.log("val/loss_flow", losses["flow"], sync_dist=True, batch_size=n)
        self.log("val/loss_con", losses["con"], sync_dist=True, batch_size=n)

    # ---- optimisers ---------------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        optimizers = [torch.optim.AdamW(self.flow.parameters(), lr=self.lr, weight_decay=self.weight_decay)]
        schedulers, self._slots = [], {"flow": (0, None)}
        if hp.flow_lr_schedule == "cosine":
            schedulers.append(torch.optim.lr_scheduler.CosineAnnealingLR(optimizers[0], hp.flow_t_max, hp.flow_min_lr))
            self._slots["flow"] = (0, 0)
        if self.flow_start_epoch > 0:
            optimizers.append(make_optimizer(self.classifier.parameters(), hp.classifier_optimizer, hp.classifier_lr,
                                             hp.classifier_weight_decay, hp.classifier_momentum, hp.classifier_nesterov))
            sched = None
            if hp.classifier_lr_schedule == "cosine":
                schedulers.append(torch.optim.lr_scheduler.CosineAnnealingLR(optimizers[1], T_max=self.flow_start_epoch))
                sched = len(schedulers) - 1
            self._slots["classifier"] = (1, sched)
        return optimizers, schedulers

    def _optimizer(self, phase: str):
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        return opts[self._slots[phase][0]]

    def on_train_epoch_end(self) -> None:
        phase = "classifier" if self.in_classifier_phase else "flow"
        slot = self._slots[phase][1]
        if slot is not None:
            scheds = self.lr_schedulers()
            scheds = scheds if isinstance(scheds, list) else [scheds]
            scheds[slot].step()

    # ---- scoring ----------------------------------------------------------------------------------
    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        penultimate, flow_in = self._flow_features(x)
        z, logdet, mu, log_sd = self.flow(flow_in)
        log_p = FlowConRealNVP.log_base(z, mu, log_sd) / (self.dim * math.log(2))
        return {"logits": self.classifier.head(penultimate), "features": penultimate, "flow_z": z,
                "flow_logdet": logdet, "flow_mu": mu, "flow_log_sd": log_sd, "flow_log_p": log_p}

    def scorers(self) -> list:
        return [FlowConScorer(), FlowConClassScorer(), FlowConFullScorer(self.dim, self.n_bins),
                *classifier_scorers(self.knn_k)]
