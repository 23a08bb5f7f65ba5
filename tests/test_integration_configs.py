"""Every shipped config: the embedded ones train one short epoch and evaluate every scorer of their model
end to end through `python -m genood.train`; the GPU-scale ones (torchvision / ADBench data that cannot
be downloaded here) resolve with --print_config."""

from __future__ import annotations

import math

import pytest
import yaml

from conftest import REPO

FAST = ["--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.accelerator=cpu", "--evaluation.print_table=false", "--evaluation.plots=false"]

EMBEDDED = {
    "configs/baseline/digits.yaml": {"nll", "bpd", "typicality", "complexity"},
    "configs/hvae/digits.yaml": {"neg_elbo", "neg_elbo_gt1", "neg_elbo_gt2", "llr_gt1", "llr_gt2"},
    "configs/dte/wdbc.yaml": {"dte_np", "dte_np_data", "dte_ig", "dte_ig_released", "dte_c", "knn"},
    "configs/dte/wine.yaml": {"dte_np", "dte_np_data", "dte_ig", "dte_ig_released", "dte_c", "knn"},
    "configs/dte/digits.yaml": {"dte_np", "dte_np_data", "dte_ig", "dte_ig_released", "dte_c", "knn"},
    "configs/dte/ddpm_wdbc.yaml": {"ddpm_recon"},
    "configs/lmd/digits.yaml": {"lmd_mse", "lmd_ssim"},
}
# per-config flags that keep the one-epoch run short (LMD: 2 attempts x 2 steps instead of 10 x 20)
FAST_EXTRA = {"configs/lmd/digits.yaml": ["--model.init_args.attempts=2", "--model.init_args.steps=2"]}
NEEDS_DOWNLOADS = ["configs/hvae/fashionmnist.yaml", "configs/hvae/cifar10.yaml", "configs/dte/adbench.yaml",
                   "configs/dte/ddpm_adbench.yaml", "configs/lmd/cifar10.yaml", "configs/lmd/fashionmnist.yaml"]


def test_every_config_is_covered():
    shipped = {str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml")}
    shipped -= {"configs/default.yaml", "configs/logger/wandb.yaml"}
    assert shipped == set(EMBEDDED) | set(NEEDS_DOWNLOADS)


@pytest.mark.parametrize("config", sorted(EMBEDDED))
def test_embedded_config_runs_end_to_end(config, tmp_path):
    from genood.train import main

    rows = main(["--config", str(REPO / config), f"--output_root={tmp_path}", *FAST, *FAST_EXTRA.get(config, [])])
    assert {r["scorer"] for r in rows} == EMBEDDED[config]
    assert all(math.isfinite(r[m]) for r in rows for m in ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr80", "autc"))
    assert len(list(tmp_path.rglob("results.json"))) == 1


@pytest.mark.parametrize("config", NEEDS_DOWNLOADS)
def test_gpu_scale_config_resolves(config, capsys, monkeypatch):
    from genood.train import main

    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as e:
        main(["--config", str(REPO / config), "--print_config"])
    assert e.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].startswith("genood.models.")
    assert printed["data"]["class_path"].startswith("genood.data.")


def test_default_config_is_the_hvae_on_digits():
    assert (REPO / "configs/default.yaml").resolve() == (REPO / "configs/hvae/digits.yaml").resolve()
