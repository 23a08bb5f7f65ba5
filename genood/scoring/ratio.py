"""Likelihood-ratio scores (Ren et al. 2019, "Likelihood Ratios for Out-of-Distribution Detection", NeurIPS).

* :class:`Ratio`: the generic combinator −[a(x) − b(x)] = b(x) − a(x) over any two log-likelihood-like
  model outputs (nats, ``[N]``): higher = the main term ``a`` explains x worse than the reference ``b``.
* :class:`LikelihoodRatio`: Ren et al. 2019 ("Likelihood ratios for out-of-distribution detection",
  NeurIPS 2019, eq. 5), LLR(x) = log p_θ(x) − log p_θ0(x), scored as −LLR (higher = OOD). θ0 is a
  *background* model: the same architecture trained on perturbed inputs, so it captures population-level
  background statistics (e.g. pixel smoothness) and the ratio cancels them.
* :func:`perturb_inputs`, :class:`PerturbedDataset`, :class:`PerturbInputs`: Ren's background-training
  perturbation (§3.1): every input dimension is independently replaced, with probability μ, by a uniform
  random value in the data's range.

Training a background model (same config as the main model, two additions)::

    trainer:
      callbacks:
        - class_path: genood.scoring.ratio.PerturbInputs    # perturb every training batch
          init_args: {mu: 0.2}                              # Ren et al.: μ in [0.1, 0.3]
    optimizer:                                              # L2 on the weights (Adam's weight_decay is L2)
      class_path: torch.optim.Adam
      init_args: {lr: 0.001, weight_decay: 0.0001}

then point the main model's ``background_ckpt`` (or ``LikelihoodRatio(background_ckpt=...)``) at the
background run's checkpoint. Note: Ren et al. tuned μ and the L2 strength on held-out OOD
data; a protocol that may not look at OOD data must fix them a priori (e.g. μ = 0.2).
"""

from __future__ import annotations

import importlib
from typing import Optional, Union

import torch
from torch.utils.data import Dataset

import lightning as L

from genood.scoring.base import Outputs, Scorer
from genood.scoring.likelihood import get_log_prob


# ---- the ratio scores ---------------------------------------------------------------------------------------
class Ratio(Scorer):
    """−[a(x) − b(x)] over two per-sample log-likelihood outputs ``a_key`` and ``b_key`` (higher = OOD)."""

    def __init__(self, a_key: str, b_key: str, name: str):
        if a_key == b_key:
            raise ValueError(f"Ratio {name!r}: a_key and b_key are both {a_key!r}; the score would be 0")
        self.a_key, self.b_key, self.name = a_key, b_key, name
        self.requires = (a_key, b_key)

    def score(self, outputs: Outputs) -> torch.Tensor:
        a = get_log_prob(outputs, self.a_key, self.name)
        b = get_log_prob(outputs, self.b_key, self.name).to(a.device)
        if a.shape != b.shape:
            raise ValueError(f"scorer {self.name!r}: {self.a_key!r} has shape {tuple(a.shape)} but {self.b_key!r} "
                             f"has {tuple(b.shape)}")
        return b - a


def _import_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    if not module:
        raise ValueError(f"model_class {path!r} must be a dotted path such as 'genood.models.baseline.PPCA'")
    return getattr(importlib.import_module(module), name)


def load_generative_model(ckpt_path: str, model_class: Union[type, str, None] = None) -> L.LightningModule:
    """Load a trained genood model from a Lightning checkpoint.

    The class is ``model_class`` (a class or a dotted path) when given; otherwise the ``_class_path`` that
    LightningCLI records in the checkpoint's hyper-parameters. The model must have called
    ``save_hyperparameters()`` so its constructor arguments are in the checkpoint. Loading uses Lightning's
    default (``weights_only`` for local files: plain tensors and numbers, no arbitrary code).
    """
    from lightning.fabric.utilities.cloud_io import _load as pl_load

    if model_class is None:
        ckpt = pl_load(ckpt_path, map_location="cpu")
        model_class = ckpt.get("hyper_parameters", {}).get("_class_path")
        if model_class is None:
            raise ValueError(f"checkpoint {ckpt_path!r} does not record its model class (it was not written by "
                             "genood.train / LightningCLI); pass model_class=<class or dotted path>")
    cls = _import_class(model_class) if isinstance(model_class, str) else model_class
    return cls.load_from_checkpoint(ckpt_path, map_location="cpu")


class LikelihoodRatio(Ratio):
    """Ren et al. 2019, eq. 5: score = −[log p_θ(x) − log p_θ0(x)] (higher = more OOD).

    The main model provides ``log_prob``; the background θ0 is either a model object (``background``) or a
    checkpoint (``background_ckpt``, loaded lazily on first use, class from ``model_class`` or the
    checkpoint). ``batch_outputs`` runs θ0 on each raw batch (moved to the batch's device, eval mode,
    ``torch.inference_mode``, with the batch's ``index`` when it has one, as the test loop passes it to the main
    model) and returns ``{background_key: log p_θ0(x)}``; θ0 must expose ``log_prob`` in its ``score_outputs``.
    """

    name = "likelihood_ratio"

    def __init__(self, background: Optional[L.LightningModule] = None, background_ckpt: Optional[str] = None,
                 model_class: Union[type, str, None] = None, background_key: str = "background_log_prob",
                 name: str = "likelihood_ratio"):
        if (background is None) == (background_ckpt is None):
            raise ValueError("LikelihoodRatio needs exactly one of background (a model) or background_ckpt "
                             "(a checkpoint path)")
        super().__init__("log_prob", background_key, name)
        self.requires = ("log_prob",)  # the background term comes from this scorer's own batch_outputs
        self.background_key = background_key
        self.background_ckpt = background_ckpt
        self.model_class = model_class
        self._background = background

    @property
    def background(self) -> L.LightningModule:
        if self._background is None:
            self._background = load_generative_model(self.background_ckpt, self.model_class)
        return self._background

    def batch_outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["x"]
        model = self.background
        first = next(model.parameters(), None)
        if first is not None and first.device != x.device:
            model.to(x.device)
        model.eval()
        # the samples' dataset indices key a stochastic background's scoring noise (batch- and rank-invariant)
        kwargs = {"index": batch["index"]} if "index" in batch else {}
        with torch.inference_mode():
            out = model.score_outputs(x, **kwargs)
        if "log_prob" not in out:
            raise ValueError(f"scorer {self.name!r}: the background model {type(model).__name__} does not return "
                             f"'log_prob' from score_outputs (it returns {sorted(out)})")
        return {self.background_key: out["log_prob"].float()}


# ---- Ren et al.'s background-training perturbation ----------------------------------------------------------
def perturb_inputs(x: torch.Tensor, mu: float, generator: Optional[torch.Generator] = None,
                   low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Replace each entry of ``x`` independently, with probability ``mu``, by a value drawn uniformly from
    [low, high) (Ren et al. 2019 §3.1; data in [0, 1] by default). Returns a new tensor."""
    if not 0.0 <= mu <= 1.0:
        raise ValueError(f"perturb_inputs: mu must be a probability in [0, 1], got {mu}")
    if not high > low:
        raise ValueError(f"perturb_inputs: need high > low, got [{low}, {high}]")
    kw = dict(device=x.device, generator=generator)
    mask = torch.rand(x.shape, **kw) < mu
    noise = torch.rand(x.shape, **kw).mul_(high - low).add_(low).to(x.dtype)
    return torch.where(mask, noise, x)


class PerturbedDataset(Dataset):
    """Wraps a genood dataset (items ``{"x", "y", "index"}``) and perturbs ``x`` with :func:`perturb_inputs`.

    ``seed=None`` draws a fresh perturbation at every access (training, the usual case; DataLoader workers
    are seeded by Lightning's ``seed_everything(workers=True)``); an int ``seed`` fixes one perturbation per
    index, seeded by ``(seed, index)``.
    """

    def __init__(self, dataset: Dataset, mu: float, low: float = 0.0, high: float = 1.0, seed: Optional[int] = None):
        if not 0.0 <= mu <= 1.0:
            raise ValueError(f"PerturbedDataset: mu must be in [0, 1], got {mu}")
        self.dataset, self.mu, self.low, self.high, self.seed = dataset, mu, low, high, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        g = None if self.seed is None else torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        item["x"] = perturb_inputs(item["x"], self.mu, g, self.low, self.high)
        return item


class PerturbInputs(L.Callback):
    """Lightning callback that perturbs ``batch["x"]`` of every *training* batch in place (on the batch's
    device) with :func:`perturb_inputs`: turns any genood training config into background-model training
    (add it under ``trainer.callbacks``; see the module docstring). Validation batches are left as they are.
    """

    def __init__(self, mu: float = 0.2, low: float = 0.0, high: float = 1.0):
        if not 0.0 <= mu <= 1.0:
            raise ValueError(f"PerturbInputs: mu must be in [0, 1], got {mu}")
        self.mu, self.low, self.high = mu, low, high

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not isinstance(batch, dict) or "x" not in batch:
            raise ValueError("PerturbInputs expects genood batches (dicts with an 'x' entry)")
        batch["x"] = perturb_inputs(batch["x"], self.mu, None, self.low, self.high)
