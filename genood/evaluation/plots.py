"""Per-scorer figures: score histograms (ID vs each OOD set) and ROC curves (OOD positive).

Histograms span the 0.5-99.5% quantiles of all scores, so that a few extreme scores (LLR^{>k} reaches -71
on some sets) do not squash the rest; the scores beyond are counted in the edge bins, which are shaded
and labelled with the edge value, and each set's legend entry says how many of its scores lie beyond each
edge. Legends sit outside the axes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

QUANTILES = (0.005, 0.995)


def _clipped_label(name: str, scores: np.ndarray, lo: float, hi: float) -> str:
    """``name``, and how many of ``scores`` lie below / above the axis (drawn in the edge bins)."""
    below, above = int((scores < lo).sum()), int((scores > hi).sum())
    parts = [f"{below} below" if below else "", f"{above} above" if above else ""]
    parts = [p for p in parts if p]
    return f"{name} ({' and '.join(parts)} the axis)" if parts else name


def plot_histogram(ax, by_set: dict[str, np.ndarray], id_name: str, scorer: str) -> None:
    """Density histograms of every set's scores on ``ax``, clipped to :data:`QUANTILES` with the clipped
    mass marked (see the module docstring)."""
    everything = np.concatenate(list(by_set.values()))
    lo, hi = (float(q) for q in np.quantile(everything, QUANTILES))
    if not hi > lo:
        hi = lo + 1.0
    bins = np.linspace(lo, hi, 50)
    for name, s in by_set.items():
        label = _clipped_label(f"{name} (ID)" if name == id_name else name, s, lo, hi)
        style = dict(alpha=0.5, color="k") if name == id_name else dict(histtype="step", linewidth=1.5)
        ax.hist(np.clip(s, lo, hi), bins=bins, density=True, label=label, **style)
    width = bins[1] - bins[0]
    if (everything < lo).any():
        ax.axvspan(lo, lo + width, color="0.85", zorder=0)
        ax.annotate(f"scores ≤ {lo:.3g}", (lo, 1.0), xycoords=("data", "axes fraction"), ha="left", va="bottom",
                    fontsize=7)
    if (everything > hi).any():
        ax.axvspan(hi - width, hi, color="0.85", zorder=0)
        ax.annotate(f"scores ≥ {hi:.3g}", (hi, 1.0), xycoords=("data", "axes fraction"), ha="right", va="bottom",
                    fontsize=7)
    ax.set(xlabel=f"{scorer} (higher = more OOD); all scores span [{everything.min():.3g}, {everything.max():.3g}]",
           ylabel="density")
    ax.set_title(f"{scorer}: score distributions", pad=14)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def plot_roc(ax, by_set: dict[str, np.ndarray], id_name: str, scorer: str) -> None:
    """ROC curves (OOD positive) of every OOD set against the ID set, AUROC in the legend."""
    from sklearn.metrics import auc, roc_curve

    s_id = by_set[id_name]
    for name, s in by_set.items():
        if name == id_name:
            continue
        fpr, tpr, _ = roc_curve(np.r_[np.zeros(len(s_id)), np.ones(len(s))], np.r_[s_id, s])
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.set(xlabel="FPR (ID flagged)", ylabel="TPR (OOD caught)", title=f"{scorer}: ROC", aspect="equal")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def plot_scores(plot_dir: Path, scores: dict[str, dict[str, np.ndarray]], id_name: str) -> list[Path]:
    """Writes ``hist_<scorer>.png`` and ``roc_<scorer>.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for scorer, by_set in scores.items():
        for kind, draw, size in (("hist", plot_histogram, (7, 4)), ("roc", plot_roc, (5, 5))):
            fig, ax = plt.subplots(figsize=size)
            draw(ax, by_set, id_name, scorer)
            paths.append(plot_dir / f"{kind}_{scorer}.png")
            fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
            plt.close(fig)
    return paths
