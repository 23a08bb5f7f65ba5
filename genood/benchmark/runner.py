"""Running a benchmark's cells: each one an ordinary genood run in a subprocess, on this machine (``--jobs`` at
a time) or as SLURM jobs (:mod:`.launchers`).

A cell is **finished** when its run folder holds ``results.json``; finished cells are skipped. Every other
cell (never run, failed, interrupted, or whose results were deleted) runs again from scratch: a leftover
partial run folder is removed first. A cell that re-scores another entry's checkpoint runs after it, and
again whenever its source runs again. A failing cell is recorded with the last line of its error (and the
full log beside its run folder) and never stops the others.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Optional, Sequence, TextIO

from .spec import Benchmark, Cell

FINISHED, FAILED, MISSING = "finished", "failed", "missing"
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Warning)\b:?.*")
_ARGPARSE_ERROR = re.compile(r"^(?:\S+: )?error: .+")


def error_line(log_text: str) -> str:
    """The most informative last line of a failed run's output: the final Python exception line (or an
    argparse/jsonargparse ``[prog: ]error: ...`` line), else the last non-empty line. jsonargparse reports a
    constructor's or a class's error as a bullet under "Errors:" below a generic "Does not validate" line:
    that bullet (with its detail line when it ends in a colon) is the message then."""
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        ln = lines[i]
        if _EXCEPTION_LINE.match(ln) or _ARGPARSE_ERROR.match(ln):
            generic = "Does not validate" in ln or (i + 1 < len(lines) and "Does not validate" in lines[i + 1])
            bullets = [j for j in range(i + 1, len(lines))
                       if lines[j].startswith("- ") and not lines[j].startswith("- Expected a <class")]
            if bullets and generic:
                j = bullets[0]
                text = lines[j][2:]
                if text.endswith(":") and j + 1 < len(lines) and not lines[j + 1].startswith("- "):
                    text += " " + lines[j + 1]
                head = ln.split(":", 1)[0] if "Does not validate" in ln else ln.rstrip(":")
                return f"{head}: {text}"[:500]
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


def record_failure(cell: Cell, error: str) -> None:
    """Record a cell that failed without a run of its own (its source failed, its SLURM job died)."""
    record = {"entry": cell.entry.name, "seed": cell.seed, "key": cell.key, "status": FAILED, "error": error,
              "wall_seconds": 0.0, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    cell.status_path.parent.mkdir(parents=True, exist_ok=True)
    cell.status_path.write_text(json.dumps(record, indent=1))


def run_cell(cell: Cell, argv: list[str], env: dict, cwd: Path, extra: Optional[dict] = None) -> Outcome:
    """Run one cell's command, its output to the log beside the run folder; record the outcome (with
    ``extra``, e.g. the SLURM job id and host, in the status file)."""
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
              "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"), **(extra or {})}
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


def cells_to_run(cells: Sequence[Cell], recorded: Collection[str] = ()) -> list[Cell]:
    """The cells that are not finished, plus those that re-score a cell that runs again. A cell whose
    ``record_key`` is in ``recorded`` (a results record holds it) counts as finished, unless a cell that runs
    re-scores its checkpoint and it has no run folder here."""
    here = {c.key for c in cells if cell_status(c)[0] == FINISHED}
    done = {c.key for c in cells if c.key in here or c.record_key in recorded}
    needed = {c.source.key for c in cells if c.source is not None and c.key not in done and c.source.key not in here}
    todo: list[Cell] = []
    keys: set[str] = set()
    for c in cells:  # sources come before the cells that re-score them
        if c.key not in done or c.key in needed or (c.source is not None and c.source.key in keys):
            todo.append(c)
            keys.add(c.key)
    return todo


def run_benchmark(bench: Benchmark, cells: Sequence[Cell], jobs: int = 1, threads: Optional[int] = None,
                  gpus: Optional[Sequence[str]] = None, cwd: Optional[Path] = None, python: str = sys.executable,
                  stream: Optional[TextIO] = None, on_outcome: Optional[Callable[[Outcome], None]] = None,
                  launcher=None, recorded: Collection[str] = ()) -> list[Outcome]:
    """Run every unfinished cell; returns the outcomes of the cells run now.

    ``launcher`` (:mod:`.launchers`) says where: by default :class:`~.launchers.LocalLauncher` (``jobs`` at a
    time on this machine, ``threads`` CPU threads per run, default the cores divided among the jobs when
    ``jobs > 1``; ``gpus``: device ids handed out round-robin to the job slots), or
    :class:`~.launchers.SubmititLauncher` (SLURM jobs). A cell that re-scores another one is launched once
    its source has finished.
    """
    from .launchers import LocalLauncher

    cwd = Path(cwd or Path.cwd())
    stream = stream or sys.stdout
    launcher = launcher or LocalLauncher(jobs, threads, gpus)
    todo = cells_to_run(cells, recorded)
    print(f"benchmark {bench.name}: {len(cells)} cells, {len(cells) - len(todo)} finished earlier (skipped), "
          f"{len(todo)} to run {launcher.describe()}", file=stream, flush=True)
    if not todo:
        return []
    progress = Progress(len(todo), min(launcher.parallel, len(todo)), stream)
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

    with launcher:
        while pending or running:
            ready = []
            for cell in list(pending):
                src = cell.source
                if src is not None and src.key in todo_keys and src.key not in settled:
                    continue  # wait for the source cell
                pending.remove(cell)
                if src is not None and settled.get(src.key, FINISHED) != FINISHED:
                    error = f"not run: the cell it re-scores ({src.name}) failed"
                    record_failure(cell, error)
                    finish(Outcome(cell, FAILED, error, 0.0))
                    continue
                ready.append(cell)
            if ready:
                batch = [(c, c.argv(bench.seed_keys, python)) for c in ready]
                running.update(zip(launcher.submit(batch, cwd), ready))
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
