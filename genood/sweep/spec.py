"""A W&B sweep file (``experiments/sweeps/<name>.yaml``), read as W&B documents it.

The same file drives ``wandb sweep`` + ``wandb agent`` (a W&B server) and ``python -m genood.sweep`` (Optuna,
no server). Keys (W&B's "Define a sweep configuration"):

    name: hvae_digits              # the sweep / study name (default: the file's stem)
    program: genood.train          # ${program} in the command
    method: random                 # grid | random | bayes
    metric: {name: val/loss, goal: minimize}
    run_cap: 20                    # optional: the number of runs (python -m genood.sweep's default --trials)
    parameters:                    # CLI keys of genood.train -> a value spec
      model.init_args.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 3.0e-3}
      trainer.max_epochs: {values: [100, 200]}
      seed_everything: {value: 0}
    command: [${env}, ${interpreter}, -m, ${program}, --config, configs/hvae/digits.yaml, ${args}]

``description``, ``project``, ``entity`` and ``early_terminate`` are W&B's own; the Optuna engine ignores
them (it never stops a run early).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..yaml_files import read_yaml_mapping

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
TOP_KEYS = {"name", "description", "program", "method", "metric", "parameters", "command", "project", "entity",
            "early_terminate", "run_cap"}
# W&B's distributions that have an Optuna counterpart (genood.sweep.space); W&B's others (normal, beta,
# inv_log_uniform, q_log_uniform, ...) have none and are refused with a message.
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform",
                 "log_uniform_values")
PARAM_KEYS = {"value", "values", "min", "max", "distribution", "q"}


class SweepSpecError(ValueError):
    """A sweep file that cannot be used; the message names the file and the key."""


@dataclass
class Param:
    """One swept CLI key: a W&B distribution with its arguments."""

    name: str
    distribution: str
    values: Optional[list] = None        # constant (one value) and categorical
    low: Optional[float] = None          # min / max of the ranges
    high: Optional[float] = None
    q: Optional[float] = None


@dataclass
class Sweep:
    name: str
    path: Path
    program: str
    method: str
    metric: str
    goal: str
    params: list[Param]
    command: list[str]
    run_cap: Optional[int] = None
    raw: dict = field(default_factory=dict)

    @property
    def configs(self) -> list[str]:
        """The ``--config`` files of the command (relative to where the sweep runs)."""
        out = []
        for i, chunk in enumerate(self.command):
            if chunk == "--config" and i + 1 < len(self.command):
                out.append(self.command[i + 1])
            elif chunk.startswith("--config="):
                out.append(chunk.split("=", 1)[1])
        return out


def _param(path: Path, name: str, spec: Any) -> Param:
    where = f"{path}: parameters.{name}"
    if not isinstance(spec, dict):
        raise SweepSpecError(f"{where} must be a mapping such as {{values: [...]}} or {{min: ..., max: ...}}")
    if "parameters" in spec:
        raise SweepSpecError(f"{where}: nested parameters are not supported; write the dotted CLI key instead "
                             "(e.g. model.init_args.lr)")
    unknown = set(spec) - PARAM_KEYS
    if unknown:
        raise SweepSpecError(f"{where}: unknown key(s) {sorted(unknown)} (probabilities, mu, sigma, a, b have no "
                             f"Optuna counterpart); allowed: {sorted(PARAM_KEYS)}")
    dist = spec.get("distribution")
    if dist is None:  # W&B's inference: value -> constant, values -> categorical, int bounds -> int_uniform
        if "value" in spec:
            dist = "constant"
        elif "values" in spec:
            dist = "categorical"
        elif "min" in spec and "max" in spec:
            ints = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
            dist = "int_uniform" if ints else "uniform"
        else:
            raise SweepSpecError(f"{where} needs value, values, or min and max")
    if dist not in DISTRIBUTIONS:
        raise SweepSpecError(f"{where}: distribution {dist!r} has no Optuna counterpart; use one of "
                             f"{', '.join(DISTRIBUTIONS)}")
    if dist == "constant":
        if "value" not in spec:
            raise SweepSpecError(f"{where}: distribution constant needs value")
        return Param(name, dist, values=[spec["value"]])
    if dist == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise SweepSpecError(f"{where}: values must be a non-empty list")
        return Param(name, dist, values=list(values))
    if "min" not in spec or "max" not in spec:
        raise SweepSpecError(f"{where}: distribution {dist} needs min and max")
    low, high = spec["min"], spec["max"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
        raise SweepSpecError(f"{where}: min and max must be finite numbers, got {low!r}, {high!r}")
    if not low < high:
        raise SweepSpecError(f"{where}: min ({low}) must be below max ({high})")
    if dist == "int_uniform" and not (isinstance(low, int) and isinstance(high, int)):
        raise SweepSpecError(f"{where}: int_uniform needs integer min and max, got {low!r}, {high!r}")
    if dist == "log_uniform_values" and low <= 0:
        raise SweepSpecError(f"{where}: log_uniform_values needs min > 0 (the values themselves), got {low}")
    q = spec.get("q")
    if dist == "q_uniform":
        if not isinstance(q, (int, float)) or isinstance(q, bool) or q <= 0:
            raise SweepSpecError(f"{where}: q_uniform needs q > 0, got {q!r}")
    elif q is not None:
        raise SweepSpecError(f"{where}: q applies to q_uniform only, not {dist}")
    return Param(name, dist, low=low, high=high, q=q)


def load_sweep(path) -> Sweep:
    """Read and check a W&B sweep file; every problem is a :class:`SweepSpecError` naming the key."""
    path = Path(path)
    raw = read_yaml_mapping(path, SweepSpecError, "sweep file",
                            "a mapping with program, method, metric, parameters and command", allowed=TOP_KEYS,
                            hint=" (shipped ones: experiments/sweeps/*.yaml)")
    method = raw.get("method")
    if method not in METHODS:
        raise SweepSpecError(f"{path}: method must be one of {', '.join(METHODS)}, got {method!r}")
    metric = raw.get("metric")
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str) or not metric["name"]:
        raise SweepSpecError(f"{path}: metric must be a mapping with a name, e.g. {{name: val/loss, goal: minimize}}")
    goal = metric.get("goal", "minimize")
    if goal not in GOALS:
        raise SweepSpecError(f"{path}: metric.goal must be minimize or maximize, got {goal!r}")
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise SweepSpecError(f"{path}: parameters must be a non-empty mapping of CLI keys")
    program = raw.get("program")
    if not isinstance(program, str) or not program:
        raise SweepSpecError(f"{path}: program is missing (e.g. program: genood.train)")
    command = raw.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, (str, int, float)) for c in command):
        raise SweepSpecError(f"{path}: command must be a list of strings, e.g. "
                             "[${env}, ${interpreter}, -m, ${program}, --config, <file>, ${args}]")
    command = [str(c) for c in command]
    if "${args}" not in command:
        raise SweepSpecError(f"{path}: command has no ${{args}}: the swept values would never reach the program")
    run_cap = raw.get("run_cap")
    if run_cap is not None and (not isinstance(run_cap, int) or isinstance(run_cap, bool) or run_cap < 1):
        raise SweepSpecError(f"{path}: run_cap must be a positive integer, got {run_cap!r}")
    parsed = [_param(path, str(k), v) for k, v in params.items()]
    if method == "grid" and any(p.distribution not in ("constant", "categorical", "int_uniform") for p in parsed):
        bad = [p.name for p in parsed if p.distribution not in ("constant", "categorical", "int_uniform")]
        raise SweepSpecError(f"{path}: method grid needs values (or int_uniform) for every parameter; "
                             f"continuous: {', '.join(bad)}")
    name = str(raw.get("name") or path.stem)
    if not re.fullmatch(r"[\w.\-]+", name):
        raise SweepSpecError(f"{path}: name {name!r} may only hold letters, digits, '_', '-', '.' (it names a folder)")
    return Sweep(name=name, path=path, program=program, method=method, metric=metric["name"], goal=goal,
                 params=parsed, command=command, run_cap=run_cap, raw=raw)
