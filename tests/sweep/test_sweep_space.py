"""W&B's sweep format read as W&B documents it, and mapped onto Optuna's samplers and distributions.

The reference is W&B's documentation of the sweep configuration ("Sweep configuration options"): a
distribution's draws lie where W&B says (log_uniform: exp(U(min, max)); log_uniform_values: log-uniform
between the values; q_uniform: multiples of q; int_uniform: every integer), the inferred distributions
(values -> categorical, integer bounds -> int_uniform), and W&B's own agent for the command macros.
"""

from __future__ import annotations

import math
import statistics

import pytest
import yaml

from test_sweep_files import wandb_agent_command

PARAMS = {
    "c": {"values": [[16, 32], [32, 64], 7, "a"]},
    "k": {"min": 2, "max": 5},                                         # int_uniform (inferred)
    "u": {"min": -1.0, "max": 3.0},                                    # uniform (inferred)
    "q": {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25},
    "lv": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
    "l": {"distribution": "log_uniform", "min": -4.0, "max": 0.0},
    "const": {"value": [1, 2]},
}


def _sweep(tmp_path, method="random", parameters=None, command=None, **top):
    from genood.sweep import load_sweep

    raw = {"program": "genood.train", "method": method, "metric": {"name": "val/loss", "goal": "minimize"},
           "parameters": parameters or PARAMS,
           "command": command or ["${env}", "${interpreter}", "-m", "${program}", "${args}"], **top}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_sweep(path), raw


def _draws(sweep, n: int, seed: int = 0) -> list[dict]:
    import optuna

    from genood.sweep.space import make_sampler, suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = []

    def objective(trial):
        out.append(suggest(trial, sweep))
        return 0.0

    optuna.create_study(sampler=make_sampler(sweep, seed)).optimize(objective, n_trials=n)
    return out


def test_random_draws_follow_the_wandb_distributions(tmp_path):
    sweep, _ = _sweep(tmp_path)
    assert [p.distribution for p in sweep.params] == ["categorical", "int_uniform", "uniform", "q_uniform",
                                                      "log_uniform_values", "log_uniform", "constant"]
    draws = _draws(sweep, 800)
    assert {repr(d["c"]) for d in draws} == {"[16, 32]", "[32, 64]", "7", "'a'"}  # lists come back as lists
    assert {d["k"] for d in draws} == {2, 3, 4, 5} and all(isinstance(d["k"], int) for d in draws)
    u = [d["u"] for d in draws]
    assert -1.0 <= min(u) and max(u) <= 3.0 and statistics.mean(u) == pytest.approx(1.0, abs=0.15)
    assert {d["q"] for d in draws} == {0.0, 0.25, 0.5, 0.75, 1.0}
    lv = [math.log(d["lv"]) for d in draws]
    assert math.log(1e-4) <= min(lv) and max(lv) <= math.log(1e-2)
    assert statistics.mean(lv) == pytest.approx(math.log(1e-3), abs=0.15)  # uniform in log space
    l_ = [d["l"] for d in draws]  # W&B's log_uniform: min/max are natural logs
    assert math.exp(-4.0) <= min(l_) and max(l_) <= 1.0
    assert statistics.mean(math.log(v) for v in l_) == pytest.approx(-2.0, abs=0.15)
    assert all(d["const"] == [1, 2] for d in draws)


def test_methods_map_to_optuna_samplers(tmp_path):
    import optuna

    from genood.sweep.space import grid_size, make_sampler

    expected = {"grid": optuna.samplers.GridSampler, "random": optuna.samplers.RandomSampler,
                "bayes": optuna.samplers.TPESampler}
    for method, cls in expected.items():
        params = {"a": {"values": [1, 2, 3]}, "b": {"min": 0, "max": 1}}
        sweep, _ = _sweep(tmp_path, method=method, parameters=params)
        assert type(make_sampler(sweep, 0)) is cls
        assert grid_size(sweep) == (6 if method == "grid" else None)
    sweep, _ = _sweep(tmp_path, method="grid", parameters={"a": {"values": [1, 2, 3]}, "b": {"min": 0, "max": 1}})
    assert sorted((d["a"], d["b"]) for d in _draws(sweep, 6)) == [(a, b) for a in (1, 2, 3) for b in (0, 1)]


def test_command_macros_match_wandbs_agent(tmp_path, monkeypatch):
    from genood.sweep.command import agent_command

    monkeypatch.setenv("GENOOD_TEST_FLAG", "--trainer.max_epochs=1")
    command = ["${env}", "${interpreter}", "-m", "${program}", "${envvar:GENOOD_TEST_FLAG}", "${args}",
               "${args_no_hyphens}", "${args_json}"]
    sweep, raw = _sweep(tmp_path, command=command)
    values = {"c": [16, 32], "k": 3, "u": 0.5, "flag": True}
    ours = agent_command(sweep, values, python="python")
    assert ours == wandb_agent_command(raw, values, tmp_path, monkeypatch)
    assert ours[:5] == ["/usr/bin/env", "python", "-m", "genood.train", "--trainer.max_epochs=1"]
    assert "--c=[16, 32]" in ours and "k=3" in ours and '{"c": [16, 32], "k": 3, "u": 0.5, "flag": true}' in ours


@pytest.mark.parametrize("change, message", [
    ({"method": "hyperband"}, "method must be one of grid, random, bayes"),
    ({"metric": None}, "metric must be a mapping with a name"),
    ({"metric": {"name": "val/loss", "goal": "lowest"}}, "metric.goal must be minimize or maximize"),
    ({"command": ["python", "-m", "genood.train"]}, "command has no ${args}"),
    ({"parameters": {"lr": {"distribution": "normal", "mu": 0, "sigma": 1}}}, "unknown key(s) ['mu', 'sigma']"),
    ({"parameters": {"lr": {"distribution": "inv_log_uniform_values", "min": 1, "max": 2}}}, "no Optuna counterpart"),
    ({"parameters": {"lr": {"values": [1, 2], "probabilities": [0.5, 0.5]}}}, "unknown key(s) ['probabilities']"),
    ({"parameters": {"model": {"parameters": {"lr": {"values": [1]}}}}}, "nested parameters are not supported"),
    ({"parameters": {"lr": {"min": 0.1, "max": 0.01}}}, "min (0.1) must be below max (0.01)"),
    ({"parameters": {"lr": {"distribution": "log_uniform_values", "min": 0.0, "max": 1.0}}}, "needs min > 0"),
    ({"method": "grid", "parameters": {"lr": {"min": 0.1, "max": 1.0}}}, "grid needs values (or int_uniform)"),
    ({"bogus": 1}, "unknown key(s) ['bogus']"),
    ({"name": "a b"}, "may only hold letters"),
])
def test_bad_sweep_files_fail_with_a_clear_message(tmp_path, change, message):
    from genood.sweep import SweepSpecError, load_sweep

    raw = {"program": "genood.train", "method": "random", "metric": {"name": "val/loss"},
           "parameters": {"lr": {"values": [1, 2]}},
           "command": ["${env}", "${interpreter}", "-m", "${program}", "${args}"]}
    raw.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SweepSpecError) as e:
        load_sweep(path)
    assert message in str(e.value) and str(path) in str(e.value)
