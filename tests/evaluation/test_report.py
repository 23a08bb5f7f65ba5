"""The results table (console and results.md) shows bootstrap intervals beside each metric when computed."""

from __future__ import annotations

import numpy as np

from genood.evaluation.metrics import METRIC_NAMES
from genood.evaluation.report import markdown_table, print_table
from genood.evaluation.results import SetOutputs, metric_rows


def _rows(bootstrap: int) -> list[dict]:
    rng = np.random.default_rng(0)
    scores = {"s": {"id": rng.normal(0, 1, 200), "a": rng.normal(1, 1, 150), "b": rng.normal(2, 1, 100)}}
    sets = [SetOutputs(name, group, None, None) for name, group in (("id", "id"), ("a", "near"), ("b", "near"))]
    return metric_rows(scores, sets, bootstrap=bootstrap)


def test_intervals_appear_beside_each_metric_in_results_md_and_on_the_console(capsys):
    rows = _rows(bootstrap=50)
    per_set, mean = rows[0], rows[-1]
    assert per_set["auroc_lo"] < per_set["auroc"] < per_set["auroc_hi"] and "auroc_lo" not in mean
    md = markdown_table(rows)
    line = next(line for line in md.splitlines() if line.startswith("| s | a |"))
    for m in METRIC_NAMES:
        assert f"| {per_set[m]:.3f} [{per_set[m + '_lo']:.3f}, {per_set[m + '_hi']:.3f}] |" in line, m
    assert f"| {mean['auroc']:.3f} |" in md  # the mean row has no interval, same decimals
    assert "[lo, hi]: 95% bootstrap percentile interval" in md
    print_table(rows)
    out = capsys.readouterr().out
    assert f"{per_set['auroc']:.3f} [{per_set['auroc_lo']:.3f}, {per_set['auroc_hi']:.3f}]" in out
    assert "[lo, hi]: 95% bootstrap" in out


def test_without_bootstrap_the_table_is_unchanged(capsys):
    rows = _rows(bootstrap=0)
    md = markdown_table(rows)
    assert f"| {rows[0]['auroc']:.4f} |" in md and "[" not in md
    print_table(rows)
    assert "[" not in capsys.readouterr().out
