"""A benchmark file (``experiments/benchmarks/<name>.yaml``) and the grid of cells it defines.

A benchmark lists **entries** (a genood config + overrides + how its scorers appear in the table) and the
**seeds**; every (entry, seed) is one **cell**, run as an ordinary ``python -m genood.train`` (or
``python -m genood.evaluate`` for an entry that re-scores another entry's checkpoints) into its own run
folder ``<out>/runs/<entry>/seed<s>-<key>/``. The key hashes the entry name, its configs, its command-line
overrides and the seed, so a finished cell is recognised on the next invocation and skipped. Format::

    name: digits                     # output folder benchmarks/<name>/ (default: the file's stem)
    title: Embedded digits           # heading of the tables (optional)
    seeds: [0, 1, 2]
    seed_keys: [seed_everything, data.init_args.seed]   # CLI keys each seed is written to (this default)
    metric: auroc                    # default table metric (--metric overrides)
    params: {adbench_root: data/adbench}   # "{adbench_root}" in any string below; --param k=v
    overrides: {trainer.accelerator: auto} # added to every training entry (optional)
    entries:
      - name: hvae                   # unique; letters, digits, _ - .
        config: configs/hvae/digits.yaml      # or a list, merged in order (e.g. + configs/peers/overlay.yaml)
        overrides: {trainer.max_epochs: 50}   # CLI overrides (a mapping, or a list of "--key=value")
        rows:                        # scorers shown in the table (default: all), label + published numbers
          llr_gt1: HVAE LLR>1
          neg_elbo: {label: HVAE -ELBO, paper: {auroc: {mnist: 0.964}}, source: "Havtorn et al. 2021, Tab. 2"}
        task: digits                 # column group (default: the name of the run's ID test set)
        table: Images                # which table of the benchmark (default: the first)
        seeds: [0]                   # this entry's seeds (default: the benchmark's)
        seed_keys: [seed_everything, data.init_args.seed, model.init_args.recon_seed]  # (default: the benchmark's)
        for_each: {data.init_args.dataset: [wdbc, wine]}   # one expanded entry per value (grid)
      - name: ddpm_released
        from: ddpm                   # re-score each cell of entry "ddpm" (same seed) with these overrides
        overrides: {model.init_args.recon_variant: mean_only}

Paper values are fractions in [0, 1] (the scale of ``results.json``), keyed by metric, then by column: an
OOD-set name, a task name (tasks with one OOD set), ``<task>/<set>``, ``mean_near``, ``mean_far`` or ``mean``.

Per-dataset published tables live in data files (``experiments/benchmarks/papers/*.yaml``: ``source``,
``metric``, ``scale``, ``groups`` and ``tables: {<table>: {methods: [...], rows: {<dataset>: [[mean, std],
...]}}}``), declared once and referenced by rows::

    papers: {dte: experiments/benchmarks/papers/dte_adbench.yaml}
    entries:
      - name: peers
        rows: {knn: {label: KNN, paper_ref: dte/semi/KNN}}    # <paper>/<table>/<method>

A task then takes the published value of the dataset whose name equals the task's name without ADBench's
numeric prefix, case-insensitively (``43_WDBC`` -> ``wdbc``); tasks named ``<group>_<class>`` also form a
group column (``CIFAR10_0``, ``CIFAR10_4`` -> ``CIFAR10``) that takes the group's published value only when
every class file of the group ran (the file's ``groups`` says how many there are). ``transpose: true`` prints
one row per dataset and one column per method (for tables of many datasets).

Row labels may name a ``for_each`` key's last part in braces (``label: "DTE lr={lr}"``); expansions whose rows
would otherwise share a label on the same task get their differing values appended to the label.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..evaluation.metrics import METRIC_NAMES
from ..yaml_files import read_yaml_mapping

DEFAULT_SEED_KEYS = ("seed_everything", "data.init_args.seed")
# Every cell runs without console table, progress bar, model summary or plots (the table is the benchmark's; a
# cell's plots cost seconds per scorer: an entry's overrides may set evaluation.plots: true, or re-score the cell
# with genood.evaluate).
QUIET_ARGS = ("--evaluation.print_table=false", "--trainer.enable_progress_bar=false",
              "--trainer.enable_model_summary=false", "--evaluation.plots=false")
ENTRY_KEYS = {"name", "config", "overrides", "rows", "task", "table", "seeds", "seed_keys", "for_each", "from"}
TOP_KEYS = {"name", "title", "seeds", "seed_keys", "metric", "params", "overrides", "entries", "description",
            "papers", "transpose"}
ROW_KEYS = {"label", "paper", "source", "paper_ref"}
PAPER_KEYS = {"source", "metric", "scale", "groups", "tables"}


class BenchmarkSpecError(ValueError):
    """A benchmark file that cannot be used; the message names the file, the entry and the key."""


@dataclass
class PaperTable:
    """One method's column of a published per-dataset table (a ``papers`` data file): fractions by dataset."""

    ref: str                       # "<paper>/<table>/<method>"
    metric: str
    values: dict[str, float]       # normalised dataset name -> published mean (fraction)
    groups: dict[str, int]         # normalised group name -> number of class files it averages
    source: str

    def value(self, task: str) -> Optional[float]:
        return self.values.get(dataset_key(task))


def dataset_key(name: str) -> str:
    """A dataset's name as published tables key it: ADBench's numeric prefix dropped, lower case
    (``43_WDBC`` -> ``wdbc``, ``22_magic.gamma`` -> ``magic.gamma``)."""
    return re.sub(r"^\d+_", "", str(name)).lower()


@dataclass
class RowSpec:
    """How one scorer of an entry appears in the table: its label and the published numbers beside it."""

    scorer: str
    label: str
    paper: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> column key -> value
    source: Optional[str] = None
    paper_table: Optional[PaperTable] = None  # per-dataset published values (``paper_ref``)


@dataclass
class Entry:
    """One (expanded) benchmark entry: a config with overrides, run once per seed."""

    name: str                      # unique, e.g. "dte[wdbc]"
    base: str                      # the entry's name in the file, e.g. "dte" (default row labels use it)
    configs: list[str]
    overrides: list[str]           # CLI arguments, benchmark-wide ones first
    seeds: list[int]
    rows: Optional[list[RowSpec]]  # None = every scorer of the run, labelled "<base> <scorer>"
    task: Optional[str]
    table: str
    source: Optional[str] = None   # name of the entry whose checkpoints this one re-scores
    values: dict[str, Any] = field(default_factory=dict)  # this expansion's for_each values (also by short name)
    seed_keys: Optional[tuple[str, ...]] = None  # CLI keys the seed is written to (None: the benchmark's)
    portable_overrides: Optional[list[str]] = None  # ``overrides`` with ``{param}`` placeholders left unfilled

    @property
    def slug(self) -> str:
        return re.sub(r"[^\w.\-]+", "-", self.name).strip("-")

    def row_spec(self, scorer: str) -> Optional[RowSpec]:
        """The row a scorer feeds, or None when the entry does not show it."""
        if self.rows is None:
            return RowSpec(scorer, f"{self.base} {scorer}")
        return next((r for r in self.rows if r.scorer == scorer), None)


@dataclass
class Cell:
    """One (entry, seed): its key, run folder, log, and the command that produces it."""

    entry: Entry
    seed: int
    key: str
    run_dir: Path
    source: Optional["Cell"] = None
    record_key: str = ""  # the key with ``{param}`` values (data folders) left out: a results record matches it

    @property
    def name(self) -> str:
        return f"{self.entry.name} seed {self.seed}"

    @property
    def log_path(self) -> Path:
        return self.run_dir.with_name(self.run_dir.name + ".log")

    @property
    def status_path(self) -> Path:
        return self.run_dir.with_name(self.run_dir.name + ".cell.json")

    def argv(self, seed_keys: tuple[str, ...], python: str = sys.executable) -> list[str]:
        """The cell's command; the seed goes to ``seed_keys`` (the entry's own keys take precedence)."""
        seed_keys = self.entry.seed_keys or seed_keys
        if self.source is not None:
            return [python, "-m", "genood.evaluate", "--ckpt_path", str(self.source.run_dir / "last.ckpt"),
                    f"--run_dir={self.run_dir}", *QUIET_ARGS, *self.entry.overrides]
        configs = [a for c in self.entry.configs for a in ("--config", c)]
        seeds = [f"--{k}={self.seed}" for k in seed_keys]
        return [python, "-m", "genood.train", *configs, f"--run_dir={self.run_dir}", *QUIET_ARGS, *seeds,
                *self.entry.overrides]


@dataclass
class Benchmark:
    name: str
    path: Path
    title: Optional[str]
    seeds: list[int]
    seed_keys: tuple[str, ...]
    metric: str
    entries: list[Entry]
    tables: list[str]              # table names in order of first use
    transpose: bool = False        # print one row per dataset, one column per method
    notes: list[str] = field(default_factory=list)  # grids expanded from a record's values (no data here)

    def cells(self, out_dir: Path) -> list[Cell]:
        """Every (entry, seed) cell, sources before the cells that re-score them."""
        by_entry: dict[tuple[str, int], Cell] = {}
        cells = []
        for e in self.entries:
            for s in e.seeds:
                source = None
                if e.source is not None:
                    source = by_entry.get((e.source, s))
                    if source is None:
                        raise BenchmarkSpecError(f"{self.path}: entry {e.name!r} re-scores {e.source!r} seed {s}, "
                                                 f"but {e.source!r} has no seed {s}")
                keys = e.seed_keys or self.seed_keys
                key = cell_key(e, s, keys, source.key if source else None)
                record_key = cell_key(e, s, keys, source.record_key if source else None, portable=True)
                cell = Cell(e, s, key, out_dir / "runs" / e.slug / f"seed{s}-{key}", source, record_key)
                by_entry[(e.name, s)] = cell
                cells.append(cell)
        return cells


def cell_key(entry: Entry, seed: int, seed_keys: tuple[str, ...], source_key: Optional[str],
             portable: bool = False) -> str:
    """10 hex digits identifying what a cell computes: entry, configs, overrides, seed (and its source).

    ``portable``: the overrides as the file writes them, ``{param}`` placeholders unfilled, so that the same cell
    run on another machine, with its data in another folder, has the same key (the key of a results record)."""
    overrides = entry.portable_overrides if portable and entry.portable_overrides is not None else entry.overrides
    payload = {"entry": entry.name, "configs": entry.configs, "overrides": overrides, "seed": seed,
               "seed_keys": list(seed_keys) if source_key is None else [], "source": source_key}
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]


def _cli_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def override_args(overrides: Any, where: str) -> list[str]:
    """A mapping ``{key: value}`` or a list of ``--key=value`` strings as CLI arguments."""
    if overrides is None:
        return []
    if isinstance(overrides, dict):
        return [f"--{str(k).lstrip('-')}={_cli_value(v)}" for k, v in overrides.items()]
    if isinstance(overrides, list) and all(isinstance(a, str) for a in overrides):
        return list(overrides)
    raise BenchmarkSpecError(f"{where}: overrides must be a mapping {{key: value}} or a list of '--key=value' "
                             f"strings, got {overrides!r}")


def _substitute(obj: Any, params: dict[str, str]) -> Any:
    """Replace ``{name}`` by ``params[name]`` in every string (names not in params are left alone)."""
    if isinstance(obj, str):
        return re.sub(r"\{([\w.]+)\}", lambda m: str(params[m.group(1)]) if m.group(1) in params else m.group(0), obj)
    if isinstance(obj, list):
        return [_substitute(o, params) for o in obj]
    if isinstance(obj, dict):
        return {_substitute(k, params): _substitute(v, params) for k, v in obj.items()}
    return obj


def _expand_values(spec: Any, where: str, recorded: Optional[list] = None, notes: Optional[list] = None) -> list:
    """A ``for_each`` value list, or ``{glob: "<pattern>"}``: the stems of the matching files, sorted (files
    inside genood run folders, e.g. a benchmark's own ``scores.npz``, are skipped). When no file matches,
    ``recorded`` (the values of a results record's cells) stands in, so that a record is tabulated without its
    data; ``notes`` gets a line saying so."""
    if isinstance(spec, list):
        return spec
    if isinstance(spec, dict) and set(spec) == {"glob"}:
        pattern = str(spec["glob"])
        base, rel = (Path("/"), pattern.lstrip("/")) if Path(pattern).is_absolute() else (Path("."), pattern)
        stems = sorted({p.stem for p in base.glob(rel) if not (p.parent / "results.json").exists()}, key=natural_key)
        if not stems and recorded is not None:
            if notes is not None:
                notes.append(f"{where}: no file matches {pattern!r}; the record's {len(recorded)} value(s) stand "
                             "in (this entry's recorded cells are tabulated; none can run here)")
            return sorted(recorded, key=natural_key)
        if not stems:
            raise BenchmarkSpecError(f"{where}: no file matches {pattern!r}; point the benchmark at the right folder "
                                     "(--param NAME=FOLDER for a parameter the file declares under params)")
        return stems
    raise BenchmarkSpecError(f"{where}: for_each values must be a list or {{glob: pattern}}, got {spec!r}")


def load_paper_file(path: str | Path, where: str) -> dict:
    """A published per-dataset table file (see the module docstring), checked."""
    path = Path(path)
    try:
        data = read_yaml_mapping(path, BenchmarkSpecError, "paper file", f"a mapping with keys {sorted(PAPER_KEYS)}",
                                 allowed=PAPER_KEYS, hint=" (paths are relative to the folder you run from, the "
                                 "repository root)")
    except BenchmarkSpecError as e:
        raise BenchmarkSpecError(f"{where}: {e}") from None
    if not isinstance(data.get("tables"), dict) or data.get("metric") not in METRIC_NAMES:
        raise BenchmarkSpecError(f"{where}: paper file {str(path)!r} needs a 'metric' of {list(METRIC_NAMES)} and "
                                 "'tables'")
    for tname, t in data["tables"].items():
        methods, rows = t.get("methods"), t.get("rows")
        if not isinstance(methods, list) or not isinstance(rows, dict):
            raise BenchmarkSpecError(f"{where}: {path}: table {tname!r} needs 'methods' and 'rows'")
        for ds, vals in rows.items():
            if not isinstance(vals, list) or len(vals) != len(methods):
                raise BenchmarkSpecError(f"{where}: {path}: table {tname!r}, dataset {ds!r}: {len(methods)} "
                                         f"[mean, std] pairs expected, got {vals!r}")
    return data


def _paper_table(ref: Any, papers: dict[str, dict], where: str) -> PaperTable:
    parts = str(ref).split("/")
    if len(parts) != 3:
        raise BenchmarkSpecError(f"{where}: paper_ref {ref!r} must be '<paper>/<table>/<method>'")
    name, tname, method = parts
    if name not in papers:
        raise BenchmarkSpecError(f"{where}: paper_ref {ref!r}: no paper {name!r} under 'papers' "
                                 f"(declared: {sorted(papers) or 'none'})")
    data = papers[name]
    table = data["tables"].get(tname)
    if table is None or method not in table["methods"]:
        known = sorted(data["tables"]) if table is None else table["methods"]
        raise BenchmarkSpecError(f"{where}: paper_ref {ref!r}: no {'table' if table is None else 'method'} "
                                 f"{tname if table is None else method!r}; the file has {known}")
    j, scale = table["methods"].index(method), float(data.get("scale", 1))
    values = {dataset_key(ds): float(vals[j][0]) / scale for ds, vals in table["rows"].items()}
    groups = {dataset_key(g): int(n) for g, n in (data.get("groups") or {}).items()}
    return PaperTable(str(ref), data["metric"], values, groups, f"{data.get('source', name)}: {method}")


def natural_key(name: str) -> tuple:
    """Sort key putting ``2_annthyroid`` before ``10_cover`` (numbers compared as numbers)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name))


def _rows(spec: Any, where: str, papers: Optional[dict[str, dict]] = None) -> Optional[list[RowSpec]]:
    if spec is None:
        return None
    if isinstance(spec, list):
        spec = {s: s for s in spec}
    if not isinstance(spec, dict) or not spec:
        raise BenchmarkSpecError(f"{where}: rows must map scorer names to labels (or {{label, paper, source}}), "
                                 f"got {spec!r}")
    rows = []
    for scorer, r in spec.items():
        if isinstance(r, str):
            rows.append(RowSpec(str(scorer), r))
            continue
        if not isinstance(r, dict) or not set(r) <= ROW_KEYS:
            raise BenchmarkSpecError(f"{where}: row {scorer!r} must be a label or a mapping with keys "
                                     f"{sorted(ROW_KEYS)}, got {r!r}")
        paper = r.get("paper") or {}
        if not isinstance(paper, dict) or not all(isinstance(v, dict) for v in paper.values()):
            raise BenchmarkSpecError(f"{where}: row {scorer!r}: paper must be {{metric: {{column: value}}}}, got {paper!r}")
        for metric, values in paper.items():
            if metric not in METRIC_NAMES:
                raise BenchmarkSpecError(f"{where}: row {scorer!r}: paper metric {metric!r} is not one of {list(METRIC_NAMES)}")
            for col, v in values.items():
                if not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                    raise BenchmarkSpecError(
                        f"{where}: row {scorer!r}: paper {metric} {col!r} = {v!r}; paper values are fractions in "
                        f"[0, 1] like results.json (write 0.8149 for 81.49%)")
        if paper and not r.get("source"):
            raise BenchmarkSpecError(f"{where}: row {scorer!r} has paper numbers but no source (paper, table, "
                                     "section) to cite")
        table = _paper_table(r["paper_ref"], papers or {}, f"{where}: row {scorer!r}") if "paper_ref" in r else None
        rows.append(RowSpec(str(scorer), str(r.get("label", scorer)),
                            {m: {str(c): float(v) for c, v in vals.items()} for m, vals in paper.items()},
                            r.get("source") or (table.source if table else None), table))
    return rows


def _seeds(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise BenchmarkSpecError(f"{where}: seeds must be a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise BenchmarkSpecError(f"{where}: seeds repeat: {value}")
    return list(value)


def load_benchmark(path: str | Path, params: Optional[dict[str, str]] = None,
                   recorded_values: Optional[dict[str, dict[str, list]]] = None) -> Benchmark:
    """Read and check a benchmark file; expand ``for_each`` grids and ``{param}`` placeholders.

    ``recorded_values`` (entry name -> ``for_each`` key -> values, from a results record: see
    :func:`genood.benchmark.table.recorded_values`) are the values a ``{glob: ...}`` with no matching file falls
    back to (none for an entry without recorded cells), so that a record can be tabulated on a machine without
    the data (``Benchmark.notes`` says where); without them such a glob is an error."""
    path = Path(path)
    raw = read_yaml_mapping(path, BenchmarkSpecError, "benchmark file", "a mapping with 'seeds' and 'entries'",
                            allowed=TOP_KEYS, hint=" (shipped ones: experiments/benchmarks/*.yaml)")
    declared = {str(k): str(v) for k, v in (raw.get("params") or {}).items()}
    for k in params or {}:
        if k not in declared:
            raise BenchmarkSpecError(f"{path}: --param {k}: the file declares no such parameter "
                                     f"(its params: {sorted(declared) or 'none'})")
    declared.update(params or {})
    unfilled = {k: v for k, v in raw.items() if k != "params"}
    raw = _substitute(unfilled, declared)

    name = str(raw.get("name") or path.stem)
    if not re.fullmatch(r"[\w.\-]+", name):
        raise BenchmarkSpecError(f"{path}: name {name!r} may only hold letters, digits, '_', '-', '.'")
    seeds = _seeds(raw.get("seeds", [0]), f"{path}: seeds")
    seed_keys = tuple(raw.get("seed_keys", DEFAULT_SEED_KEYS))
    metric = raw.get("metric", "auroc")
    if metric not in METRIC_NAMES:
        raise BenchmarkSpecError(f"{path}: metric {metric!r} is not one of {list(METRIC_NAMES)}")
    common = override_args(raw.get("overrides"), f"{path}: overrides")
    common_unfilled = override_args(unfilled.get("overrides"), f"{path}: overrides")
    papers_spec = raw.get("papers") or {}
    if not isinstance(papers_spec, dict):
        raise BenchmarkSpecError(f"{path}: papers must map names to paper files, got {papers_spec!r}")
    papers = {str(k): load_paper_file(v, f"{path}: papers.{k}") for k, v in papers_spec.items()}
    raw_entries = raw.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise BenchmarkSpecError(f"{path}: 'entries' must be a non-empty list of entries")

    entries: list[Entry] = []
    expansions: dict[str, list[Entry]] = {}
    notes: list[str] = []
    for i, e in enumerate(raw_entries):
        where = f"{path}: entry {i + 1}" + (f" ({e.get('name')!r})" if isinstance(e, dict) and e.get("name") else "")
        if not isinstance(e, dict):
            raise BenchmarkSpecError(f"{where}: an entry is a mapping with at least 'name' and 'config' (or 'from')")
        bad = set(e) - ENTRY_KEYS
        if bad:
            raise BenchmarkSpecError(f"{where}: unknown key(s) {sorted(bad)}; valid: {sorted(ENTRY_KEYS)}")
        base = e.get("name")
        if not isinstance(base, str) or not re.fullmatch(r"[\w.\-]+", base):
            raise BenchmarkSpecError(f"{where}: 'name' must be letters, digits, '_', '-', '.'; got {base!r}")
        if base in expansions:
            raise BenchmarkSpecError(f"{where}: entry name {base!r} is used twice")
        rows = _rows(e.get("rows"), where, papers)
        entry_seed_keys = e.get("seed_keys")
        if entry_seed_keys is not None and (not isinstance(entry_seed_keys, list) or
                                            not all(isinstance(k, str) for k in entry_seed_keys)):
            raise BenchmarkSpecError(f"{where}: seed_keys must be a list of CLI keys, got {entry_seed_keys!r}")
        entry_seed_keys = tuple(entry_seed_keys) if entry_seed_keys is not None else None
        entry_seeds = _seeds(e["seeds"], f"{where}: seeds") if "seeds" in e else seeds
        table = str(e.get("table", ""))
        task = e.get("task")
        source = e.get("from")
        overrides = override_args(e.get("overrides"), where)
        overrides_unfilled = override_args(unfilled["entries"][i].get("overrides"), where)  # e before _substitute
        if source is not None:
            if "config" in e or "for_each" in e or "seed_keys" in e:
                raise BenchmarkSpecError(f"{where}: an entry with 'from' re-scores that entry's checkpoints; it "
                                         "takes no 'config', 'for_each' or 'seed_keys' of its own")
            if source not in expansions:
                raise BenchmarkSpecError(f"{where}: 'from: {source}' must name an entry listed above it")
            made = []
            for src in expansions[source]:
                suffix = src.name[len(src.base):]
                made.append(Entry(base + suffix, base, src.configs, overrides, list(src.seeds), _labelled(rows, src.values),
                                  _substitute(task, src.values) if task else src.task,
                                  _substitute(table, src.values) if "table" in e else src.table,
                                  source=src.name, values=src.values, portable_overrides=overrides_unfilled))
            expansions[base] = made
            entries += made
            continue
        configs = e.get("config")
        configs = [configs] if isinstance(configs, str) else configs
        if not isinstance(configs, list) or not configs or not all(isinstance(c, str) for c in configs):
            raise BenchmarkSpecError(f"{where}: 'config' must be a config path or a list of them")
        for c in configs:
            if not Path(c).is_file():
                raise BenchmarkSpecError(f"{where}: config {c!r} not found (paths are relative to the folder you run "
                                         "from, the repository root)")
        grid = e.get("for_each") or {}
        if not isinstance(grid, dict):
            raise BenchmarkSpecError(f"{where}: for_each must map CLI keys to value lists, got {grid!r}")
        keys = list(grid)
        recorded = {} if recorded_values is None else recorded_values.get(base, {})
        value_lists = [_expand_values(grid[k], f"{where}: for_each {k}",
                                      None if recorded_values is None else recorded.get(k, []), notes) for k in keys]
        made = []
        for combo in itertools.product(*value_lists) if keys else [()]:
            values = dict(zip(keys, combo))
            named = {**values, **{k.rsplit(".", 1)[-1]: v for k, v in values.items()}}
            suffix = f"[{','.join(str(v) for v in combo)}]" if combo else ""
            made.append(Entry(base + suffix, base, list(configs),
                              common + override_args(values, where) + overrides, list(entry_seeds),
                              _labelled(rows, named), _substitute(task, named) if task else None,
                              _substitute(table, named), values=named, seed_keys=entry_seed_keys,
                              portable_overrides=common_unfilled + override_args(values, where) + overrides_unfilled))
        expansions[base] = made
        entries += made
    names = [e.name for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BenchmarkSpecError(f"{path}: expanded entry names repeat: {dup}")
    tables = list(dict.fromkeys(e.table for e in entries))
    return Benchmark(name, path, raw.get("title"), seeds, seed_keys, metric, entries, tables,
                     transpose=bool(raw.get("transpose", False)), notes=notes)


def _labelled(rows: Optional[list[RowSpec]], values: dict[str, Any]) -> Optional[list[RowSpec]]:
    """The rows of one ``for_each`` expansion with ``{key}`` placeholders in their labels filled in."""
    if rows is None or not values:
        return rows
    return [RowSpec(r.scorer, _substitute(r.label, {k: str(v) for k, v in values.items()}), r.paper, r.source,
                    r.paper_table) for r in rows]
