"""Score plots: legends outside the axes, and the scores beyond the histogram's axis counted and marked."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def _scores() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    far = np.r_[rng.normal(3, 1, 197), np.full(3, -71.0)]  # LLR-like: a few scores far below the rest
    return {"digits": rng.normal(0, 1, 400), "blank": far, "noise": rng.normal(6, 1, 200)}


def _outside(fig, ax) -> bool:
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    return legend.x0 >= ax.get_window_extent().x1


def test_histogram_counts_and_marks_the_scores_beyond_its_axis():
    import matplotlib.pyplot as plt

    from genood.evaluation.plots import plot_histogram

    fig, ax = plt.subplots()
    plot_histogram(ax, _scores(), "digits", "llr_gt1")
    xmin, xmax = ax.get_xlim()
    assert xmin > -71  # the axis is not stretched to the outliers
    labels = {t.get_text().split(" (")[0]: t.get_text() for t in ax.get_legend().get_texts()}
    assert labels["blank"] == "blank (3 below the axis)"  # the 3 scores at -71
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("scores ≤ ") for t in texts)
    assert "[-71, " in ax.get_xlabel()  # the full range is stated
    assert _outside(fig, ax)
    plt.close(fig)


def test_roc_legend_is_outside_the_axes_and_names_the_auroc():
    import matplotlib.pyplot as plt

    from genood.evaluation.metrics import ood_metrics
    from genood.evaluation.plots import plot_roc

    scores = _scores()
    fig, ax = plt.subplots()
    plot_roc(ax, scores, "digits", "llr_gt1")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == [f"{name} (AUROC {ood_metrics(scores['digits'], scores[name])['auroc']:.3f})"
                     for name in ("blank", "noise")]
    assert _outside(fig, ax)
    plt.close(fig)
