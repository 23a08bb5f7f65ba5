"""Known user errors: ``main(argv)`` raises them as Python exceptions; the command line prints one clear line
without a traceback and exits with status 2; a run that fails before training leaves no run folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO, quick_args


def _cli(module: str, *args: str, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GENOOD_RUN_DIR", None)
    env.pop("GENOOD_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def _assert_one_clear_line(proc: subprocess.CompletedProcess, prog: str, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, proc.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_command_line_errors_are_one_line_and_leave_no_run_folder(ppca_run, tmp_path):
    # a bad value found when the datamodule is built (after the run folder was claimed)
    proc = _cli("genood.train", *quick_args(tmp_path, "--data.init_args.ood_sets=[blank,nonsense]"))
    _assert_one_clear_line(proc, "genood.train", "unknown digits OOD set", "'nonsense'", "natural_patches")
    assert not (tmp_path / "ppca_digits").exists()  # no empty version_0 left behind
    # an unreadable checkpoint given to evaluate
    _, run, _ = ppca_run
    bad = tmp_path / "bad" / "last.ckpt"
    bad.parent.mkdir()
    bad.write_bytes(b"not a checkpoint")
    (bad.parent / "config.yaml").write_text((run / "config.yaml").read_text())
    proc = _cli("genood.evaluate", "--ckpt_path", str(bad), f"--output_root={tmp_path / 'out'}")
    _assert_one_clear_line(proc, "genood.evaluate", "could not be read", str(bad))
    assert not (tmp_path / "out" / "ppca_digits").exists()


@pytest.mark.parametrize("extra, error, match", [
    (["--data.init_args.ood_sets=[blank,nonsense]"], ValueError, "unknown digits OOD set"),
    (["--model.init_args.latent_dim=0"], ValueError, "latent_dim"),
    (["--ckpt_path=/nonexistent/last.ckpt"], FileNotFoundError, "does not exist"),
])
def test_main_raises_and_removes_the_unused_run_folder(tmp_path, extra, error, match):
    from genood.train import main

    with pytest.raises(error, match=match):
        main(quick_args(tmp_path, *extra))
    assert not (tmp_path / "ppca_digits").exists()
    explicit = tmp_path / "mine"
    explicit.mkdir()  # an explicit, empty --run_dir the user made is kept (and left empty)
    with pytest.raises(error, match=match):
        main(quick_args(tmp_path, *extra, f"--run_dir={explicit}"))
    assert explicit.is_dir() and not any(explicit.iterdir())


def test_missing_torchvision_dataset_is_one_line_with_the_download_hint(tmp_path):
    from genood.train import main

    with pytest.raises(FileNotFoundError, match="download=true"):
        main(["--config", str(REPO / "configs/hvae/fashionmnist.yaml"), f"--output_root={tmp_path}",
              f"--data.init_args.root={tmp_path / 'empty'}", "--trainer.accelerator=cpu"])
    assert not any(tmp_path.glob("*/version_*"))


def _only_line(proc: subprocess.CompletedProcess, prog: str) -> str:
    """The whole output is one line on stderr: ``<prog>: error: ...``."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == "", proc.stdout[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"{prog}: error: ")
    return lines[0]


def test_missing_config_file_is_one_line_naming_it_and_the_families(tmp_path):
    line = _only_line(_cli("genood.train", "--config", "configs/hvae/digit.yaml", f"--output_root={tmp_path}"),
                      "genood.train")
    assert "config file configs/hvae/digit.yaml does not exist (did you mean configs/hvae/digits.yaml?)" in line
    families = sorted(p.name for p in (REPO / "configs").iterdir() if p.is_dir())
    assert "config families: " + ", ".join(families) in line
    line = _only_line(_cli("genood.evaluate", "--ckpt_path", __file__, "--config", "nowhere.yaml"), "genood.evaluate")
    assert "config file nowhere.yaml does not exist" in line and "did you mean" not in line
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_wrong_class_path_is_one_line_naming_it_and_the_classes(tmp_path):
    from genood.cli import known_classes

    line = _only_line(_cli("genood.train", *quick_args(tmp_path, "--model.class_path=genood.models.hvae.HVAEE")),
                      "genood.train")
    assert ("model.class_path 'genood.models.hvae.HVAEE' is not a genood model "
            "(did you mean genood.models.hvae.HVAE?)") in line
    assert "genood models: " + ", ".join(known_classes()["model"]) in line
    assert "Union" not in line and "NestedArg" not in line
    # the same from a config file
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  class_path: genood.data.NoSuchData\n")
    line = _only_line(_cli("genood.train", *quick_args(tmp_path, "--config", str(bad))), "genood.train")
    assert "data.class_path 'genood.data.NoSuchData' is not a genood datamodule" in line
    assert "genood datamodules: " + ", ".join(known_classes()["data"]) in line
    assert not (tmp_path / "ppca_digits").exists()


def test_wrong_argument_of_a_class_is_one_line():
    from genood.cli import ConfigError
    from genood.parse_errors import one_line
    from genood.train import main

    for extra, expected in [
        ("--model.init_args.nope=3", "model.init_args.nope is not an argument of genood.models.baseline.PPCA "
                                     "(--model.help genood.models.baseline.PPCA lists its arguments)"),
        ("--model.init_args.latent_dim=abc", "model.init_args.latent_dim (genood.models.baseline.PPCA): Expected a "
                                             "<class 'int'>. Got value: abc"),
        ("--trainer.max_epochs=abc", "trainer.max_epochs: Expected a <class 'int'> (given: abc)"),
    ]:
        with pytest.raises(ConfigError) as e:
            main(quick_args("/nonexistent-output", extra))
        assert str(e.value) == expected
    assert (one_line("unrecognized arguments: --nosuch=1", {})
            == "unrecognized arguments: --nosuch=1 (--help lists the options)")


def test_checkpoint_of_another_model_family_is_one_short_line(ppca_run, tmp_path):
    _, run, _ = ppca_run
    proc = _cli("genood.evaluate", "--ckpt_path", str(run / "last.ckpt"), "--config",
                str(REPO / "configs/hvae/digits.yaml"), f"--output_root={tmp_path}", "--trainer.accelerator=cpu")
    _assert_one_clear_line(proc, "genood.evaluate",
                           f"checkpoint {run / 'last.ckpt'} holds a genood.models.baseline.PPCA",
                           "the config builds a genood.models.hvae.HVAE", "drop --config")
    line = next(line for line in proc.stderr.splitlines() if line.startswith("genood.evaluate: error: "))
    assert "hyper" not in line and "latent_dim" not in line and len(line) < 600, line
    assert not any(tmp_path.glob("*/version_*"))
