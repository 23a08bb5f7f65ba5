"""SIGTERM / SIGINT (a scheduler's pre-emption, Ctrl+C): the command keeps a whole last.ckpt, prints one line
with the command that resumes, exits with 128 + the signal number, and leaves no folder without a checkpoint."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO, quick_args, run_folders

FAST = ["--evaluation.plots=false", "--evaluation.scorers=[nll]"]


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for key in ("GENOOD_RUN_DIR", "GENOOD_TRACEBACK"):
        env.pop(key, None)
    return env


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path} appeared: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < end, f"{path} did not appear within {timeout} s"
        time.sleep(0.1)


def _one_line(stderr: str, prog: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(f"{prog}: ")]
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def test_sigterm_keeps_last_ckpt_prints_the_resume_command_and_resuming_works(tmp_path):
    from genood.evaluation.report import read_results
    from genood.train import main

    args = quick_args(tmp_path, *FAST, epochs=100000)
    proc = subprocess.Popen([sys.executable, "-m", "genood.train", *args], cwd=REPO, env=_env(), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = tmp_path / "ppca_digits" / "version_0"
    try:
        _wait_for(run / "last.ckpt", proc)
        time.sleep(0.5)  # mid-training: later epochs are rewriting last.ckpt
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    line = _one_line(stderr, "genood.train")
    assert line.startswith("genood.train: interrupted by SIGTERM with ") and "resume with: " in line
    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command[:3] == ["python", "-m", "genood.train"]
    assert command[3:] == [*args, "--ckpt_path", str(run / "last.ckpt")]
    saved = torch.load(run / "last.ckpt", weights_only=False)  # a whole checkpoint, not one cut short
    done = saved["epoch"] + 1
    assert f"with {done} of 100000 epochs done" in line
    assert not (run / "results.json").exists()
    # the printed command resumes (here for two more epochs) into a new folder
    main([*command[3:], f"--trainer.max_epochs={done + 2}", "--trainer.accelerator=cpu"])
    resumed = run_folders(tmp_path)[-1]
    assert resumed != run
    weights = read_results(resumed)["metadata"]["weights"]
    assert weights["resumed_from"] == str(run / "last.ckpt") and weights["epochs_completed"] == done + 2


# Runs `python -m <module>` with one hook patched to signal (by a marker file) that the run reached a point,
# then wait there for the signal, so each case interrupts at a known place.
HARNESS = r"""
import sys, time
from pathlib import Path
marker, where, module, *argv = sys.argv[1:]

def reached(trainer=None):
    Path(marker).touch()
    for _ in range(1200):  # the signal either raises here or sets Lightning's flag
        if trainer is not None and trainer.received_sigterm:
            return
        time.sleep(0.05)

import genood.cli
from genood.models.baseline import PPCA
if where == "setup":  # after the run folder was claimed, before training
    build = genood.cli.build_scorers
    def build_scorers(*a, **k):
        reached()
        return build(*a, **k)
    genood.cli.build_scorers = build_scorers
    import genood.train
    genood.train.build_scorers = build_scorers
elif where == "train_start":
    PPCA.on_train_start = lambda self: reached(self.trainer)
elif where == "scoring":
    PPCA.on_test_start = lambda self: reached(self.trainer)

import importlib
main = importlib.import_module(module).main
sys.argv = [module, *argv]
genood.cli.command_line(main, module)
"""


@pytest.mark.parametrize("module, where, sig, expected", [
    ("genood.train", "setup", signal.SIGTERM, "before the first checkpoint"),
    ("genood.train", "train_start", signal.SIGINT, "before the first checkpoint"),
    ("genood.evaluate", "scoring", signal.SIGTERM, "while scoring"),
])
def test_a_run_stopped_before_anything_was_saved_leaves_no_folder(ppca_run, tmp_path, module, where, sig, expected):
    out = tmp_path / "out"
    if module == "genood.train":
        args = quick_args(out, *FAST)
    else:
        args = ["--ckpt_path", str(ppca_run[1] / "last.ckpt"), f"--output_root={out}", *FAST,
                "--trainer.enable_progress_bar=false", "--evaluation.print_table=false"]
    marker = tmp_path / "reached"
    proc = subprocess.Popen([sys.executable, "-c", HARNESS, str(marker), where, module, *args], cwd=REPO,
                            env=_env(), text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(marker, proc)
        assert list(out.glob("*/version_*")), "the run folder exists while the run is going"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig
    line = _one_line(stderr, module)
    assert f"interrupted by {signal.Signals(sig).name} {expected}" in line and "start again with: python -m" in line
    assert not list(out.glob("*/version_*")) and not (out / "ppca_digits").exists()


def test_resume_command_drops_old_ckpt_and_run_dir():
    from genood.interrupt import resume_command

    argv = ["--config", "a b.yaml", "--run_dir", "x", "--ckpt_path=old.ckpt", "--trainer.max_epochs=3"]
    assert shlex.split(resume_command("genood.train", argv, "runs/v0/last.ckpt")) == [
        "python", "-m", "genood.train", "--config", "a b.yaml", "--trainer.max_epochs=3", "--ckpt_path",
        "runs/v0/last.ckpt"]
