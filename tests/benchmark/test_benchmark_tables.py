"""Benchmark tables from synthetic run folders: for_each over a hyper-parameter, per-dataset published columns
(ADBench names, class groups, the mean over paired datasets) and the transposed layout."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO


def _bench(tmp_path, entries, **top):
    from genood.benchmark import load_benchmark

    p = tmp_path / "b.yaml"
    p.write_text(yaml.safe_dump({"seeds": [0, 1], "entries": entries, **top}, sort_keys=False))
    return load_benchmark(p)


def _fill(cells, auroc):
    """Write a results.json for every cell: ``auroc(cell) -> {scorer: value}`` on the task's one OOD set."""
    for c in cells:
        task = c.entry.values.get("dataset", "wdbc")
        c.run_dir.mkdir(parents=True)
        rows = [{"scorer": s, "ood_set": "anomalies", "group": "far", "auroc": v} for s, v in auroc(c).items()]
        (c.run_dir / "results.json").write_text(json.dumps({"metadata": {
            "sets": {task: {"group": "id"}, "anomalies": {"group": "far"}}}, "rows": rows}))


def test_for_each_over_a_hyper_parameter_gives_one_row_per_value(tmp_path, monkeypatch):
    """Both lr cells land in the table, each in its own row labelled with its value (a placeholder in the label
    is filled in; a label without one gets the value appended); neither row is 'partial'."""
    from genood.benchmark.render import markdown
    from genood.benchmark.table import build_tables, collect

    monkeypatch.chdir(REPO)
    b = _bench(tmp_path, [
        {"name": "dte", "config": "configs/dte/wdbc.yaml", "for_each": {"model.init_args.lr": [0.001, 0.003]},
         "rows": {"dte_c": "DTE-C lr={lr}", "dte_np": "DTE-NP"}}])
    cells = b.cells(tmp_path / "out")
    _fill(cells, lambda c: {"dte_c": c.entry.values["lr"] * 100 + c.seed / 100, "dte_np": 0.9})
    (t,) = build_tables(b, collect(cells), "auroc")
    rows = {r.label: r.values[("wdbc", "anomalies")] for r in t.rows}
    assert sorted(rows) == ["DTE-C lr=0.001", "DTE-C lr=0.003", "DTE-NP (lr=0.001)", "DTE-NP (lr=0.003)"]
    low = rows["DTE-C lr=0.001"]
    assert low.seeds == [0, 1] and low.mean == pytest.approx(0.1 + 0.005) and low.expected == 2
    assert rows["DTE-C lr=0.003"].mean == pytest.approx(0.3 + 0.005)
    md = markdown(b, [t], collect(cells))
    assert "/2 seeds)" not in md and "{lr}" not in md


PAPER = {"source": "a test table", "metric": "auroc", "scale": 100, "groups": {"CIFAR10": 10, "MVTec-AD": 2},
         "tables": {"semi": {"methods": ["KNN", "Other"],
                             "rows": {"vowels": [[80.0, 0.0], [1.0, 0.0]], "wdbc": [[90.0, 1.0], [2.0, 0.0]],
                                      "CIFAR10": [[70.0, 0.5], [3.0, 0.0]], "MVTec-AD": [[60.0, 1.0], [4.0, 0.0]]}}}}
DATASETS = ["40_vowels", "43_WDBC", "99_unpublished", "CIFAR10_0", "CIFAR10_4", "MVTec-AD_bottle",
            "MVTec-AD_metal_nut"]


def test_per_dataset_paper_columns_groups_and_the_paired_mean(tmp_path, monkeypatch):
    from genood.benchmark.render import markdown
    from genood.benchmark.spec import dataset_key
    from genood.benchmark.table import GROUP_SET, PAIRED_SET, build_tables, collect

    monkeypatch.chdir(tmp_path)
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(PAPER))
    (tmp_path / "c.yaml").write_text((REPO / "configs/dte/wdbc.yaml").read_text())
    b = _bench(tmp_path, [{"name": "knn", "config": "c.yaml", "for_each": {"data.init_args.dataset": DATASETS},
                           "rows": {"knn": {"label": "KNN", "paper_ref": "dte/semi/KNN"}}}],
               papers={"dte": "paper.yaml"}, transpose=True)
    ours = {d: 0.5 + i / 20 for i, d in enumerate(DATASETS)}
    cells = b.cells(tmp_path / "out")
    _fill(cells, lambda c: {"knn": ours[c.entry.values["dataset"]] + (0.01 if c.seed else -0.01)})
    (t,) = build_tables(b, collect(cells), "auroc")
    (row,) = t.rows
    v = row.values
    assert dataset_key("43_WDBC") == "wdbc" and dataset_key("22_magic.gamma") == "magic.gamma"
    assert v[("40_vowels", "anomalies")].paper == pytest.approx(0.80)
    assert v[("43_WDBC", "anomalies")].paper == pytest.approx(0.90)
    assert v[("99_unpublished", "anomalies")].paper is None
    assert v[("CIFAR10_0", "anomalies")].paper is None          # class files pair only through their group
    cifar, mvtec = v[("CIFAR10", GROUP_SET)], v[("MVTec-AD", GROUP_SET)]
    assert cifar.mean == pytest.approx((ours["CIFAR10_0"] + ours["CIFAR10_4"]) / 2) and cifar.paper is None  # 2/10
    assert mvtec.mean == pytest.approx((ours["MVTec-AD_bottle"] + ours["MVTec-AD_metal_nut"]) / 2)
    assert mvtec.paper == pytest.approx(0.60)                    # every class file ran (metal_nut too)
    paired = v[("", PAIRED_SET)]
    assert paired.count == 3                                      # vowels, WDBC, MVTec-AD
    expect = (ours["40_vowels"] + ours["43_WDBC"] + mvtec.mean) / 3
    assert paired.mean == pytest.approx(expect) and paired.paper == pytest.approx((0.8 + 0.9 + 0.6) / 3)
    assert paired.per_seed[0] == pytest.approx(expect - 0.01)
    labels = [c.label for c in t.columns]
    assert "CIFAR10 (mean of 2/10 class files)" in labels and "MVTec-AD (mean of 2/2 class files)" in labels
    md = markdown(b, [t], collect(cells))
    assert "| dataset | KNN | paper | Δ |" in md
    assert "| 40_vowels | 50.0 ± 1.0 | 80 | −30.0 |" in md
    assert "(3 sets)" in md and "a test table: KNN" in md
    # agreement over the paired columns: |Δ| = 30.0 (vowels), 35.0 (WDBC), 17.5 (MVTec-AD group)
    assert "| KNN | 3 | 27.50 | 0 | 0 | 35.0 (43_WDBC) |" in md
    (one,) = build_tables(b, collect([c for c in cells if c.entry.values["dataset"] == "43_WDBC"]), "auroc")
    assert one.columns[0].label == "43_WDBC"  # one dataset's table still names the dataset, not its set


def test_bad_paper_references_fail_with_a_clear_message(tmp_path, monkeypatch):
    from genood.benchmark.spec import BenchmarkSpecError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(PAPER))
    (tmp_path / "c.yaml").write_text("{}")
    entry = {"name": "knn", "config": "c.yaml", "rows": {"knn": {"label": "KNN", "paper_ref": "dte/semi/LOF"}}}
    with pytest.raises(BenchmarkSpecError, match=r"no method 'LOF'; the file has \['KNN', 'Other'\]"):
        _bench(tmp_path, [entry], papers={"dte": "paper.yaml"})
    entry["rows"]["knn"]["paper_ref"] = "nope/semi/KNN"
    with pytest.raises(BenchmarkSpecError, match="no paper 'nope'"):
        _bench(tmp_path, [entry], papers={"dte": "paper.yaml"})
    with pytest.raises(BenchmarkSpecError, match="does not exist"):
        _bench(tmp_path, [entry], papers={"dte": "missing.yaml"})


def test_shipped_paper_file_matches_the_published_means():
    """The transcription of DTE's README tables reproduces the means over 57 datasets printed in the paper's
    summary (semi: DTE-NP 81.49, DTE-C 80.37, DDPM 77.92, KNN 80.86; unsupervised: MCD 74.80)."""
    import numpy as np

    data = yaml.safe_load((REPO / "experiments/benchmarks/papers/dte_adbench.yaml").read_text())
    for table, method, mean in [("semi", "DTE-NP", 81.49), ("semi", "DTE-C", 80.37), ("semi", "DDPM", 77.92),
                                ("semi", "KNN", 80.86), ("unsupervised", "MCD", 74.80)]:
        t = data["tables"][table]
        j = t["methods"].index(method)
        assert len(t["rows"]) == 57
        assert np.mean([v[j][0] for v in t["rows"].values()]) == pytest.approx(mean, abs=0.005)


def test_only_selects_cells_by_run_folder_name_with_their_sources(tmp_path, monkeypatch):
    from genood.benchmark.__main__ import select_cells

    monkeypatch.chdir(REPO)
    b = _bench(tmp_path, [
        {"name": "ddpm", "config": "configs/dte/ddpm_wdbc.yaml", "for_each": {"data.init_args.dataset": ["wdbc", "wine"]}},
        {"name": "ddpm_mean", "from": "ddpm"},
        {"name": "peers", "config": "configs/dte/wdbc.yaml", "for_each": {"data.init_args.dataset": ["wdbc", "wine"]}}])
    cells = b.cells(tmp_path / "out")
    picked = select_cells(cells, ["ddpm_mean-wine"])
    assert [(c.entry.name, c.seed) for c in picked] == [("ddpm[wine]", 0), ("ddpm[wine]", 1),
                                                        ("ddpm_mean[wine]", 0), ("ddpm_mean[wine]", 1)]
    assert len(select_cells(cells, ["peers*", "ddpm-wdbc"])) == 6 and select_cells(cells, []) == cells


def test_rows_no_cell_has_fed_are_named_once_below_the_table(tmp_path, monkeypatch):
    """A grid run in parts: the markdown table keeps the rows with a finished or failed cell and names the
    rows of entries that have not run yet in one line, instead of a row of 'not run' per method."""
    from genood.benchmark.render import markdown
    from genood.benchmark.runner import record_failure
    from genood.benchmark.table import build_tables, collect

    monkeypatch.chdir(REPO)
    b = _bench(tmp_path, [
        {"name": "done", "config": "configs/dte/wdbc.yaml", "rows": {"dte_np": "DTE-NP"}},
        {"name": "broken", "config": "configs/dte/wdbc.yaml", "overrides": {"trainer.max_epochs": 3},
         "rows": {"dte_c": "DTE-C"}},
        {"name": "later", "config": "configs/dte/wdbc.yaml", "overrides": {"trainer.max_epochs": 2},
         "rows": {"dte_ig": "DTE-IG"}}])
    cells = b.cells(tmp_path / "out")
    _fill([c for c in cells if c.entry.name == "done"], lambda c: {"dte_np": 0.9})
    for c in (c for c in cells if c.entry.name == "broken"):
        record_failure(c, "boom")
    results = collect(cells)
    (t,) = build_tables(b, results, "auroc")
    assert [r.label for r in t.rows] == ["DTE-NP", "DTE-C", "DTE-IG"]  # the table itself keeps every row
    md = markdown(b, [t], results)
    table_rows = [ln.split("|")[1].strip() for ln in md.splitlines() if ln.startswith("| ")]
    assert "DTE-NP" in table_rows and "DTE-C" in table_rows and "DTE-IG" not in table_rows
    assert "Not run yet (no finished cell): DTE-IG." in md
    (t,) = build_tables(b, [r for r in results if r.cell.entry.name == "later"], "auroc")
    nothing = markdown(b, [t], [])
    assert "| dataset" not in nothing and "| method" not in nothing and "Not run yet (no finished cell): DTE-IG." in nothing
