"""last.ckpt holds the final epoch, best.ckpt the best one; ``evaluation.checkpoint`` picks the evaluated weights;
re-evaluating a checkpoint reproduces the training run's results exactly, also for a run trained with --run_dir."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from conftest import assert_same_scores_by_index, quick_args, run_folders
from genood.evaluation.report import read_results

EVAL_FLAGS = ["--trainer.enable_progress_bar=false", "--evaluation.print_table=false", "--evaluation.plots=false",
              "--trainer.accelerator=cpu"]

# PPCA on digits with lr 1.0: val/loss 96.6 after epoch 0, 117.1 after epoch 1, so the final epoch of a
# 2-epoch run is not its best one
DIVERGING = ["--model.init_args.lr=1.0", "--evaluation.plots=false"]


@pytest.fixture(scope="module")
def diverging_run(tmp_path_factory):
    from genood.train import main

    root = tmp_path_factory.mktemp("diverging")
    run = root / "trained_here"
    rows = main(quick_args(root, *DIVERGING, f"--run_dir={run}", epochs=2))
    return root, run, rows


def _epoch(path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["epoch"]


def test_last_ckpt_is_the_final_epoch_and_best_ckpt_the_best(diverging_run):
    root, run, rows = diverging_run
    assert _epoch(run / "last.ckpt") == 1 and _epoch(run / "best.ckpt") == 0
    last = torch.load(run / "last.ckpt", map_location="cpu", weights_only=False)
    best = torch.load(run / "best.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 2 * best["global_step"]  # the end of training, not an older epoch
    assert not all(torch.equal(last["state_dict"][k], best["state_dict"][k]) for k in best["state_dict"])
    meta = read_results(run)["metadata"]["weights"]
    assert meta["checkpoint"] == "last" and meta["epoch"] == 1 and meta["epochs_completed"] == 2
    assert meta["path"] == str((run / "last.ckpt").resolve())


def test_evaluating_last_ckpt_of_a_run_dir_run_reproduces_it_exactly(diverging_run):
    """--run_dir in the training config must not make the evaluation reuse (and refuse) that folder."""
    from genood.evaluate import main

    root, run, rows = diverging_run
    again = main(["--ckpt_path", str(run / "last.ckpt"), *EVAL_FLAGS])
    assert again == rows
    (evaluated,) = run_folders(root)  # a new version folder under output_root, not the training folder
    assert evaluated != run
    assert_same_scores_by_index(run / "scores.npz", evaluated / "scores.npz", rtol=0)  # bit for bit
    saved = yaml.safe_load((evaluated / "config.yaml").read_text())
    assert saved["ckpt_path"] == str(run / "last.ckpt") and saved["run_dir"] is None
    weights = read_results(evaluated)["metadata"]["weights"]
    assert weights["path"] == str((run / "last.ckpt").resolve()) and weights["epoch"] == 1


def test_evaluation_checkpoint_best_evaluates_best_ckpt(diverging_run, tmp_path, capsys, caplog):
    from genood.evaluate import main as evaluate
    from genood.train import main as train

    _, run, rows_last = diverging_run
    rows_best = train(quick_args(tmp_path, *DIVERGING, "--evaluation.checkpoint=best", epochs=2))
    assert "genood: evaluating the best weights by val/loss (epoch 0" in capsys.readouterr().out
    # Lightning's own messages reach the log, its promotional "Tip" lines do not
    messages = [r.getMessage() for r in caplog.records]
    assert any("GPU available" in m for m in messages)
    assert not any("Tip:" in m for m in messages)
    (best_run,) = run_folders(tmp_path)
    weights = read_results(best_run)["metadata"]["weights"]
    assert weights["checkpoint"] == "best" and weights["epoch"] == 0
    assert np.isfinite(weights["val_loss"])
    nll = lambda rows: [r["auroc"] for r in rows if r["scorer"] == "nll"]
    assert nll(rows_best) != nll(rows_last)  # other weights, other scores
    # the same seed gives the same best.ckpt, and scoring it reproduces the "best" run
    assert evaluate(["--ckpt_path", str(run / "best.ckpt"), *EVAL_FLAGS,
                     f"--output_root={tmp_path / 'again'}"]) == rows_best
    from genood.cli import ConfigError

    with pytest.raises(ConfigError, match="evaluation.checkpoint"):  # not a choice: rejected when parsed
        train(quick_args(tmp_path, "--evaluation.checkpoint=middle", epochs=1))


def test_last_ckpt_is_written_after_epochs_without_validation(tmp_path):
    """Validation every 2nd epoch of 3: best.ckpt can only hold epoch 1, last.ckpt must hold epoch 2."""
    from genood.train import main

    main(quick_args(tmp_path, "--trainer.check_val_every_n_epoch=2", "--evaluation.plots=false", epochs=3))
    (run,) = run_folders(tmp_path)
    assert _epoch(run / "last.ckpt") == 2 and _epoch(run / "best.ckpt") == 1


def test_last_checkpoint_is_written_at_most_every_interval_and_always_at_the_end(tmp_path):
    """Fast epochs: last.ckpt is rewritten only when min_interval seconds have passed (here: never in between),
    yet it holds the final epoch once training ends; with no interval every epoch end writes it."""
    import lightning as L
    import torch

    from genood.data.tabular import TabularDataModule
    from genood.last_checkpoint import LastCheckpoint
    from genood.models.dte import DTE

    for interval, writes in ((3600.0, 1), (0.0, 3)):
        L.seed_everything(0)
        dm = TabularDataModule("wine", batch_size=32)
        model = DTE(input_shape=dm.input_shape, hidden_sizes=(8,), heads=["c"])
        last = LastCheckpoint(tmp_path / str(interval), min_interval=interval)
        saves = []
        original = last.save
        last.save = lambda trainer, epoch: saves.append(epoch) or original(trainer, epoch)
        trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=True, callbacks=[last],
                            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
        trainer.fit(model, datamodule=dm)
        ckpt = torch.load(last.path, weights_only=False)
        assert len(saves) == writes and saves[-1] == 2 and last.saved_epoch == 2
        assert ckpt["epoch"] == 2 and ckpt["global_step"] == trainer.global_step
