"""Per-scorer figures: score histograms (ID vs each OOD set) and ROC curves (OOD positive)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_scores(plot_dir: Path, scores: dict[str, dict[str, np.ndarray]], id_name: str) -> list[Path]:
    """Writes ``hist_<scorer>.png`` and ``roc_<scorer>.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for scorer, by_set in scores.items():
        s_id = by_set[id_name]
        everything = np.concatenate(list(by_set.values()))
        lo, hi = np.quantile(everything, [0.005, 0.995])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 50)

        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist(np.clip(s_id, lo, hi), bins=bins, density=True, alpha=0.5, color="k", label=f"{id_name} (ID)")
        for name, s in by_set.items():
            if name != id_name:
                ax.hist(np.clip(s, lo, hi), bins=bins, density=True, histtype="step", linewidth=1.5, label=name)
        ax.set(xlabel=f"{scorer} (higher = more OOD)", ylabel="density", title=f"{scorer}: score distributions")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(plot_dir / f"hist_{scorer}.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(5, 5))
        for name, s in by_set.items():
            if name == id_name:
                continue
            y = np.r_[np.zeros(len(s_id)), np.ones(len(s))]
            fpr, tpr, _ = roc_curve(y, np.r_[s_id, s])
            ax.plot(fpr, tpr, label=name)
        ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
        ax.set(xlabel="FPR (ID flagged)", ylabel="TPR (OOD caught)", title=f"{scorer}: ROC")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(plot_dir / f"roc_{scorer}.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths
