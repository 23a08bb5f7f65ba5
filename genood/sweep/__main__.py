"""``python -m genood.sweep experiments/sweeps/<name>.yaml --trials N [--workers K] [--storage URL]``

Runs a W&B sweep file without a W&B server, with Optuna as the engine (W&B's grid / random / bayes as
Optuna's GridSampler / RandomSampler / TPESampler). Each trial runs the file's own command (as ``wandb agent``
would) into its own run folder ``<out>/trials/trial_<n>/``, logged to W&B offline unless W&B is configured,
grouped by the sweep's name. The study lives in ``<out>/study.journal`` (``--out``, default
``sweeps/<name>``); ``--trials`` is its total, so re-running the same command after an interruption, or with
a larger N, runs only the missing trials. At the end it prints the best trial and every trial, and writes
``trials.md``, ``optimization_history.png`` and ``param_importances.png`` to the sweep's folder.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Optional


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m genood.sweep", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", help="W&B sweep file, e.g. experiments/sweeps/baseline.yaml")
    p.add_argument("--trials", type=int, default=None,
                   help="finished trials the study should hold in all (default: the file's run_cap)")
    p.add_argument("--workers", type=int, default=1, help="trials run at once by this process (default 1)")
    p.add_argument("--storage", default=None,
                   help="the study's storage shared by many workers: a database URL (sqlite:///..., "
                        "postgresql://...) or a journal file path (default: <out>/study.journal)")
    p.add_argument("--out", default=None, help="the sweep's folder: trials, study, plots (default: sweeps/<name>)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per trial (OMP_NUM_THREADS; default: cores / workers when workers > 1, else a run's "
                        "own default: OMP_NUM_THREADS when set, else 1)")
    p.add_argument("--gpus", default=None, help="comma-separated GPU ids handed out to the worker slots, e.g. 0,1")
    p.add_argument("--seed", type=int, default=None, help="sampler seed (default: random; give concurrent "
                                                          "workers different seeds)")
    p.add_argument("--max-failures", type=int, default=3, help="failed trials in a row that stop this process "
                                                               "(default 3)")
    p.add_argument("--fail-running", action="store_true",
                   help="first mark every trial still RUNNING in the study as failed (only when no worker is "
                        "alive; those of this host are found without it)")
    p.add_argument("--no-run", action="store_true", help="run nothing; print the table and write the plots")
    a = p.parse_args(argv)
    for name in ("workers", "max_failures"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if a.trials is not None and a.trials < 1:
        p.error(f"--trials must be >= 1, got {a.trials}")
    return a


def _fail(message: str):
    """A user error: one line, exit status 2 (as genood.train's)."""
    print(f"genood.sweep: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Optional[list[str]] = None):
    """Run the sweep; returns the Optuna study."""
    from .report import report
    from .spec import SweepSpecError, load_sweep
    from .storage import open_storage, open_study
    from .study import run_sweep

    import optuna

    a = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from genood.sweep
    try:
        sweep = load_sweep(a.sweep)
    except SweepSpecError as e:
        _fail(str(e))
    if "early_terminate" in sweep.raw:
        print("genood.sweep: note: early_terminate is W&B's; the Optuna engine runs every trial to its end",
              file=sys.stderr)
    trials = a.trials or sweep.run_cap
    if trials is None and not a.no_run:
        _fail(f"give --trials N ({sweep.path} has no run_cap)")
    out = Path(a.out) if a.out else Path("sweeps") / sweep.name
    for cfg in sweep.configs:
        if not Path(cfg).is_file():
            _fail(f"{sweep.path}'s command names --config {cfg}, which is not in {Path.cwd()} (paths are relative to "
                  "the folder the sweep runs from: the repository root)")
    if a.no_run:
        out.mkdir(parents=True, exist_ok=True)
        try:
            study = open_study(sweep, open_storage(a.storage, out.resolve()))
        except SweepSpecError as e:
            _fail(str(e))
        report(study, sweep, out)
        return study
    stop_event = threading.Event()

    def stop(signum, frame):  # Ctrl-C / SIGTERM: stop every trial's run (worker threads too), fail their trials
        stop_event.set()
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        study = run_sweep(sweep, out, trials, storage=a.storage, workers=a.workers, threads=a.threads,
                          gpus=a.gpus.split(",") if a.gpus else None, seed=a.seed, max_failures=a.max_failures,
                          fail_running=a.fail_running, stop_event=stop_event)
    except KeyboardInterrupt:
        print(f"\ngenood.sweep: interrupted; the running trials were stopped and failed. Run the same command again "
              "to run the trials still missing.", file=sys.stderr)
        raise SystemExit(130) from None
    except SweepSpecError as e:  # e.g. an existing study with the other direction
        _fail(str(e))
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    report(study, sweep, out)
    return study


if __name__ == "__main__":
    main()
