"""python -m genood.evaluate: re-scoring a checkpoint, exactly, also under 2-process DDP; bad checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO, assert_same_scores_by_index, run_folders
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
    ddp_run = run_folders(tmp_path)[-1]
    assert read_rows(ddp_run) == rows
    assert_same_scores_by_index(run / "scores.npz", ddp_run / "scores.npz")


def test_corrupt_checkpoint_is_a_clear_error(ppca_run, tmp_path):
    from genood.evaluate import main

    _, run, _ = ppca_run
    bad = tmp_path / "last.ckpt"
    bad.write_bytes((run / "last.ckpt").read_bytes()[:1000])  # truncated
    (tmp_path / "config.yaml").write_text((run / "config.yaml").read_text())
    with pytest.raises(RuntimeError, match="could not be read .corrupt"):
        main(["--ckpt_path", str(bad), *EVAL_FLAGS, f"--output_root={tmp_path / 'out'}"])
    assert not (tmp_path / "out" / "ppca_digits").exists()  # failed before scoring: no run folder left


def test_mismatched_checkpoint_is_a_clear_error(ppca_run, tmp_path):
    from genood.evaluate import main

    _, run, _ = ppca_run
    with pytest.raises(RuntimeError, match="holds a genood.models.baseline.PPCA with other shapes than the config's "
                                           r"\(0 missing and 1 unexpected or mismatched weights, e.g. net.cov_factor"):
        main(["--ckpt_path", str(run / "last.ckpt"), "--model.init_args.latent_dim=3", *EVAL_FLAGS,
              f"--output_root={tmp_path}"])


def test_missing_checkpoint_or_config(ppca_run, tmp_path):
    from genood.evaluate import main

    _, run, _ = ppca_run
    with pytest.raises(FileNotFoundError, match="nothing.ckpt does not exist"):
        main(["--ckpt_path", str(tmp_path / "nothing.ckpt")])
    lone = tmp_path / "lone.ckpt"
    lone.write_bytes((run / "last.ckpt").read_bytes())
    with pytest.raises(FileNotFoundError, match="no config.yaml beside .*--config FILE"):
        main(["--ckpt_path", str(lone)])
    with pytest.raises(ValueError, match="--ckpt_path .* is required"):
        main([])


def test_per_sample_comparison_catches_a_consistent_index_misalignment(tmp_path):
    """Two runs with the same scores attached to other indices have identical metrics; the per-sample
    comparison used by the DDP tests must still fail on them."""
    import numpy as np

    from genood.evaluation.metrics import ood_metrics

    s_id, s_ood = np.array([0.1, 0.5, 0.3, 0.2]), np.array([0.9, 0.4])
    base = {"index/d": np.arange(4), "label/d": np.zeros(4), "score/x/d": s_id,
            "index/o": np.arange(2), "label/o": np.ones(2), "score/x/o": s_ood}
    np.savez(tmp_path / "a.npz", **base)
    np.savez(tmp_path / "same.npz", **{**base, "index/d": np.array([2, 0, 3, 1]), "score/x/d": s_id[[2, 0, 3, 1]]})
    np.savez(tmp_path / "shifted.npz", **{**base, "score/x/d": np.roll(s_id, 1)})
    assert ood_metrics(s_id, s_ood) == ood_metrics(np.roll(s_id, 1), s_ood)  # the metrics cannot tell
    assert_same_scores_by_index(tmp_path / "a.npz", tmp_path / "same.npz", rtol=0)
    with pytest.raises(AssertionError):
        assert_same_scores_by_index(tmp_path / "a.npz", tmp_path / "shifted.npz")
