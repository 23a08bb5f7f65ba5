"""Where a benchmark's cells run: on this machine (``--launcher local``, the default) or as SLURM jobs
(``--launcher slurm``, through submitit).

A launcher takes the cells that are ready (with their commands) and returns one ``concurrent.futures.Future``
per cell, resolved with the cell's :class:`~genood.benchmark.runner.Outcome`; the runner waits on them, records
the outcomes and tabulates, whichever launcher ran the cells.

* :class:`LocalLauncher`: each cell a subprocess, ``jobs`` at a time, CPU threads split among them, GPUs
  handed out to the job slots.
* :class:`SubmititLauncher`: each batch of ready cells one SLURM job array (``%parallelism`` caps how many run
  at once); each job runs the cell's command on its node exactly as the local launcher would, with
  ``OMP_NUM_THREADS`` = the CPUs per cell. A submitted cell's job id is written to its status file
  (``<run folder>.cell.json``), so when the runner is stopped and started again, a cell whose job is still
  queued or running is waited for, not submitted twice. submitit's files (job scripts, job stdout / stderr)
  go to ``<out>/slurm/``; the cell's own log is beside its run folder, as with the local launcher.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

from ..run_dir import child_env, threads_per_job
from .runner import FAILED, Outcome, read_status, record_failure, run_cell
from .spec import Cell

SUBMITTED = "submitted"
CLUSTER = "slurm"   # submitit's executor for --launcher slurm; the tests use "local" (same jobs, local processes)
POLL_S = 15.0       # seconds between two looks at the submitted jobs' states


class LocalLauncher:
    """Cells as subprocesses of this machine, ``jobs`` at a time (``threads`` CPU threads each: default the
    cores divided among the jobs; ``gpus`` handed out round-robin to the job slots)."""

    def __init__(self, jobs: int = 1, threads: Optional[int] = None, gpus: Optional[Sequence[str]] = None):
        self.jobs, self.gpus = jobs, list(gpus) if gpus else None
        self.env = child_env(threads if threads is not None else threads_per_job(jobs))
        self.slots: "queue.Queue[int]" = queue.Queue()
        for i in range(jobs):
            self.slots.put(i)
        self.parallel = jobs

    def describe(self) -> str:
        return f"with {self.jobs} job(s)"

    def __enter__(self) -> "LocalLauncher":
        self.pool = ThreadPoolExecutor(max_workers=self.jobs)
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True)

    def _work(self, cell: Cell, argv: list[str], cwd: Path) -> Outcome:
        slot = self.slots.get()
        try:
            env = dict(self.env)
            if self.gpus:
                env["CUDA_VISIBLE_DEVICES"] = str(self.gpus[slot % len(self.gpus)])
            return run_cell(cell, argv, env, cwd)
        finally:
            self.slots.put(slot)

    def submit(self, batch: Sequence[tuple[Cell, list[str]]], cwd: Path) -> list[Future]:
        return [self.pool.submit(self._work, cell, argv, cwd) for cell, argv in batch]


def run_cell_on_node(cell: Cell, argv: list[str], threads: Optional[int], cwd: str) -> Outcome:
    """A SLURM job's function: run one cell on the node it was given (the node's environment, with
    ``threads`` CPU threads), recording the job id and host in the cell's status file."""
    import submitit

    try:
        job_id = submitit.JobEnvironment().job_id
    except RuntimeError:  # not inside a submitit job (called directly)
        job_id = None
    os.chdir(cwd)  # the cell's paths (configs, run folder) are relative to where the benchmark was started
    return run_cell(cell, argv, child_env(threads), Path(cwd), extra={"job_id": job_id, "host": socket.gethostname()})


class SubmititLauncher:
    """Cells as SLURM jobs through submitit: one job array per batch of ready cells.

    Args:
        folder: submitit's folder (job scripts and the jobs' stdout / stderr).
        partition: SLURM partition (None: the cluster's default).
        time_min: wall-time limit of each cell's job, minutes.
        gpus_per_cell, cpus_per_cell, mem_gb: resources of each cell's job (``cpus_per_cell`` is also the
            cell's ``OMP_NUM_THREADS`` unless ``threads`` is given).
        array_parallelism: at most this many cells of an array run at once (SLURM's ``--array=...%N``).
        additional: further ``sbatch`` options, e.g. ``{"account": "proj", "qos": "normal"}``.
        threads: the cells' CPU threads (default: ``cpus_per_cell``).
        cluster: submitit's executor (default :data:`CLUSTER`, ``slurm``; ``local`` runs the same jobs as local
            processes).
        name: the jobs' name in the queue.
        poll_s: seconds between two looks at the jobs' states (default :data:`POLL_S`).
    """

    def __init__(self, folder: Path, partition: Optional[str] = None, time_min: int = 240, gpus_per_cell: int = 0,
                 cpus_per_cell: int = 2, mem_gb: Optional[float] = None, array_parallelism: Optional[int] = None,
                 additional: Optional[dict] = None, threads: Optional[int] = None, cluster: Optional[str] = None,
                 name: str = "genood", poll_s: Optional[float] = None, stream=None):
        import submitit

        self.cluster = cluster or CLUSTER
        if self.cluster == "slurm" and shutil.which("sbatch") is None:
            raise ValueError("--launcher slurm needs SLURM's sbatch on the PATH: run the benchmark on the cluster's "
                             "login node (or use --launcher local)")
        self.folder = Path(folder).resolve()
        self.executor = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=self.cluster)
        params = {"timeout_min": int(time_min), "gpus_per_node": int(gpus_per_cell),
                  "cpus_per_task": int(cpus_per_cell),
                  "tasks_per_node": 1, "nodes": 1, "name": name, "mem_gb": mem_gb,
                  "slurm_partition": partition, "slurm_array_parallelism": array_parallelism,
                  "slurm_additional_parameters": additional or None}
        self.executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
        self.threads = threads if threads is not None else cpus_per_cell
        self.parallel = array_parallelism or 256  # submitit's default array parallelism
        self.poll_s = POLL_S if poll_s is None else poll_s
        self.stream = stream or sys.stdout
        self.watched: list[tuple[object, Future, Cell]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.partition = partition

    def describe(self) -> str:
        where = f"partition {self.partition}" if self.partition else "the default partition"
        return f"as {self.cluster} jobs ({where}, at most {self.parallel} at once)"

    def __enter__(self) -> "SubmititLauncher":
        self.watcher = threading.Thread(target=self._watch, name="genood-slurm-watch", daemon=True)
        self.watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.watcher.join()

    def _job(self, job_id: str):
        return self.executor._executor.job_class(folder=str(self.folder / "%j"), job_id=job_id)

    def _running_job(self, cell: Cell):
        """The still queued or running job of an earlier invocation for ``cell``, if any."""
        record = read_status(cell)
        if record.get("status") != SUBMITTED or not record.get("job_id") or record.get("cluster") != self.cluster:
            return None
        try:
            job = self._job(str(record["job_id"]))
            return None if job.done() else job
        except Exception:  # the scheduler no longer knows the job
            return None

    def submit(self, batch: Sequence[tuple[Cell, list[str]]], cwd: Path) -> list[Future]:
        futures: dict[str, Future] = {}
        fresh = []
        for cell, argv in batch:
            fut: Future = Future()
            futures[cell.key] = fut
            job = self._running_job(cell)
            if job is not None:
                print(f"  {cell.name}: waiting for its job {job.job_id} submitted earlier", file=self.stream,
                      flush=True)
                with self.lock:
                    self.watched.append((job, fut, cell))
            else:
                fresh.append((cell, argv))
        if fresh:
            for cell, _ in fresh:
                cell.run_dir.parent.mkdir(parents=True, exist_ok=True)
            with self.executor.batch():
                jobs = [self.executor.submit(run_cell_on_node, cell, argv, self.threads, str(cwd))
                        for cell, argv in fresh]
            for (cell, argv), job in zip(fresh, jobs):
                cell.status_path.write_text(json.dumps(
                    {"entry": cell.entry.name, "seed": cell.seed, "key": cell.key, "status": SUBMITTED,
                     "job_id": str(job.job_id), "cluster": self.cluster, "command": argv,
                     "submitted_at": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))
                with self.lock:
                    self.watched.append((job, futures[cell.key], cell))
            print(f"  submitted {len(fresh)} cell(s): job(s) {', '.join(str(j.job_id) for j in jobs)}",
                  file=self.stream, flush=True)
        return [futures[cell.key] for cell, _ in batch]

    def _watch(self) -> None:
        """Resolve each cell's future once its job has ended (the job's outcome, or its failure recorded)."""
        while not self.stop.is_set():
            with self.lock:
                watched = list(self.watched)
            for item in watched:
                job, fut, cell = item
                try:
                    if not job.done():
                        continue
                except Exception:  # the scheduler could not be asked (sacct busy): look again later
                    continue
                try:
                    outcome = job.result()
                    outcome = Outcome(cell, outcome.status, outcome.error, outcome.wall_seconds)
                except Exception as e:  # the job itself failed: timed out, preempted, cancelled, node lost
                    lines = [ln for ln in str(e).splitlines() if ln.strip()]
                    error = f"job {job.job_id}: {type(e).__name__}: {lines[0] if lines else ''}"[:500]
                    record_failure(cell, error)
                    outcome = Outcome(cell, FAILED, error, 0.0)
                with self.lock:
                    self.watched.remove(item)
                fut.set_result(outcome)
            self.stop.wait(self.poll_s)
