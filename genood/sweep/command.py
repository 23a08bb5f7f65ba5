"""The command of one sweep point, built from the file's ``command:`` list as W&B's agent builds it.

W&B's agent (``wandb.wandb_agent.Agent._command_run``, wandb 0.31) expands ``${envvar:NAME}`` with
``create_sweep_command``, formats the point with ``create_sweep_command_args`` (``${args}`` = ``--key=value``,
``${args_no_hyphens}``, ``${args_json}``, ...) and replaces ``${env}`` by ``/usr/bin/env`` (not on Windows),
``${interpreter}`` by ``python`` and ``${program}`` by the file's program. We call the same two wandb helpers
and repeat its five-line substitution, so one sweep file runs the same program with the same arguments under
``wandb agent`` and ``python -m genood.sweep``; the one difference is ``${interpreter}``, which here is the
Python running the sweep (the agent takes whichever ``python`` is first on the PATH).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any, Optional

from .spec import Sweep


def agent_command(sweep: Sweep, values: dict[str, Any], python: str = sys.executable,
                  args_json_file: Optional[Path] = None) -> list[str]:
    """The argv that runs ``sweep`` at the point ``values`` ({CLI key: value}).

    ``args_json_file``: where ``${args_json_file}`` (if the command uses it) gets the point as JSON."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    command = create_sweep_command(list(sweep.command))  # a copy: the helper edits the list in place
    sweep_vars = create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})
    sweep_vars["interpreter"] = [python]
    sweep_vars["program"] = [sweep.program]
    if platform.system() != "Windows":
        sweep_vars["env"] = ["/usr/bin/env"]
    if "${args_json_file}" in command:
        if args_json_file is None:
            raise ValueError(f"{sweep.path}: the command uses ${{args_json_file}}; give a file for it")
        Path(args_json_file).write_text(sweep_vars["args_json"][0])
        sweep_vars["args_json_file"] = [str(args_json_file)]
    argv = []
    for chunk in command:
        chunk = str(chunk)
        if chunk.startswith("${") and chunk.endswith("}"):
            argv += sweep_vars.get(chunk[2:-1]) or []
        else:
            argv.append(chunk)
    return argv
