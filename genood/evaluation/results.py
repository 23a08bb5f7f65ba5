"""From gathered model outputs to per-sample scores and metric rows (no I/O, no Lightning).

``score_sets`` fits the scorers that need ID statistics on the fit split's outputs, then scores the ID
test split and every OOD set. ``metric_rows`` turns those scores into one row per (scorer, OOD set) with
the six metrics, plus near/far/all mean rows per scorer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from ..scoring.base import LABELS_KEY, Scorer, check_scores
from ..scoring.knn import shared_knn
from .metrics import METRIC_NAMES, bootstrap_ci, ood_metrics


@dataclass
class SetOutputs:
    """One evaluation set's gathered outputs: name, group ("id", "near", "far"), per-sample rows."""

    name: str
    group: str
    index: torch.Tensor
    labels: torch.Tensor
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)


def score_sets(scorers: Sequence[Scorer], fit: Optional[SetOutputs], sets: Sequence[SetOutputs]) -> dict[str, dict[str, np.ndarray]]:
    """``{scorer: {set: scores [N] as float64 numpy}}``; fitted scorers are fitted on ``fit`` first (its
    outputs plus the class labels under ``LABELS_KEY``; scoring never sees labels). Each set is scored on
    its own, except by a ``transductive`` scorer: one call on all sets concatenated in order, split back.
    Scorers share their k-nearest-neighbour searches (:func:`genood.scoring.knn.shared_knn`)."""
    with shared_knn():
        return _fit_and_score(scorers, fit, sets)


def _fit_and_score(scorers: Sequence[Scorer], fit: Optional[SetOutputs], sets: Sequence[SetOutputs]) -> dict[str, dict[str, np.ndarray]]:
    for s in scorers:
        if s.needs_fit:
            if fit is None:
                raise RuntimeError(f"scorer {s.name!r} needs ID fit statistics but no fit split was collected")
            if LABELS_KEY in fit.outputs:
                raise ValueError(f"the model returns an output named {LABELS_KEY!r}, which is reserved for the fit "
                                 "split's class labels; rename that output")
            s.fit({**fit.outputs, LABELS_KEY: fit.labels})
    scores: dict[str, dict[str, np.ndarray]] = {}
    for s in scorers:
        scores[s.name] = {}
        if getattr(s, "transductive", False):
            # one call on every evaluation set together (ID test first, then the OOD sets), split back per set
            # (genood.scoring.base, "Transductive scorers"); only the keys the scorer requires are concatenated
            # (a missing key is left out, and the scorer's own check names it)
            sizes = [len(es.index) for es in sets]
            joint = {k: torch.cat([es.outputs[k] for es in sets]) for k in s.requires if k in sets[0].outputs}
            out = check_scores(s.name, s.score(joint).reshape(-1), sum(sizes), "all evaluation sets together")
            for es, part in zip(sets, out.detach().double().cpu().split(sizes)):
                scores[s.name][es.name] = part.numpy()
            continue
        for es in sets:
            out = check_scores(s.name, s.score(es.outputs).reshape(-1), len(es.index), es.name)
            scores[s.name][es.name] = out.detach().double().cpu().numpy()
    return scores


def metric_rows(scores: dict[str, dict[str, np.ndarray]], sets: Sequence[SetOutputs], bootstrap: int = 0) -> list[dict]:
    """One row per (scorer, OOD set) with the metrics, then mean rows over near, far and all OOD sets.
    ``bootstrap > 0`` adds percentile 95% intervals ``<metric>_lo``/``<metric>_hi`` to the per-set rows."""
    id_set = sets[0]
    rows: list[dict] = []
    for scorer, by_set in scores.items():
        s_id = by_set[id_set.name]
        per_set = []
        for es in sets[1:]:
            m = ood_metrics(s_id, by_set[es.name])
            row = {"scorer": scorer, "ood_set": es.name, "group": es.group, "n_id": int(len(s_id)),
                   "n_ood": int(len(by_set[es.name])), **{k: float(m[k]) for k in METRIC_NAMES}}
            if bootstrap:
                ci = bootstrap_ci(s_id, by_set[es.name], n_boot=bootstrap)
                row.update({f"{k}_{side}": float(v) for k in METRIC_NAMES for side, v in zip(("lo", "hi"), ci[k])})
            per_set.append(row)
        rows.extend(per_set)
        for group in ("near", "far", "all"):
            members = [r for r in per_set if group == "all" or r["group"] == group]
            if len(members) < 2 or (group == "all" and len({r["group"] for r in per_set}) < 2):
                continue  # a mean over one set, or "all" equal to a single group's mean, says nothing new
            rows.append({"scorer": scorer, "ood_set": f"mean_{group}", "group": group, "n_id": int(len(s_id)),
                         "n_ood": int(sum(r["n_ood"] for r in members)),
                         **{k: float(np.mean([r[k] for r in members])) for k in METRIC_NAMES}})
    return rows
