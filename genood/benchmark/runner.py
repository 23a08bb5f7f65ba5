"""Running a benchmark's cells: each one an ordinary genood run in a subprocess, ``--jobs`` at a time.

A cell is **finished** when its run folder holds ``results.json``; finished cells are skipped. Every other
cell (never run, failed, interrupted, or whose results were deleted) runs again from scratch: a leftover
partial run folder is removed first. A cell that re-scores another entry's checkpoint runs after it, and
again whenever its source runs again. A failing cell is recorded with the last line of its error (and the
full log beside its run folder) and never stops the others.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, TextIO

from ..run_dir import ENV_VAR as RUN_DIR_ENV
from .spec import Benchmark, Cell

FINISHED, FAILED, MISSING = "finished", "failed", "missing"
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Warning)\b:?.*")
_ARGPARSE_ERROR = re.compile(r"^\S+: error: .+")


def error_line(log_text: str) -> str:
    """The most informative last line of a failed run's output: the final Python exception line (or an
    argparse/jsonargparse ``prog: error: ...`` line), else the last non-empty line. jsonargparse reports a
    constructor's error as a bullet under "Errors:" below a generic "Does not validate" line: that bullet
    is the message then."""
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        ln = lines[i]
        if _EXCEPTION_LINE.match(ln) or _ARGPARSE_ERROR.match(ln):
            bullets = [b[2:] for b in lines[i + 1:] if b.startswith("- ") and not b.startswith("- Expected a <class")]
            if bullets and "Does not validate" in ln:
                return f"{ln.split(':', 1)[0]}: {bullets[0]}"[:500]
            return ln[:500]
    return lines[-1][:500] if lines else "no output"


def cell_status(cell: Cell) -> tuple[str, Optional[str], Optional[float]]:
    """``(status, error line, wall seconds)`` of a cell from its run folder and status file."""
    record = read_status(cell)
    if (cell.run_dir / "results.json").is_file():
        return FINISHED, None, record.get("wall_seconds")
    if record.get("status") == FAILED:
        return FAILED, record.get("error"), record.get("wall_seconds")
    return MISSING, None, None


def read_status(cell: Cell) -> dict:
    try:
        return json.loads(cell.status_path.read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class Outcome:
    cell: Cell
    status: str
    error: Optional[str]
    wall_seconds: float


def run_cell(cell: Cell, argv: list[str], env: dict, cwd: Path) -> Outcome:
    """Run one cell's command, its output to the log beside the run folder; record the outcome."""
    if cell.run_dir.exists():  # a partial folder of an interrupted or failed attempt: genood never reuses one
        shutil.rmtree(cell.run_dir)
    cell.run_dir.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(cell.log_path, "w") as log:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        try:
            rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env).returncode
        except OSError as e:
            rc, _ = -1, log.write(f"{type(e).__name__}: {e}\n")
    wall = time.perf_counter() - start
    ok = rc == 0 and (cell.run_dir / "results.json").is_file()
    error = None
    if not ok:
        text = cell.log_path.read_text(errors="replace")
        error = error_line(text) if rc != 0 else "the run exited without writing results.json"
    record = {"entry": cell.entry.name, "seed": cell.seed, "key": cell.key, "status": FINISHED if ok else FAILED,
              "error": error, "returncode": rc, "wall_seconds": round(wall, 3), "command": argv,
              "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    cell.status_path.write_text(json.dumps(record, indent=1))
    return Outcome(cell, FINISHED if ok else FAILED, error, wall)


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """One line per finished cell: done / left / failed, elapsed wall time and an estimate of the rest
    (each remaining cell costs its entry's mean so far, else the mean of all finished cells)."""

    def __init__(self, total: int, jobs: int, stream: TextIO = sys.stdout):
        self.total, self.jobs, self.stream = total, jobs, stream
        self.done = self.failed = 0
        self.start = time.perf_counter()
        self.durations: dict[str, list[float]] = {}

    def estimate(self, remaining: Sequence[Cell]) -> Optional[float]:
        every = [d for ds in self.durations.values() for d in ds]
        if not every:
            return None
        overall = sum(every) / len(every)
        cost = sum((sum(ds) / len(ds)) if (ds := self.durations.get(c.entry.base)) else overall for c in remaining)
        return cost / max(1, self.jobs)

    def update(self, outcome: Outcome, remaining: Sequence[Cell]) -> None:
        self.done += 1
        self.failed += outcome.status == FAILED
        self.durations.setdefault(outcome.cell.entry.base, []).append(outcome.wall_seconds)
        eta = self.estimate(remaining)
        mark = "ok  " if outcome.status == FINISHED else "FAIL"
        line = (f"[{self.done}/{self.total}] {mark} {outcome.cell.name} ({outcome.wall_seconds:.1f} s) | "
                f"{self.done} done, {self.total - self.done} left, {self.failed} failed | elapsed "
                f"{_fmt_time(time.perf_counter() - self.start)}"
                + (f" | estimate {_fmt_time(eta)} to go" if eta is not None and self.total > self.done else ""))
        if outcome.error:
            line += f"\n      {outcome.error}"
        print(line, file=self.stream, flush=True)


def cells_to_run(cells: Sequence[Cell]) -> list[Cell]:
    """The cells that are not finished, plus those that re-score a cell that runs again."""
    todo: list[Cell] = []
    keys: set[str] = set()
    for c in cells:  # sources come before the cells that re-score them
        if cell_status(c)[0] != FINISHED or (c.source is not None and c.source.key in keys):
            todo.append(c)
            keys.add(c.key)
    return todo


def run_benchmark(bench: Benchmark, cells: Sequence[Cell], jobs: int = 1, threads: Optional[int] = None,
                  gpus: Optional[Sequence[str]] = None, cwd: Optional[Path] = None, python: str = sys.executable,
                  stream: TextIO = sys.stdout, on_outcome: Optional[Callable[[Outcome], None]] = None) -> list[Outcome]:
    """Run every unfinished cell, ``jobs`` at a time; returns the outcomes of the cells run now.

    ``threads``: CPU threads per run (``OMP_NUM_THREADS``; default: the cores divided among the jobs when
    ``jobs > 1``). ``gpus``: device ids handed out round-robin to the job slots (``CUDA_VISIBLE_DEVICES``).
    """
    cwd = Path(cwd or Path.cwd())
    todo = cells_to_run(cells)
    print(f"benchmark {bench.name}: {len(cells)} cells, {len(cells) - len(todo)} finished earlier (skipped), "
          f"{len(todo)} to run with {jobs} job(s)", file=stream, flush=True)
    if not todo:
        return []
    if threads is None and jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    base_env = dict(os.environ)
    base_env.pop(RUN_DIR_ENV, None)  # each cell claims its own run folder (--run_dir)
    base_env.setdefault("WANDB_SILENT", "true")
    if threads:
        base_env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    slots: queue.Queue[int] = queue.Queue()
    for i in range(jobs):
        slots.put(i)

    def work(cell: Cell) -> Outcome:
        slot = slots.get()
        try:
            env = dict(base_env)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = str(gpus[slot % len(gpus)])
            return run_cell(cell, cell.argv(bench.seed_keys, python), env, cwd)
        finally:
            slots.put(slot)

    progress = Progress(len(todo), jobs, stream)
    pending = list(todo)
    settled: dict[str, str] = {}  # key -> status of the cells run (or refused) now
    outcomes: list[Outcome] = []
    running: dict[Future, Cell] = {}
    todo_keys = {c.key for c in todo}

    def finish(outcome: Outcome) -> None:
        settled[outcome.cell.key] = outcome.status
        outcomes.append(outcome)
        progress.update(outcome, pending + list(running.values()))
        if on_outcome is not None:
            on_outcome(outcome)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            for cell in list(pending):
                src = cell.source
                if src is not None and src.key in todo_keys and src.key not in settled:
                    continue  # wait for the source cell
                pending.remove(cell)
                if src is not None and settled.get(src.key, FINISHED) != FINISHED:
                    record = {"entry": cell.entry.name, "seed": cell.seed, "key": cell.key, "status": FAILED,
                              "error": f"not run: the cell it re-scores ({src.name}) failed", "wall_seconds": 0.0}
                    cell.status_path.parent.mkdir(parents=True, exist_ok=True)
                    cell.status_path.write_text(json.dumps(record, indent=1))
                    finish(Outcome(cell, FAILED, record["error"], 0.0))
                    continue
                running[pool.submit(work, cell)] = cell
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                cell = running.pop(fut)
                try:
                    outcome = fut.result()
                except Exception as e:  # the runner itself failed on this cell (disk full, ...): record it
                    outcome = Outcome(cell, FAILED, f"{type(e).__name__}: {e}", 0.0)
                finish(outcome)
    return outcomes
