"""genood.evaluation.metrics against scikit-learn, brute-force definitions and the AUTC reference values."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from genood.evaluation.metrics import (
    METRIC_DIRECTIONS,
    METRIC_NAMES,
    _Resampler,
    bootstrap_ci,
    ood_metrics,
)


def _random_case(rng, kind):
    """(id, ood) scores: continuous, heavy ties (small integers), or imbalanced, with a random shift."""
    n_id, n_ood = rng.integers(1, 60, size=2)
    if kind == "imbalanced":
        n_id, n_ood = (int(rng.integers(100, 300)), int(rng.integers(1, 8)))[:: rng.choice([1, -1])]
    shift = rng.normal(0, 1.5)
    if kind == "ties":
        return rng.integers(0, 4, n_id).astype(float), rng.integers(0, 4, n_ood) + np.round(shift)
    return rng.normal(0, 1, n_id), rng.normal(shift, 1, n_ood)


def _cases(seed, n_each=40):
    rng = np.random.default_rng(seed)
    return [_random_case(rng, kind) for kind in ("continuous", "ties", "imbalanced") for _ in range(n_each)]


def _fpr_at_tpr_brute(pos, neg, level):
    """min over thresholds t of P(neg ≥ t) subject to P(pos ≥ t) ≥ level (positive flagged iff score ≥ t)."""
    best = 1.0
    for t in np.concatenate([pos, neg]):
        if (pos >= t).mean() >= level:
            best = min(best, (neg >= t).mean())
    return best


def _autc_reference_style(s_id, s_ood):
    """AUTC as glhr/beyond-AUROC integrates it (per-sample thresholds + end points); tie-free (0, 1) scores."""
    s = np.concatenate([s_id, s_ood])
    y = np.r_[np.zeros(s_id.size), np.ones(s_ood.size)]
    order = np.argsort(-s, kind="stable")
    thr = np.r_[1.0, s[order]]
    fpr = np.r_[0.0, np.cumsum(1 - y[order])] / s_id.size
    fnr = 1 - np.r_[0.0, np.cumsum(y[order])] / s_ood.size
    thr, fpr, fnr = np.r_[0.0, thr[::-1]], np.r_[1.0, fpr[::-1]], np.r_[0.0, fnr[::-1]]
    return 0.5 * (np.trapezoid(fnr, thr) + np.trapezoid(fpr, thr))


def _autc_brute_distinct(s_id, s_ood):
    """AUTC with one node per distinct value ∪ {0, 1}, FPR/FNR counted directly (scores in [0, 1])."""
    nodes = np.unique(np.r_[s_id, s_ood, 0.0, 1.0])
    fpr = np.array([(s_id >= t).mean() for t in nodes])
    fnr = np.array([(s_ood < t).mean() for t in nodes])
    return 0.5 * (np.trapezoid(fnr, nodes) + np.trapezoid(fpr, nodes))


def test_names_and_directions():
    m = ood_metrics(np.array([0.1, 0.3]), np.array([0.2, 0.9]))
    assert tuple(m) == METRIC_NAMES
    assert set(METRIC_DIRECTIONS) == set(METRIC_NAMES)
    assert {METRIC_DIRECTIONS[k] for k in ("fpr95", "fpr80", "autc")} == {"lower"}
    assert all(isinstance(v, float) for v in m.values())


def test_matches_sklearn_on_random_cases_with_ties_and_imbalance():
    for s_id, s_ood in _cases(seed=1):
        s = np.r_[s_id, s_ood]
        y = np.r_[np.zeros(s_id.size), np.ones(s_ood.size)]
        m = ood_metrics(s_id, s_ood)
        if 0 < y.sum() < y.size:
            assert m["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
            # Ties count one half (Mann-Whitney form), independent of sklearn.
            diff = s_ood[:, None] - s_id[None, :]
            assert m["auroc"] == pytest.approx(np.mean(diff > 0) + 0.5 * np.mean(diff == 0), abs=1e-12)
        assert m["aupr_out"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert m["aupr_in"] == pytest.approx(average_precision_score(1 - y, -s), abs=1e-12)
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        assert m["fpr80"] == pytest.approx(fpr[np.argmax(tpr >= 0.8)], abs=1e-12)
        assert m["fpr80"] == pytest.approx(_fpr_at_tpr_brute(s_ood, s_id, 0.8), abs=1e-12)


def test_fpr95_matches_brute_force_definition():
    for s_id, s_ood in _cases(seed=2, n_each=25):
        # Accept as ID iff s ≤ t; smallest t keeping ≥ 95% of ID; fraction of OOD kept there.
        t_star = min(t for t in np.unique(s_id) if (s_id <= t).mean() >= 0.95)
        expected = (s_ood <= t_star).mean()
        assert ood_metrics(s_id, s_ood)["fpr95"] == pytest.approx(expected, abs=1e-12)
        assert expected == pytest.approx(_fpr_at_tpr_brute(-s_id, -s_ood, 0.95), abs=1e-12)


def test_fpr95_hand_case_with_ties():
    # 20 ID scores: 19 at 0.0 and one at 5.0 -> t* = 0.0 (19/20 = 95% kept). OOD tied at 0.0 are kept too.
    s_id = np.r_[np.zeros(19), 5.0]
    s_ood = np.array([0.0, 0.0, 1.0, 2.0])
    assert ood_metrics(s_id, s_ood)["fpr95"] == pytest.approx(0.5)
    # With 18 at 0.0 the threshold must move up to 5.0, keeping every OOD score.
    assert ood_metrics(np.r_[np.zeros(18), 5.0, 5.0], s_ood)["fpr95"] == pytest.approx(1.0)


def test_perfect_and_reversed_separation():
    rng = np.random.default_rng(3)
    s_id, s_ood = rng.uniform(0, 0.4, 50), rng.uniform(0.6, 1.0, 30)
    m = ood_metrics(s_id, s_ood)
    got = [m[k] for k in ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr80")]
    assert got == pytest.approx([1.0, 1.0, 1.0, 0.0, 0.0], abs=1e-12)
    r = ood_metrics(s_ood, s_id)  # wrong direction: every OOD looks more ID than any ID
    assert r["auroc"] == 0.0 and r["fpr95"] == 1.0 and r["fpr80"] == 1.0
    assert r["autc"] > m["autc"]


def test_autc_reference_values():
    assert ood_metrics(np.array([0.2, 0.4]), np.array([0.6, 0.8]))["autc"] == pytest.approx(0.30, abs=1e-12)
    rng = np.random.default_rng(4)
    random_autc = ood_metrics(rng.uniform(size=20000), rng.uniform(size=20000))["autc"]
    assert random_autc == pytest.approx(0.497, abs=0.01)


def test_autc_matches_reference_integration_on_tie_free_scores():
    rng = np.random.default_rng(5)
    for _ in range(30):
        n_id, n_ood = rng.integers(1, 80, size=2)
        s_id, s_ood = rng.beta(2, 3, n_id), rng.beta(3, 2, n_ood)  # in (0, 1), no ties a.s.
        assert ood_metrics(s_id, s_ood)["autc"] == pytest.approx(_autc_reference_style(s_id, s_ood), abs=1e-12)


def test_autc_ties_one_node_per_distinct_value():
    rng = np.random.default_rng(6)
    for _ in range(30):
        s_id = rng.integers(0, 11, rng.integers(1, 40)) / 10  # values 0, 0.1, ..., 1 (end points included)
        s_ood = rng.integers(3, 11, rng.integers(1, 40)) / 10
        assert ood_metrics(s_id, s_ood)["autc"] == pytest.approx(_autc_brute_distinct(s_id, s_ood), abs=1e-12)


def test_autc_normalises_out_of_range_scores():
    rng = np.random.default_rng(7)
    s_id, s_ood = rng.normal(-3, 2, 40), rng.normal(4, 3, 25)
    lo, hi = min(s_id.min(), s_ood.min()), max(s_id.max(), s_ood.max())
    n_id, n_ood = (s_id - lo) / (hi - lo), (s_ood - lo) / (hi - lo)
    pre = ood_metrics(n_id, n_ood)
    raw = ood_metrics(s_id, s_ood)
    assert raw["autc"] == pytest.approx(pre["autc"], abs=1e-12)
    # In-range scores are not rescaled: shrinking them towards 0.5 changes AUTC but not AUROC.
    squeezed = ood_metrics(0.5 + 0.1 * n_id, 0.5 + 0.1 * n_ood)
    assert squeezed["autc"] != pytest.approx(pre["autc"], abs=1e-3)
    assert squeezed["auroc"] == pytest.approx(pre["auroc"], abs=1e-12)
    # Constant out-of-range scores: AUTC 0.5 (same as any constant inside [0, 1]).
    assert ood_metrics(np.full(3, 7.0), np.full(4, 7.0))["autc"] == pytest.approx(0.5)
    assert ood_metrics(np.full(3, 0.2), np.full(4, 0.2))["autc"] == pytest.approx(0.5)


@pytest.mark.parametrize("side", ["scores_id", "scores_ood"])
def test_bad_inputs_raise(side):
    good = np.array([0.1, 0.2, 0.3])

    def call(bad):
        return ood_metrics(bad, good) if side == "scores_id" else ood_metrics(good, bad)

    with pytest.raises(ValueError, match=rf"{side} has 2 non-finite.*2 NaN"):
        call(np.array([0.1, np.nan, np.nan, 0.5]))
    with pytest.raises(ValueError, match=rf"{side} has 1 non-finite.*1 ±inf"):
        call(torch.tensor([0.1, float("inf")]))
    with pytest.raises(ValueError, match=rf"{side} is empty"):
        call(np.array([]))
    with pytest.raises(ValueError, match=rf"{side} must be 1-D"):
        call(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=rf"{side} is empty"):
        bootstrap_ci(*((np.array([]), good) if side == "scores_id" else (good, np.array([]))), n_boot=5)


def test_tensor_and_numpy_inputs_agree():
    rng = np.random.default_rng(8)
    s_id = rng.normal(0, 1, 37).astype(np.float32)
    s_ood = np.round(rng.normal(1, 1, 23), 1).astype(np.float32)
    ref = ood_metrics(s_id, s_ood)
    assert ood_metrics(torch.from_numpy(s_id), torch.from_numpy(s_ood)) == ref
    assert ood_metrics(torch.from_numpy(s_id).requires_grad_(), s_ood.tolist()) == ref
    assert ood_metrics(s_id.astype(np.float64), torch.from_numpy(s_ood).double()) == ref


def _check_replicates(s_id, s_ood, rng, autc_map):
    idx_id = rng.integers(0, s_id.size, size=(25, s_id.size))
    idx_ood = rng.integers(0, s_ood.size, size=(25, s_ood.size))
    reps = _Resampler(s_id, s_ood)(idx_id, idx_ood)
    for b in range(25):
        direct = ood_metrics(s_id[idx_id[b]], s_ood[idx_ood[b]])
        for name in METRIC_NAMES[:-1]:
            assert reps[name][b] == pytest.approx(direct[name], abs=1e-12), name
        autc = ood_metrics(autc_map(s_id[idx_id[b]]), autc_map(s_ood[idx_ood[b]]))["autc"]
        assert reps["autc"][b] == pytest.approx(autc, abs=1e-12)


def test_bootstrap_replicates_equal_ood_metrics_on_each_resample():
    rng = np.random.default_rng(9)
    # In [0, 1] with heavy ties, end points included: each resample equals ood_metrics exactly.
    _check_replicates(rng.integers(0, 11, 30) / 10, rng.integers(2, 11, 17) / 10, rng, lambda x: x)
    _check_replicates(rng.uniform(0, 0.7, 40), rng.uniform(0.3, 1, 9), rng, lambda x: x)
    # Out of range: AUTC uses the normalisation of the full sample.
    s_id, s_ood = rng.integers(-5, 5, 30).astype(float), rng.normal(3, 2, 20)
    lo, hi = min(s_id.min(), s_ood.min()), max(s_id.max(), s_ood.max())
    _check_replicates(s_id, s_ood, rng, lambda x: (x - lo) / (hi - lo))


def test_bootstrap_ci_properties():
    rng = np.random.default_rng(10)
    s_id, s_ood = rng.normal(0, 1, 300), rng.normal(1, 1, 200)
    point = ood_metrics(s_id, s_ood)
    ci = bootstrap_ci(s_id, s_ood, n_boot=400, seed=0)
    assert tuple(ci) == METRIC_NAMES
    for name, (lo, hi) in ci.items():
        assert lo < hi and lo <= point[name] <= hi, name
    # Width agrees with the Hanley-McNeil (1982) standard error of AUROC for these sample sizes.
    a, n0, n1 = point["auroc"], s_id.size, s_ood.size
    q1, q2 = a / (2 - a), 2 * a**2 / (1 + a)
    se = np.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a**2) + (n0 - 1) * (q2 - a**2)) / (n0 * n1))
    assert (ci["auroc"][1] - ci["auroc"][0]) / (2 * 1.96 * se) == pytest.approx(1.0, abs=0.2)
    assert bootstrap_ci(torch.from_numpy(s_id), s_ood, n_boot=400, seed=0) == ci
    assert bootstrap_ci(s_id, s_ood, n_boot=400, seed=1) != ci
    narrow = bootstrap_ci(s_id, s_ood, n_boot=400, alpha=0.5, seed=0)
    assert narrow["auroc"][1] - narrow["auroc"][0] < ci["auroc"][1] - ci["auroc"][0]
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(s_id, s_ood, n_boot=0)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(s_id, s_ood, alpha=1.5)
