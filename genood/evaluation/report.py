"""The run folder's result files (the README, "The run folder") and the console table.

``results.json`` (``{"metadata": {...}, "rows": [...]}``: provenance, timings and the evaluated weights, then
one row per scorer and OOD set with n_id, n_ood and the six metrics), ``results.csv``, ``results.md``,
``scores.npz`` (per-sample scores, dataset indices and labels for every scorer and set).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .metrics import METRIC_NAMES
from .results import SetOutputs

COLUMNS = ("scorer", "ood_set", "group", "n_id", "n_ood", *METRIC_NAMES)


def write_results(run_dir: Path, rows: list[dict], scores: dict[str, dict[str, np.ndarray]],
                  sets: Sequence[SetOutputs], metadata: Optional[dict] = None) -> None:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps({"metadata": metadata or {}, "rows": rows}, indent=2))
    with open(run_dir / "results.csv", "w", newline="") as f:
        extra = [k for k in rows[0] if k not in COLUMNS] if rows else []  # bootstrap intervals
        w = csv.DictWriter(f, fieldnames=[*COLUMNS, *extra], restval="")
        w.writeheader()
        w.writerows(rows)
    (run_dir / "results.md").write_text(markdown_table(rows))
    arrays = {}
    for es in sets:
        arrays[f"index/{es.name}"] = es.index.cpu().numpy()
        arrays[f"label/{es.name}"] = es.labels.cpu().numpy()
        arrays[f"is_ood/{es.name}"] = np.full(len(es.index), es.group != "id")
        for scorer, by_set in scores.items():
            arrays[f"score/{scorer}/{es.name}"] = by_set[es.name]
    np.savez(run_dir / "scores.npz", **arrays)


def read_results(path: Path) -> dict:
    """A run's ``results.json`` (the file or its run folder) as ``{"metadata": {...}, "rows": [...]}``."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "rows" not in data:
        raise ValueError(f"{path} is not a genood results file (expected {{'metadata': ..., 'rows': [...]}})")
    return data


def read_rows(path: Path) -> list[dict]:
    """The metric rows of a run's ``results.json`` (the file or its run folder)."""
    return read_results(path)["rows"]


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _cells(rows: list[dict]) -> list[list[str]]:
    """The table's cells: with bootstrap intervals (``<metric>_lo``/``_hi``, ``--evaluation.bootstrap N``)
    a metric reads ``0.953 [0.941, 0.964]`` and every metric has 3 decimals, otherwise 4."""
    with_ci = any(f"{m}_lo" in r for r in rows for m in METRIC_NAMES)

    def cell(r: dict, c: str) -> str:
        if c not in METRIC_NAMES or not with_ci:
            return _fmt(r[c])
        if f"{c}_lo" in r:
            return f"{r[c]:.3f} [{r[c + '_lo']:.3f}, {r[c + '_hi']:.3f}]"
        return f"{r[c]:.3f}"

    return [[cell(r, c) for c in COLUMNS] for r in rows]


def _legend(rows: list[dict]) -> str:
    text = "AUROC, AUPR-In/Out: higher is better; FPR95, FPR80, AUTC: lower is better."
    if any(f"{m}_lo" in r for r in rows for m in METRIC_NAMES):
        text += " [lo, hi]: 95% bootstrap percentile interval (ID and OOD scores resampled independently)."
    return text


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(rows)]
    return "\n".join(lines) + f"\n\n{_legend(rows)}\n"


def print_table(rows: list[dict], title: str = "OOD detection results") -> None:
    """A rich table on the console (plain text when stdout is not a terminal, then as wide as the table)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    with_ci = any(f"{m}_lo" in r for r in rows for m in METRIC_NAMES)
    table = Table(title=title, caption=escape(_legend(rows)) if with_ci else None)
    for c in COLUMNS:
        table.add_column(c, justify="left" if c in ("scorer", "ood_set", "group") else "right")
    previous = None
    for r, cells in zip(rows, _cells(rows)):
        if previous is not None and r["scorer"] != previous:
            table.add_section()
        previous = r["scorer"]
        style = "bold" if r["ood_set"].startswith("mean_") else None
        table.add_row(*(escape(c) for c in cells), style=style)
    console = Console()
    width = max(120, console.width) if console.is_terminal or not with_ci else max(200, console.width)
    Console(width=width).print(table)
