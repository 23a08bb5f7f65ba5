"""The W&B sweep for the default experiment builds a command line that genood.train accepts."""

from __future__ import annotations

import itertools

import pytest
import yaml

from conftest import REPO


def agent_command(sweep: dict, values: dict) -> list[str]:
    """The command a `wandb agent` runs for one set of parameter values (wandb's own macro expansion)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    args = create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})["args"]
    command = []
    for chunk in create_sweep_command(list(sweep["command"])):
        if chunk == "${args}":
            command += args
        elif chunk == "${program}":
            command.append(sweep["program"])
        elif chunk not in ("${env}", "${interpreter}"):
            command.append(chunk)
    return command


def test_sweep_yaml_is_well_formed():
    sweep = yaml.safe_load((REPO / "experiments/sweeps/default.yaml").read_text())
    assert sweep["program"] == "genood.train" and sweep["command"][-1] == "${args}"
    assert sweep["metric"]["name"].startswith("ood/")
    assert all("values" in p or "min" in p for p in sweep["parameters"].values())


def test_agent_command_line_parses(capsys, monkeypatch):
    from genood.train import main

    monkeypatch.chdir(REPO)
    sweep = yaml.safe_load((REPO / "experiments/sweeps/default.yaml").read_text())
    params = sweep["parameters"]
    for combo in itertools.islice(itertools.product(*(p["values"] for p in params.values())), 2):
        values = dict(zip(params, combo))
        command = agent_command(sweep, values)
        assert command[:2] == ["-m", "genood.train"]
        with pytest.raises(SystemExit) as e:
            main(command[2:] + ["--print_config"])
        assert e.value.code in (0, None)
        printed = yaml.safe_load(capsys.readouterr().out)
        for key, value in values.items():
            node = printed
            for part in key.split("."):
                node = node[part]
            assert node == value, key
