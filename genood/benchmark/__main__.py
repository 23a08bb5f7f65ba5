"""``python -m genood.benchmark --config experiments/benchmarks/<name>.yaml [--jobs N] [--launcher slurm] [--metric M]``

Runs every (entry, seed) cell of the benchmark file that has no results yet (each an ordinary
``python -m genood.train`` run folder under ``benchmarks/<name>/runs/``), then writes ``table.md``,
``table.tex``, ``table.csv``, ``cells.json`` and ``<metric>.png`` to ``benchmarks/<name>/``. Re-running
skips finished cells and re-runs failed ones; ``--no-run`` only re-tabulates (e.g. with another metric).
``--launcher slurm`` submits the cells as SLURM jobs (submitit), waits for them and tabulates the same way.
``--record FILE`` reads finished cells from a results record (a ``cells.json``; another machine's, or one committed
beside the benchmark file), so they are tabulated without run folders here, and writes every finished cell back
to it. A ``for_each: {glob: ...}`` that matches no file here takes the record's values, so a record is
tabulated on a machine without the data (``--no-run``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from ..evaluation.metrics import METRIC_NAMES


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m genood.benchmark", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="benchmark file, e.g. experiments/benchmarks/digits.yaml")
    p.add_argument("--jobs", type=int, default=1, help="cells run in parallel (default 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per cell (OMP_NUM_THREADS; default: cores / jobs when jobs > 1, else a run's own default: "
                        "OMP_NUM_THREADS when set, else 1)")
    p.add_argument("--gpus", default=None, help="comma-separated GPU ids handed out to the job slots, e.g. 0,1,2,3")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a CLI override added to every training entry, e.g. trainer.max_epochs=5 (repeatable; "
                        "changes the cells' keys, so they run as new cells)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds replacing the file's, e.g. 0,1")
    p.add_argument("--metric", choices=METRIC_NAMES, default=None, help="table metric (default: the file's, else auroc)")
    p.add_argument("--decimals", type=int, default=1, help="decimals of the percentages (default 1)")
    p.add_argument("--out", default=None, help="output folder (default: benchmarks/<name>)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter the file declares under params (repeatable)")
    p.add_argument("--only", action="append", default=[], metavar="PATTERN",
                   help="run only the cells whose run folder name <entry>-<value> matches this shell pattern, e.g. "
                        "'dte_np_semi*' or 'dte_semi-45_wine' (repeatable; the cells they re-score run too); the "
                        "table still lists every cell, the others as not run")
    p.add_argument("--record", action="append", default=[], metavar="FILE",
                   help="a results record (a cells.json, e.g. another machine's or a committed one): its finished "
                        "cells count as finished here (tabulated, not run again) when this folder has no run of "
                        "them; after tabulating, every finished cell is written back to the first FILE "
                        "(repeatable: later files are only read)")
    p.add_argument("--no-run", action="store_true", help="run nothing; tabulate the cells that exist")
    p.add_argument("--dry-run", action="store_true",
                   help="list the cells (those --only selects) and their commands, finished ones marked; run nothing")
    p.add_argument("--wandb", action="store_true",
                   help="also log the tables and the heatmap to one W&B run (offline unless W&B is configured)")
    p.add_argument("--wandb-project", default="genood", help="W&B project (default genood)")
    s = p.add_argument_group("SLURM (--launcher slurm: each cell one job of a job array, through submitit)")
    p.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="where the cells run: this machine (default) or SLURM jobs")
    s.add_argument("--slurm-partition", default=None, help="partition (default: the cluster's)")
    s.add_argument("--slurm-time", type=int, default=240, help="wall-time limit per cell, minutes (default 240)")
    s.add_argument("--slurm-gpus-per-cell", type=int, default=0, help="GPUs per cell (default 0)")
    s.add_argument("--slurm-cpus-per-cell", type=int, default=2,
                   help="CPUs per cell, also its OMP_NUM_THREADS unless --threads (default 2)")
    s.add_argument("--slurm-mem-gb", type=float, default=None, help="memory per cell, GB (default: the cluster's)")
    s.add_argument("--slurm-array-parallelism", type=int, default=None,
                   help="at most this many cells run at once (the job array's %%N; default: submitit's 256)")
    s.add_argument("--slurm-param", action="append", default=[], metavar="KEY=VALUE",
                   help="another sbatch option, e.g. account=myproj or qos=normal (repeatable)")
    a = p.parse_args(argv)
    if a.jobs < 1:
        p.error(f"--jobs must be >= 1, got {a.jobs}")
    if a.launcher == "slurm" and (a.jobs != 1 or a.gpus):
        p.error("--jobs and --gpus are for --launcher local; with slurm use --slurm-array-parallelism and "
                "--slurm-gpus-per-cell")
    for name in ("slurm_time", "slurm_cpus_per_cell"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if a.slurm_gpus_per_cell < 0 or (a.slurm_array_parallelism is not None and a.slurm_array_parallelism < 1):
        p.error("--slurm-gpus-per-cell must be >= 0 and --slurm-array-parallelism >= 1")
    slurm_params = {}
    for item in a.slurm_param:
        if "=" not in item:
            p.error(f"--slurm-param expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        slurm_params[k.strip().lstrip("-")] = v
    a.slurm_params = slurm_params
    params = {}
    for item in a.param:
        if "=" not in item:
            p.error(f"--param expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        params[k] = v
    a.params = params
    for item in a.override:
        if "=" not in item:
            p.error(f"--override expects KEY=VALUE, got {item!r}")
    a.override = ["--" + item.lstrip("-") for item in a.override]
    if a.seeds is not None:
        try:
            a.seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
        except ValueError:
            p.error(f"--seeds expects comma-separated integers, got {a.seeds!r}")
        if not a.seeds or len(set(a.seeds)) != len(a.seeds):
            p.error(f"--seeds needs distinct integers, got {a.seeds}")
    return a


def main(argv: Optional[list[str]] = None) -> dict:
    from .render import write_all
    from .runner import FINISHED, cell_status, run_benchmark
    from .spec import BenchmarkSpecError, load_benchmark
    from .table import build_tables, collect, load_records, recorded_values, write_record

    a = parse_args(argv)
    missing = [f for f in a.record[1:] if not Path(f).is_file()]
    if missing:
        raise SystemExit(f"genood.benchmark: --record {missing[0]}: no such file (only the first --record file may "
                         "be new: it is the one written)")
    try:
        records = load_records(a.record)
    except ValueError as e:
        raise SystemExit(f"genood.benchmark: --record: {e}") from None
    try:
        bench = load_benchmark(a.config, a.params, recorded_values(records) if records else None)
    except BenchmarkSpecError as e:
        raise SystemExit(f"genood.benchmark: {e}") from None
    for note in bench.notes:
        print(f"genood.benchmark: {note}", file=sys.stderr)
    if a.seeds is not None:
        bench.seeds = a.seeds
        for e in bench.entries:
            e.seeds = list(a.seeds)
    for e in bench.entries:
        if e.source is None:
            e.overrides = e.overrides + a.override
            e.portable_overrides = (e.portable_overrides or []) + a.override
    out = Path(a.out) if a.out else Path("benchmarks") / bench.name
    try:
        cells = bench.cells(out)
    except BenchmarkSpecError as e:
        raise SystemExit(f"genood.benchmark: {e}") from None
    selected = select_cells(cells, a.only)
    if a.only and not selected:
        raise SystemExit(f"genood.benchmark: --only {a.only} matches no cell; cell names look like "
                         f"{cells[0].entry.slug!r} (see --dry-run)")
    if a.dry_run:
        here = {id(c) for c in selected if cell_status(c)[0] == FINISHED}
        done = here | {id(c) for c in selected if c.record_key in records}
        for c in selected:
            mark = (" (finished: skipped)" if id(c) in here else " (recorded: skipped)" if id(c) in done else "")
            print(f"{c.name} [{c.key}]{mark} -> {c.run_dir}\n  " + " ".join(c.argv(bench.seed_keys)))
        print(f"{len(selected)} cell(s), {len(done)} finished, {len(selected) - len(done)} to run")
        return {"cells": selected}
    if bench.notes and not a.no_run:
        unrecorded = [c for c in selected if c.record_key not in records and cell_status(c)[0] != FINISHED]
        if unrecorded:
            raise SystemExit(f"genood.benchmark: {len(unrecorded)} cell(s), e.g. {unrecorded[0].name!r}, would run "
                             "without their data (a grid took a record's values: see above); pass the data folder "
                             "with --param, or tabulate the record with --no-run")
    launcher = None
    if a.launcher == "slurm" and not a.no_run:
        from .launchers import SubmititLauncher

        try:
            launcher = SubmititLauncher(out / "slurm", partition=a.slurm_partition, time_min=a.slurm_time,
                                        gpus_per_cell=a.slurm_gpus_per_cell, cpus_per_cell=a.slurm_cpus_per_cell,
                                        mem_gb=a.slurm_mem_gb, array_parallelism=a.slurm_array_parallelism,
                                        additional=a.slurm_params, threads=a.threads, name=f"genood-{bench.name}")
        except ValueError as e:
            raise SystemExit(f"genood.benchmark: error: {e}") from None
    outcomes = [] if a.no_run else run_benchmark(bench, selected, jobs=a.jobs, threads=a.threads,
                                                 gpus=a.gpus.split(",") if a.gpus else None, launcher=launcher,
                                                 recorded=records.keys())
    metric = a.metric or bench.metric
    results = collect(cells, records)
    tables = build_tables(bench, results, metric, a.decimals)
    paths = write_all(out, bench, tables, results, metric, a.decimals)
    print(paths["md"].read_text())
    if a.record:
        n = write_record(Path(a.record[0]), bench, results, metric, records)
        paths["record"] = Path(a.record[0])
        print(f"record {a.record[0]}: {n} finished cell(s)")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    if a.wandb:
        from .wandb_log import log_to_wandb

        log_to_wandb(out, bench, tables, paths, a.decimals, project=a.wandb_project)
    failed = sum(r.status == "failed" for r in results)
    if failed:
        print(f"{failed} cell(s) failed; their last error lines are in {paths['md']} (logs beside their run folders)",
              file=sys.stderr)
    return {"cells": cells, "outcomes": outcomes, "results": results, "tables": tables, "paths": paths}


def select_cells(cells: list, patterns: list[str]) -> list:
    """The cells whose run folder name (``Entry.slug``, e.g. ``dte_semi-45_wine``) matches one of ``patterns``
    (all cells when there is none), plus the cells they re-score, in the benchmark's order."""
    from fnmatch import fnmatchcase

    if not patterns:
        return list(cells)
    chosen = {id(c) for c in cells if any(fnmatchcase(c.entry.slug, p) for p in patterns)}
    for c in cells[::-1]:  # sources come before the cells that re-score them
        if id(c) in chosen and c.source is not None:
            chosen.add(id(c.source))
    return [c for c in cells if id(c) in chosen]


if __name__ == "__main__":
    main()
