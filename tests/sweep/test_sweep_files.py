"""Every shipped W&B sweep file is valid: W&B's own agent builds its command for points that take every listed
value (and both ends of every range), genood.train accepts each one (``--print_config``: the keys exist, the
values parse and land where the file says), and genood.sweep builds the very same command."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SWEEPS = sorted((REPO / "experiments/sweeps").glob("*.yaml"))
FAMILIES = {"default", "baseline", "hvae", "flow", "flowcon", "msma", "lmd", "dte", "vector_flow"}


def wandb_agent_command(raw: dict, values: dict, tmp_path: Path, monkeypatch) -> list[str]:
    """The argv W&B's agent (wandb.wandb_agent.Agent._command_run, wandb 0.31) starts for ``values``; its
    process class is replaced by one that only records the command."""
    import wandb.wandb_agent as agent_module

    started = {}

    class RecordingProcess:
        def __init__(self, command=None, env=None, **kwargs):
            started["command"] = command

    monkeypatch.setattr(agent_module, "AgentProcess", RecordingProcess)
    for var in ("WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH", "WANDB_DIR"):
        monkeypatch.setenv(var, "")  # restored after the test (the agent sets them)
    monkeypatch.delenv("WANDB_DIR")
    monkeypatch.setenv("WANDB_SWEEP_ID", "validity")
    monkeypatch.chdir(tmp_path)  # the agent writes wandb/sweep-<id>/config-<run>.yaml here
    agent = agent_module.Agent(api=None, queue=None)
    agent._sweep_command = list(raw["command"])
    agent._command_run({"run_id": "point", "program": raw["program"],
                        "args": {k: {"value": v} for k, v in values.items()}})
    return started["command"]


def covering_points(sweep) -> list[dict]:
    """Points that together take every listed value of every parameter and both ends of every range."""
    from genood.sweep.space import optuna_distribution

    options = {}
    for p in sweep.params:
        d = optuna_distribution(p)
        options[p.name] = list(p.values) if d is None or p.distribution == "categorical" else [d.low, d.high]
    n = max(len(v) for v in options.values())
    return [{k: v[i % len(v)] for k, v in options.items()} for i in range(n)]


def test_every_family_has_a_sweep_file():
    assert FAMILIES <= {p.stem for p in SWEEPS}


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_file_builds_commands_genood_train_accepts(path, tmp_path, monkeypatch, capsys):
    from genood.sweep import load_sweep
    from genood.sweep.command import agent_command
    from genood.train import main

    sweep = load_sweep(path)
    missing = [c for c in sweep.configs if not (REPO / c).is_file()]
    if missing:
        pytest.skip(f"{path.name}: its base config {', '.join(missing)} does not exist in this checkout")
    # the default metric is a validation quantity: tuning on the OOD test sets leaks them (README, "Sweeps")
    assert sweep.metric.startswith("val/"), sweep.metric
    raw = yaml.safe_load(path.read_text())
    for values in covering_points(sweep):
        command = wandb_agent_command(raw, values, tmp_path, monkeypatch)
        assert command[:4] == ["/usr/bin/env", "python", "-m", "genood.train"], command
        assert agent_command(sweep, values, python="python") == command  # one file, one run, both engines
        monkeypatch.chdir(REPO)
        with pytest.raises(SystemExit) as e:
            main(command[4:] + ["--print_config"])
        assert e.value.code in (0, None), capsys.readouterr().err
        printed = yaml.safe_load(capsys.readouterr().out)
        for key, value in values.items():
            node = printed
            for part in key.split("."):
                node = node[part]
            if isinstance(value, float):
                assert math.isclose(node, value, rel_tol=1e-12), (key, node, value)
            else:
                assert node == value, (key, node, value)


def test_a_renamed_key_breaks_the_check(tmp_path, monkeypatch, capsys):
    """What the test above relies on: an argument genood.train does not have is an error, not ignored."""
    from genood.sweep import load_sweep
    from genood.train import main

    raw = yaml.safe_load((REPO / "experiments/sweeps/baseline.yaml").read_text())
    raw["parameters"] = {"model.init_args.latent_dims": {"values": [4]}}  # latent_dim, misspelt
    path = tmp_path / "renamed.yaml"
    path.write_text(yaml.safe_dump(raw))
    command = wandb_agent_command(raw, {"model.init_args.latent_dims": 4}, tmp_path, monkeypatch)
    load_sweep(path)  # the file itself is well formed
    monkeypatch.chdir(REPO)
    from genood.cli import ConfigError

    with pytest.raises(ConfigError, match="latent_dims"):
        main(command[4:] + ["--print_config"])
