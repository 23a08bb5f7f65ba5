"""A normalizing flow on vectors (tabular features, embeddings) as a :class:`~genood.models.base.GenerativeModel`:
trained by maximum likelihood, scored through ``log_prob`` by the likelihood family. ``flow: maf`` is MAF
(:mod:`genood.models.vector_flow.torch_model`); ``flow: planar`` is DTE's released PlanarFlow baseline
(:mod:`genood.models.vector_flow.planar`), which adds the scorer ``planar_released`` (its released score:
−log-determinant only, a broadcasting slip of the release).

Scorers: ``nll`` (−log p(x)) and ``typicality`` (|−log p(x) − Ĥ|, Ĥ the mean NLL of the ID fit split;
Nalisnick et al. 2019b). ``bpd`` is left out on purpose: bits per dimension is −log p / (D ln 2), a constant
multiple of ``nll`` (the same ranking), and it is a code length only for discretised data (8-bit images:
−log P of the integer pixel values). Standard-scaled tabular features are continuous, so their density (and
its "bits") changes with the units and the scaling of each feature: there is no number of bits to report.
``complexity`` needs images. See ``genood/models/vector_flow/README.md``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from genood.data.base import TensorRows
from genood.models.base import GenerativeModel, fused_adam
from genood.models.vector_flow.planar import PlanarFlowNetwork
from genood.models.vector_flow.torch_model import ACTIVATIONS, VectorMAF
from genood.scoring.likelihood import NegLogLikelihood
from genood.scoring.typicality import Typicality

FLOWS = ("maf", "planar")


class VectorFlow(GenerativeModel):
    """A normalizing flow density on flat ``D``-dimensional inputs.

    Args:
        input_shape: shape of one ``x`` (linked from the datamodule by the CLI); flattened to D features.
        lr: Adam learning rate (MAF's released code: 1e-4 for flows).
        weight_decay: L2 coefficient (MAF's code adds (λ/2) Σ w² with λ = 1e-6 to the loss: Adam's
            ``weight_decay`` λ has that gradient).
        flow: ``"maf"`` (:class:`~genood.models.vector_flow.torch_model.VectorMAF`) or ``"planar"`` (DTE's
            released PlanarFlow, :class:`~genood.models.vector_flow.planar.PlanarFlowNetwork`: ``num_layers``
            planar maps; DTE: 10, Adam lr 2e-3, weight decay 1e-4, batch 64, 200 epochs).
        num_layers, hidden_features, hidden_layers, activation, batch_norm: the MAF (the paper's UCI setting:
            5 MADEs of 2 × 100 ReLU units, batch norm between them); ``planar`` uses ``num_layers`` only.
        stats_batch_size: rows per forward pass when the batch-norm statistics are recomputed on the whole
            training set (results do not depend on it).
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, lr: float = 1e-4, weight_decay: float = 1e-6,
                 flow: str = "maf", num_layers: int = 5, hidden_features: int = 100, hidden_layers: int = 2,
                 activation: str = "relu", batch_norm: bool = True, stats_batch_size: int = 8192):
        super().__init__(input_shape=input_shape, lr=lr)
        if self.input_shape is None:
            raise ValueError("VectorFlow needs input_shape (the CLI links it from the datamodule; pass it when "
                             "constructing the model directly, e.g. input_shape=(30,))")
        if flow not in FLOWS:
            raise ValueError(f"flow must be one of {FLOWS}, got {flow!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if weight_decay < 0 or stats_batch_size < 1:
            raise ValueError(f"weight_decay must be >= 0 and stats_batch_size >= 1, got {weight_decay}, "
                             f"{stats_batch_size}")
        self.save_hyperparameters()
        self.num_features = int(torch.Size(self.input_shape).numel())
        self.weight_decay, self.stats_batch_size = weight_decay, stats_batch_size
        self.flow = flow
        if flow == "maf":
            self.net = VectorMAF(self.num_features, num_layers, hidden_features, hidden_layers, activation, batch_norm)
        else:
            self.net = PlanarFlowNetwork(self.num_features, num_layers)
        self._stats_step: Optional[int] = None  # global step at the last batch-norm statistics refresh

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats ``[B]`` of the flattened inputs."""
        return self.net.log_prob(self.flat_inputs(x, self.num_features))

    # ---- GenerativeModel ----------------------------------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        """Mean negative log-likelihood in nats per sample (MAF's training loss)."""
        return -self.log_prob(batch["x"]).mean()

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """``log_prob``: log p(x) in nats ``[B]`` (deterministic: MAF's BatchNorm uses the stored training-set
        statistics); with ``flow: planar`` also ``log_det`` = Σ_k log|det ∂f_k(x)|, the released score's term."""
        if self.flow == "planar":
            base, log_det = self.net.log_prob_terms(self.flat_inputs(x, self.num_features))
            return {"log_prob": base + log_det, "log_det": log_det}
        return {"log_prob": self.log_prob(x)}

    def scorers(self) -> list:
        scorers = [NegLogLikelihood(), Typicality()]
        if self.flow == "planar":
            # DTE's released predict_score: −(logdet_i + mean_j base_j) over the scored batch = −logdet_i up to one
            # constant per call, which no ranking sees (genood.models.vector_flow.planar)
            scorers.append(NegLogLikelihood(key="log_det", name="planar_released"))
        return scorers

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay, **fused_adam())

    # ---- MAF's batch-norm statistics: the whole training set, every epoch --------------------------------------
    def refresh_batch_norm_stats(self) -> None:
        """Set the flow's BatchNorm statistics to those of the datamodule's whole training split (MAF's
        ``set_batch_norm_stats``); every DDP rank reads the whole split, so the replicas agree without a gather."""
        if self.flow != "maf" or not self.net.batch_norms() or self._trainer is None or \
                self._stats_step == self.global_step:
            return
        data = getattr(self.trainer.datamodule, "train_set", None)
        if data is None:
            return
        self._stats_step = self.global_step  # the weights change only with the step: once per step is enough
        if isinstance(data, TensorRows):  # the rows are in memory already
            x = self.flat_inputs(data.x, self.num_features).to(self.device)
        else:
            loader = torch.utils.data.DataLoader(data, batch_size=self.stats_batch_size, shuffle=False)
            x = torch.cat([self.flat_inputs(b["x"], self.num_features) for b in loader]).to(self.device)
        self.net.set_batch_norm_stats(x)

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:
            self.refresh_batch_norm_stats()

    def on_train_epoch_end(self) -> None:
        # before the checkpoint callbacks of this epoch (Lightning runs the module's hook first), so last.ckpt
        # holds the statistics its weights are scored with
        self.refresh_batch_norm_stats()
