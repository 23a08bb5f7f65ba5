"""Reading weight files from disk with errors that say what is wrong and how to fix it.

Every loader of genood (the CLI's checkpoints, classifier backbones, pretrained UNets, LPIPS weights) reads
its file through :func:`read_weights_file`, so a missing, truncated or foreign file gives the same kind of
one-line error (:class:`CheckpointError`, which the CLI reports without a traceback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import torch


class CheckpointError(RuntimeError):
    """A checkpoint or weight file that cannot be read or does not match the configured model."""


def read_weights_file(path: Union[str, Path], what: str, missing_hint: str = "", weights_only: bool = False,
                      expect_dict: bool = True, plural: bool = False) -> Any:
    """The object stored in ``path`` (``torch.load`` on the CPU; ``.safetensors`` files with safetensors).

    Raises FileNotFoundError ("<what> <path> does not exist<missing_hint>"; "do" when ``what`` is ``plural``,
    e.g. "LPIPS backbone weights") for a missing file and
    :class:`CheckpointError` for a file that cannot be read or, with ``expect_dict``, does not hold a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} {'do' if plural else 'does'} not exist{missing_hint}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # truncated file, not a torch file, ...
        raise CheckpointError(f"{what} {path} could not be read (corrupt or not a PyTorch file): "
                              f"{type(e).__name__}: {e}") from None
    if expect_dict and not isinstance(obj, dict):
        raise CheckpointError(f"{what} {path} holds a {type(obj).__name__}, not a state dict")
    return obj
