"""Skip torch's NVML probe on machines without the NVIDIA driver (a per-step cost of CPU training).

Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` when it is imported (``lightning/fabric/__init__.py``), so
that asking whether CUDA is available does not initialise CUDA (forked DDP workers need it uninitialised).
torch then answers ``torch.cuda.is_available()`` by loading NVML (``libnvidia-ml.so.1``) and, until CUDA is
initialised, does so on every call; torch's Adam asks on every ``step`` (its capturable-graph health check).
Without the driver the load fails every time and torch falls back to ``cudaGetDeviceCount``, the answer it
gives without the variable: about 0.5 ms per optimizer step on this project's CPUs, a tenth of a small MLP's
step. Where NVML cannot be loaded, :func:`skip_nvml_check_without_driver` turns the probe off: the same answer,
without the failing load. Where it can (a GPU machine), nothing changes.
"""

from __future__ import annotations

import ctypes
import os

NVML_LIBRARY = "libnvidia-ml.so.1"
ENV = "PYTORCH_NVML_BASED_CUDA_CHECK"


def skip_nvml_check_without_driver() -> bool:
    """Set ``PYTORCH_NVML_BASED_CUDA_CHECK=0`` when it is ``1`` and NVML cannot be loaded; True if it did."""
    if os.environ.get(ENV) != "1":
        return False
    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        os.environ[ENV] = "0"
        return True
    return False
