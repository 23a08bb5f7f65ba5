"""A sweep metric read from a finished genood run folder (its ``results.json``).

The names are those the run logs to W&B, so a sweep file's ``metric.name`` means the same under both engines:

* a training / validation metric (``val/loss``, ``val/bpd``, ``val/loss_flow``, ...): its last logged
  value, as W&B's run summary holds it (``metadata.train_metrics``, written by ``genood.train``);
* an OOD metric ``ood/<scorer>/<set>/<metric>`` (e.g. ``ood/llr_gt1/mean_far/auroc``): the ``results.json``
  row of that scorer and set. Choosing one tunes on the test OOD sets (README, "Sweeps").
"""

from __future__ import annotations

import json
from pathlib import Path

from ..evaluation.metrics import METRIC_NAMES


class MetricNotFound(ValueError):
    """The run folder has no value for the sweep's metric; the message lists the names it has."""


def metric_value(run_dir: Path, name: str) -> float:
    """The value of the metric ``name`` in the run folder ``run_dir``."""
    path = Path(run_dir) / "results.json"  # read here: genood.evaluation.report would import torch
    results = json.loads(path.read_text())
    if not isinstance(results, dict) or "rows" not in results:
        raise MetricNotFound(f"{path} is not a genood results file (expected {{'metadata': ..., 'rows': [...]}})")
    if name.startswith("ood/"):
        metric = name.rsplit("/", 1)[-1]
        names = {f"ood/{r['scorer']}/{r['ood_set']}/{m}": r[m] for r in results["rows"] for m in METRIC_NAMES}
        if name in names and metric in METRIC_NAMES:
            return float(names[name])
        raise MetricNotFound(f"{run_dir} has no OOD metric {name!r}; it has e.g. {', '.join(sorted(names)[:6])} "
                             f"(ood/<scorer>/<set>/<metric>, metric one of {', '.join(METRIC_NAMES)})")
    logged = results["metadata"].get("train_metrics")
    if logged is None:
        raise MetricNotFound(f"{run_dir}/results.json has no metadata.train_metrics (a run of genood.evaluate, "
                             f"or of an older genood.train); only OOD metrics ood/<scorer>/<set>/<metric> can be read")
    if name not in logged:
        raise MetricNotFound(f"{run_dir} logged no metric {name!r}; it logged: {', '.join(logged) or 'none'}")
    return float(logged[name])
