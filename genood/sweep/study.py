"""A W&B sweep file run as an Optuna study: every trial an ordinary genood run in its own folder.

**Storage.** One study (named after the sweep) in one storage (:mod:`.storage`), shared by every worker
process that opens it, on this machine or others.

**Trials.** ``target`` is the study's number of finished (COMPLETE) trials. A worker asks for a trial only
while finished + running trials are fewer; a trial that finds, on starting, that the trials before it already
make up the target was one too many (two workers asked at once): it is failed at once, marked ``surplus``, and
runs nothing. A failed trial (the run exits with an error, or logs no value for the metric) does not count:
another is run in its place (grid: the same grid point again). ``max_failures`` failed trials in a row stop
this worker, so a broken command fails fast. Re-running after an interruption, or with a larger target, runs
only the trials still missing.

**Interrupted trials.** Ctrl-C or SIGTERM stops the trials' runs and fails their trials. A process killed
outright (SIGKILL, a lost node) leaves its trials RUNNING: on the next start, a RUNNING trial of this host
whose worker process is gone is failed (``stale``); RUNNING trials of other hosts can only be failed by a
heartbeat (database storage) or by ``fail_running=True`` (only when no other worker is alive).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, TextIO

from ..run_dir import child_env
from .command import agent_command
from .objective import MetricNotFound, metric_value
from .space import grid_size, suggest
from .spec import Sweep
from .storage import fail_stale_trials, open_storage, open_study, progress, retry_failed_grid_points


class TrialFailed(Exception):
    """The trial's run failed; the message is its error line."""


class SurplusTrial(Exception):
    """Another worker's trials already make up the target: this trial runs nothing."""


class _QuietTrialFailures(logging.Filter):
    """Optuna logs each failed trial with a traceback; genood.sweep prints one line per trial instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (msg.startswith("Trial ") and " failed " in msg)


def _counts_as_failure(t) -> bool:
    return not (t.user_attrs.get("surplus") or t.user_attrs.get("stale") or t.user_attrs.get("interrupted"))


@dataclass
class TrialRunner:
    """The objective (one trial = one run of the sweep's command) and the after-trial callback."""

    sweep: Sweep
    out: Path
    target: int
    workers: int = 1
    threads: Optional[int] = None
    gpus: Optional[list[str]] = None
    max_failures: int = 3
    python: str = sys.executable
    cwd: Optional[Path] = None
    stream: Optional[TextIO] = None  # default: sys.stdout at the time of the call
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        import queue

        self.stream = self.stream or sys.stdout
        self.lock = threading.Lock()
        self.consecutive_failures = 0
        self.failed_out = False
        self.slots: "queue.Queue[int]" = queue.Queue()
        for i in range(self.workers):
            self.slots.put(i)
        self.env = child_env(self.threads)
        self.env.setdefault("WANDB_RUN_GROUP", self.sweep.name)  # W&B groups the trials' runs by sweep

    def trial_dir(self, number: int) -> Path:
        return self.out / "trials" / f"trial_{number}"

    def __call__(self, trial) -> float:
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        done, running = progress(trial.study, self.sweep, before=trial.number)
        if done + running >= self.target:
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise SurplusTrial(f"trial {trial.number}: the trials before it make up the target of {self.target}")
        values = suggest(trial, self.sweep)
        run_dir = self.trial_dir(trial.number)
        log_path = run_dir.with_name(run_dir.name + ".log")
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        argv = agent_command(self.sweep, values, self.python, args_json_file=run_dir.with_name(run_dir.name + ".json"))
        argv.append(f"--run_dir={run_dir}")
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("command", argv)
        start = time.perf_counter()
        rc = self._run(argv, log_path, trial)
        seconds = round(time.perf_counter() - start, 3)
        trial.set_user_attr("seconds", seconds)
        if rc != 0:
            from ..benchmark.runner import error_line

            error = error_line(log_path.read_text(errors="replace"))
            trial.set_user_attr("error", error)
            raise TrialFailed(error)
        try:
            value = metric_value(run_dir, self.sweep.metric)
        except (MetricNotFound, OSError, ValueError) as e:
            trial.set_user_attr("error", str(e))
            raise TrialFailed(str(e)) from None
        return value

    def _run(self, argv: list[str], log_path: Path, trial) -> int:
        """Run one trial's command, its output to ``log_path``; Ctrl-C / SIGTERM (``stop_event``) stop it."""
        slot = self.slots.get()
        try:
            env = dict(self.env)
            if self.gpus:
                env["CUDA_VISIBLE_DEVICES"] = str(self.gpus[slot % len(self.gpus)])
            with open(log_path, "w") as log:
                log.write("$ " + " ".join(argv) + "\n")
                log.flush()
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd, env=env)
                try:
                    while True:
                        try:
                            return proc.wait(timeout=0.5)
                        except subprocess.TimeoutExpired:
                            if self.stop_event.is_set():
                                raise KeyboardInterrupt
                except BaseException:
                    trial.set_user_attr("interrupted", True)
                    proc.terminate()
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    raise
        finally:
            self.slots.put(slot)

    def after_trial(self, study, trial) -> None:
        """Optuna callback: count failures in a row; stop once the target is reached or taken by running trials."""
        from optuna.trial import TrialState

        with self.lock:
            if trial.state == TrialState.COMPLETE:
                self.consecutive_failures = 0
            elif trial.state == TrialState.FAIL and _counts_as_failure(trial):
                self.consecutive_failures += 1
                if self.consecutive_failures >= self.max_failures:
                    self.failed_out = True
        done, running = progress(study, self.sweep)
        if not trial.user_attrs.get("surplus"):
            a = trial.user_attrs
            if trial.state == TrialState.COMPLETE:
                text = f" | {self.sweep.metric} = {trial.value:.6g}"
            else:
                text = f"\n      {a.get('error', trial.state.name)}"
                text += f"\n      log: {a['run_dir']}.log" if "run_dir" in a else ""
            mark = "ok  " if trial.state == TrialState.COMPLETE else "FAIL"
            with self.lock:
                print(f"[{self.sweep.name}] trial {trial.number} {mark} ({a.get('seconds', 0.0):.1f} s) | {done} of "
                      f"{self.target} finished, {running} running{text}", file=self.stream, flush=True)
        if self.failed_out or done + running >= self.target:
            study.stop()


def run_sweep(sweep: Sweep, out: Path, trials: int, storage: Optional[str] = None, workers: int = 1,
              threads: Optional[int] = None, gpus: Optional[list[str]] = None, seed: Optional[int] = None,
              max_failures: int = 3, fail_running: bool = False, cwd: Optional[Path] = None,
              python: str = sys.executable, stream: Optional[TextIO] = None,
              stop_event: Optional[threading.Event] = None):
    """Run trials until the study holds ``trials`` finished ones (grid: at most the grid's size), ``workers``
    at a time; returns the study. Setting ``stop_event`` (a signal handler does) stops the running trials."""
    import optuna

    stream = stream or sys.stdout
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    optuna_logger = optuna.logging.get_logger("optuna")
    if not any(isinstance(f, _QuietTrialFailures) for f in optuna_logger.filters):
        optuna_logger.addFilter(_QuietTrialFailures())
    study = open_study(sweep, open_storage(storage, out), seed)
    stale = fail_stale_trials(study, fail_running)
    if stale:
        print(f"[{sweep.name}] failed {len(stale)} trial(s) left running by a stopped worker: "
              f"{', '.join(map(str, stale))}", file=stream, flush=True)
    size = grid_size(sweep)
    target = min(trials, size) if size is not None else trials
    if threads is None and workers > 1:
        from ..run_dir import threads_per_job

        threads = threads_per_job(workers)
    runner = TrialRunner(sweep, out, target, workers=workers, threads=threads, gpus=gpus, max_failures=max_failures,
                         python=python, cwd=cwd, stream=stream, stop_event=stop_event or threading.Event())
    done, running = progress(study, sweep)
    print(f"[{sweep.name}] study {sweep.name!r} ({sweep.method}, {sweep.goal} {sweep.metric}): {done} of {target} "
          f"trials finished, {running} running elsewhere; storage {storage or out / 'study.journal'}",
          file=stream, flush=True)
    while not runner.failed_out:
        if sweep.method == "grid":
            retry_failed_grid_points(study, sweep)
        done, running = progress(study, sweep)
        left = target - done - running
        if left <= 0:
            break
        study.optimize(runner, n_trials=left, n_jobs=min(workers, left), callbacks=[runner.after_trial],
                       catch=(TrialFailed, SurplusTrial))
    done, running = progress(study, sweep)
    if runner.failed_out:
        print(f"[{sweep.name}] stopped: {runner.consecutive_failures} trials in a row failed (see their logs under "
              f"{out / 'trials'}); fix the cause and run the same command again", file=stream, flush=True)
    elif done < target and running:
        print(f"[{sweep.name}] {done} of {target} trials finished; {running} still running in other workers (if "
              "none is alive any more, run again with --fail-running)", file=stream, flush=True)
    return study
