"""Choosing OOD sets never changes them (issue 17, bug 1): a run re-evaluated on a subset of its OOD sets, in
another order, scores each of those sets' samples exactly as the full run did; the same holds for the
classifier-feature view of the sets."""

from __future__ import annotations

import numpy as np
import torch

from conftest import run_folders
from genood.data.digits import DigitsDataModule
from genood.data.features import FeatureDataModule

EVAL_FLAGS = ["--trainer.enable_progress_bar=false", "--evaluation.print_table=false", "--evaluation.plots=false",
              "--trainer.accelerator=cpu"]


def test_evaluating_a_subset_reproduces_the_full_runs_scores_and_rows(ppca_run, tmp_path):
    from genood.evaluate import main

    _, run, rows = ppca_run
    sub_rows = main(["--ckpt_path", str(run / "last.ckpt"), "--data.init_args.ood_sets=[constant,blank]",
                     f"--output_root={tmp_path}", *EVAL_FLAGS])
    full, sub = np.load(run / "scores.npz"), np.load(run_folders(tmp_path)[-1] / "scores.npz")
    assert sorted(k.split("/", 1)[1] for k in sub.files if k.startswith("index/")) == ["blank", "constant", "digits"]
    for key in sub.files:  # every per-sample array of the subset run equals the full run's (same order)
        np.testing.assert_array_equal(sub[key], full[key], err_msg=key)
    per_set = lambda rs: {(r["scorer"], r["ood_set"]): r for r in rs if r["ood_set"] in ("blank", "constant")}  # noqa: E731
    assert per_set(sub_rows) == per_set(rows) and len(per_set(rows)) == 2 * len({r["scorer"] for r in rows})


def test_classifier_features_of_a_set_do_not_depend_on_the_requested_list(tmp_path):
    from genood.models.classifier import ClassifierNet

    torch.manual_seed(0)
    net = ClassifierNet("digits_cnn", 10, 1)  # untrained weights are enough: the features only need to be a fixed map
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"backbone": "digits_cnn", "num_classes": 10, "input_shape": (1, 8, 8)}},
               tmp_path / "clf.ckpt")

    def features(sets):
        dm = FeatureDataModule(DigitsDataModule(seed=1, ood_sets=sets), str(tmp_path / "clf.ckpt"), device="cpu")
        return {s.name: s.dataset.data for s in dm.test_sets()}

    full = features(["flipped", "natural_patches", "uniform_noise", "constant", "blank"])
    part = features(["blank", "natural_patches"])
    assert list(part) == ["digits", "blank", "natural_patches"]
    for name, x in part.items():
        assert torch.equal(x, full[name]), name
