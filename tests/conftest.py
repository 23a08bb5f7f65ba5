"""Shared fixtures and helpers: a small PPCA run on the embedded digits, trained once per test session; the
per-sample score comparison of two run folders; the gpu marker."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ADBENCH = REPO.parent / "shared" / "data" / "adbench"  # ADBench's real files, beside the repository
needs_adbench = pytest.mark.skipif(not (ADBENCH / "Classical").is_dir(),
                                   reason=f"ADBench's real .npz files are not at {ADBENCH} (they ship beside the "
                                          "repository in the development workspace only)")
os.environ.setdefault("WANDB_MODE", "disabled")  # tests never talk to W&B unless they opt in


def load_experiment(name: str):
    """The module of ``experiments/<name>.py`` (scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quick_args(output_root, *extra: str, epochs: int = 3) -> list[str]:
    """CLI arguments for a fast run of the baseline config into ``output_root``."""
    return ["--config", str(REPO / "configs/baseline/digits.yaml"), f"--output_root={output_root}",
            f"--trainer.max_epochs={epochs}", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--trainer.accelerator=cpu", "--evaluation.print_table=false",
            *extra]


def run_folders(root: Path, experiment: str = "ppca_digits") -> list[Path]:
    return sorted((Path(root) / experiment).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))


def assert_same_scores_by_index(a_path, b_path, rtol: float = 1e-6, atol: float = 0.0):
    """Per-sample scores of two runs' ``scores.npz``, aligned by dataset index, are equal up to float rounding
    (the metrics alone would not see a consistent index <-> score misalignment); every index appears exactly
    once in both, with the same label."""
    a, b = np.load(a_path), np.load(b_path)
    assert sorted(a.files) == sorted(b.files)
    sets = [k.split("/", 1)[1] for k in a.files if k.startswith("index/")]
    assert sets
    for name in sets:
        ia, ib = a[f"index/{name}"], b[f"index/{name}"]
        assert len(np.unique(ia)) == len(ia) and np.array_equal(np.sort(ia), np.sort(ib)), name
        oa, ob = np.argsort(ia), np.argsort(ib)
        assert np.array_equal(a[f"label/{name}"][oa], b[f"label/{name}"][ob]), name
        for key in a.files:
            if key.startswith("score/") and key.endswith(f"/{name}"):
                np.testing.assert_allclose(a[key][oa], b[key][ob], rtol=rtol, atol=atol, err_msg=key)


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.gpu`` tests run only where torch sees a CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (gpu marker)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ppca_run(tmp_path_factory):
    """(output_root, run folder, rows) of one quick baseline run."""
    from genood.train import main

    root = tmp_path_factory.mktemp("runs")
    rows = main(quick_args(root))
    return root, run_folders(root)[-1], rows


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread than on two contended ones; restores the setting after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
