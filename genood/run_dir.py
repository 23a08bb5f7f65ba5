"""Run folders: ``<output_root>/<experiment>/version_<N>``, never reused (the README, "The run folder").

The folder is claimed once by the launching process and handed to DDP worker processes through the
``GENOOD_RUN_DIR`` environment variable (Lightning's launcher copies the environment), so every rank writes
to the same folder. Under torchrun/SLURM, where ranks start independently, pass ``--run_dir`` explicitly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

ENV_VAR = "GENOOD_RUN_DIR"

# folders created by claim_run_dir in this process (resolved paths): a run that fails before it starts
# removes its own folder again (genood.cli.run_folder_scope), never one it did not create
created_run_dirs: set[Path] = set()


def claim_run_dir(output_root: str, experiment: str, explicit: Optional[str] = None) -> Path:
    """Create and return a fresh run folder (or the one a parent process already claimed)."""
    if explicit:
        path = Path(explicit)
        if path.exists() and any(path.iterdir()) and os.environ.get(ENV_VAR) != str(path):
            if int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0"))) == 0:
                raise FileExistsError(f"run folder {path} already holds files; genood never overwrites a run. "
                                      "Choose another --run_dir or leave it unset for a new version folder.")
        try:
            path.mkdir(parents=True)
            created_run_dirs.add(path.resolve())
        except FileExistsError:  # it existed (empty), or another rank made it first
            pass
    elif os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
        path.mkdir(parents=True, exist_ok=True)
    else:
        if not re.fullmatch(r"[\w.\-/]+", experiment):
            raise ValueError(f"experiment name {experiment!r} may only hold letters, digits, '_', '-', '.', '/'")
        base = Path(output_root) / experiment
        base.mkdir(parents=True, exist_ok=True)
        taken = [int(m.group(1)) for p in base.iterdir() if (m := re.fullmatch(r"version_(\d+)", p.name))]
        n = max(taken, default=-1) + 1
        while True:
            path = base / f"version_{n}"
            try:
                path.mkdir()
                created_run_dirs.add(path.resolve())
                break
            except FileExistsError:  # another run claimed it first
                n += 1
    os.environ[ENV_VAR] = str(path)
    return path


def threads_per_job(jobs: int) -> Optional[int]:
    """CPU threads for each of ``jobs`` runs sharing this machine: the cores divided among them (None for one
    job: the run's own default)."""
    return max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None


def child_env(threads: Optional[int] = None, base: Optional[dict] = None) -> dict:
    """The environment of a genood run that a runner starts (a benchmark cell, a sweep trial): ``base`` (this
    process's environment) without ``GENOOD_RUN_DIR`` (each child claims its own folder with ``--run_dir``),
    W&B quiet unless asked otherwise, and ``threads`` CPU threads (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``)."""
    env = dict(os.environ if base is None else base)
    env.pop(ENV_VAR, None)
    env.setdefault("WANDB_SILENT", "true")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env
