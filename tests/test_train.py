"""python -m genood.train: the run folder contract, repeatability, resuming, and errors on bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from conftest import quick_args, run_folders
from genood.evaluation.metrics import METRIC_NAMES
from genood.evaluation.report import read_rows


def test_run_folder_holds_every_result_file(ppca_run):
    root, run, rows = ppca_run
    for name in ("config.yaml", "last.ckpt", "best.ckpt", "results.json", "results.csv", "results.md", "scores.npz"):
        assert (run / name).is_file(), name
    saved = read_rows(run)
    assert saved == rows
    scorers = {r["scorer"] for r in rows}
    assert {"nll", "bpd", "typicality", "complexity"} <= scorers
    sets = {r["ood_set"] for r in rows if not r["ood_set"].startswith("mean_")}
    assert sets == {"heldout", "flipped", "half_masked", "inverted", "natural_patches", "uniform_noise",
                    "gaussian_noise", "constant", "blank", "black"}
    for r in rows:
        assert set(r) == {"scorer", "ood_set", "group", "n_id", "n_ood", *METRIC_NAMES}
        assert 0.0 <= r["auroc"] <= 1.0
    # near/far means are the means of their member rows
    nll = [r for r in rows if r["scorer"] == "nll"]
    far = [r["auroc"] for r in nll if r["group"] == "far" and not r["ood_set"].startswith("mean_")]
    assert next(r for r in nll if r["ood_set"] == "mean_far")["auroc"] == pytest.approx(np.mean(far))
    # uniform noise is trivially far from digits for a fitted Gaussian
    assert next(r for r in nll if r["ood_set"] == "uniform_noise")["auroc"] > 0.95
    for scorer in scorers:
        assert (run / "plots" / f"hist_{scorer}.png").is_file()
        assert (run / "plots" / f"roc_{scorer}.png").is_file()


def test_results_metadata_records_provenance_and_timings(ppca_run):
    import subprocess

    import lightning

    import genood
    from genood.evaluation.report import read_results

    _, run, rows = ppca_run
    meta = read_results(run)["metadata"]
    assert meta["genood_version"] == genood.__version__
    assert meta["torch"] == torch.__version__ and meta["lightning"] == lightning.__version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=genood.provenance.PACKAGE_DIR.parent,
                          capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout: the commit is recorded, with a dirty flag
        assert meta["git_commit"] == head.stdout.strip() and isinstance(meta["git_dirty"], bool)
    assert meta["seed"] == 0 and meta["world_size"] == 1 and meta["device"].startswith("cpu")
    # the CUDA version only when a CUDA device ran it; the build's own under its name
    assert meta["cuda"] is None and meta["torch_cuda_build"] == torch.version.cuda
    assert meta["threads"] == torch.get_num_threads()
    assert meta["train_seconds"] > 0 and meta["scoring_seconds"] > 0
    assert meta["weights"]["epochs_completed"] == 3
    # every ID test, fit and OOD sample was scored once
    n_eval = rows[0]["n_id"] + sum(r["n_ood"] for r in rows if r["scorer"] == "nll" and not r["ood_set"].startswith("mean_"))
    assert sum(s["n"] for s in meta["sets"].values()) == n_eval
    assert meta["scored_samples"] > n_eval  # plus the fit split (typicality fits on it)
    assert meta["samples_per_second"] == pytest.approx(meta["scored_samples"] / meta["scoring_seconds"], rel=0.01)


def test_scores_npz_reproduces_the_table(ppca_run):
    from genood.evaluation.metrics import ood_metrics

    _, run, rows = ppca_run
    z = np.load(run / "scores.npz")
    assert len(z["index/digits"]) == rows[0]["n_id"]
    assert np.array_equal(np.sort(z["index/digits"]), np.arange(rows[0]["n_id"]))  # every ID sample once
    assert not z["is_ood/digits"].any() and z["is_ood/blank"].all()
    row = next(r for r in rows if r["scorer"] == "typicality" and r["ood_set"] == "constant")
    m = ood_metrics(z["score/typicality/digits"], z["score/typicality/constant"])
    assert m["auroc"] == pytest.approx(row["auroc"], abs=1e-12)


@pytest.fixture
def restore_threads(monkeypatch):
    """--threads changes this process's torch / BLAS / OpenMP thread pools and OMP_NUM_THREADS: put them back."""
    from threadpoolctl import ThreadpoolController

    libs = ThreadpoolController().lib_controllers
    saved = [lib.num_threads for lib in libs]
    n = torch.get_num_threads()
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(key, os.environ.get(key, ""))
    yield
    torch.set_num_threads(n)
    for lib, k in zip(libs, saved):
        lib.set_num_threads(k)


def test_threads_option_sets_and_records_the_thread_count(tmp_path, restore_threads):
    from threadpoolctl import threadpool_info

    from genood.evaluation.report import read_results
    from genood.train import main

    main(quick_args(tmp_path, "--threads=1", "--evaluation.scorers=[nll]", "--evaluation.plots=false", epochs=1))
    meta = read_results(run_folders(tmp_path)[-1])["metadata"]
    assert meta["threads"] == 1 and torch.get_num_threads() == 1
    assert all(lib["num_threads"] == 1 for lib in threadpool_info())  # numpy / scipy / scikit-learn pools too
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "1"  # for worker processes
    with pytest.raises(ValueError, match="--threads must be a number of CPU threads"):
        main(quick_args(tmp_path, "--threads=-1"))


def test_without_threads_a_run_takes_omp_num_threads_else_one_thread(tmp_path, restore_threads, monkeypatch):
    """The default thread count: the environment's OMP_NUM_THREADS (what a benchmark cell or SLURM job is
    given), else genood.cli.DEFAULT_THREADS = 1, whatever the core count; --threads=0 keeps torch's own."""
    from genood.evaluation.report import read_results
    from genood.train import main

    args = ("--evaluation.scorers=[nll]", "--evaluation.plots=false")
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    main(quick_args(tmp_path, *args, epochs=1))
    assert read_results(run_folders(tmp_path)[-1])["metadata"]["threads"] == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    main(quick_args(tmp_path, *args, epochs=1))
    assert read_results(run_folders(tmp_path)[-1])["metadata"]["threads"] == 2 and torch.get_num_threads() == 2
    torch.set_num_threads(3)
    main(quick_args(tmp_path, "--threads=0", *args, epochs=1))
    assert read_results(run_folders(tmp_path)[-1])["metadata"]["threads"] == 3


def test_provenance_names_cuda_only_for_a_cuda_device():
    from genood.provenance import provenance

    cpu = provenance(torch.device("cpu"))
    assert cpu["cuda"] is None and cpu["torch_cuda_build"] == torch.version.cuda
    assert provenance(torch.device("cuda", 0))["cuda"] == torch.version.cuda


def test_rerun_gets_a_new_folder_and_same_seed_same_metrics(ppca_run):
    from genood.train import main

    root, first, rows = ppca_run
    before = {p.name: p.stat().st_mtime for p in first.iterdir()}
    rows2 = main(quick_args(root))
    folders = run_folders(root)
    assert first in folders and len(folders) >= 2
    assert {p.name: p.stat().st_mtime for p in first.iterdir()} == before  # nothing overwritten
    assert rows2 == rows  # --seed_everything 0 (the config's) makes the run repeatable


def test_resume_from_last_ckpt_matches_uninterrupted_run(tmp_path):
    from genood.train import main

    full = main(quick_args(tmp_path / "full", epochs=4))
    main(quick_args(tmp_path / "part", epochs=2))
    last = run_folders(tmp_path / "part")[-1] / "last.ckpt"
    resumed = main(quick_args(tmp_path / "part", f"--ckpt_path={last}", epochs=4))
    assert len(run_folders(tmp_path / "part")) == 2  # resuming writes a new folder
    for a, b in zip(full, resumed):
        assert a["scorer"] == b["scorer"] and a["ood_set"] == b["ood_set"]
        for m in METRIC_NAMES:
            assert a[m] == pytest.approx(b[m], abs=1e-6), (a["scorer"], a["ood_set"], m)


def test_unknown_scorer_name_lists_valid_ones(tmp_path):
    from genood.train import main

    with pytest.raises(ValueError, match=r"unknown scorer\(s\) \['nope'\].*'nll'"):
        main(quick_args(tmp_path, "--evaluation.scorers=[nll,nope]"))


def test_scorer_selection(tmp_path):
    from genood.train import main

    rows = main(quick_args(tmp_path, "--evaluation.scorers=[bpd]", "--evaluation.plots=false", epochs=1))
    assert {r["scorer"] for r in rows} == {"bpd"}


def test_unknown_model_class_lists_genood_models(tmp_path):
    from genood.cli import ConfigError
    from genood.train import main

    with pytest.raises(ConfigError, match="'genood.models.NoSuchModel' is not a genood model.*baseline.PPCA"):
        main(quick_args(tmp_path, "--model.class_path=genood.models.NoSuchModel"))
    with pytest.raises(ConfigError, match="'nosuch.X' is not a genood datamodule.*genood.data.digits.DigitsDataModule"):
        main(quick_args(tmp_path, "--data.class_path=nosuch.X"))


def test_unknown_digits_ood_set_lists_valid_ones(tmp_path):
    from genood.train import main

    with pytest.raises(ValueError, match="unknown digits OOD set.*natural_patches"):
        main(quick_args(tmp_path, "--data.init_args.ood_sets=[blank,nonsense]"))


def test_nan_loss_stops_training_and_keeps_earlier_checkpoints(tmp_path):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from genood.data.digits import DigitsDataModule
    from genood.models.base import NonFiniteLossError
    from genood.models.baseline import PPCA

    class Diverging(PPCA):
        def loss(self, batch):
            loss = super().loss(batch)
            return loss * float("nan") if self.global_step >= 3 else loss

    dm = DigitsDataModule(batch_size=64)
    model = Diverging(input_shape=dm.input_shape)
    ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_top_k=-1)
    trainer = L.Trainer(max_epochs=2, callbacks=[ckpt], logger=False, enable_progress_bar=False,
                        accelerator="cpu", enable_model_summary=False)
    with pytest.raises(NonFiniteLossError, match="global step 3"):
        trainer.fit(model, datamodule=dm)
    saved = sorted(tmp_path.glob("*.ckpt"))
    assert len(saved) == 3
    state = torch.load(saved[-1], weights_only=False)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values())
