"""FeatureDataModule: a classifier checkpoint's penultimate features of an image datamodule, extracted once,
with the same sets / groups / labels / indices; DTE and kNN run on them end to end (configs/dte/digits_features.yaml)."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import REPO, run_folders
from genood.data.digits import DigitsDataModule
from genood.data.features import FeatureDataModule
from genood.models.classifier import classifier_from_checkpoint

FLAGS = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
         "--evaluation.print_table=false", "--evaluation.plots=false"]


@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory):
    from genood.train import main

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("clf")
    main(["--config", str(REPO / "configs/classifier/digits.yaml"), f"--output_root={root}", *FLAGS,
          "--trainer.max_epochs=3", "--data.init_args.ood_sets=[black]"])
    (run,) = run_folders(root, "classifier_digits")
    return run / "last.ckpt"


def test_features_are_the_classifiers_with_the_image_sets_structure(classifier_ckpt):
    images = DigitsDataModule(seed=0, ood_sets=["flipped", "black"])
    dm = FeatureDataModule(images, str(classifier_ckpt), device="cpu")
    assert dm.input_shape == (64,)
    images.setup()
    net = classifier_from_checkpoint(classifier_ckpt).eval()
    assert [(s.name, s.group) for s in dm.test_sets()] == [(s.name, s.group) for s in images.test_sets()]
    for fs, im in zip(dm.test_sets(), images.test_sets()):
        assert len(fs.dataset) == len(im.dataset)
        for i in (0, 7, len(im.dataset) - 1):
            a, b = fs.dataset[i], im.dataset[i]
            assert a["index"] == b["index"] == i and a["y"] == b["y"]
            with torch.no_grad():
                expected = (net.embed(b["x"][None])[0][0] - dm.mean) / dm.std
            torch.testing.assert_close(a["x"], expected, rtol=1e-4, atol=1e-4)
    train = torch.stack([dm.train_set[i]["x"] for i in range(len(dm.train_set))])
    torch.testing.assert_close(train.mean(0), torch.zeros(64), atol=1e-4, rtol=0)  # standardised on train
    assert len(dm.train_set) == len(images.fit_set) and len(dm.val_set) == len(images.val_set)


def test_wrong_channels_and_missing_checkpoint_are_clear_errors(tmp_path):
    from genood.models.classifier import ClassifierNet

    colour = ClassifierNet("digits_cnn", 10, 3)  # a classifier of 3-channel images, as a genood checkpoint
    torch.save({"state_dict": {f"net.{k}": v for k, v in colour.state_dict().items()},
                "hyper_parameters": {"backbone": "digits_cnn", "num_classes": 10, "input_shape": (3, 8, 8)}},
               tmp_path / "colour.ckpt")
    with pytest.raises(ValueError, match="reads 3-channel images"):
        FeatureDataModule(DigitsDataModule(seed=0), str(tmp_path / "colour.ckpt"), device="cpu").setup()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FeatureDataModule(DigitsDataModule(seed=0), str(tmp_path / "none.ckpt"), device="cpu").setup()


def test_dte_and_knn_run_on_digits_features(classifier_ckpt, tmp_path):
    from genood.train import main

    rows = main(["--config", str(REPO / "configs/dte/digits_features.yaml"), f"--output_root={tmp_path}", *FLAGS,
                 f"--data.init_args.classifier_ckpt={classifier_ckpt}", "--trainer.max_epochs=1",
                 "--data.init_args.datamodule.init_args.ood_sets=[flipped,black,uniform_noise]"])
    assert {r["scorer"] for r in rows} == {"dte_np", "dte_np_data", "dte_ig", "dte_ig_released", "dte_c", "knn",
                                           "knn_mean"}
    assert {r["ood_set"] for r in rows} >= {"flipped", "black", "uniform_noise"}
    assert all(r["n_id"] == 540 and math.isfinite(r["auroc"]) for r in rows)
    by = {(r["scorer"], r["ood_set"]): r["auroc"] for r in rows}
    assert by[("knn", "black")] > 0.8 and by[("dte_np_data", "uniform_noise")] > 0.8  # far sets are far in feature space
