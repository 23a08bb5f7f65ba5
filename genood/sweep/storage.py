"""The sweep's Optuna study in its storage: opened (or created), counted, and repaired.

The study lives in ``<out>/study.journal`` (Optuna's journal file) unless ``storage`` names another: a database
URL (``sqlite:///...``, ``postgresql://...``; Optuna's RDB storage with a heartbeat, so a trial whose worker died
is failed after ``HEARTBEAT_GRACE_S``) or the path of a shared journal file. Every process that opens the same
storage works on the same study. Repairs: the RUNNING trials of dead workers of this host are failed
(:func:`fail_stale_trials`), and for a grid the points whose trials all failed are queued again
(:func:`retry_failed_grid_points`).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Optional

from .space import make_sampler
from .spec import Sweep, SweepSpecError

HEARTBEAT_INTERVAL_S = 60
HEARTBEAT_GRACE_S = 180


def open_storage(url: Optional[str], out: Path):
    """The Optuna storage: ``<out>/study.journal`` by default, a database URL, or a journal file path."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if url is not None and "://" in url:
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_INTERVAL_S,
                                          grace_period=HEARTBEAT_GRACE_S)
    path = Path(url) if url is not None else out / "study.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def open_study(sweep: Sweep, storage, seed: Optional[int] = None):
    """The sweep's study in ``storage`` (created on first use). With a ``seed`` the sampler is seeded with
    seed + the number of trials already in the study, so a resumed study draws new points, not the first
    ones again (concurrent workers need different seeds, or none)."""
    import optuna

    try:
        study = optuna.create_study(study_name=sweep.name, storage=storage, load_if_exists=True,
                                    direction=sweep.goal, sampler=make_sampler(sweep, seed))
    except ValueError as e:  # the study exists with the other direction
        raise SweepSpecError(f"{sweep.path}: study {sweep.name!r} in this storage does not match the file: "
                             f"{e}") from None
    if seed is not None:
        study.sampler = make_sampler(sweep, seed + len(study.get_trials(deepcopy=False)))
    text = sweep.path.read_text()
    if "sweep_file" not in study.user_attrs:
        study.set_user_attr("sweep_file", text)
    elif study.user_attrs["sweep_file"] != text:
        print(f"genood.sweep: warning: {sweep.path} changed since study {sweep.name!r} started; its finished trials "
              "were drawn from the earlier version", file=sys.stderr)
    return study


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process not yet reaped by its parent is a zombie ("pid (name) Z ..."): gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def fail_stale_trials(study, fail_running: bool = False) -> list[int]:
    """Fail the RUNNING trials left by dead workers of this host (or every RUNNING trial with
    ``fail_running``); returns their numbers. Call it before this process starts trials of its own."""
    from optuna.trial import TrialState

    host, stale = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        pid = worker.get("pid")
        mine = (worker.get("host") == host and isinstance(pid, int) and pid > 0
                and (pid == os.getpid() or not _pid_alive(pid)))  # at start, no RUNNING trial is this process's
        if fail_running or mine:  # (Optuna's public API sets attributes only through a live Trial object)
            study._storage.set_trial_user_attr(t._trial_id, "stale", True)
            study.tell(t.number, state=TrialState.FAIL)
            stale.append(t.number)
    return stale


def progress(study, sweep: Sweep, before: Optional[int] = None) -> tuple[int, int]:
    """(finished, running) trials of the study (only those numbered below ``before`` when given); for a grid,
    finished counts distinct grid points."""
    from optuna.trial import TrialState

    done, running = set(), 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if before is not None and t.number >= before:
            continue
        if t.state == TrialState.RUNNING:
            running += 1
        else:
            done.add(t.system_attrs.get("grid_id", t.number) if sweep.method == "grid" else t.number)
    return len(done), running


def retry_failed_grid_points(study, sweep: Sweep) -> list[int]:
    """Method grid: queue again every grid point whose trials all failed and that no trial runs or waits for
    (Optuna's GridSampler counts a failed point as visited). Returns the grid ids queued."""
    import optuna
    from optuna.trial import TrialState

    from .space import grid

    space = grid(sweep)
    covered, failed = set(), {}
    for t in study.get_trials(deepcopy=False):
        gid = t.system_attrs.get("grid_id")
        if gid is None or t.system_attrs.get("search_space") != space:  # a point of an earlier version of the grid
            continue
        if t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING):
            covered.add(gid)
        elif t.state == TrialState.FAIL:
            failed.setdefault(gid, t)
    queued = []
    for gid, t in sorted(failed.items()):
        if gid in covered:
            continue
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=t.params, distributions=t.distributions,
            system_attrs={"grid_id": gid, "search_space": t.system_attrs["search_space"], "retry_of": t.number}))
        queued.append(gid)
    return queued
