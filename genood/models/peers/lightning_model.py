"""Classical peers as a genood model: nothing to train, raw inputs as features, three one-line detectors.

Running the peers through the ordinary CLI (instead of a separate code path) means they get the entry's
own datamodule (the same ID fit split and the same evaluation sets as a deep model on that config), the
same DDP-exact gathering, metrics, run folder and provenance. Use it on any config's data with the overlay:

    python -m genood.train --config configs/hvae/digits.yaml --config configs/peers/overlay.yaml
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import torch

from genood.models.base import GenerativeModel
from genood.models.peers.scorers import ECODScorer, IsolationForestScorer
from genood.scoring.knn import KNNScorer


class ClassicalPeers(GenerativeModel):
    """k-NN distance, Isolation Forest and ECOD on the flattened raw inputs (pixels or tabular features),
    fit on the datamodule's ID fit split; see ``genood/models/peers/README.md``.

    Args:
        input_shape: shape of one ``x`` (linked from the datamodule by the CLI).
        knn_neighbors: k of the k-th-neighbour distance (ADBench / DTE / PyOD default 5).
        iforest_estimators: trees of the Isolation Forest (scikit-learn / PyOD default 100).
        iforest_max_samples: sub-sample size per tree (``"auto"`` = min(256, n), the paper's ψ = 256).
        iforest_seed: the forest's ``random_state``; None takes the run's seed (``seed_everything``).
    """

    def __init__(self, input_shape: Optional[Sequence[int]] = None, knn_neighbors: int = 5,
                 iforest_estimators: int = 100, iforest_max_samples: Union[int, float, str] = "auto",
                 iforest_seed: Optional[int] = None):
        super().__init__(input_shape=input_shape)
        if knn_neighbors < 1:
            raise ValueError(f"knn_neighbors must be >= 1, got {knn_neighbors}")
        if iforest_estimators < 1:
            raise ValueError(f"iforest_estimators must be >= 1, got {iforest_estimators}")
        self.save_hyperparameters()
        self.knn_neighbors = knn_neighbors
        self.iforest_estimators, self.iforest_max_samples = iforest_estimators, iforest_max_samples
        # after seed_everything(s) (the CLI calls it before building the model) torch's initial seed is s
        self.iforest_seed = int(torch.initial_seed() % 2**32) if iforest_seed is None else int(iforest_seed)

    def score_outputs(self, x: torch.Tensor, index: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """``features``: the input flattened to ``[B, D]`` float vectors."""
        return {"features": x.flatten(1).float()}

    def scorers(self) -> list:
        return [KNNScorer(name="knn", key="features", k=self.knn_neighbors, reduction="kth"),
                IsolationForestScorer(n_estimators=self.iforest_estimators, max_samples=self.iforest_max_samples,
                                      random_state=self.iforest_seed),
                ECODScorer()]

    # ---- nothing to train: a fit with max_epochs > 0 stops at once --------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        raise RuntimeError("ClassicalPeers has no training loss: its detectors fit on the ID fit split at "
                           "evaluation time (use trainer.max_epochs=0)")

    def setup(self, stage: str) -> None:
        # Lightning warns that a fit without an optimizer runs without one: for the peers that is the point
        warnings.filterwarnings("ignore", message=r".*configure_optimizers. returned .None., this fit will run "
                                                  "with no optimizer")

    def on_train_start(self) -> None:
        self.trainer.should_stop = True

    def on_train_batch_start(self, batch, batch_idx):
        return -1  # skip the rest of the epoch

    def training_step(self, batch: dict, batch_idx: int):
        return None

    def validation_step(self, batch: dict, batch_idx: int):
        return None

    def configure_optimizers(self):
        return None  # nothing to optimise (see setup)
