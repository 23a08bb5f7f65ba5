"""OOD-detection metrics: AUROC, AUPR-In/Out, FPR@95TPR, FPR80 and AUTC (the README, "Metrics").

Every score follows the genood contract **higher = more OOD**; labels are OOD = 1, ID = 0. The definitions
(the README's "Metrics" table; the reference repositories disagree, so the positive class is stated for
each one):

- ``auroc``: P(s_OOD > s_ID) + ½ P(s_OOD = s_ID). Independent of which class is called positive.
- ``aupr_in``: average precision with **ID positive**, ranked by −s. ``aupr_out``: average precision with
  **OOD positive**, ranked by s. Average precision is scikit-learn's step sum
  AP = Σ_k (R_k − R_{k−1}) P_k over distinct thresholds (as HVAE, FlowCon and DTE use), not the trapezoidal
  ``auc(recall, precision)`` of MSMA / beyond-AUROC. FlowCon calls them AUPR-S and AUPR-E.
- ``fpr95``: Hendrycks / OpenOOD / FlowCon reading, **ID positive**. An input is accepted as ID iff s ≤ t.
  t* is the smallest score value such that at least 95 % of the ID scores are ≤ t* (ID recall ≥ 0.95); all
  samples tied at t* are accepted together. fpr95 = fraction of OOD scores ≤ t*. Equivalently: the minimum,
  over every threshold that keeps ≥ 95 % of ID, of the fraction of OOD also kept; equivalently the first
  point of ``roc_curve(ID positive, −s, drop_intermediate=False)`` with TPR ≥ 0.95. No interpolation.
- ``fpr80``: HVAE convention, **OOD positive**: the FPR (fraction of ID with s ≥ t) at the first point of
  ``roc_curve(OOD positive, s, drop_intermediate=False)`` (thresholds decreasing, one per distinct score)
  where TPR (OOD recall) ≥ 0.80, i.e. the smallest FPR among thresholds catching ≥ 80 % of OOD.
- ``autc`` (Humblot-Renaux et al., "Beyond AUROC & co.", CVPR-W 2023; lower is better):
  ½ (∫_0^1 FNR(θ) dθ + ∫_0^1 FPR(θ) dθ), "predicted OOD" meaning s ≥ θ, FPR(θ) = fraction of ID with s ≥ θ,
  FNR(θ) = fraction of OOD with s < θ. Integration as in the reference ``calc_autc``: trapezoid rule over the
  sample scores used as thresholds plus the end points θ = 0 (FPR 1, FNR 0) and θ = 1 (FPR 0, FNR 1 when no
  score equals 1). Scores already inside [0, 1] are used as they are; otherwise they are min–max normalised
  over the evaluated ID ∪ OOD scores first (all-equal out-of-range scores map to 0.5, AUTC = 0.5).
  **Ties:** here there is one threshold per distinct value, each evaluated with the s ≥ θ rule (a score equal
  to 1 therefore gives the θ = 1 node its own FPR/FNR). The reference sorts per-sample thresholds with a
  non-stable sort, so on tied scores (including a score tied with its θ = 1 end point) its value depends on
  sort order; on tie-free scores inside (0, 1) both agree exactly (ID {0.2, 0.4} vs OOD {0.6, 0.8} → 0.30).

Curves come from scikit-learn (``roc_auc_score``, ``average_precision_score``, ``roc_curve``). The bootstrap
(:func:`bootstrap_ci`) evaluates the same definitions on resamples in a batched form (weighted counts over the
distinct score values, no per-resample sort); tests check it equals :func:`ood_metrics` on each resample.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

METRIC_NAMES: tuple[str, ...] = ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr80", "autc")
METRIC_DIRECTIONS: dict[str, str] = {
    "auroc": "higher",
    "aupr_in": "higher",
    "aupr_out": "higher",
    "fpr95": "lower",
    "fpr80": "lower",
    "autc": "lower",
}

FPR95_ID_RECALL = 0.95
FPR80_OOD_RECALL = 0.80


def _to_numpy(scores: Any, side: str) -> np.ndarray:
    """1-D float64 copy of ``scores`` (numpy array, list or torch tensor on any device), validated."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(scores, torch.Tensor):
        scores = scores.detach().to(device="cpu", dtype=torch.float64).numpy()
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{side}: could not convert scores to a float array ({err}).") from err
    if arr.ndim != 1:
        raise ValueError(
            f"{side} must be 1-D (one score per sample), got shape {tuple(arr.shape)}; "
            "flatten it with .reshape(-1) if it holds one score per sample."
        )
    if arr.size == 0:
        raise ValueError(f"{side} is empty: OOD metrics need at least one score on each side (ID and OOD).")
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.isnan(arr).sum())
        raise ValueError(
            f"{side} has {int(bad.sum())} non-finite value(s) out of {arr.size} "
            f"({n_nan} NaN, {int(bad.sum()) - n_nan} ±inf); fix or drop them before computing metrics."
        )
    return arr


def autc_scale(scores: np.ndarray) -> np.ndarray:
    """Scores as AUTC integrates them: unchanged when all lie in [0, 1], else min–max normalised to [0, 1].

    ``scores`` is the pooled ID ∪ OOD array of one evaluation. If every value is equal (and outside [0, 1])
    they all become 0.5; AUTC of a constant score is 0.5 whatever the constant.
    """
    lo, hi = float(scores.min()), float(scores.max())
    if lo >= 0.0 and hi <= 1.0:
        return scores
    if hi == lo:
        return np.full_like(scores, 0.5)
    return np.clip((scores - lo) / (hi - lo), 0.0, 1.0)


def _fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, level: float) -> float:
    """FPR at the first ``roc_curve(drop_intermediate=False)`` point whose TPR ≥ ``level`` (positive = 1)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr[np.argmax(tpr >= level)])


def _autc(labels: np.ndarray, scores01: np.ndarray) -> float:
    """AUTC of scores already in [0, 1] (see the module docstring), nodes = distinct values ∪ {0, 1}."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(labels, scores01, drop_intermediate=False)
    # Drop sklearn's leading +inf threshold; reverse to increasing θ. One node per distinct score value,
    # FPR(θ) = ID fraction with s ≥ θ, FNR(θ) = OOD fraction with s < θ.
    theta, fpr_t, fnr_t = thr[1:][::-1], fpr[1:][::-1], 1.0 - tpr[1:][::-1]
    if theta[0] > 0.0:  # end point θ = 0: everything flagged OOD
        theta, fpr_t, fnr_t = np.r_[0.0, theta], np.r_[1.0, fpr_t], np.r_[0.0, fnr_t]
    if theta[-1] < 1.0:  # end point θ = 1: nothing flagged OOD
        theta, fpr_t, fnr_t = np.r_[theta, 1.0], np.r_[fpr_t, 0.0], np.r_[fnr_t, 1.0]
    return 0.5 * (float(np.trapezoid(fnr_t, theta)) + float(np.trapezoid(fpr_t, theta)))


def ood_metrics(scores_id: Any, scores_ood: Any) -> dict[str, float]:
    """All OOD metrics of one (ID, OOD) pair of score sets; keys :data:`METRIC_NAMES`.

    Args:
        scores_id: 1-D scores of the in-distribution test samples (numpy array or torch tensor, any device).
        scores_ood: 1-D scores of the OOD samples. Higher = more OOD for both.

    Returns:
        ``{"auroc", "aupr_in", "aupr_out", "fpr95", "fpr80", "autc"}`` as Python floats in [0, 1]; the exact
        definitions (positive class, tie handling, thresholds) are in this module's docstring.

    Raises:
        ValueError: a side is empty, not 1-D, or holds NaN/±inf (the message names the side and the count).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    s_id = _to_numpy(scores_id, "scores_id")
    s_ood = _to_numpy(scores_ood, "scores_ood")
    scores = np.concatenate([s_id, s_ood])
    labels = np.concatenate([np.zeros(s_id.size, dtype=np.int64), np.ones(s_ood.size, dtype=np.int64)])
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "aupr_in": float(average_precision_score(1 - labels, -scores)),
        "aupr_out": float(average_precision_score(labels, scores)),
        "fpr95": _fpr_at_tpr(1 - labels, -scores, FPR95_ID_RECALL),
        "fpr80": _fpr_at_tpr(labels, scores, FPR80_OOD_RECALL),
        "autc": _autc(labels, autc_scale(scores)),
    }


# --------------------------------------------------------------------------------------------------------
# Batched form for the bootstrap: a resample is a histogram of weights over the distinct pooled values.
# --------------------------------------------------------------------------------------------------------


def _batched_bincount(groups: np.ndarray, n_bins: int) -> np.ndarray:
    """Row-wise bincount of integer ``groups`` [B, n] into [B, n_bins] float64 counts."""
    offsets = np.arange(groups.shape[0], dtype=np.int64)[:, None] * n_bins
    flat = np.bincount((groups + offsets).ravel(), minlength=groups.shape[0] * n_bins)
    return flat.reshape(groups.shape[0], n_bins).astype(np.float64)


def _rank_metrics_weighted(w0: np.ndarray, w1: np.ndarray) -> dict[str, np.ndarray]:
    """auroc / aupr_in / aupr_out / fpr95 / fpr80 from ID (w0) and OOD (w1) counts [B, K] per distinct value.

    Columns are the distinct score values in increasing order; a column may be empty in a resample.
    """
    c0, c1 = np.cumsum(w0, axis=1), np.cumsum(w1, axis=1)
    n0, n1 = c0[:, -1:], c1[:, -1:]
    below0, below1 = c0 - w0, c1 - w1  # counts strictly below each value
    ge0, ge1 = n0 - below0, n1 - below1  # counts at or above each value
    auroc = np.sum(w1 * (below0 + 0.5 * w0), axis=1) / (n0 * n1)[:, 0]
    # OOD positive, threshold s ≥ v: recall step w1/n1, precision ge1/(ge0+ge1).
    prec_out = np.divide(ge1, ge0 + ge1, out=np.zeros_like(ge1), where=(ge0 + ge1) > 0)
    aupr_out = np.sum(w1 / n1 * prec_out, axis=1)
    # ID positive, threshold −s ≥ −v (s ≤ v): recall step w0/n0, precision c0/(c0+c1).
    prec_in = np.divide(c0, c0 + c1, out=np.zeros_like(c0), where=(c0 + c1) > 0)
    aupr_in = np.sum(w0 / n0 * prec_in, axis=1)
    fpr95 = np.min(np.where(c0 / n0 >= FPR95_ID_RECALL, c1 / n1, np.inf), axis=1)
    fpr80 = np.min(np.where(ge1 / n1 >= FPR80_OOD_RECALL, ge0 / n0, np.inf), axis=1)
    return {"auroc": auroc, "aupr_in": aupr_in, "aupr_out": aupr_out, "fpr95": fpr95, "fpr80": fpr80}


def _autc_weighted(theta: np.ndarray, w0: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """AUTC [B] from counts [B, K] on increasing nodes ``theta`` [K] with theta[0] = 0 and theta[-1] = 1.

    Nodes empty in a resample are skipped (except the end points), so each row integrates exactly over its
    own distinct values ∪ {0, 1}, as :func:`ood_metrics` does.
    """
    n0, n1 = w0.sum(axis=1, keepdims=True), w1.sum(axis=1, keepdims=True)
    fpr = (n0 - (np.cumsum(w0, axis=1) - w0)) / n0  # ID fraction with s ≥ θ
    fnr = (np.cumsum(w1, axis=1) - w1) / n1  # OOD fraction with s < θ
    present = (w0 + w1) > 0
    present[:, 0] = present[:, -1] = True
    k = np.arange(theta.size)
    last = np.maximum.accumulate(np.where(present, k, -1), axis=1)
    prev = last[:, :-1]  # last present node before node j (j = 1..K-1); node 0 is always present
    width = np.where(present[:, 1:], theta[1:] - theta[prev], 0.0)
    fpr_prev, fnr_prev = np.take_along_axis(fpr, prev, axis=1), np.take_along_axis(fnr, prev, axis=1)
    area = width * (fpr[:, 1:] + fpr_prev + fnr[:, 1:] + fnr_prev) / 2.0
    return 0.5 * area.sum(axis=1)


class _Resampler:
    """Metrics of resamples of one (ID, OOD) pair, the distinct-value grouping computed once.

    AUTC uses the normalisation (:func:`autc_scale`) of the full pooled sample, so every resample shares one
    θ scale; for scores already in [0, 1] that is the identity and each resample equals :func:`ood_metrics`.
    """

    def __init__(self, s_id: np.ndarray, s_ood: np.ndarray):
        n_id = s_id.size
        pooled = np.concatenate([s_id, s_ood])
        values, inv = np.unique(pooled, return_inverse=True)
        self.n_values = values.size
        self.group_id, self.group_ood = inv[:n_id], inv[n_id:]
        scaled = autc_scale(pooled)
        self.theta = np.unique(np.concatenate([scaled, [0.0, 1.0]]))
        node = np.searchsorted(self.theta, scaled)
        self.node_id, self.node_ood = node[:n_id], node[n_id:]

    def __call__(self, idx_id: np.ndarray, idx_ood: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics [B] of the resamples ``s_id[idx_id[b]]`` vs ``s_ood[idx_ood[b]]`` for b < B."""
        w0 = _batched_bincount(self.group_id[idx_id], self.n_values)
        w1 = _batched_bincount(self.group_ood[idx_ood], self.n_values)
        out = _rank_metrics_weighted(w0, w1)
        w0t = _batched_bincount(self.node_id[idx_id], self.theta.size)
        w1t = _batched_bincount(self.node_ood[idx_ood], self.theta.size)
        out["autc"] = _autc_weighted(self.theta, w0t, w1t)
        return out


def bootstrap_ci(
    scores_id: Any,
    scores_ood: Any,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap (1 − alpha) confidence intervals of every metric in :data:`METRIC_NAMES`.

    Each resample draws ``len(scores_id)`` ID scores and ``len(scores_ood)`` OOD scores with replacement,
    independently per side; the interval is the (alpha/2, 1 − alpha/2) quantile pair of the ``n_boot``
    resampled values. Resamples are evaluated in batches (no per-resample sort); results are deterministic
    for a given ``seed``. AUTC normalisation, when scores leave [0, 1], is fixed from the full sample.

    Returns:
        ``{metric: (lo, hi)}`` as Python floats.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}.")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r} (0.05 gives a 95% interval).")
    s_id = _to_numpy(scores_id, "scores_id")
    s_ood = _to_numpy(scores_ood, "scores_ood")
    rng = np.random.default_rng(seed)
    n = s_id.size + s_ood.size
    chunk = max(1, 2_000_000 // (3 * n + 2))  # bounds memory at a few tens of MB per batch
    resampler = _Resampler(s_id, s_ood)
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx_id = rng.integers(0, s_id.size, size=(b, s_id.size))
        idx_ood = rng.integers(0, s_ood.size, size=(b, s_ood.size))
        parts.append(resampler(idx_id, idx_ood))
    q = [alpha / 2.0, 1.0 - alpha / 2.0]
    result = {}
    for name in METRIC_NAMES:
        lo, hi = np.quantile(np.concatenate([p[name] for p in parts]), q)
        result[name] = (float(lo), float(hi))
    return result
