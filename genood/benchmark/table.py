"""From the cells' run folders to tables: one row per (entry, scorer) label, one column per (task, OOD set).

A **task** is one ID test split with its OOD sets (by default named after the run's ID test set, e.g.
``digits`` or ``wdbc``; an entry's ``task:`` names it explicitly). Columns are every OOD set of every task
of the table, in the order the runs report them, then the task's ``near mean`` / ``far mean`` (when the
task has at least two sets in that group) and, for tables of several tasks, ``mean`` (the mean over tasks
of each task's mean over its sets: the average over datasets of a tabular benchmark).

Each value is the mean ± std over the seeds whose cell finished (std: population, ddof = 0, so one seed
gives 0); means over sets are taken per seed first. Entries that share a row label on different tasks
fill one row (``DTE-NP`` on wdbc, wine and digits).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..evaluation.report import read_results
from .runner import FAILED, FINISHED, MISSING, cell_status, read_status
from .spec import Benchmark, Cell, PaperTable, RowSpec, dataset_key

HIGHER_IS_BETTER = {"auroc": True, "aupr_in": True, "aupr_out": True, "fpr95": False, "fpr80": False, "autc": False}
METRIC_TITLES = {"auroc": "AUROC", "aupr_in": "AUPR-In", "aupr_out": "AUPR-Out", "fpr95": "FPR@95TPR",
                 "fpr80": "FPR80", "autc": "AUTC"}
MEAN_SETS = ("mean_near", "mean_far")
OVERALL = ("", "mean")
GROUP_SET = "__group__"    # a published group's mean over its class tasks (CIFAR10_0, CIFAR10_4, ... -> CIFAR10)
PAIRED_SET = "mean_paired"  # mean over the datasets that have a published value (task "")
EVERY_TASK = "__every_task__"  # the task key of unfinished cells charged to every column


@dataclass
class CellResult:
    """A cell with what its run folder says: status, error, metric rows, metadata."""

    cell: Cell
    status: str
    error: Optional[str] = None
    wall_seconds: Optional[float] = None
    rows: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    sibling_task: Optional[str] = None  # an unfinished cell's task, from a finished seed of the same entry
    recorded_in: Optional[str] = None  # the results record it was read from, when its run folder is not here
    recorded_command: Optional[list] = None  # the command the record says produced it
    every_task: bool = False  # an unfinished cell of unknown task whose entry does not vary the data: it counts in every column

    @property
    def id_set(self) -> Optional[str]:
        return next((n for n, s in self.metadata.get("sets", {}).items() if s.get("group") == "id"), None)

    @property
    def task(self) -> Optional[str]:
        """The column group: the entry's ``task``, else the run's ID test set (None while unknown)."""
        return self.cell.entry.task or self.id_set or self.sibling_task


def collect(cells: Sequence[Cell], records: Optional[dict[str, dict]] = None) -> list[CellResult]:
    """Each cell's result from its run folder, else (``records``: finished cells by ``record_key``, see
    :func:`load_records`) from a results record."""
    out = []
    for c in cells:
        status, error, wall = cell_status(c)
        res = CellResult(c, status, error, wall)
        rec = (records or {}).get(c.record_key)
        if status != FINISHED and rec is not None:
            res = CellResult(c, FINISHED, None, rec.get("wall_seconds"), rec["rows"], rec.get("metadata") or {},
                             recorded_in=rec.get("_record_file"), recorded_command=rec.get("command"))
        elif status == FINISHED:
            try:
                data = read_results(c.run_dir)
                res.rows, res.metadata = data["rows"], data.get("metadata", {})
            except (OSError, ValueError) as e:
                res.status, res.error = FAILED, f"unreadable results.json: {e}"
        out.append(res)
    known = {r.cell.entry.name: r.task for r in out if r.status == FINISHED}
    by_data = {_data_values(r.cell): r.task for r in out if r.status == FINISHED and _data_values(r.cell)}
    for r in out:
        if r.status != FINISHED:
            r.sibling_task = known.get(r.cell.entry.name) or by_data.get(_data_values(r.cell))
            r.every_task = r.task is None and not _data_values(r.cell)
    return out


def _data_values(cell: Cell) -> tuple:
    """The ``data.*`` values of a cell's ``for_each`` expansion: cells that share them (another entry on the
    same dataset) share their task."""
    return tuple(sorted((k, str(v)) for k, v in cell.entry.values.items() if k.startswith("data.")))


@dataclass
class Column:
    task: str                  # a task, a published group (GROUP_SET), or "" (overall means)
    ood_set: str               # an OOD set, "mean_near", "mean_far", "mean" / PAIRED_SET (task ""), or GROUP_SET
    group: str                 # near / far / mean
    label: str = ""
    members: list[str] = field(default_factory=list)  # a group column's class tasks
    complete: bool = False     # a group column holding every class file of its published group
    pairable: bool = False     # a dataset column that the mean over published datasets may pair

    @property
    def key(self) -> tuple[str, str]:
        return (self.task, self.ood_set)

    @property
    def is_mean(self) -> bool:
        return self.ood_set in MEAN_SETS or self.task == "" or self.ood_set == GROUP_SET


@dataclass
class Value:
    mean: Optional[float]
    std: Optional[float]
    seeds: list[int]
    per_seed: dict[int, float]
    expected: int              # cells (seeds) that should feed it
    status: str = FINISHED     # finished (maybe partial), failed, missing, or "" (no cell for this column)
    paper: Optional[float] = None
    best: bool = False
    count: Optional[int] = None  # datasets averaged (the mean over datasets with a published value)

    @property
    def delta(self) -> Optional[float]:
        return None if self.mean is None or self.paper is None else self.mean - self.paper


@dataclass
class Row:
    label: str
    entries: list[str]
    values: dict[tuple[str, str], Value] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


@dataclass
class Table:
    name: str
    metric: str
    columns: list[Column]
    rows: list[Row]
    seeds: list[int]

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(c.task for c in self.columns if c.task))

    def paper_columns(self) -> set[tuple[str, str]]:
        return {k for r in self.rows for k, v in r.values.items() if v.paper is not None}


def _paper_value(spec: RowSpec, metric: str, col: Column, sets_of_task: list[str]) -> Optional[float]:
    """The published value a row spec gives a column: its explicit ``paper`` numbers first, else its
    per-dataset table (``paper_ref``) for a single-set task's column."""
    values = spec.paper.get(metric) or {}
    if col.key == OVERALL:
        candidates = ["mean"]
    elif col.is_mean:
        candidates = [f"{col.task}/{col.ood_set}", col.ood_set]
    else:
        candidates = [f"{col.task}/{col.ood_set}", col.ood_set] + ([col.task] if len(sets_of_task) == 1 else [])
    explicit = next((values[k] for k in candidates if k in values), None)
    if explicit is not None or spec.paper_table is None or spec.paper_table.metric != metric:
        return explicit
    if col.ood_set == GROUP_SET:
        return spec.paper_table.value(col.task) if col.complete else None
    if not col.is_mean and len(sets_of_task) == 1:
        return spec.paper_table.value(col.task)
    return None


def row_labels(results: Sequence[CellResult]) -> dict[tuple[str, str], str]:
    """``(entry name, label) -> printed label`` for rows that different entries of one table would feed on the same task
    (a ``for_each`` over a hyper-parameter, or two entries with one label): each gets the values that tell
    the entries apart (``DTE-C (lr=0.001)``), else its entry's name. Other labels stay as they are."""
    by_name = {r.cell.entry.name: r.cell.entry for r in results}
    feeds: dict[tuple[str, str], set[str]] = {}
    for r in results:
        if r.task is None:
            continue
        for label in _entry_labels(r):
            feeds.setdefault((label, r.task), set()).add(r.cell.entry.name)
    out: dict[tuple[str, str], str] = {}
    for (label, _), names in feeds.items():
        if len(names) < 2:
            continue
        entries = [by_name[n] for n in sorted(names)]
        differing = {}
        for k in entries[0].values:
            short = k.rsplit(".", 1)[-1]
            if short not in differing and len({repr(e.values.get(k)) for e in entries}) > 1:
                differing[short] = k
        for e in entries:
            suffix = ", ".join(f"{short}={e.values.get(k)}" for short, k in differing.items()) or e.name
            out[(e.name, label)] = f"{label} ({suffix})"
    return out


def _entry_labels(r: CellResult) -> list[str]:
    e = r.cell.entry
    if e.rows is not None:
        return [rs.label for rs in e.rows]
    return list(dict.fromkeys(e.row_spec(x["scorer"]).label for x in r.rows)) or [e.base]


def build_tables(bench: Benchmark, results: Sequence[CellResult], metric: str, decimals: int = 1) -> list[Table]:
    """The benchmark's tables for one metric (``metric`` as in ``results.json``, a fraction); the best of
    each column is judged on the values as printed (percent with ``decimals`` decimals)."""
    tables = []
    for tname in bench.tables:
        res = [r for r in results if r.cell.entry.table == tname]
        relabel = row_labels(res)
        # columns: (task, set) in order of appearance, with their group
        sets: dict[str, dict[str, str]] = {}
        for r in res:
            if r.status != FINISHED:
                continue
            groups = {n: s.get("group") for n, s in r.metadata.get("sets", {}).items()}
            for row in r.rows:
                if row["ood_set"].startswith("mean_") or r.cell.entry.row_spec(row["scorer"]) is None:
                    continue
                sets.setdefault(r.task, {})[row["ood_set"]] = groups.get(row["ood_set"], row.get("group", "far"))
        for r in res:  # tasks named in the file but never finished still get their rows
            if r.task is not None:
                sets.setdefault(r.task, {})
        per_seed: dict[str, dict[tuple[str, str], dict[int, float]]] = {}
        row_meta: dict[str, Row] = {}
        specs: dict[str, dict[int, RowSpec]] = {}
        expected: dict[str, Counter] = {}
        failures: dict[str, dict[Optional[str], str]] = {}
        for r in res:
            e = r.cell.entry
            for label in _entry_labels(r):
                label = relabel.get((e.name, label), label)
                row = row_meta.setdefault(label, Row(label, []))
                if e.name not in row.entries:
                    row.entries.append(e.name)
                task = EVERY_TASK if r.every_task else r.task
                expected.setdefault(label, Counter())[task] += 1
                if r.status != FINISHED:
                    failures.setdefault(label, {})[task] = r.status
            for rs in e.rows or []:
                specs.setdefault(relabel.get((e.name, rs.label), rs.label), {})[id(rs)] = rs
            for x in r.rows:
                spec = e.row_spec(x["scorer"])
                if spec is None or x["ood_set"].startswith("mean_"):
                    continue
                label = relabel.get((e.name, spec.label), spec.label)
                per_seed.setdefault(label, {}).setdefault((r.task, x["ood_set"]), {})[r.cell.seed] = float(x[metric])
        paper_tables = [rs.paper_table for d in specs.values() for rs in d.values() if rs.paper_table is not None]
        columns = _columns(sets, per_seed, _group_sizes(paper_tables), paired=bool(paper_tables))
        rows = []
        for label, row in row_meta.items():
            row_specs = list(specs.get(label, {}).values())
            row.sources = list(dict.fromkeys(rs.source for rs in row_specs if rs.source))
            vals = per_seed.get(label, {})
            for col in columns:
                if col.ood_set == PAIRED_SET:
                    continue
                value = _value(col, vals, sets, expected.get(label, Counter()), failures.get(label, {}))
                value.paper = next((p for rs in row_specs if (p := _paper_value(rs, metric, col,
                                                                                list(sets.get(col.task, {}))))
                                    is not None), None)
                row.values[col.key] = value
            for col in columns:
                if col.ood_set == PAIRED_SET:
                    row.values[col.key] = _paired_value(row, columns)
            rows.append(row)
        _mark_best(rows, columns, metric, decimals)
        tables.append(Table(tname, metric, columns, rows, list(bench.seeds)))
    return tables


def _group_sizes(paper_tables: Sequence[PaperTable]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in paper_tables:
        out.update(t.groups)
    return out


def _group_of(task: str, groups: dict[str, int]) -> Optional[str]:
    """The published group a per-class task belongs to (``CIFAR10_4`` -> ``CIFAR10``, ``MVTec-AD_metal_nut`` ->
    ``MVTec-AD``: the longest prefix before an underscore that is a group), if any."""
    if dataset_key(task) in groups:
        return None
    prefixes = [task[:m.start()] for m in re.finditer("_", task)]
    return next((p for p in reversed(prefixes) if dataset_key(p) in groups), None)


def _paired_value(row: Row, columns: list[Column]) -> Value:
    """Mean over the datasets (task or group columns) where the row has both our value and a published one:
    ours per seed over those datasets (seeds they all have), the published mean beside it, and how many."""
    paired = [c for c in columns if c.pairable and row.values[c.key].mean is not None
              and row.values[c.key].paper is not None]
    if not paired:
        return Value(None, None, [], {}, 0, "", count=0)
    paper = float(np.mean([row.values[c.key].paper for c in paired]))
    expected = max(row.values[c.key].expected for c in paired)
    seeds = sorted(set.intersection(*[set(row.values[c.key].per_seed) for c in paired]))
    if len(seeds) < expected:  # some dataset lacks a seed: the mean of the datasets' means, without a spread
        return Value(float(np.mean([row.values[c.key].mean for c in paired])), None, [], {}, 0, FINISHED,
                     paper=paper, count=len(paired))
    per_seed = {sd: float(np.mean([row.values[c.key].per_seed[sd] for c in paired])) for sd in seeds}
    v = np.array(list(per_seed.values()))
    return Value(float(v.mean()), float(v.std()), seeds, per_seed, expected, FINISHED, paper=paper, count=len(paired))


def _columns(sets: dict[str, dict[str, str]], per_seed: dict, groups: Optional[dict[str, int]] = None,
             paired: bool = False) -> list[Column]:
    """Every (task, OOD set) column with the tasks' near/far means; with published groups (``groups``:
    normalised name -> class files), a group column after the last of its class tasks; for tables of several
    tasks the overall mean, and with a published per-dataset table the mean over the paired datasets."""
    groups = groups or {}
    multi_task = len(sets) > 1
    cols: list[Column] = []
    members: dict[str, list[str]] = {}
    for task in sets:
        g = _group_of(task, groups) if len(sets[task]) == 1 else None
        if g is not None:
            members.setdefault(g, []).append(task)
    last_member = {ts[-1]: g for g, ts in members.items()}
    for task, sets_of_task in sets.items():
        one = len(sets_of_task) == 1
        in_group = any(task in ts for ts in members.values())
        for s, group in sets_of_task.items():
            # a dataset's one set is named by the dataset (also when a per-dataset table ran on one dataset)
            label = task if (one and (multi_task or paired)) else (f"{task}: {s}" if multi_task else s)
            cols.append(Column(task, s, group, label, pairable=one and not in_group))
        for g in ("near", "far"):
            if sum(1 for gr in sets_of_task.values() if gr == g) >= 2:
                cols.append(Column(task, f"mean_{g}", "mean", f"{task}: {g} mean" if multi_task else f"{g} mean"))
        if task in last_member:
            g = last_member[task]
            n, k = groups[dataset_key(g)], len(members[g])
            cols.append(Column(g, GROUP_SET, "mean", f"{g} (mean of {k}/{n} class files)", members=members[g],
                               complete=k == n, pairable=True))
    if multi_task:
        cols.append(Column("", "mean", "mean", "mean"))
        if paired:
            cols.append(Column("", PAIRED_SET, "mean", "mean over datasets with a published value"))
    return cols


def _value(col: Column, vals: dict, sets: dict, expected: Counter, failures: dict) -> Value:
    """Mean ± std over seeds of one row's column; ``failures`` maps a task (None: unknown) to the status
    of its unfinished cells."""
    if col.key == OVERALL:
        tasks = [t for t in sets if sets[t]]
        members = [(t, s) for t in tasks for s in sets[t]]
        seeds = sorted(set.intersection(*[set(vals.get(k, {})) for k in members])) if members else []
        per_seed = {sd: float(np.mean([np.mean([vals[(t, s)][sd] for s in sets[t]]) for t in tasks])) for sd in seeds}
        exp = max((n for t, n in expected.items() if t is not None), default=0) + expected.get(EVERY_TASK, 0)
        relevant = list(failures.values())
    elif col.ood_set == GROUP_SET:
        members = [(t, next(iter(sets[t]))) for t in col.members]
        seeds = sorted(set.intersection(*[set(vals.get(k, {})) for k in members])) if members else []
        per_seed = {sd: float(np.mean([vals[k][sd] for k in members])) for sd in seeds}
        exp = max((expected.get(t, 0) for t in col.members), default=0) + expected.get(EVERY_TASK, 0)
        relevant = [failures[t] for t in (*col.members, EVERY_TASK) if t in failures]
    else:
        if col.is_mean:
            group = col.ood_set.split("_", 1)[1]
            members = [(col.task, s) for s, g in sets[col.task].items() if g == group]
            seeds = sorted(set.intersection(*[set(vals.get(k, {})) for k in members])) if members else []
            per_seed = {sd: float(np.mean([vals[k][sd] for k in members])) for sd in seeds}
        else:
            per_seed = dict(sorted(vals.get(col.key, {}).items()))
        # a cell of unknown task on a dataset of its own is charged to no column, one of an entry that does
        # not vary the data (it failed before naming its task) to every column
        exp = expected.get(col.task, 0) + expected.get(EVERY_TASK, 0)
        relevant = [failures[t] for t in (col.task, EVERY_TASK) if t in failures]
    if per_seed:
        v = np.array(list(per_seed.values()))
        return Value(float(v.mean()), float(v.std()), list(per_seed), per_seed, exp)
    if relevant:
        return Value(None, None, [], {}, exp, FAILED if FAILED in relevant else MISSING)
    return Value(None, None, [], {}, exp, "")


def row_warnings(results: Sequence[CellResult]) -> list[str]:
    """Rows a benchmark file names that its finished runs never produce (a misspelt scorer), once each."""
    out = []
    for r in results:
        if r.status != FINISHED or r.cell.entry.rows is None:
            continue
        produced = {x["scorer"] for x in r.rows}
        for rs in r.cell.entry.rows:
            if rs.scorer not in produced:
                msg = (f"entry {r.cell.entry.base!r}: row {rs.scorer!r} is not a scorer of its runs (they produce "
                       f"{sorted(produced)})")
                if msg not in out:
                    out.append(msg)
    return out


def _mark_best(rows: list[Row], columns: list[Column], metric: str, decimals: int) -> None:
    """Mark the best mean of each column as printed (percent, ``decimals`` decimals); printed ties all win."""
    higher = HIGHER_IS_BETTER[metric]
    for col in columns:
        vals = [(r, round(100 * r.values[col.key].mean, decimals)) for r in rows if r.values[col.key].mean is not None]
        if len(vals) < 2:
            continue
        best = max(v for _, v in vals) if higher else min(v for _, v in vals)
        for r, v in vals:
            r.values[col.key].best = v == best


def commits(results: Sequence[CellResult]) -> list[tuple[str, int]]:
    """``(commit[+dirty], number of cells)`` of the finished cells, most frequent first."""
    c = Counter()
    for r in results:
        if r.status == FINISHED:
            sha = r.metadata.get("git_commit")
            tag = (sha[:10] if sha else "unknown (not a git checkout)") + ("+dirty" if r.metadata.get("git_dirty") else "")
            c[tag] += 1
    return c.most_common()


def environment(results: Sequence[CellResult]) -> dict[str, list[str]]:
    """The distinct genood / torch / lightning versions and devices of the finished cells."""
    out: dict[str, list[str]] = {}
    for key in ("genood_version", "torch", "lightning", "cuda", "device"):
        vals = [str(r.metadata.get(key)) for r in results if r.status == FINISHED and r.metadata.get(key) is not None]
        out[key] = list(dict.fromkeys(vals))
    return out


def cell_record(r: CellResult, root: Path) -> dict:
    """One cell of ``cells.json``: identity, status, timings and every metric row of its run."""
    md = r.metadata
    rel = lambda p: str(Path(p).resolve().relative_to(root.resolve())) if Path(p).resolve().is_relative_to(root.resolve()) else str(p)  # noqa: E731
    return {"entry": r.cell.entry.name, "base": r.cell.entry.base, "table": r.cell.entry.table, "task": r.task,
            "values": r.cell.entry.values, "seed": r.cell.seed, "key": r.cell.key, "record_key": r.cell.record_key,
            "status": r.status,
            "error": r.error, "run_dir": rel(r.cell.run_dir), "log": rel(r.cell.log_path),
            "source_cell": r.cell.source.key if r.cell.source else None,
            "command": read_status(r.cell).get("command") or r.recorded_command, "recorded_in": r.recorded_in,
            "wall_seconds": r.wall_seconds, "train_seconds": md.get("train_seconds"),
            "scoring_seconds": md.get("scoring_seconds"), "samples_per_second": md.get("samples_per_second"),
            "scored_samples": md.get("scored_samples"), "git_commit": md.get("git_commit"),
            "git_dirty": md.get("git_dirty"), "device": md.get("device"), "metadata": md, "rows": r.rows}


def load_records(paths: Sequence[Path]) -> dict[str, dict]:
    """The finished cells of results records (a benchmark's ``cells.json``, or a record written with
    ``--record``) by ``record_key``; an earlier file wins over a later one. A missing file is an empty record."""
    found: dict[str, dict] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            continue
        what = f"{path} is not a results record (a cells.json of python -m genood.benchmark, with 'cells': [...])"
        try:
            cells = json.loads(path.read_text())["cells"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{what}: {type(e).__name__}: {e}") from None
        if not isinstance(cells, list):
            raise ValueError(f"{what}: 'cells' is a {type(cells).__name__}")
        for rec in cells:
            if isinstance(rec, dict) and rec.get("status") == FINISHED and rec.get("record_key") and "rows" in rec:
                found.setdefault(rec["record_key"], {**rec, "_record_file": str(path)})
    return found


def recorded_values(records: dict[str, dict]) -> dict[str, dict[str, list]]:
    """The ``for_each`` values of a record's cells by entry name and key: what a benchmark's ``{glob: ...}`` grid
    falls back to where the data are not (see :func:`genood.benchmark.spec.load_benchmark`)."""
    found: dict[str, dict[str, list]] = {}
    for rec in records.values():
        values = rec.get("values")
        if not isinstance(values, dict):
            continue
        for k, v in values.items():
            seen = found.setdefault(str(rec.get("base")), {}).setdefault(k, [])
            if v not in seen:
                seen.append(v)
    return found


def write_record(path: Path, bench: Benchmark, results: Sequence[CellResult], metric: str,
                 records: Optional[dict[str, dict]] = None) -> int:
    """Write the finished cells (run here or read from a record) to ``path`` as a results record: the format of
    ``cells.json`` without unfinished cells or local paths. A recorded cell keeps what its record says (the run
    key and command of the machine that ran it), gaining only fields that records lacked before; recorded cells
    that this invocation does not list (other seeds, entries no longer in the file) are kept as they were.
    Returns the number of cells written."""
    listed = {r.cell.record_key for r in results}
    cells = [{k: v for k, v in rec.items() if k != "_record_file"}
             for key, rec in (records or {}).items() if key not in listed]
    for r in results:
        if r.status != FINISHED:
            continue
        rec = cell_record(r, path.parent)
        if r.recorded_in is not None:
            rec.update({k: v for k, v in records[r.cell.record_key].items() if k != "_record_file"})
        for local in ("run_dir", "log", "recorded_in", "error"):
            rec.pop(local, None)
        cells.append(rec)
    data = {"benchmark": bench.name, "file": str(bench.path), "metric": metric,
            "commits": dict(commits(results)), "cells": cells}
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    return len(cells)
