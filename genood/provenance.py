"""Where a result came from: code version, library versions, device, threads and seed, recorded in every run folder.

:func:`provenance` is written into ``results.json``'s ``metadata`` (with the wall times and the weights
that were evaluated, filled in by the CLI), so a number in a paper table can be traced to the commit,
the libraries and the hardware that produced it. Results repeat exactly for the same seed only on the same
device and with the same number of CPU threads (reductions are split differently), so both are recorded.
"""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch

PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def git_state(repo: Path = PACKAGE_DIR.parent) -> dict:
    """``{"git_commit": sha or None, "git_dirty": bool or None}`` of the checkout genood runs from.

    None when genood is not run from a git checkout (e.g. an installed wheel) or git is missing."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return {"git_commit": None, "git_dirty": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, timeout=10)
        return {"git_commit": sha.stdout.strip(), "git_dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def device_name(device: Optional[torch.device] = None) -> str:
    """A readable name of ``device``: the GPU's product name, or the CPU's architecture."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(device: Optional[torch.device] = None, seed: Optional[int] = None, world_size: int = 1) -> dict:
    """Versions, commit, device, CPU threads and seed of this process, as JSON-ready values.

    ``cuda`` is the CUDA version actually used (None when ``device`` is not a CUDA device);
    ``torch_cuda_build`` is the CUDA version torch was built with (None for a CPU-only build), whatever the
    device. ``threads`` is ``torch.get_num_threads()`` (genood's ``--threads``)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    import lightning

    import genood

    return {
        "genood_version": genood.__version__,
        **git_state(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "torch_cuda_build": torch.version.cuda,
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "world_size": int(world_size),
        "seed": seed,
    }
