"""The LightningCLI shared by ``python -m genood.train`` and ``python -m genood.evaluate``.

Config layout (every section maps 1:1 onto a constructor)::

    seed_everything: 0
    experiment: hvae_digits          # run folder: <output_root>/<experiment>/version_<N>
    trainer: {...}                   # lightning.Trainer
    model: {class_path: ..., init_args: {...}}   # a genood.models.base.GenerativeModel
    data: {class_path: ..., init_args: {...}}    # a genood.data.base.OODDataModule
    evaluation: {...}                # genood.evaluation.config.EvaluationConfig

``model.init_args.input_shape`` is linked from the datamodule and never written by hand.
"""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from .data.base import OODDataModule
from .evaluation.config import EvaluationConfig
from .models.base import GenerativeModel
from .run_dir import ENV_VAR, claim_run_dir

DEFAULT_CONFIG = "configs/default.yaml"


def default_config_path() -> Path:
    """``configs/default.yaml`` in the working directory, else beside the installed package."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (base / DEFAULT_CONFIG).exists():
            return base / DEFAULT_CONFIG
    raise FileNotFoundError(f"{DEFAULT_CONFIG} not found in {Path.cwd()} or beside the genood package; "
                            "run from the repository root or pass --config FILE")


def with_default_config(argv: list[str]) -> list[str]:
    """No ``--config`` given: the embedded default experiment (help and print_config included)."""
    if any(a == "--config" or a.startswith("--config=") for a in argv):
        return argv
    return ["--config", str(default_config_path()), *argv]


class GenoodCLI(LightningCLI):
    def __init__(self, args: Optional[list[str]] = None, **kwargs):
        self.run_dir: Optional[Path] = None
        with warnings.catch_warnings():  # we always pass args (the default config is prepended to sys.argv)
            warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
            super().__init__(
                GenerativeModel, OODDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                save_config_callback=None, seed_everything_default=0, args=args,
                trainer_defaults={"num_sanity_val_steps": 0, "log_every_n_steps": 10}, **kwargs)
        self.after_instantiate()
        self.save_resolved_config()

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--experiment", type=str, default="default", help="run folder name under output_root")
        parser.add_argument("--output_root", type=str, default="checkpoints", help="root of the run folders")
        parser.add_argument("--run_dir", type=Optional[str], default=None,
                            help="explicit run folder (needed under torchrun/SLURM); must be new or empty")
        parser.add_argument("--ckpt_path", type=Optional[str], default=None,
                            help="train: resume from this checkpoint (e.g. <run>/last.ckpt); evaluate: the checkpoint to score")
        parser.add_class_arguments(EvaluationConfig, "evaluation")
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")

    def parse_arguments(self, parser, args) -> None:
        try:
            super().parse_arguments(parser, args)
        except SystemExit as e:
            if e.code not in (0, None):
                sys.stderr.write(known_classes_hint())
            raise

    def before_instantiate_classes(self) -> None:
        self.run_dir = claim_run_dir(self.config.output_root, self.config.experiment, self.config.run_dir)
        self.config.trainer.default_root_dir = str(self.run_dir)

    def after_instantiate(self) -> None:
        """Point Lightning's default checkpointing at the run folder (last.ckpt + best by val/loss)."""
        for cb in self.trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
                cb.dirpath = str(self.run_dir)
                cb.save_last = True
                if cb.monitor is None:
                    cb.monitor, cb.filename = "val/loss", "best"

    def run_evaluation(self, scorers: list, metadata: Optional[dict] = None) -> list[dict]:
        """OOD evaluation of ``self.model`` as the ``evaluation:`` section says, into the run folder;
        ``metadata`` (training time, evaluated weights) goes to ``results.json`` with the run's seed."""
        from .evaluation.runner import evaluate

        ev = self.config.evaluation
        meta = {"experiment": self.config.experiment, "run_dir": str(self.run_dir),
                "seed": self.config.seed_everything, **(metadata or {})}
        return evaluate(self.trainer, self.model, self.datamodule, scorers, run_dir=self.run_dir, plots=ev.plots,
                        print_table=ev.print_table, bootstrap=ev.bootstrap, metadata=meta)

    def save_resolved_config(self) -> None:
        if self.trainer.global_rank == 0 and int(os.environ.get("LOCAL_RANK", "0")) == 0:
            self.parser.save(self.config, str(self.run_dir / "config.yaml"), skip_none=False, overwrite=False,
                             skip_check=True)


def _discover(package: str) -> list[str]:
    """Import every sub-module of ``package`` (a model family folder, a data module) so that its classes
    register as subclasses; returns one line per module that failed to import, naming the error."""
    import importlib
    import pkgutil

    failures = []
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__, prefix=f"{package}."):
        try:
            importlib.import_module(info.name)
        except Exception as e:  # a broken family must be named, never silently dropped
            failures.append(f"{info.name}: {type(e).__name__}: {e}")
    return failures


def _subclasses(cls) -> list[str]:
    """Dotted paths of ``cls``'s genood subclasses, shortened to the package a config names
    (``genood.models.hvae.HVAE`` rather than ``genood.models.hvae.lightning_model.HVAE``)."""
    import importlib

    out = []
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("genood."):
            package = sub.__module__.rsplit(".", 1)[0]
            exported = getattr(importlib.import_module(package), sub.__name__, None) is sub
            out.append(f"{package if exported else sub.__module__}.{sub.__name__}")
        out += _subclasses(sub)
    return sorted(set(out))


def known_classes_hint() -> str:
    """The genood models and datamodules a config's ``class_path`` may name, found by importing every model
    family under ``genood/models/`` and every module under ``genood/data/`` (a new family needs no list);
    a family whose import fails is named with its error."""
    failures = _discover("genood.models") + _discover("genood.data")
    text = ("\ngenood models (model.class_path): " + ", ".join(_subclasses(GenerativeModel)) +
            "\ngenood datamodules (data.class_path): " + ", ".join(_subclasses(OODDataModule)) + "\n")
    if failures:
        text += "could not import (these classes are missing above):\n" + "".join(f"  {f}\n" for f in failures)
    return text


def build_scorers(model: GenerativeModel, evaluation: EvaluationConfig) -> list:
    """The model's scorers (plus a background-model likelihood ratio when configured), selected by name."""
    from .scoring.base import select_scorers

    available = list(model.scorers())
    if evaluation.background_ckpt:
        from .scoring.ratio import LikelihoodRatio

        available.append(LikelihoodRatio(background_ckpt=evaluation.background_ckpt))
    return select_scorers(available, evaluation.scorers)


def load_weights(model: GenerativeModel, ckpt_path: str) -> None:
    """Load a genood checkpoint's weights into ``model`` with errors that say what is wrong."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated file, not a torch file, ...
        raise RuntimeError(f"checkpoint {path} could not be read (corrupt or not a PyTorch checkpoint): "
                           f"{type(e).__name__}: {e}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise RuntimeError(f"checkpoint {path} is not a Lightning checkpoint (no 'state_dict')")
    missing, unexpected = [], []
    own = model.state_dict()
    for k, v in ckpt["state_dict"].items():
        if k not in own:
            unexpected.append(k)
        elif own[k].shape != v.shape:
            unexpected.append(f"{k} (shape {tuple(v.shape)} vs model {tuple(own[k].shape)})")
    missing = [k for k in own if k not in ckpt["state_dict"]]
    if missing or unexpected:
        hp = ckpt.get("hyper_parameters", {})
        raise RuntimeError(
            f"checkpoint {path} does not match {type(model).__name__} built from the config "
            f"(checkpoint hyper-parameters: {hp}); missing keys: {missing[:5]}, unexpected/mismatched: "
            f"{unexpected[:5]}. Evaluate it with the config of the run that wrote it.")
    model.load_state_dict(ckpt["state_dict"])


@contextmanager
def run_folder_scope():
    """Within it, a run claims one folder (shared with its DDP workers); on exit the launching process
    forgets it, so a later run in the same process gets a new one."""
    claimed_here = ENV_VAR not in os.environ
    try:
        yield
    finally:
        if claimed_here:
            os.environ.pop(ENV_VAR, None)


def report_rows(cli: GenoodCLI, scorers: list, message: str, metadata: Optional[dict] = None) -> list[dict]:
    """Evaluate, then tell the user where the run folder is (rank 0 only)."""
    rows = cli.run_evaluation(scorers, metadata)
    if cli.trainer.global_rank == 0:
        print(f"{message}run folder: {cli.run_dir}")
    return rows


def main_argv(argv: Optional[list[str]]) -> list[str]:
    return with_default_config(list(sys.argv[1:] if argv is None else argv))
