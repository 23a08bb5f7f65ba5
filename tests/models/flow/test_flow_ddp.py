"""The image flow under 2-process CPU DDP (gloo): Glow's ActNorm layers are initialised on rank 0's first batch
and broadcast, so the replicas keep identical weights (each rank saves its own copy at the end of training;
without the broadcast every replica would start from its own batch's statistics), and the evaluation equals a
one-process evaluation of the same checkpoint, per sample (the dequantization noise is keyed by the sample's
index, not its batch or rank). Lightning re-wraps the model for testing, which re-broadcasts rank 0's weights,
so only the saved replicas can show a divergence in training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, run_folders
from genood.evaluation.report import read_rows

FLAGS = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--evaluation.print_table=false",
         "--evaluation.plots=false"]
SMALL_GLOW = ["--model.init_args.architecture=glow", "--model.init_args.steps=2", "--model.init_args.hidden_channels=8",
              "--model.init_args.learn_prior=true"]


def test_ddp_training_and_exact_evaluation(tmp_path):
    from genood.evaluate import main as evaluate

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)]), "OMP_NUM_THREADS": "1"}
    replicas = tmp_path / "replicas"
    callback = json.dumps({"class_path": "flow_ddp_helpers.SaveReplicaParameters", "init_args": {"folder": str(replicas)}})
    env.pop("GENOOD_RUN_DIR", None)
    cmd = [sys.executable, "-m", "genood.train", "--config", str(REPO / "configs/flow/digits.yaml"), *FLAGS,
           *SMALL_GLOW, "--trainer.max_epochs=1", "--trainer.strategy=ddp", "--trainer.devices=2",
           f"--output_root={tmp_path}", "--data.init_args.ood_sets=[black,uniform_noise]", f"--trainer.callbacks+={callback}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the replicas trained in lockstep: same weights on both ranks (ActNorm initialised from rank 0's batch)
    rank0, rank1 = torch.load(replicas / "rank0.pt"), torch.load(replicas / "rank1.pt")
    torch.testing.assert_close(rank0, rank1)
    (run,) = run_folders(tmp_path, "flow_digits")
    ddp_rows = read_rows(run)
    assert {r["ood_set"] for r in ddp_rows} >= {"black", "uniform_noise"}
    assert all(r["n_id"] == 433 for r in ddp_rows)  # every ID test sample once, no padded repeats

    single = evaluate(["--ckpt_path", str(run / "last.ckpt"), *FLAGS, "--trainer.strategy=auto",
                       "--trainer.devices=1"])
    assert [(r["scorer"], r["ood_set"]) for r in single] == [(r["scorer"], r["ood_set"]) for r in ddp_rows]
    for a, b in zip(single, ddp_rows):
        for key in ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr80", "autc"):
            assert a[key] == pytest.approx(b[key], abs=1e-9), (a["scorer"], a["ood_set"], key)
    # per sample, not only the metrics (AUROCs of 0 and 1 would hide a replica with other weights)
    ddp_run, single_run = run_folders(tmp_path, "flow_digits")
    ddp_scores, single_scores = np.load(ddp_run / "scores.npz"), np.load(single_run / "scores.npz")
    assert sorted(ddp_scores.files) == sorted(single_scores.files)
    for key in ddp_scores.files:
        np.testing.assert_allclose(ddp_scores[key], single_scores[key], rtol=1e-5, atol=1e-4, err_msg=key)
