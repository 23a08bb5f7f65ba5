"""A callback for the DDP test: each rank saves its own copy of the weights when training ends, so the test
can check that the replicas stayed identical (ActNorm's data-dependent initialisation is broadcast)."""

from pathlib import Path

import torch
from lightning.pytorch import Callback


class SaveReplicaParameters(Callback):
    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_train_end(self, trainer, pl_module) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        flat = torch.cat([p.detach().cpu().flatten() for p in pl_module.parameters()])
        torch.save(flat, self.folder / f"rank{trainer.global_rank}.pt")
