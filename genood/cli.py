"""The LightningCLI shared by ``python -m genood.train`` and ``python -m genood.evaluate``.

Config layout (every section maps 1:1 onto a constructor)::

    seed_everything: 0
    experiment: hvae_digits          # run folder: <output_root>/<experiment>/version_<N>
    trainer: {...}                   # lightning.Trainer
    model: {class_path: ..., init_args: {...}}   # a genood.models.base.GenerativeModel
    data: {class_path: ..., init_args: {...}}    # a genood.data.base.OODDataModule
    evaluation: {...}                # genood.evaluation.config.EvaluationConfig

``model.init_args.input_shape`` is linked from the datamodule and never written by hand.

Checkpoints in the run folder: ``last.ckpt`` holds the weights of the last completed epoch (rewritten every
epoch, so it is also where an interrupted run resumes from) and ``best.ckpt`` the best epoch by ``val/loss``.
After training, ``evaluation.checkpoint`` (``last``, the default, or ``best``) chooses which of the two is
evaluated; the log and ``results.json``'s metadata say which one was.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

from jsonargparse import ArgumentError
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from .data.base import OODDataModule
from .checkpoint_io import CheckpointError, read_weights_file
from .console import console_callbacks, silence_known_noise
from .evaluation.config import EvaluationConfig
from .last_checkpoint import LastCheckpoint
from .models.base import GenerativeModel, NonFiniteLossError
from .nvml_check import skip_nvml_check_without_driver
from .run_dir import ENV_VAR, claim_run_dir, created_run_dirs

skip_nvml_check_without_driver()  # after Lightning's import, which sets the probe on

DEFAULT_CONFIG = "configs/default.yaml"

# CPU threads of a run given neither --threads nor OMP_NUM_THREADS. One: on an idle 2-core machine a second
# thread makes the digits configs 0-27% faster (LMD's inpainting 55%), while on a machine whose cores other
# jobs hold, torch's one-thread-per-core pool spins and runs take 10-35x longer; and a run's metrics then do
# not depend on the machine's core count (experiments/thread_scaling.py; the README's set-up).
DEFAULT_THREADS = 1


class ConfigError(ValueError):
    """A command line or config file jsonargparse rejected (missing file, unknown class, bad value)."""


class _NoPromotionalTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing ..." advertisements from genood's console output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)[:16]


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoPromotionalTips())
silence_known_noise()


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
        parser_kwargs = {"exit_on_error": False, **kwargs.pop("parser_kwargs", {})}  # errors: parse_arguments
        with warnings.catch_warnings():  # we always pass args (the default config is prepended to sys.argv)
            warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
            super().__init__(
                GenerativeModel, OODDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                save_config_callback=None, seed_everything_default=0, args=args, parser_kwargs=parser_kwargs,
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
        parser.add_argument("--threads", type=Optional[int], default=None,
                            help="CPU threads of this process and its workers (torch, BLAS, OpenMP); default: "
                                 f"OMP_NUM_THREADS when set, else {DEFAULT_THREADS}; 0 = torch's default, one per "
                                 "core (an idle machine with many cores). Results repeat exactly only under the same "
                                 "thread count and device")
        parser.add_class_arguments(EvaluationConfig, "evaluation")
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")

    def parse_arguments(self, parser, args) -> None:
        """As LightningCLI's, but a rejected argument or config file is one :class:`ConfigError` line naming the
        file, class or key and what exists (not jsonargparse's usage block and nested Union report)."""
        from .parse_errors import one_line

        try:
            super().parse_arguments(parser, args)
        except ArgumentError as e:
            raise ConfigError(one_line(str(e), known_classes(), _config_root())) from None

    def instantiate_classes(self) -> None:
        """As LightningCLI's, but a constructor's own error (a bad value, a missing dataset) is raised as it
        is, not wrapped in jsonargparse's "Does not validate against any of the Union subtypes" report."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as e:
            root = e
            while root.__cause__ is not None:
                root = root.__cause__
            if root is e:
                raise
            raise root from None

    def before_instantiate_classes(self) -> None:
        set_threads(self.config.threads)  # before the datamodule and model are built
        self.run_dir = claim_run_dir(self.config.output_root, self.config.experiment, self.config.run_dir)
        self.config.trainer.default_root_dir = str(self.run_dir)

    def after_instantiate(self) -> None:
        """Point Lightning's default checkpointing at the run folder: ``best.ckpt`` (best ``val/loss``) and
        ``last.ckpt`` (the weights of every completed epoch, so the final weights once training ends).

        Lightning's own ``save_last=True`` on a monitored checkpoint writes ``last.ckpt`` only when a new best
        is saved (Lightning 2.6), so a run whose last epoch is not its best would leave older weights there;
        :class:`genood.last_checkpoint.LastCheckpoint` writes it at epoch ends and always at the end."""
        configured = self.config.trainer.get("callbacks") or []
        console_callbacks(self.trainer.callbacks, configured if isinstance(configured, list) else [configured])
        self.best_checkpoint: Optional[ModelCheckpoint] = None
        self.last_checkpoint: Optional[LastCheckpoint] = None
        for cb in self.trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
                cb.dirpath = str(self.run_dir)
                cb.save_last = False
                if cb.monitor is None:
                    cb.monitor, cb.filename = "val/loss", "best"
                self.best_checkpoint = cb
                # at epoch ends (at most every few seconds) and when training ends, also when validation runs
                # less often (check_val_every_n_epoch > 1) or an early stop ends training between validations
                last = LastCheckpoint(self.run_dir)
                self.trainer.callbacks.append(last)  # after the best one: trainer.checkpoint_callback stays "best"
                self.last_checkpoint = last
                break

    def trained_weights(self, resumed_from: Optional[str] = None) -> dict:
        """After ``fit``: put the weights ``evaluation.checkpoint`` names into the model (``last``: the final
        weights, already there; ``best``: ``best.ckpt``), say which on the console, and return them for
        ``results.json``'s metadata."""
        which = self.config.evaluation.checkpoint
        trainer = self.trainer
        info = {"checkpoint": which, "epochs_completed": int(trainer.current_epoch),
                "global_step": int(trainer.global_step), "resumed_from": resumed_from}
        if which == "best":
            path = self.best_checkpoint.best_model_path if self.best_checkpoint is not None else ""
            if not path or not Path(path).is_file():
                raise ValueError("evaluation.checkpoint=best, but this run saved no best checkpoint (checkpointing "
                                 "off, or val/loss never logged); use evaluation.checkpoint=last")
            saved = load_weights(self.model, path)
            info.update(path=str(Path(path).resolve()), epoch=saved.get("epoch"), global_step=saved.get("global_step"),
                        val_loss=_as_float(self.best_checkpoint.best_model_score))
            text = f"the best weights by val/loss (epoch {info['epoch']}, val/loss {info['val_loss']:.6g})"
            info["source"] = "best weights of this training run (best.ckpt)"
        else:
            path = self.last_checkpoint.best_model_path if self.last_checkpoint is not None else ""
            info.update(path=str(Path(path).resolve()) if path else None, epoch=int(trainer.current_epoch) - 1)
            text = f"the final weights (epoch {info['epoch']}, the last of {info['epochs_completed']} completed)"
            info["source"] = "final weights of this training run (last.ckpt)"
        if trainer.global_rank == 0:
            print(f"genood: evaluating {text}" + (f": {info['path']}" if info.get("path") else ""))
        return info

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


def known_classes() -> dict[str, list[str]]:
    """``{"model": [...], "data": [...], "broken": [...]}``: the genood classes a config's ``class_path`` may
    name, and the modules that failed to import (with their error)."""
    broken = _discover("genood.models") + _discover("genood.data")
    return {"model": _subclasses(GenerativeModel), "data": _subclasses(OODDataModule), "broken": broken}


def _config_root() -> Optional[Path]:
    try:
        return default_config_path().parent
    except FileNotFoundError:
        return None


def set_threads(n: Optional[int]) -> None:
    """Use ``n`` CPU threads in this process (torch's intra-op pool, and through threadpoolctl the BLAS and
    OpenMP pools of numpy, scipy and scikit-learn) and in the processes it starts (``OMP_NUM_THREADS``,
    ``MKL_NUM_THREADS``: DDP workers, benchmark cells). None: ``OMP_NUM_THREADS`` when the environment sets it
    (a benchmark cell, a sweep trial, a SLURM job), else :data:`DEFAULT_THREADS`; 0 leaves torch's and the
    libraries' defaults (one thread per core)."""
    if n is None:
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        n = int(env) if env.isdigit() and int(env) > 0 else DEFAULT_THREADS
    if n < 0:
        raise ValueError(f"--threads must be a number of CPU threads (0: one per core), got {n}")
    if n == 0:
        return
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)
    os.environ.update(OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))


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
    selected = select_scorers(available, evaluation.scorers)
    model.select_outputs(selected)
    return selected


def final_metrics(trainer) -> dict[str, float]:
    """The last logged value of every scalar metric (Lightning's ``callback_metrics``: the latest epoch's
    ``val/loss``, ...), as W&B's run summary records them by default."""
    out = {}
    for name, value in trainer.callback_metrics.items():
        try:
            out[name] = float(value)
        except (TypeError, ValueError, RuntimeError):  # a non-scalar metric: not a sweep objective
            continue
    return dict(sorted(out.items()))


def _as_float(v) -> Optional[float]:
    return float(v) if v is not None else None


def load_weights(model: GenerativeModel, ckpt_path: str) -> dict:
    """Load a genood checkpoint's weights into ``model`` with errors that say what is wrong; returns the
    checkpoint's ``epoch`` and ``global_step``."""
    path = Path(ckpt_path)
    ckpt = read_weights_file(path, "checkpoint", expect_dict=False)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path} is not a Lightning checkpoint (no 'state_dict')")
    missing, unexpected = [], []
    own = model.state_dict()
    for k, v in ckpt["state_dict"].items():
        if k not in own:
            unexpected.append(k)
        elif own[k].shape != v.shape:
            unexpected.append(f"{k} (shape {tuple(v.shape)} vs model {tuple(own[k].shape)})")
    missing = [k for k in own if k not in ckpt["state_dict"]]
    if missing or unexpected:
        saved_class = (ckpt.get("hyper_parameters") or {}).get("_class_path", "an unknown model class")
        built = f"{type(model).__module__.rsplit('.', 1)[0]}.{type(model).__name__}"
        what = (f"{len(missing)} missing and {len(unexpected)} unexpected or mismatched weights, e.g. "
                + ", ".join([*missing[:1], *unexpected[:1]]))
        head = (f"holds a {saved_class} with other shapes than the config's" if saved_class == built else
                f"holds a {saved_class}, the config builds a {built}")
        raise CheckpointError(
            f"checkpoint {path} {head} ({what}); score it with the config of the run that wrote it "
            f"(python -m genood.evaluate --ckpt_path {path} reads the config.yaml beside it; drop --config and "
            "--model.* overrides)")
    model.load_state_dict(ckpt["state_dict"])
    return {"epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step")}


class RunScope(Callback):
    """State of :func:`run_folder_scope`; as a trainer callback it marks the run started when the training
    loop begins (:meth:`started` does it by hand)."""

    def __init__(self):
        self.has_started = False

    def started(self) -> None:
        self.has_started = True

    def on_train_start(self, trainer, pl_module) -> None:
        self.started()


@contextmanager
def run_folder_scope():
    """Within it, a run claims one folder (shared with its DDP workers); on exit the launching process
    forgets it, so a later run in the same process gets a new one. A run that fails before
    :meth:`RunScope.started` (a bad config value, a missing dataset, a bad checkpoint), or is interrupted by a
    signal at any point (:class:`genood.interrupt.RunInterrupted`), and wrote no checkpoint or results leaves
    no folder behind: the folder it created is removed (an explicit ``--run_dir`` that existed, empty, is
    emptied again)."""
    from .interrupt import RunInterrupted

    claimed_here = ENV_VAR not in os.environ
    scope = RunScope()
    try:
        yield scope
    except BaseException as e:
        stopped_early = not scope.has_started or isinstance(e, RunInterrupted)
        if claimed_here and stopped_early and os.environ.get(ENV_VAR):
            _remove_unused_run_dir(Path(os.environ[ENV_VAR]))
        raise
    finally:
        if claimed_here:
            os.environ.pop(ENV_VAR, None)


def _remove_unused_run_dir(path: Path) -> None:
    if any(path.glob("*.ckpt")) or (path / "results.json").exists():
        return  # something of value was written (e.g. by ddp_spawn workers this process does not see start)
    if path.resolve() in created_run_dirs:
        shutil.rmtree(path, ignore_errors=True)
        created_run_dirs.discard(path.resolve())
        parent = path.parent
        if path.name.startswith("version_") and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()  # the experiment folder, now empty
    else:  # an explicit --run_dir that existed: it was empty when claimed (genood.run_dir.claim_run_dir)
        for child in path.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()


# Errors a user can fix from the message alone: the command line prints them without a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, CheckpointError,
               NonFiniteLossError)


def command_line(main: Callable, prog: str) -> None:
    """Run ``main()`` as the command ``python -m <prog>``: a known user error (:data:`USER_ERRORS`) prints one
    line ``<prog>: error: <message>`` and exits with status 2; ``GENOOD_TRACEBACK=1`` shows the traceback. A
    run stopped by SIGTERM / SIGINT prints one line ``<prog>: interrupted by ...; resume with: <command>``
    (on the first rank) and exits with 128 + the signal number (143 for SIGTERM, 130 for SIGINT)."""
    from .interrupt import RunInterrupted

    try:
        main()
    except RunInterrupted as e:
        if os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("RANK", "0") == "0":
            sys.stderr.write(f"{prog}: {e}\n")
        sys.exit(e.exit_code)
    except USER_ERRORS as e:
        if os.environ.get("GENOOD_TRACEBACK"):
            raise
        sys.stderr.write(f"{prog}: error: {e}\n")
        sys.exit(2)


def report_rows(cli: GenoodCLI, scorers: list, message: str, metadata: Optional[dict] = None) -> list[dict]:
    """Evaluate, close the loggers' runs, then tell the user where the run folder is (rank 0 only)."""
    rows = cli.run_evaluation(scorers, metadata)
    for logger in cli.trainer.loggers:
        if hasattr(logger, "finish"):  # genood.loggers.WandbLogger
            logger.finish()
    if cli.trainer.global_rank == 0:
        print(f"{message}run folder: {cli.run_dir}")
    return rows

