"""W&B logging: offline by default (no network), metrics, table and plots land in the run folder."""

from __future__ import annotations

import pytest

from conftest import REPO, quick_args, run_folders
from genood.loggers import WandbLogger, wandb_configured


def test_offline_unless_configured(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    assert not wandb_configured()
    assert WandbLogger(save_dir=str(tmp_path))._offline
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_configured() and not WandbLogger(save_dir=str(tmp_path))._offline


def test_offline_run_writes_results_and_plots(monkeypatch, tmp_path):
    from genood.train import main

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    main(quick_args(tmp_path, "--config", str(REPO / "configs/logger/wandb.yaml"), "--evaluation.scorers=[nll]",
                    epochs=1))
    run = run_folders(tmp_path)[-1]
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    media = list(offline[0].rglob("*.png"))
    assert any("hist" in p.name for p in media) and any("roc" in p.name for p in media)
    assert list(offline[0].rglob("*.table.json"))
