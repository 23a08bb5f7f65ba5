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
    "configs/dte/wdbc.yaml": {"dte_np", "dte_np_data", "dte_ig", "dte_ig_released", "dte_c", "knn", "knn_mean"},
    "configs/dte/wine.yaml": {"dte_np", "dte_np_data", "dte_ig", "dte_ig_released", "dte_c", "knn", "knn_mean"},
    "configs/dte/digits.yaml": {"dte_np", "dte_np_data", "dte_ig", "dte_ig_released", "dte_c", "knn", "knn_mean"},
    "configs/dte/ddpm_wdbc.yaml": {"ddpm_recon"},
    "configs/classifier/digits.yaml": {"msp", "energy", "mahalanobis", "knn_feature"},
    "configs/flowcon/digits.yaml": {"flowcon", "flowcon_class", "flowcon_full", "msp", "energy", "mahalanobis",
                                    "knn_feature"},
    "configs/flow/digits.yaml": {"nll", "bpd", "typicality", "complexity"},
    "configs/flow/digits_background.yaml": {"nll", "bpd", "typicality", "complexity"},
    "configs/msma/digits.yaml": {"msma_gmm", "msma_flow", "msma_knn", *(f"msma_norm_l{i}" for i in range(1, 11))},
    "configs/msma/wdbc.yaml": {"msma_gmm", "msma_flow", "msma_knn", *(f"msma_norm_l{i}" for i in range(1, 11))},
    "configs/lmd/digits.yaml": {"lmd_mse", "lmd_ssim"},
    "configs/vector_flow/wdbc.yaml": {"nll", "typicality"},
}
# configs whose one-epoch smoke run needs more (FlowCon: >= 1 classifier epoch and >= 1 flow epoch) or less
# (LMD: 2 attempts x 2 steps instead of 10 x 20)
EXTRA = {"configs/flowcon/digits.yaml": ["--model.init_args.classifier_epochs=1", "--trainer.max_epochs=2"],
         "configs/lmd/digits.yaml": ["--model.init_args.attempts=2", "--model.init_args.steps=2"]}
# overlays run on top of a base config: {overlay: (base config, scorers)}
OVERLAYS = {"configs/peers/overlay.yaml": ("configs/dte/wine.yaml", {"knn", "iforest", "ecod_inductive"}),
            "configs/peers/pyod.yaml": ("configs/dte/wine.yaml", {"cblof", "copod", "ecod", "feature_bagging", "hbos",
                                                                  "iforest_pyod", "knn", "loda", "lof", "mcd", "ocsvm",
                                                                  "pca"})}
NEEDS_DOWNLOADS = ["configs/hvae/fashionmnist.yaml", "configs/hvae/cifar10.yaml", "configs/dte/adbench.yaml",
                   "configs/dte/ddpm_adbench.yaml", "configs/flowcon/cifar10_resnet18.yaml",
                   "configs/flowcon/cifar10_wrn40_2.yaml", "configs/flowcon/cifar100_resnet18.yaml",
                   # needs a classifier run's checkpoint; end to end in tests/data/test_features_data.py
                   "configs/dte/digits_features.yaml", "configs/flow/fashionmnist.yaml",
                   "configs/flow/fashionmnist_background.yaml", "configs/flow/cifar10.yaml",
                   "configs/flow/cifar10_background.yaml", "configs/flow/cifar10_realnvp.yaml",
                   "configs/msma/cifar10.yaml", "configs/lmd/cifar10.yaml", "configs/lmd/fashionmnist.yaml",
                   "configs/msma/adbench.yaml", "configs/vector_flow/adbench.yaml",
                   "configs/vector_flow/planar_adbench.yaml"]


def test_every_config_is_covered():
    shipped = {str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml")}
    shipped -= {"configs/default.yaml", "configs/logger/wandb.yaml"}
    assert shipped == set(EMBEDDED) | set(NEEDS_DOWNLOADS) | set(OVERLAYS)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_runs_on_its_base_config(overlay, tmp_path):
    from genood.train import main

    base, scorers = OVERLAYS[overlay]
    rows = main(["--config", str(REPO / base), "--config", str(REPO / overlay), f"--output_root={tmp_path}", *FAST])
    assert {r["scorer"] for r in rows} == scorers
    assert all(math.isfinite(r["auroc"]) for r in rows)


@pytest.mark.parametrize("config", sorted(EMBEDDED))
def test_embedded_config_runs_end_to_end(config, tmp_path):
    from genood.train import main

    rows = main(["--config", str(REPO / config), f"--output_root={tmp_path}", *FAST, *EXTRA.get(config, [])])
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
