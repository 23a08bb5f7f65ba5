"""What a run prints: named progress as plain lines when stdout is a file, and none of the library noise
(checkpoint-folder, LeafSpec, FLOPs and logging-interval warnings, Lightning's weights_only line at each
checkpoint, W&B's anonymous warning and colour codes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, quick_args

NOISE = ["exists and is not empty", "LeafSpec", "FLOPs", "smaller than the logging interval", "anonymous",
         "\x1b[", "`weights_only` was not set"]
SETS = ["digits", "heldout", "flipped", "half_masked", "inverted", "natural_patches",
        "uniform_noise", "gaussian_noise", "constant", "blank", "black"]


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """stdout and stderr (files, as in a SLURM or benchmark log) of a quick run with the progress display
    and the model summary on, logging to W&B offline, a progress line due after every batch."""
    tmp = tmp_path_factory.mktemp("console")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp), "GENOOD_PROGRESS_INTERVAL": "0"}
    for key in ("GENOOD_RUN_DIR", "WANDB_MODE", "WANDB_API_KEY"):
        env.pop(key, None)
    args = quick_args(tmp, "--config", str(REPO / "configs/logger/wandb.yaml"), "--trainer.enable_progress_bar=true",
                      "--trainer.enable_model_summary=true", "--evaluation.plots=false", "--evaluation.scorers=[nll]")
    with open(tmp / "out.log", "w") as out, open(tmp / "err.log", "w") as err:
        proc = subprocess.run([sys.executable, "-m", "genood.train", *args], cwd=REPO, env=env, stdout=out,
                              stderr=err, timeout=600)
    stdout, stderr = (tmp / "out.log").read_text(), (tmp / "err.log").read_text()
    assert proc.returncode == 0, stderr[-3000:]
    return stdout, stderr


def test_progress_lines_name_each_scoring_set_when_stdout_is_a_file(logged_run):
    stdout, _ = logged_run
    lines = [line for line in stdout.splitlines() if line.startswith("genood: ")]
    training = [line for line in lines if line.startswith("genood: training epoch ")]
    assert len(training) == 3 * 7  # 3 epochs of 7 batches, a line due after each
    assert re.fullmatch(r"genood: training epoch 2/3, batch 4/7, [\d.e+]+ batches/s, about \d+:\d\d:\d\d left",
                        training[7 + 3]), training[10]
    assert re.fullmatch(r"genood: training: 3 epochs in \d+:\d\d:\d\d", lines[lines.index(training[-1]) + 1])
    for i, name in enumerate(SETS):
        done = [line for line in lines if line.startswith(f"genood: scored {name} ({i + 1}/{len(SETS)}): ")]
        assert len(done) == 1 and re.search(r": \d+ batches in \d+:\d\d:\d\d \([\d.e+]+ batches/s\)$", done[0]), name
    # within a set, before its last batch: set, batch done/total, rate and time left
    assert any(re.fullmatch(r"genood: scoring natural_patches \(6/11\): batch 1/4, [\d.e+]+ batches/s, about "
                            r"\d+:\d\d:\d\d left in this set", line) for line in lines)
    assert not re.search(r"(Epoch|Testing|Scoring)[^\n]*━", stdout)  # no progress-bar drawing in a file


def test_a_run_prints_none_of_the_library_noise(logged_run):
    stdout, stderr = logged_run
    for text in NOISE:
        assert text not in stdout and text not in stderr, text
    assert "wandb sync " in stderr  # W&B's own useful lines stay
    assert "Parameters: " in stdout  # the model summary stays, without FLOPs


def test_rich_progress_bar_names_the_scoring_set():
    from genood.console import ScoringProgressBar

    bar = ScoringProgressBar()
    assert bar.test_description == "Testing"
    bar.set_names = ["ID fit split", "digits", "blank"]
    bar._current_eval_dataloader_idx = 2
    assert bar.test_description == "Scoring blank (3/3)"


def test_a_progress_bar_or_summary_the_config_names_is_kept():
    from lightning.pytorch.callbacks import RichModelSummary, RichProgressBar

    from genood.console import PlainProgress, QuietModelSummary, ScoringProgressBar, console_callbacks

    callbacks = [RichProgressBar(), RichModelSummary()]  # as Lightning adds them
    console_callbacks(callbacks, [{"class_path": "lightning.pytorch.callbacks.RichProgressBar"}])
    assert type(callbacks[0]) is RichProgressBar and type(callbacks[1]) is QuietModelSummary
    callbacks = [RichProgressBar(), RichModelSummary()]
    console_callbacks(callbacks, [])
    assert isinstance(callbacks[0], (PlainProgress, ScoringProgressBar)) and type(callbacks[1]) is QuietModelSummary
