"""W&B's search methods and distributions as Optuna's samplers and distributions (no sampler of our own).

=====================  ==============================================================
W&B                    Optuna
=====================  ==============================================================
method: grid           ``GridSampler`` over every ``values`` list (int_uniform: min..max)
method: random         ``RandomSampler``
method: bayes          ``TPESampler`` (W&B uses a Gaussian process; TPE is Optuna's default model-based sampler)
value / constant       not sampled: passed to the program as it is, as W&B does
values / categorical   ``suggest_categorical``
int_uniform            ``suggest_int(min, max)``
uniform                ``suggest_float(min, max)``
q_uniform              ``suggest_float(min, max, step=q)``
log_uniform_values     ``suggest_float(min, max, log=True)``
log_uniform            ``suggest_float(exp(min), exp(max), log=True)`` (W&B's min/max are natural logs here)
=====================  ==============================================================

Optuna's categorical choices must be None, bool, int, float or str; a list or mapping value (e.g. a layer
width list) is handed to Optuna as its JSON text and decoded again before it reaches the command.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional

from .spec import Param, Sweep

_PRIMITIVE = (type(None), bool, int, float, str)


def _encode(value: Any) -> Any:
    return value if isinstance(value, _PRIMITIVE) else json.dumps(value, sort_keys=True)


def choices(p: Param) -> list:
    """The categorical choices of ``p`` as Optuna stores them."""
    return [_encode(v) for v in p.values]


def decode(p: Param, choice: Any) -> Any:
    """The sweep file's value for an Optuna choice of ``p``."""
    if p.distribution != "categorical":
        return choice
    return {_encode(v): v for v in p.values}[choice]


def optuna_distribution(p: Param):
    """The Optuna distribution of one parameter (None for a constant)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if p.distribution == "constant":
        return None
    if p.distribution == "categorical":
        return CategoricalDistribution(choices(p))
    if p.distribution == "int_uniform":
        return IntDistribution(int(p.low), int(p.high))
    if p.distribution == "uniform":
        return FloatDistribution(float(p.low), float(p.high))
    if p.distribution == "q_uniform":
        return FloatDistribution(float(p.low), float(p.high), step=float(p.q))
    if p.distribution == "log_uniform_values":
        return FloatDistribution(float(p.low), float(p.high), log=True)
    if p.distribution == "log_uniform":
        return FloatDistribution(math.exp(p.low), math.exp(p.high), log=True)
    raise ValueError(f"no Optuna distribution for {p.distribution}")  # spec.load_sweep refuses it first


def grid(sweep: Sweep) -> dict[str, list]:
    """Every sampled parameter's grid values (method grid)."""
    out = {}
    for p in sweep.params:
        if p.distribution == "categorical":
            out[p.name] = choices(p)
        elif p.distribution == "int_uniform":
            out[p.name] = list(range(int(p.low), int(p.high) + 1))
    return out


def grid_size(sweep: Sweep) -> Optional[int]:
    """The number of grid points (None unless method is grid)."""
    if sweep.method != "grid":
        return None
    return math.prod(len(v) for v in grid(sweep).values())


def make_sampler(sweep: Sweep, seed: Optional[int] = None):
    """The Optuna sampler of the sweep's method."""
    import optuna

    if sweep.method == "grid":
        return optuna.samplers.GridSampler(grid(sweep), seed=seed)
    if sweep.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def suggest(trial, sweep: Sweep) -> dict[str, Any]:
    """One point of the sweep drawn through ``trial``: {CLI key: value}, constants included, in file order."""
    values = {}
    for p in sweep.params:
        d = optuna_distribution(p)
        if d is None:
            values[p.name] = p.values[0]
        elif p.distribution == "categorical":
            values[p.name] = decode(p, trial.suggest_categorical(p.name, d.choices))
        elif p.distribution == "int_uniform":
            values[p.name] = trial.suggest_int(p.name, d.low, d.high)
        else:
            values[p.name] = trial.suggest_float(p.name, d.low, d.high, log=d.log, step=d.step)
    return values
