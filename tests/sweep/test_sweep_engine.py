"""python -m genood.sweep end to end.

One sweep trains real (tiny) genood runs: --trials 2, then --trials 3 makes 3 finished runs in all. The
study's bookkeeping (two processes on one journal, a killed worker, a grid with a failing point) is checked
with a stand-in program that writes a genood results.json in milliseconds, so those tests can run many trials.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PPCA_ARGS = ["--trainer.max_epochs=1", "--trainer.accelerator=cpu", "--evaluation.plots=false",
             "--evaluation.print_table=false", "--trainer.enable_progress_bar=false",
             "--trainer.enable_model_summary=false", "--data.init_args.ood_sets=[black]",
             "--evaluation.scorers=[nll]"]

# A stand-in for genood.train: --x=<value> --run_dir=<dir> [--ledger=<file>] [--fail_flag=<file>]; writes
# results.json with val/loss = (x - 1)^2 after STUB_SLEEP seconds, appends "<run_dir> <pid>" to the ledger,
# fails (exit 1) once for x = 3 when the fail flag file exists (deleting it), or always with STUB_FAIL_ALWAYS
# set, and writes its pid to <run_dir>.pid.
STUB = r'''
import json, os, sys, time
from pathlib import Path
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
run_dir = Path(args["run_dir"])
run_dir.with_name(run_dir.name + ".pid").write_text(str(os.getpid()))
time.sleep(float(os.environ.get("STUB_SLEEP", "0")))
flag = args.get("fail_flag")
if os.environ.get("STUB_FAIL_ALWAYS") or (flag and os.path.exists(flag) and args.get("x") == "3"):
    if flag and os.path.exists(flag):
        os.remove(flag)
    sys.exit("RuntimeError: the stand-in failed on purpose")
run_dir.mkdir(parents=True)
x = float(args["x"])
results = {"metadata": {"train_metrics": {"val/loss": (x - 1) ** 2}}, "rows": []}
(run_dir / "results.json").write_text(json.dumps(results))
if "ledger" in args:
    with open(args["ledger"], "a") as f:
        f.write(f"{run_dir} {os.getpid()}\n")
'''


def _stub_sweep(tmp_path: Path, method: str, parameters: dict, name: str = "stub") -> Path:
    (tmp_path / "stub.py").write_text(STUB)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "program": str(tmp_path / "stub.py"), "method": method,
        "metric": {"name": "val/loss", "goal": "minimize"}, "parameters": parameters,
        "command": ["${env}", "${interpreter}", "${program}", "${args}"]}, sort_keys=False))
    return path


def _sweep_process(*args: str, env: dict | None = None, stdout=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "genood.sweep", *args], cwd=REPO, stdout=stdout,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})


def _study(sweep_path: Path, storage: Path):
    import optuna

    from genood.sweep import load_sweep

    return optuna.load_study(study_name=load_sweep(sweep_path).name,
                             storage=optuna.storages.JournalStorage(
                                 optuna.storages.journal.JournalFileBackend(str(storage))))


def _states(study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def test_trials_2_then_3_runs_only_the_missing_trial(tmp_path, monkeypatch, capsys):
    from genood.sweep.__main__ import main

    path = tmp_path / "ppca.yaml"
    path.write_text(yaml.safe_dump({
        "program": "genood.train", "method": "random", "metric": {"name": "val/loss", "goal": "minimize"},
        # lr is continuous so every trial differs in it whatever order the two workers draw in (with a few
        # values, concurrent draws can give all trials the same point and no importances plot)
        "parameters": {"model.init_args.lr": {"distribution": "log_uniform_values", "min": 0.003, "max": 0.03},
                       "model.init_args.latent_dim": {"values": [4, 8]}},
        "command": ["${env}", "${interpreter}", "-m", "${program}", "--config", "configs/baseline/digits.yaml",
                    *PPCA_ARGS, "${args}"]}))
    out = tmp_path / "out"
    monkeypatch.chdir(REPO)
    first = main([str(path), "--trials", "2", "--workers", "2", "--out", str(out), "--seed", "0"])
    assert _states(first) == {"COMPLETE": 2}
    runs = sorted((out / "trials").glob("trial_*/results.json"))
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    second = main([str(path), "--trials", "3", "--out", str(out), "--seed", "0"])
    assert _states(second) == {"COMPLETE": 3}
    runs = sorted((out / "trials").glob("trial_*/results.json"))
    assert len(runs) == 3 and all(p.stat().st_mtime_ns == s for p, s in stamps.items())  # never repeated
    for t in second.trials:
        run_dir = Path(t.user_attrs["run_dir"])
        # the objective is the run's last val/loss: with one epoch, the score of its best.ckpt (Lightning's
        # ModelCheckpoint monitors val/loss)
        import torch

        best = torch.load(run_dir / "best.ckpt", map_location="cpu", weights_only=False)
        scores = [v["best_model_score"] for k, v in best["callbacks"].items() if "best_model_score" in v]
        assert t.value == pytest.approx(float(scores[0]), rel=1e-6)
        lr, dim = t.params["model.init_args.lr"], t.params["model.init_args.latent_dim"]
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["model"]["init_args"]["lr"] == lr and config["model"]["init_args"]["latent_dim"] == dim
    text = capsys.readouterr().out
    assert "best trial" in text and (out / "trials.md").is_file()
    for png in ("optimization_history.png", "param_importances.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_two_processes_share_one_journal_without_losing_or_repeating_trials(tmp_path):
    path = _stub_sweep(tmp_path, "random", {"x": {"distribution": "uniform", "min": -2.0, "max": 4.0},
                                            "ledger": {"value": str(tmp_path / "ledger.txt")}})
    storage = tmp_path / "shared.journal"
    procs = [_sweep_process(str(path), "--trials", "10", "--storage", str(storage), "--out", str(tmp_path / w),
                            env={"STUB_SLEEP": "0.5"}) for w in ("a", "b")]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    study = _study(path, storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    ran = (tmp_path / "ledger.txt").read_text().split("\n")[:-1]
    assert len(complete) == 10 and len(ran) == 10  # exactly the requested trials, each run exactly once
    assert sorted(t.user_attrs["run_dir"] for t in complete) == sorted(line.split()[0] for line in ran)
    assert len({t.user_attrs["run_dir"] for t in complete}) == 10
    for w in ("a", "b"):  # both workers took part
        assert list((tmp_path / w / "trials").glob("trial_*/results.json")), logs
    # a trial that lost the race for the last places failed without running anything
    assert all(t.user_attrs.get("surplus") for t in study.trials if t.state.name != "COMPLETE")


def test_a_killed_worker_leaves_a_running_trial_that_the_next_start_fails(tmp_path):
    path = _stub_sweep(tmp_path, "random", {"x": {"values": [0, 1, 2, 3]}})
    out = tmp_path / "out"
    killed = _sweep_process(str(path), "--trials", "2", "--out", str(out), env={"STUB_SLEEP": "120"},
                            stdout=subprocess.DEVNULL)
    pid_file = out / "trials" / "trial_0.pid"
    deadline = time.time() + 120
    while not (pid_file.is_file() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.2)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    os.kill(int(pid_file.read_text()), signal.SIGKILL)  # the orphaned trial run
    assert _states(_study(path, out / "study.journal")) == {"RUNNING": 1}

    again = _sweep_process(str(path), "--trials", "2", "--out", str(out), env={"STUB_SLEEP": "0"})
    text = again.communicate(timeout=120)[0]
    assert again.returncode == 0, text
    assert "left running by a stopped worker: 0" in text
    study = _study(path, out / "study.journal")
    assert _states(study) == {"FAIL": 1, "COMPLETE": 2}
    assert study.trials[0].state.name == "FAIL" and study.trials[0].user_attrs["stale"]
    assert "| 0 | interrupted |" in (out / "trials.md").read_text()


def test_grid_runs_every_point_once_and_retries_a_failed_one(tmp_path, monkeypatch):
    from genood.sweep.__main__ import main

    flag = tmp_path / "fail_once"
    flag.write_text("")
    path = _stub_sweep(tmp_path, "grid", {"x": {"values": [0, 3]}, "y": {"values": ["a", "b"]},
                                          "fail_flag": {"value": str(flag)}})
    monkeypatch.chdir(tmp_path)
    study = main([str(path), "--trials", "10", "--out", str(tmp_path / "out")])
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert sorted((t.params["x"], t.params["y"]) for t in complete) == [(0, "a"), (0, "b"), (3, "a"), (3, "b")]
    assert len(failed) == 1 and failed[0].params["x"] == 3 and not flag.exists()
    assert study.best_value == 1.0  # (0 - 1)^2; (3 - 1)^2 = 4
    again = main([str(path), "--trials", "10", "--out", str(tmp_path / "out")])  # the grid is done
    assert len(again.trials) == len(study.trials)


def test_failures_in_a_row_stop_the_worker_and_a_failed_trial_does_not_count(tmp_path, monkeypatch, capsys):
    from genood.sweep.__main__ import main

    flag = tmp_path / "fail_once"
    path = _stub_sweep(tmp_path, "random", {"x": {"value": 3}, "fail_flag": {"value": str(flag)}})
    monkeypatch.setenv("STUB_FAIL_ALWAYS", "1")  # every run fails
    study = main([str(path), "--trials", "5", "--out", str(tmp_path / "out"), "--max-failures", "2"])
    assert _states(study) == {"FAIL": 2}
    assert study.trials[0].user_attrs["error"] == "RuntimeError: the stand-in failed on purpose"
    assert "2 trials in a row failed" in capsys.readouterr().out
    monkeypatch.delenv("STUB_FAIL_ALWAYS")
    study = main([str(path), "--trials", "2", "--out", str(tmp_path / "out")])  # the cause fixed: 2 finished
    assert _states(study) == {"FAIL": 2, "COMPLETE": 2}


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_the_trials_runs_and_fails_their_trials(tmp_path, workers):
    path = _stub_sweep(tmp_path, "random", {"x": {"values": [0, 1]}})
    out = tmp_path / "out"
    proc = _sweep_process(str(path), "--trials", str(workers), "--workers", str(workers), "--out", str(out),
                          env={"STUB_SLEEP": "120"})
    pid_files = [out / "trials" / f"trial_{i}.pid" for i in range(workers)]
    deadline = time.time() + 120
    while not all(f.is_file() and f.read_text() for f in pid_files) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    text = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130 and "interrupted" in text, text
    for f in pid_files:
        with pytest.raises(ProcessLookupError):  # each trial's run was stopped (and reaped) with it
            os.kill(int(f.read_text()), 0)
    trials = _study(path, out / "study.journal").trials
    assert len(trials) == workers and all(t.state.name == "FAIL" and t.user_attrs["interrupted"] for t in trials)
