"""python -m genood.evaluate: re-scoring a checkpoint, exactly, also under 2-process DDP; bad checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO, run_folders
from genood.evaluation.report import read_rows

EVAL_FLAGS = ["--trainer.enable_progress_bar=false", "--evaluation.print_table=false", "--evaluation.plots=false",
              "--trainer.accelerator=cpu"]


def test_evaluate_checkpoint_reproduces_training_metrics(ppca_run):
    from genood.evaluate import main

    root, run, rows = ppca_run
    again = main(["--ckpt_path", str(run / "last.ckpt"), *EVAL_FLAGS])
    assert again == rows
    assert run_folders(root)[-1] != run  # written to a new folder


def test_evaluate_with_data_override(ppca_run):
    from genood.evaluate import main

    _, run, _ = ppca_run
    rows = main(["--ckpt_path", str(run / "last.ckpt"), "--data.init_args.ood_sets=[blank]",
                 "--evaluation.scorers=[nll]", *EVAL_FLAGS])
    assert [(r["scorer"], r["ood_set"]) for r in rows] == [("nll", "blank")]


def test_ddp_two_processes_equal_one_process_exactly(ppca_run, tmp_path):
    """2 CPU processes (gloo): the DistributedSampler pads with repeats; gathering drops them."""
    _, run, rows = ppca_run
    # 433 ID test samples (odd) forces padding on 2 ranks
    assert rows[0]["n_id"] % 2 == 1
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GENOOD_RUN_DIR", None)
    cmd = [sys.executable, "-m", "genood.evaluate", "--ckpt_path", str(run / "last.ckpt"), *EVAL_FLAGS,
           "--trainer.strategy=ddp", "--trainer.devices=2", f"--output_root={tmp_path}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_rows = read_rows(run_folders(tmp_path)[-1])
    assert ddp_rows == rows


def test_corrupt_checkpoint_is_a_clear_error(ppca_run, tmp_path):
    from genood.evaluate import main

    _, run, _ = ppca_run
    bad = tmp_path / "last.ckpt"
    bad.write_bytes((run / "last.ckpt").read_bytes()[:1000])  # truncated
    (tmp_path / "config.yaml").write_text((run / "config.yaml").read_text())
    with pytest.raises(RuntimeError, match="could not be read .corrupt"):
        main(["--ckpt_path", str(bad), *EVAL_FLAGS, f"--output_root={tmp_path / 'out'}"])


def test_mismatched_checkpoint_is_a_clear_error(ppca_run, tmp_path):
    from genood.evaluate import main

    _, run, _ = ppca_run
    with pytest.raises(RuntimeError, match="does not match PPCA"):
        main(["--ckpt_path", str(run / "last.ckpt"), "--model.init_args.latent_dim=3", *EVAL_FLAGS,
              f"--output_root={tmp_path}"])


def test_missing_checkpoint(tmp_path):
    from genood.evaluate import main

    with pytest.raises(SystemExit, match="no config.yaml"):
        main(["--ckpt_path", str(tmp_path / "nothing.ckpt")])
