"""The scorer contract (the README, "Extending genood"): one float per sample, **higher = more OOD**.

A trained model computes its per-sample quantities once per batch in ``model.score_outputs(x)``, a dict
of tensors whose first dimension is the batch (e.g. ``{"log_prob": [B]}`` for a flow,
``{"elbo": [B], "elbo_gt1": [B], ...}`` for an HVAE, ``{"features": [B, D]}`` for DTE). Every scorer reads
only the keys it ``requires`` from that dict, so one pass over the data feeds every scorer.

Scorers that need in-distribution statistics (typicality's entropy, a kNN bank, a GMM) implement
:meth:`Scorer.fit`, which receives the same kind of dict computed on the ID fit split (gathered over
all DDP ranks, duplicates dropped, in dataset order), plus the fit split's class labels under
:data:`LABELS_KEY` (``[N]``, −1 where a set has none) for class-conditional statistics (Mahalanobis class
means, FlowCon's class Gaussians). Labels are never passed to :meth:`Scorer.score`, and a model must not
return an output named ``LABELS_KEY``. :meth:`Scorer.score` is vectorised over any number
of rows: the evaluator calls it on gathered outputs.

``batch_outputs`` lets a scorer compute extra per-sample quantities from the raw batch while the model
pass runs (e.g. a compressor's code length for input complexity); they are merged into the outputs.

**Transductive scorers.** Every scorer above scores each sample from the fitted ID statistics alone, so its
scores never depend on which other samples are scored with it, and the evaluator scores the ID test set and
each OOD set separately. A few published detectors are transductive instead: PyOD's ``ECOD`` and ``COPOD``
build their empirical CDFs over the training data *and the whole scored batch*, and the papers that report
them (ADBench, DTE) call ``decision_function(X_test)`` once on the whole test set. A scorer with
``transductive = True`` is therefore called **once** by the evaluator on the concatenation of every
evaluation set's outputs (ID test set first, then each OOD set, in the evaluator's order), and its ``[N]``
scores are split back per set. With a tabular task (one ID test set, one OOD set ``anomalies``) that is
exactly the papers' ``decision_function(X_test)``. The concatenation holds only the keys the scorer
``requires`` (per-sample tensors), so a transductive scorer must read nothing else. Its numbers depend on
the evaluation sets chosen (adding an OOD set changes the ID scores); name it so that tables say so.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch

Outputs = Mapping[str, torch.Tensor]

LABELS_KEY = "labels"  # the fit split's class labels, added to the outputs that Scorer.fit receives


def model_output(outputs: Outputs, key: str, scorer: str, ndim: Optional[int] = None, hint: str = "") -> torch.Tensor:
    """``outputs[key]`` as float, or a clear error naming the scorer, the missing or mis-shaped output and the
    keys the model did return (``ndim``: the required number of dimensions; ``hint``: appended to the error)."""
    if key not in outputs:
        raise ValueError(f"scorer {scorer!r} needs the model output {key!r}; the outputs only have "
                         f"{sorted(outputs)}{hint}")
    v = outputs[key]
    if ndim is not None and (not torch.is_tensor(v) or v.ndim != ndim):
        raise ValueError(f"scorer {scorer!r}: output {key!r} must be a {ndim}-D tensor, got "
                         f"{tuple(v.shape) if torch.is_tensor(v) else type(v).__name__}")
    return v.float()


class Scorer:
    """Base class. Subclasses set ``name`` (unique within a run) and ``requires`` (output keys)."""

    name: str = "scorer"
    requires: tuple[str, ...] = ()
    needs_fit: bool = False
    transductive: bool = False  # scored once on all evaluation sets together (module docstring)

    def applies_to(self, available: set[str]) -> bool:
        """Whether the keys a model provides cover what this scorer needs."""
        return set(self.requires) <= set(available)

    def batch_outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        """Extra per-sample tensors computed from the raw batch (default: none)."""
        return {}

    def fit(self, outputs: Outputs) -> None:
        """Fit ID statistics on the fit split's outputs (only called when ``needs_fit``); ``outputs`` also
        holds the split's class labels under :data:`LABELS_KEY`."""

    def score(self, outputs: Outputs) -> torch.Tensor:  # pragma: no cover - abstract
        """Return a float tensor ``[N]``, higher = more OOD."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_scores(name: str, scores: torch.Tensor, n: int, set_name: Optional[str] = None) -> torch.Tensor:
    """Validate a scorer's output: shape ``[n]``, finite. Raises a ValueError naming the scorer."""
    where = f" on {set_name!r}" if set_name else ""
    if scores.ndim != 1 or scores.shape[0] != n:
        raise ValueError(f"scorer {name!r}{where} returned shape {tuple(scores.shape)}, expected ({n},)")
    bad = ~torch.isfinite(scores)
    if bad.any():
        raise ValueError(f"scorer {name!r}{where} returned {int(bad.sum())} non-finite scores (NaN/inf) out of {n}; "
                         "check the model's outputs (a diverged model or an input outside its support)")
    return scores


def select_scorers(available: list[Scorer], names: Optional[list[str]]) -> list[Scorer]:
    """Pick scorers by name (None = all). Unknown names raise a ValueError listing the valid ones."""
    by_name = {s.name: s for s in available}
    if len(by_name) != len(available):
        dup = sorted({s.name for s in available if sum(t.name == s.name for t in available) > 1})
        raise ValueError(f"duplicate scorer names: {dup}")
    if names is None:
        return list(available)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown scorer(s) {unknown}; this model provides: {sorted(by_name)}")
    return [by_name[n] for n in names]
