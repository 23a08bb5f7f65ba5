"""python -m genood.benchmark end to end on tiny configs: 2 entries x 2 seeds plus one failing cell.

One benchmark run (module fixture) is checked for its files, its numbers against the cells' own
results.json, the failed cell, and the LaTeX; then re-invocations check skipping and re-running.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest
import yaml

from conftest import ADBENCH, REPO, needs_adbench

SEEDS = [0, 1]
SETS = ["heldout", "flipped", "black"]
COMMON = {"trainer.max_epochs": 1, "trainer.accelerator": "cpu", "evaluation.plots": False,
          "data.init_args.ood_sets": SETS}
GOOD = [
    {"name": "ppca", "config": str(REPO / "configs/baseline/digits.yaml"),
     "rows": {"nll": "PPCA NLL",
              "typicality": {"label": "PPCA typicality", "paper": {"auroc": {"black": 0.5}}, "source": "a test"}}},
    {"name": "peers", "config": [str(REPO / "configs/baseline/digits.yaml"), str(REPO / "configs/peers/overlay.yaml")],
     "rows": {"knn": "kNN", "ecod_inductive": "ECOD"}},
]
BAD = {"name": "bad", "config": str(REPO / "configs/baseline/digits.yaml"), "seeds": [0],
       "overrides": {"model.init_args.latent_dim": 0}}


def _write(path: Path, entries: list) -> Path:
    path.write_text(yaml.safe_dump({"name": "tiny", "seeds": SEEDS, "overrides": COMMON, "entries": entries}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from genood.benchmark.__main__ import main

    d = tmp_path_factory.mktemp("bench")
    good, mixed, out = _write(d / "good.yaml", GOOD), _write(d / "mixed.yaml", GOOD + [BAD]), d / "out"
    res = main(["--config", str(mixed), "--out", str(out), "--jobs", "2"])
    return {"good": good, "mixed": mixed, "out": out, "first": res, "main": main}


def _md_rows(md: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header and rows of the first markdown table: {method: [cells]}."""
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for ln in lines[1:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        if cells[0] == "entry":  # the cost table starts
            break
        rows[cells[0]] = cells[1:]
    return header[1:], rows


def _cells(out: Path) -> list[dict]:
    return json.loads((out / "cells.json").read_text())["cells"]


def test_writes_every_file_with_provenance_and_timings(bench):
    out = bench["out"]
    for name in ("table.md", "table.tex", "table.csv", "cells.json", "auroc.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    cells = _cells(out)
    assert len(cells) == 2 * 2 + 1
    good = [c for c in cells if c["entry"] != "bad"]
    assert all(c["status"] == "finished" for c in good)
    for c in good:
        run = out / c["run_dir"]
        assert (run / "results.json").is_file() and (run / "config.yaml").is_file()
        assert c["train_seconds"] is not None and c["scoring_seconds"] > 0 and c["samples_per_second"] > 0
        assert c["metadata"]["seed"] == c["seed"]
        assert {r["ood_set"] for r in c["rows"]} >= set(SETS)
    md = (out / "table.md").read_text()
    commit = good[0]["git_commit"]
    assert commit and commit[:10] in md  # the footer names the commit the cells came from


def test_table_equals_mean_and_std_of_the_cells_results(bench):
    from genood.evaluation.report import read_results

    out = bench["out"]
    header, rows = _md_rows((out / "table.md").read_text())
    runs = {(c["entry"], c["seed"]): read_results(out / c["run_dir"])["rows"] for c in _cells(out)
            if c["status"] == "finished"}

    def per_seed(entry, scorer, sets):
        return [statistics.fmean(next(r["auroc"] for r in runs[(entry, s)] if r["scorer"] == scorer and r["ood_set"] == o)
                                 for o in sets) for s in SEEDS]

    def fmt(vals):
        text = f"{100 * statistics.fmean(vals):.1f} ± {100 * statistics.pstdev(vals):.1f}"
        return text

    checked = 0
    for entry, scorer, label in [("ppca", "nll", "PPCA NLL"), ("ppca", "typicality", "PPCA typicality"),
                                 ("peers", "knn", "kNN"), ("peers", "ecod_inductive", "ECOD")]:
        for s in SETS:
            got = rows[label][header.index(s)].strip("*")
            assert got == fmt(per_seed(entry, scorer, [s])), (label, s, got)
            checked += 1
        got = rows[label][header.index("near mean")].strip("*")  # heldout and flipped are the near sets
        assert got == fmt(per_seed(entry, scorer, ["heldout", "flipped"])), (label, got)
    assert checked == 12
    # the paper column and the difference sit beside "black" for the row that has a published value
    i = header.index("black")
    assert header[i + 1:i + 3] == ["paper", "Δ"]
    ours = statistics.fmean(per_seed("ppca", "typicality", ["black"]))
    assert rows["PPCA typicality"][i + 1] == "50"
    assert float(rows["PPCA typicality"][i + 2].replace("−", "-")) == pytest.approx(100 * ours - 50, abs=0.051)
    assert rows["kNN"][i + 1] == "–"


def test_failed_cell_is_reported_and_others_complete(bench):
    out = bench["out"]
    bad = [c for c in _cells(out) if c["entry"] == "bad"]
    assert len(bad) == 1 and bad[0]["status"] == "failed"
    assert "latent_dim must be in [1, num_dims=64], got 0" in bad[0]["error"]
    md = (out / "table.md").read_text()
    header, rows = _md_rows(md)
    values = [v for h, v in zip(header, rows["bad"]) if h not in ("paper", "Δ")]
    assert values and all(v == "failed" for v in values)
    assert "latent_dim must be in [1, num_dims=64], got 0" in md
    assert sum(o.status == "finished" for o in bench["first"]["outcomes"]) == 4


def test_latex_is_well_formed_with_the_best_of_each_column_in_bold(bench):
    out = bench["out"]
    tex = (out / "table.tex").read_text()
    body = re.sub(r"\\[{}]", "", tex)  # escaped braces are text
    depth = 0
    for ch in body:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") == 1
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 1
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == 1
    rows = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    _, md_rows = _md_rows((out / "table.md").read_text())
    assert len(rows) == len(md_rows) == 5  # one row per table row (4 labels + the failed entry)
    ncols = int(len(re.search(r"\\begin\{tabular\}\{(lc*)\}", tex).group(1)) - 1)
    cells = [[c.strip() for c in r.rstrip("\\ ").split("&")] for r in rows]
    assert all(len(c) == ncols + 1 for c in cells)
    header = [c.strip() for c in tex.split("\\toprule")[1].split("\\midrule")[0].strip().rstrip("\\ ").split("&")]
    for j, name in enumerate(header[1:], start=1):
        if name in ("paper", "$\\Delta$"):
            assert not any("textbf" in r[j] for r in cells)
            continue
        means = {i: float(re.search(r"(\d+\.\d)", r[j]).group(1)) for i, r in enumerate(cells) if re.search(r"\d", r[j])}
        best = max(means.values())
        for i, m in means.items():
            assert ("\\textbf{" in cells[i][j]) == (m == best), (name, cells[i][j], best)


def test_failed_cells_are_run_again_but_finished_ones_not(bench):
    from genood.benchmark import load_benchmark
    from genood.benchmark.runner import cells_to_run

    b = load_benchmark(bench["mixed"])
    todo = cells_to_run(b.cells(bench["out"]))
    assert [(c.entry.name, c.seed) for c in todo] == [("bad", 0)]


def test_second_invocation_runs_nothing_and_a_deleted_cell_runs_alone(bench):
    out, main = bench["out"], bench["main"]
    finished = {c["key"]: out / c["run_dir"] / "results.json" for c in _cells(out) if c["status"] == "finished"}
    stamps = {k: p.stat().st_mtime_ns for k, p in finished.items()}
    again = main(["--config", str(bench["good"]), "--out", str(out), "--jobs", "2"])
    assert again["outcomes"] == []
    assert {k: p.stat().st_mtime_ns for k, p in finished.items()} == stamps

    victim = next(c for c in _cells(out) if c["entry"] == "ppca" and c["seed"] == 1)
    (out / victim["run_dir"] / "results.json").unlink()
    third = main(["--config", str(bench["good"]), "--out", str(out), "--jobs", "2"])
    assert [(o.cell.entry.name, o.cell.seed, o.status) for o in third["outcomes"]] == [("ppca", 1, "finished")]
    assert (out / victim["run_dir"] / "results.json").is_file()
    assert all(p.stat().st_mtime_ns == stamps[k] for k, p in finished.items() if k != victim["key"])


def test_dry_run_lists_only_the_selected_cells_and_marks_the_finished_ones(bench, capsys):
    out, main = bench["out"], bench["main"]
    before = {c["key"]: c["status"] for c in _cells(out)}
    res = main(["--config", str(bench["mixed"]), "--out", str(out), "--only", "bad*", "--dry-run"])
    assert [(c.entry.name, c.seed) for c in res["cells"]] == [("bad", 0)]
    printed = capsys.readouterr().out
    assert "bad" in printed and "ppca" not in printed and "1 cell(s), 0 finished, 1 to run" in printed
    res = main(["--config", str(bench["mixed"]), "--out", str(out), "--only", "ppca*", "--dry-run"])
    printed = capsys.readouterr().out
    assert len(res["cells"]) == len(SEEDS) and printed.count("(finished: skipped)") == len(SEEDS)
    assert {c["key"]: c["status"] for c in _cells(out)} == before  # nothing ran


def _md_values(md: str) -> dict[str, list[str]]:
    """The first table's rows with the per-cell numbers only (the footer's run folders and timings differ)."""
    return _md_rows(md)[1]


def test_a_record_stands_in_for_run_folders_on_another_machine(bench, tmp_path):
    """A results record (``--record``: the finished cells of a cells.json) is tabulated like the run folders it
    came from, runs nothing, and is written back without local paths; a cell it lacks still runs."""
    out, main = bench["out"], bench["main"]
    main(["--config", str(bench["good"]), "--out", str(out), "--no-run"])  # the table of these entries only
    record = tmp_path / "record.json"
    record.write_text((out / "cells.json").read_text())  # another machine's cells.json as the record
    elsewhere = tmp_path / "elsewhere"
    res = main(["--config", str(bench["good"]), "--out", str(elsewhere), "--record", str(record)])
    assert res["outcomes"] == [] and not (elsewhere / "runs").exists()
    assert _md_values((elsewhere / "table.md").read_text()) == _md_values((out / "table.md").read_text())
    finished = [c for c in _cells(out) if c["status"] == "finished" and c["entry"] != "bad"]
    written = json.loads(record.read_text())["cells"]
    assert sorted(c["record_key"] for c in written) == sorted(c["record_key"] for c in finished)
    assert all("run_dir" not in c and c["rows"] and c["command"] for c in written)
    assert all(c["recorded_in"] == str(record) for c in _cells(elsewhere) if c["status"] == "finished")

    data = json.loads(record.read_text())  # drop one cell: it alone runs, and the record gains it back
    victim = next(c for c in data["cells"] if c["entry"] == "ppca" and c["seed"] == 1)
    data["cells"] = [c for c in data["cells"] if c is not victim]
    record.write_text(json.dumps(data))
    again = main(["--config", str(bench["good"]), "--out", str(elsewhere), "--record", str(record)])
    assert [(o.cell.entry.name, o.cell.seed, o.status) for o in again["outcomes"]] == [("ppca", 1, "finished")]
    assert victim["record_key"] in {c["record_key"] for c in json.loads(record.read_text())["cells"]}
    # a record of other seeds is kept as it was when this invocation lists fewer seeds
    main(["--config", str(bench["good"]), "--out", str(elsewhere), "--record", str(record), "--seeds", "0", "--no-run"])
    assert len(json.loads(record.read_text())["cells"]) == len(finished)


def test_a_corrupt_record_stops_with_a_clear_message(bench, tmp_path):
    bad = tmp_path / "record.json"
    bad.write_text('{"benchmark": "tiny"}')
    with pytest.raises(SystemExit, match="is not a results record"):
        bench["main"](["--config", str(bench["good"]), "--out", str(tmp_path / "o"), "--record", str(bad), "--no-run"])
    with pytest.raises(SystemExit, match="no such file"):  # a second record is only read: it must exist
        bench["main"](["--config", str(bench["good"]), "--out", str(tmp_path / "o"), "--record", str(tmp_path / "new.json"),
                       "--record", str(tmp_path / "typo.json"), "--no-run"])
    assert not (tmp_path / "new.json").exists()


def test_wandb_gets_the_tables_and_heatmap_offline(bench, monkeypatch):
    out = bench["out"]
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    res = bench["main"](["--config", str(bench["good"]), "--out", str(out), "--no-run", "--wandb"])
    assert res["outcomes"] == []
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].rglob("*.table.json")) and list(runs[0].rglob("*.png"))


# ---- the benchmark file: expansion, keys, errors (no runs) ---------------------------------------------

def _spec(tmp_path, entries, **top):
    from genood.benchmark import load_benchmark

    p = tmp_path / "b.yaml"
    p.write_text(yaml.safe_dump({"seeds": [0, 1], "entries": entries, **top}, sort_keys=False))
    return load_benchmark(p)


def test_for_each_and_from_expand_with_stable_keys(tmp_path):
    cfg = str(REPO / "configs/dte/ddpm_wdbc.yaml")
    entries = [{"name": "ddpm", "config": cfg, "for_each": {"data.init_args.dataset": ["wdbc", "wine"]}},
               {"name": "released", "from": "ddpm", "overrides": {"model.init_args.recon_variant": "mean_only"}}]
    b = _spec(tmp_path, entries)
    cells = b.cells(tmp_path / "out")
    assert [c.name for c in cells] == [f"{e}[{d}] seed {s}" for e in ("ddpm", "released") for d in ("wdbc", "wine")
                                       for s in (0, 1)]
    assert len({c.key for c in cells}) == 8
    released = [c for c in cells if c.entry.base == "released"]
    assert all(c.source.entry.values == c.entry.values and c.source.seed == c.seed for c in released)
    argv = released[0].argv(b.seed_keys)
    assert argv[1:4] == ["-m", "genood.evaluate", "--ckpt_path"] and argv[4].endswith("last.ckpt")
    assert "--data.init_args.dataset=wine" in cells[2].argv(b.seed_keys)
    assert "--seed_everything=1" in cells[1].argv(b.seed_keys) and "--data.init_args.seed=1" in cells[1].argv(b.seed_keys)
    again = _spec(tmp_path, entries).cells(tmp_path / "out")
    assert [c.key for c in again] == [c.key for c in cells]  # the key is a function of the file, not of time
    entries[0]["overrides"] = {"trainer.max_epochs": 5}  # a changed source changes its dependants too
    changed = _spec(tmp_path, entries).cells(tmp_path / "out")
    assert all(a.key != c.key for a, c in zip(changed, cells))
    entries[0]["seed_keys"] = ["seed_everything", "model.init_args.recon_seed"]  # an entry's own seed keys
    own = _spec(tmp_path, entries).cells(tmp_path / "out")
    assert "--model.init_args.recon_seed=1" in own[1].argv(b.seed_keys)
    assert "--data.init_args.seed=1" not in own[1].argv(b.seed_keys)
    assert own[0].key != changed[0].key


def test_record_keys_leave_out_the_data_folder_but_run_keys_do_not(tmp_path):
    """The same cell with its data in another folder (``--param``) runs into another run folder but matches the
    same record; a cell that re-scores a recorded checkpoint that is not here makes its source run again."""
    from genood.benchmark import load_benchmark
    from genood.benchmark.runner import cells_to_run

    cfg = str(REPO / "configs/dte/ddpm_wdbc.yaml")
    p = tmp_path / "b.yaml"
    p.write_text(yaml.safe_dump({"seeds": [0], "params": {"root": "data/x"}, "overrides": {"data.init_args.root": "{root}"},
                                 "entries": [{"name": "ddpm", "config": cfg,
                                              "for_each": {"data.init_args.dataset": ["wdbc", "wine"]}},
                                             {"name": "released", "from": "ddpm",
                                              "overrides": {"model.init_args.recon_variant": "mean_only"}}]}))
    here, there = (load_benchmark(p, {"root": r}).cells(tmp_path / "out") for r in ("/a/adbench", "/b/adbench"))
    assert "--data.init_args.root=/a/adbench" in here[0].argv(("seed_everything",))
    assert all(a.key != b.key for a, b in zip(here, there))
    assert [a.record_key for a in here] == [b.record_key for b in there]
    assert len({c.record_key for c in here}) == 4
    other = load_benchmark(p, {"root": "/a/adbench"})  # what is computed still changes the record key
    other.entries[0].portable_overrides = other.entries[0].portable_overrides + ["--trainer.max_epochs=5"]
    assert other.cells(tmp_path / "out")[0].record_key != here[0].record_key

    recorded = {c.record_key for c in here if c.name != "released[wine] seed 0"}
    assert [c.name for c in cells_to_run(here, recorded)] == ["ddpm[wine] seed 0", "released[wine] seed 0"]
    assert cells_to_run(here, {c.record_key for c in here}) == []


@pytest.mark.parametrize("entries,top,message", [
    ([{"name": "a", "config": "nope.yaml"}], {}, "config 'nope.yaml' not found"),
    ([{"name": "a", "config": "configs/baseline/digits.yaml", "colour": 1}], {}, "unknown key(s) ['colour']"),
    ([{"name": "a", "config": "configs/baseline/digits.yaml",
       "rows": {"nll": {"label": "x", "paper": {"auroc": {"black": 81.5}}, "source": "s"}}}], {}, "write 0.8149"),
    ([{"name": "a", "config": "configs/baseline/digits.yaml",
       "rows": {"nll": {"label": "x", "paper": {"auroc": {"black": 0.5}}}}}], {}, "no source"),
    ([{"name": "a", "from": "b"}], {}, "must name an entry listed above"),
    ([{"name": "a", "config": "configs/baseline/digits.yaml"}], {"metric": "acc"}, "metric 'acc'"),
])
def test_bad_benchmark_files_fail_with_a_clear_message(tmp_path, monkeypatch, entries, top, message):
    from genood.benchmark import BenchmarkSpecError

    monkeypatch.chdir(REPO)
    with pytest.raises(BenchmarkSpecError) as e:
        _spec(tmp_path, entries, **top)
    assert message in str(e.value)


def test_error_line_picks_the_message():
    from genood.benchmark import error_line

    assert error_line("Traceback (most recent call last):\n  File x\nValueError: bad k\n") == "ValueError: bad k"
    jsonarg = ("ValueError: Does not validate against any of the Union subtypes\nSubtypes: [...]\nErrors:\n"
               "  - PPCANetwork: latent_dim must be in [1, num_dims=64], got 0\n  - Expected a <class 'NoneType'>\n")
    assert error_line(jsonarg) == "ValueError: PPCANetwork: latent_dim must be in [1, num_dims=64], got 0"
    assert error_line("usage: x\nx: error: unrecognized arguments: --foo\n") == "x: error: unrecognized arguments: --foo"
    assert error_line("Killed\n") == "Killed"
    unknown_key = ('usage: train.py [-h]\nerror: Parser key "model":\n  Does not validate against any of the Union '
                   "subtypes\n  Errors:\n    - Problem with given class_path 'genood.models.baseline.PPCA':\n"
                   "        Option 'latent_dims' is not accepted\n    - Expected a <class 'NoneType'>\n\n"
                   "genood models (model.class_path): genood.models.baseline.PPCA\n")
    assert error_line(unknown_key) == ('error: Parser key "model": Problem with given class_path '
                                       "'genood.models.baseline.PPCA': Option 'latent_dims' is not accepted")


def test_tables_of_several_tasks_with_a_failed_seed(tmp_path, monkeypatch):
    """Synthetic run folders: one row per label across tasks, the mean over tasks per seed, a failed seed
    shown as (1/2 seeds), lower-is-better metrics bold the minimum."""
    from genood.benchmark.render import markdown
    from genood.benchmark.table import build_tables, collect

    monkeypatch.chdir(REPO)
    b = _spec(tmp_path, [{"name": "m", "config": "configs/dte/wdbc.yaml",
                          "for_each": {"data.init_args.dataset": ["wdbc", "wine"]},
                          "rows": {"s1": "one", "s2": {"label": "two", "paper": {"fpr95": {"wine": 0.5}},
                                                       "source": "x"}}}])
    cells = b.cells(tmp_path / "out")
    values = {("wdbc", 0): (0.9, 0.2), ("wdbc", 1): (0.7, 0.4), ("wine", 0): (0.5, 0.1), ("wine", 1): (0.3, 0.3)}
    for c in cells:
        task = c.entry.values["dataset"]
        if (task, c.seed) == ("wine", 1):  # this cell failed
            c.status_path.parent.mkdir(parents=True, exist_ok=True)
            c.status_path.write_text(json.dumps({"status": "failed", "error": "RuntimeError: boom"}))
            continue
        c.run_dir.mkdir(parents=True)
        rows = [{"scorer": s, "ood_set": "anomalies", "group": "far", "fpr95": v, "auroc": 1 - v}
                for s, v in zip(("s1", "s2"), values[(task, c.seed)])]
        (c.run_dir / "results.json").write_text(json.dumps({"metadata": {
            "sets": {task: {"group": "id"}, "anomalies": {"group": "far"}}, "git_commit": "abc"}, "rows": rows}))
    results = collect(cells)
    (t,) = build_tables(b, results, "fpr95")
    assert [c.label for c in t.columns] == ["wdbc", "wine", "mean"]
    one, two = t.rows
    assert one.values[("wdbc", "anomalies")].mean == pytest.approx(0.8)
    assert one.values[("wdbc", "anomalies")].std == pytest.approx(0.1)
    assert one.values[("wine", "anomalies")].seeds == [0]
    assert one.values[("", "mean")].per_seed == {0: pytest.approx((0.9 + 0.5) / 2)}  # seed 1 lacks wine
    assert two.values[("wdbc", "anomalies")].best and not one.values[("wdbc", "anomalies")].best  # 0.3 < 0.8
    assert two.values[("wine", "anomalies")].paper == 0.5 and two.values[("wdbc", "anomalies")].paper is None
    assert one.values[("wdbc", "anomalies")].expected == 2  # the failed wine cell does not count against wdbc
    md = markdown(b, [t], results)
    assert "50.0 ± 0.0 (1/2 seeds)" in md and "RuntimeError: boom" in md
    assert "| wine | paper | Δ |" in md.replace("| wdbc ", "")


@pytest.mark.parametrize("path", sorted(p.name for p in (REPO / "experiments/benchmarks").glob("*.yaml")))
def test_shipped_benchmark_files_load(path, tmp_path, monkeypatch):
    import numpy as np

    from genood.benchmark import load_benchmark

    monkeypatch.chdir(REPO)
    params = {}
    if path == "adbench.yaml":  # a folder with one ADBench-style file
        np.savez(tmp_path / "4_toy.npz", X=np.random.default_rng(0).normal(size=(40, 3)), y=np.r_[np.zeros(35), np.ones(5)])
        params = {"adbench_root": str(tmp_path)}
    b = load_benchmark(REPO / "experiments/benchmarks" / path, params)
    cells = b.cells(tmp_path / "out")
    assert cells and all(c.entry.rows for c in cells)  # every shipped entry names its rows

    def has_peers(c):  # a classical-peers overlay, or the kNN distance on the same inputs
        return "configs/peers/" in " ".join(c.entry.configs) or any(r.scorer == "knn" for r in c.entry.rows)

    for t in b.tables:  # the simple peers are in every table
        assert any(has_peers(c) for c in cells if c.entry.table == t), t


@needs_adbench
def test_the_committed_adbench_record_matches_cells_of_the_benchmark_file(tmp_path):
    """Every cell of experiments/benchmarks/results/adbench.json is a cell of adbench.yaml as it stands (a changed
    config or override would orphan it), with the metric rows the table reads."""
    from genood.benchmark import load_benchmark
    from genood.benchmark.table import load_records

    records = load_records([REPO / "experiments/benchmarks/results/adbench.json"])
    bench = load_benchmark(REPO / "experiments/benchmarks/adbench.yaml", {"adbench_root": str(ADBENCH)})
    keys = {c.record_key: c for c in bench.cells(tmp_path)}
    assert records and set(records) <= set(keys)
    for key, rec in records.items():
        assert rec["entry"] == keys[key].entry.name and rec["seed"] == keys[key].seed
        assert all(0 <= r["auroc"] <= 1 for r in rec["rows"])


def test_the_committed_adbench_record_tabulates_without_the_data(tmp_path, monkeypatch, capsys):
    """README "Results records": where ADBench's files are not, ``--record ... --no-run`` still renders the
    committed record (its grids take the recorded datasets) and writes it back unchanged; each value is the mean
    of the recorded seeds' own AUROC rows, and running a cell without its data is refused."""
    import csv
    import shutil

    from genood.benchmark.__main__ import main
    from genood.benchmark.table import load_records

    monkeypatch.chdir(REPO)
    committed = REPO / "experiments/benchmarks/results/adbench.json"
    record = tmp_path / "adbench.json"  # the first --record file is written back: use a copy
    shutil.copy(committed, record)
    argv = ["--config", "experiments/benchmarks/adbench.yaml", "--param", f"adbench_root={tmp_path / 'absent'}",
            "--out", str(tmp_path / "out"), "--record", str(record)]
    res = main(argv + ["--no-run"])
    assert "no file matches" in capsys.readouterr().err
    recs = load_records([committed])
    assert {r.cell.record_key for r in res["results"] if r.status == "finished"} == set(recs)
    assert record.read_text() == committed.read_text()  # written back as recorded: run keys, commands and all

    by_cell: dict[tuple, list[float]] = {}  # (scorer, dataset) -> the recorded seeds' AUROCs
    for rec in recs.values():
        for row in rec["rows"]:
            by_cell.setdefault((row["scorer"], rec["task"]), []).append(row["auroc"])
    labels = {"dte_c": "DTE-C", "ocsvm": "OCSVM"}
    rows = {(r["method"], r["task"]): r for r in csv.DictReader(open(tmp_path / "out" / "table.csv"))}
    checked = 0
    for (scorer, task), aurocs in by_cell.items():
        if scorer in labels:
            r = rows[(labels[scorer], task)]
            assert float(r["mean"]) == pytest.approx(statistics.mean(aurocs), abs=1e-9)
            assert int(r["n_seeds"]) == len(aurocs)
            checked += 1
    assert checked >= 10
    with pytest.raises(SystemExit, match="would run without their data"):
        main(argv + ["--seeds", "0,1,2,3"])  # seed 3 is not recorded: it would need the files
