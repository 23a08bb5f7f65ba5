"""A study's summary: the best trial, a table of every trial, and Optuna's plots as PNG files."""

from __future__ import annotations

import warnings
from pathlib import Path

from .spec import Sweep


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def trial_rows(study) -> list[dict]:
    """One row per trial that ran (surplus trials, which never ran, are left out), in trial order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        if a.get("surplus"):
            continue
        state = t.state.name.lower()
        if state == "fail" and (a.get("stale") or a.get("interrupted")):
            state = "interrupted"
        rows.append({"trial": t.number, "state": state, "value": t.value, **t.params,
                     "seconds": a.get("seconds"), "run_dir": a.get("run_dir"), "error": a.get("error")})
    return rows


def trials_table(study, sweep: Sweep) -> str:
    """Markdown table of the trials: number, state, the metric, every parameter, seconds, run folder."""
    rows = trial_rows(study)
    params = [p.name for p in sweep.params if p.distribution != "constant"]
    header = ["trial", "state", sweep.metric, *params, "seconds", "run folder"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["trial"], r["state"], r["value"], *(r.get(p) for p in params), r["seconds"], r["run_dir"]]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def best_trial_text(study, sweep: Sweep) -> str:
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return f"study {sweep.name}: no finished trial yet"
    t = study.best_trial
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
    return (f"best trial {t.number}: {sweep.metric} = {t.value:.6g} ({sweep.goal}); {params}\n"
            f"  run folder: {t.user_attrs.get('run_dir')}")


def write_plots(study, sweep: Sweep, out: Path) -> tuple[list[Path], list[str]]:
    """``optimization_history.png`` and ``param_importances.png`` (Optuna's matplotlib plots) in ``out``;
    returns the files written and, for each plot left out, why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    written, skipped = [], []
    plots = {"optimization_history": ovm.plot_optimization_history,
             "param_importances": ovm.plot_param_importances}
    varying = {k for t in complete for k in t.params if len({repr(u.params.get(k)) for u in complete}) > 1}
    for name, plot in plots.items():
        if not complete:
            skipped.append(f"{name}: no finished trial")
            continue
        if name == "param_importances" and (len(complete) < 2 or not varying):
            skipped.append(f"{name}: needs 2 finished trials that differ in a parameter")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's "experimental" warning for the matplotlib backend
            try:
                ax = plot(study, target_name=sweep.metric)
            except (RuntimeError, ValueError) as e:  # e.g. importances of a degenerate study
                skipped.append(f"{name}: {e}")
                continue
        for loc in ("center", "left", "right"):  # Optuna titles the importances on the left
            if ax.get_title(loc=loc):
                ax.set_title(f"{ax.get_title(loc=loc)} (sweep {sweep.name})", loc=loc)
        fig = ax.figure
        fig.set_size_inches(9, 5)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written, skipped


def report(study, sweep: Sweep, out: Path, stream=None) -> dict:
    """Print the best trial and the trials table, write ``trials.md`` and the plots; returns what it wrote."""
    import sys

    stream = stream or sys.stdout
    out = Path(out)
    table = trials_table(study, sweep)
    (out / "trials.md").write_text(f"# sweep {sweep.name}\n\n{best_trial_text(study, sweep)}\n\n{table}")
    print(f"\n{table}\n{best_trial_text(study, sweep)}", file=stream)
    plots, skipped = write_plots(study, sweep, out)
    for line in skipped:
        print(f"plot left out: {line}", file=stream)
    print("wrote " + ", ".join(str(p) for p in [out / "trials.md", *plots]), file=stream, flush=True)
    return {"table": table, "plots": plots, "skipped": skipped}
