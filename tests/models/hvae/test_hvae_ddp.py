"""HVAE under 2-process CPU DDP (gloo): training runs, and its evaluation equals a one-process evaluation
of the same checkpoint (per-sample scoring noise is keyed by the sample's index, not its batch or rank)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO, assert_same_scores_by_index, run_folders
from genood.evaluation.report import read_rows

FLAGS = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--evaluation.print_table=false",
         "--evaluation.plots=false"]


def test_ddp_training_and_exact_evaluation(tmp_path):
    from genood.evaluate import main as evaluate

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GENOOD_RUN_DIR", None)
    cmd = [sys.executable, "-m", "genood.train", "--config", str(REPO / "configs/hvae/digits.yaml"), *FLAGS,
           "--trainer.max_epochs=2", "--trainer.strategy=ddp", "--trainer.devices=2", f"--output_root={tmp_path}",
           "--data.init_args.ood_sets=[black,half_masked,uniform_noise]"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_folders(tmp_path, "hvae_digits")
    ddp_rows = read_rows(run)
    assert {r["ood_set"] for r in ddp_rows} >= {"black", "half_masked", "uniform_noise"}
    assert all(r["n_id"] == 433 for r in ddp_rows)  # every ID test sample once, no padded repeats

    single = evaluate(["--ckpt_path", str(run / "last.ckpt"), *FLAGS, "--trainer.strategy=auto",
                       "--trainer.devices=1", f"--output_root={tmp_path / 'single'}"])
    assert [(r["scorer"], r["ood_set"]) for r in single] == [(r["scorer"], r["ood_set"]) for r in ddp_rows]
    for a, b in zip(single, ddp_rows):
        for key in ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr80", "autc"):
            assert a[key] == pytest.approx(b[key], abs=1e-9), (a["scorer"], a["ood_set"], key)
    # per sample, aligned by dataset index: the counter-based noise gives every sample the same score on any
    # rank and in any batch (up to float rounding of other batch compositions)
    (single_run,) = run_folders(tmp_path / "single", "hvae_digits")
    assert_same_scores_by_index(run / "scores.npz", single_run / "scores.npz", rtol=1e-5, atol=1e-4)
