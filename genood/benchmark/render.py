"""Writing a benchmark's tables: ``table.md``, ``table.tex`` (booktabs), ``table.csv``, ``cells.json`` and
the method x OOD-set heatmap ``<metric>.png`` (``auroc.png`` by default)."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .runner import FAILED, FINISHED, MISSING
from .spec import Benchmark
from .table import METRIC_TITLES, CellResult, Column, Row, Table, Value, cell_record, commits, environment, row_warnings

SCALE = 100.0  # the tables show percentages


def _num(x: float, decimals: int) -> str:
    return f"{x * SCALE:.{decimals}f}"


def _paper_num(x: float) -> str:
    """A published value as printed (up to 2 decimals of the percentage, trailing zeros dropped)."""
    return f"{round(x * SCALE, 2):.2f}".rstrip("0").rstrip(".")


def _delta(x: float, decimals: int) -> str:
    return ("+" if x >= 0 else "−") + f"{abs(x) * SCALE:.{decimals}f}"


def value_text(v: Value, decimals: int) -> str:
    """``mean ± std`` (percent), with ``(k/n seeds)`` when some seeds' cells did not finish."""
    if v.mean is None:
        return {FAILED: "failed", MISSING: "not run"}.get(v.status, "–")
    text = _num(v.mean, decimals) if v.std is None or (len(v.seeds) == 1 and v.expected <= 1) else \
        f"{_num(v.mean, decimals)} ± {_num(v.std, decimals)}"
    if v.expected and len(v.seeds) < v.expected:
        text += f" ({len(v.seeds)}/{v.expected} seeds)"
    if v.count is not None:
        text += f" ({v.count} sets)"
    return text


def layout(table: Table) -> list[tuple[str, Column, str]]:
    """The printed columns: ``(kind, column, header)`` with kind "value", "paper" or "delta"; a paper and
    a Δ column follow every column for which some row has a published number."""
    with_paper = table.paper_columns()
    out = []
    for c in table.columns:
        out.append(("value", c, c.label))
        if c.key in with_paper:
            out += [("paper", c, "paper"), ("delta", c, "Δ")]
    return out


def layout_transposed(table: Table) -> list[tuple[str, Row, str]]:
    """The printed columns of a transposed table (one row per dataset column): ``(kind, method row, header)``,
    a paper and a Δ column after every method with some published number."""
    out = []
    for r in table.rows:
        out.append(("value", r, r.label))
        if any(v.paper is not None for v in r.values.values()):
            out += [("paper", r, "paper"), ("delta", r, "Δ")]
    return out


def cell_text(kind: str, v: Value, decimals: int) -> str:
    if kind == "paper":
        return _paper_num(v.paper) if v.paper is not None else "–"
    if kind == "delta":
        return _delta(v.delta, decimals) if v.delta is not None else "–"
    return value_text(v, decimals)


def caption(bench: Benchmark, table: Table, decimals: int) -> str:
    arrow = "higher is better" if table.metric in ("auroc", "aupr_in", "aupr_out") else "lower is better"
    seeds = table.seeds
    text = (f"{METRIC_TITLES[table.metric]} (%, {arrow}), mean ± std over seeds {seeds} ({len(seeds)} per cell); "
            "best per column in bold")
    if table.paper_columns():
        text += "; paper = published value, Δ = ours − paper"
    return text + "."


# ---- markdown -----------------------------------------------------------------------------------------

def split_unrun(table: Table) -> tuple[Table, list[str]]:
    """The table without its rows that no cell has fed yet (every value "not run"), and those rows' labels:
    a grid run in parts (``--only``) prints what exists and names the rest once."""
    unrun = [r.label for r in table.rows
             if all(v.mean is None and v.status != FAILED for v in r.values.values())]
    return (replace(table, rows=[r for r in table.rows if r.label not in unrun]), unrun) if unrun else (table, [])


def markdown(bench: Benchmark, tables: Sequence[Table], results: Sequence[CellResult], decimals: int = 1) -> str:
    lines = [f"# Benchmark `{bench.name}`" + (f": {bench.title}" if bench.title else ""), ""]
    for t in tables:
        if t.name:
            lines += [f"## {t.name}", ""]
        t, unrun = split_unrun(t)
        if t.rows:
            lines += [caption(bench, t, decimals), ""] + table_lines(t, decimals, bench.transpose) + [""]
        if unrun:
            lines += ["Not run yet (no finished cell): " + ", ".join(unrun) + ".", ""]
        lines += agreement_lines(t, decimals)
    lines += cost_lines(results) + failure_lines(results) + warning_lines(results) + source_lines(tables)
    lines += footer_lines(bench, results)
    return "\n".join(lines).rstrip() + "\n"


def table_lines(t: Table, decimals: int, transpose: bool = False) -> list[str]:
    """One row per method and one column per (task, OOD set), or (``transpose``) one row per dataset column and
    one column per method; paper and Δ columns after those with published numbers."""
    if transpose:
        cols, rows, first = layout_transposed(t), [(c.label, c) for c in t.columns], "dataset"
        value = lambda col, row: row.values[col.key]  # noqa: E731 (printed row = a Column, printed column = a Row)
    else:
        cols, rows, first = layout(t), [(r.label, r) for r in t.rows], "method"
        value = lambda row, col: row.values[col.key]  # noqa: E731
    lines = [f"| {first} | " + " | ".join(h for _, _, h in cols) + " |", "|---|" + "---:|" * len(cols)]
    for label, obj in rows:
        cells = []
        for kind, other, _ in cols:
            v = value(obj, other)
            text = cell_text(kind, v, decimals)
            cells.append(f"**{text}**" if kind == "value" and v.best else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def agreement_lines(t: Table, decimals: int) -> list[str]:
    """How close each method with published values lands to them, over the columns that the mean over
    published datasets pairs (a dataset, or a published group whose every class file ran): how many, the
    mean |Δ|, how many within 0.5 and 1 point, and the largest |Δ| with its column."""
    lines = []
    for r in t.rows:
        d = [(abs(r.values[c.key].delta), c.label) for c in t.columns
             if c.pairable and r.values[c.key].delta is not None]
        if d:
            worst = max(d)
            lines.append(f"| {r.label} | {len(d)} | {_num(float(np.mean([x for x, _ in d])), 2)} | "
                         f"{sum(x * SCALE <= 0.5 for x, _ in d)} | {sum(x * SCALE <= 1 for x, _ in d)} | "
                         f"{_num(worst[0], decimals)} ({worst[1]}) |")
    if not lines:
        return []
    return ["Agreement with the published values (points of the percentage; the columns the mean over published "
            "datasets pairs):", "", "| method | columns | mean \\|Δ\\| | \\|Δ\\| ≤ 0.5 | \\|Δ\\| ≤ 1 | largest \\|Δ\\| |",
            "|---|---:|---:|---:|---:|---|", *lines, ""]


def _mean(xs) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def cost_lines(results: Sequence[CellResult]) -> list[str]:
    """Per entry, mean over its finished seeds: training and scoring wall seconds and scoring throughput."""
    by_entry: dict[str, list[CellResult]] = {}
    for r in results:
        by_entry.setdefault(r.cell.entry.name, []).append(r)
    lines = ["Cost per cell (mean over finished seeds): training and scoring wall seconds, scored samples per "
             "second (fit split + ID test + every OOD set), and the cell's wall time (process start included).", "",
             "| entry | finished | train s | scoring s | samples/s | wall s | device |", "|---|---:|---:|---:|---:|---:|---|"]
    fmt = lambda x, d=1: "–" if x is None else f"{x:.{d}f}"  # noqa: E731
    for name, rs in by_entry.items():
        ok = [r for r in rs if r.status == FINISHED]
        devices = sorted({str(r.metadata.get("device")) for r in ok if r.metadata.get("device")})
        lines.append(f"| {name} | {len(ok)}/{len(rs)} | {fmt(_mean(r.metadata.get('train_seconds') for r in ok))} | "
                     f"{fmt(_mean(r.metadata.get('scoring_seconds') for r in ok))} | "
                     f"{fmt(_mean(r.metadata.get('samples_per_second') for r in ok), 0)} | "
                     f"{fmt(_mean(r.wall_seconds for r in ok))} | {', '.join(devices) or '–'} |")
    return lines + [""]


def failure_lines(results: Sequence[CellResult]) -> list[str]:
    bad = [r for r in results if r.status != FINISHED]
    if not bad:
        return []
    lines = ["Cells without results:", ""]
    for r in bad:
        what = f"failed: {r.error}" if r.status == FAILED else "not run yet"
        lines.append(f"- `{r.cell.entry.name}` seed {r.cell.seed}: {what} (log: `{r.cell.log_path}`)")
    return lines + [""]


def warning_lines(results: Sequence[CellResult]) -> list[str]:
    w = row_warnings(results)
    return (["Warnings:", ""] + [f"- {x}" for x in w] + [""]) if w else []


def source_lines(tables: Sequence[Table]) -> list[str]:
    src = list(dict.fromkeys(f"{r.label}: {s}" for t in tables for r in t.rows for s in r.sources))
    return (["Published numbers:", ""] + [f"- {s}" for s in src] + [""]) if src else []


def footer_lines(bench: Benchmark, results: Sequence[CellResult]) -> list[str]:
    env = environment(results)
    cs = ", ".join(f"`{c}` ({n} cells)" for c, n in commits(results)) or "none (no finished cell)"
    parts = [f"Commit(s): {cs}."]
    versions = "; ".join(f"{k} {', '.join(v)}" for k, v in env.items() if v and k != "device")
    if versions:
        parts.append(f"Versions: {versions}.")
    if env.get("device"):
        parts.append(f"Devices: {', '.join(env['device'])}.")
    parts.append(f"Made by `python -m genood.benchmark --config {bench.path}` on {time.strftime('%Y-%m-%d')}.")
    return [" ".join(parts)]


# ---- LaTeX --------------------------------------------------------------------------------------------

_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "±": r"$\pm$", "Δ": r"$\Delta$", "−": "-",
                "–": "--"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def latex(bench: Benchmark, tables: Sequence[Table], results: Sequence[CellResult], decimals: int = 1) -> str:
    """One booktabs ``table`` per benchmark table; a header row of task names over their columns when a
    table has several tasks; the best value of each column in ``\\textbf``; the commits in the footer."""
    out = [f"% genood.benchmark {bench.name}: {METRIC_TITLES[tables[0].metric] if tables else ''}; needs "
           "\\usepackage{booktabs}"]
    cs = ", ".join(f"{c}" for c, _ in commits(results)) or "none"
    for t in tables:
        t = split_unrun(t)[0]
        if not t.rows:
            continue
        if bench.transpose:
            out += _latex_transposed(bench, t, cs, decimals)
            continue
        cols = layout(t)
        out += ["\\begin{table}[t]", "\\centering", "\\small",
                "\\caption{" + tex_escape((f"{bench.title or bench.name}" + (f", {t.name}" if t.name else "")) + ". "
                                          + caption(bench, t, decimals)) + "}",
                "\\begin{tabular}{l" + "c" * len(cols) + "}", "\\toprule"]
        tasks = t.tasks
        if len(tasks) > 1 and any(sum(1 for c in t.columns if c.task == task) > 1 for task in tasks):
            spans, rules, pos = [], [], 2
            for task in [*tasks, ""]:
                n = sum(1 for _, c, _ in cols if c.task == task)
                if not n:
                    continue
                spans.append(f"\\multicolumn{{{n}}}{{c}}{{{tex_escape(task)}}}" if task else
                             ("\\multicolumn{%d}{c}{}" % n))
                if task:
                    rules.append(f"\\cmidrule(lr){{{pos}-{pos + n - 1}}}")
                pos += n
            out += [" & " + " & ".join(spans) + " \\\\", " ".join(rules)]
            headers = [h if h in ("paper", "Δ") or c.key == ("", "mean") else
                       h.split(": ", 1)[1] if ": " in h else h for _, c, h in cols]
        else:
            headers = [h for _, _, h in cols]
        out.append("Method & " + " & ".join(tex_escape(h) for h in headers) + " \\\\")
        out.append("\\midrule")
        for r in t.rows:
            out.append(_tex_row(r.label, [(kind, r.values[c.key]) for kind, c, _ in cols], decimals))
        out += ["\\bottomrule", "\\end{tabular}",
                "\\par\\smallskip{\\footnotesize " + tex_escape(f"genood commit(s): {cs}.") + "}",
                "\\end{table}", ""]
    return "\n".join(out)


def _tex_row(label: str, cells: list[tuple[str, Value]], decimals: int) -> str:
    """One LaTeX table row: the label, then each ``(kind, value)`` as printed, the best values in bold."""
    texts = []
    for kind, v in cells:
        text = tex_escape(cell_text(kind, v, decimals))
        texts.append(f"\\textbf{{{text}}}" if kind == "value" and v.best else text)
    return tex_escape(label) + " & " + " & ".join(texts) + " \\\\"


def _latex_transposed(bench: Benchmark, t: Table, commits_text: str, decimals: int) -> list[str]:
    """A transposed table (``transpose: true``): one row per dataset column, one column per method."""
    cols = layout_transposed(t)
    out = ["\\begin{table}[t]", "\\centering", "\\small",
           "\\caption{" + tex_escape((f"{bench.title or bench.name}" + (f", {t.name}" if t.name else "")) + ". "
                                     + caption(bench, t, decimals)) + "}",
           "\\begin{tabular}{l" + "c" * len(cols) + "}", "\\toprule",
           "Dataset & " + " & ".join(tex_escape(h) for _, _, h in cols) + " \\\\", "\\midrule"]
    for c in t.columns:
        out.append(_tex_row(c.label, [(kind, r.values[c.key]) for kind, r, _ in cols], decimals))
    return out + ["\\bottomrule", "\\end{tabular}",
                  "\\par\\smallskip{\\footnotesize " + tex_escape(f"genood commit(s): {commits_text}.") + "}",
                  "\\end{table}", ""]


# ---- CSV, cells.json ------------------------------------------------------------------------------------

CSV_FIELDS = ("table", "method", "column", "task", "ood_set", "metric", "mean", "std", "n_seeds", "expected_seeds",
              "status", "best", "paper", "delta")


def write_csv(path: Path, tables: Sequence[Table]) -> None:
    """One line per (table, method, column): raw fractions as in results.json."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for t in tables:
            for r in t.rows:
                for c in t.columns:
                    v = r.values[c.key]
                    w.writerow({"table": t.name, "method": r.label, "column": c.label, "task": c.task,
                                "ood_set": c.ood_set, "metric": t.metric, "mean": v.mean, "std": v.std,
                                "n_seeds": len(v.seeds), "expected_seeds": v.expected, "status": v.status or "",
                                "best": v.best, "paper": v.paper, "delta": v.delta})


def write_cells(path: Path, bench: Benchmark, results: Sequence[CellResult], metric: str) -> None:
    root = path.parent
    data = {"benchmark": bench.name, "file": str(bench.path), "metric": metric, "seeds": bench.seeds,
            "commits": dict(commits(results)), "written_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "cells": [cell_record(r, root) for r in results]}
    path.write_text(json.dumps(data, indent=1))


# ---- heatmap --------------------------------------------------------------------------------------------

def _grid(t: Table, transpose: bool):
    """``(y labels, x labels, value(i, j))`` of a table's heatmap: methods down (or datasets, transposed)."""
    if transpose:
        return [c.label for c in t.columns], [r.label for r in t.rows], lambda i, j: t.rows[j].values[t.columns[i].key]
    return [r.label for r in t.rows], [c.label for c in t.columns], lambda i, j: t.rows[i].values[t.columns[j].key]


def heatmap(path: Path, bench: Benchmark, tables: Sequence[Table], decimals: int = 1) -> Path:
    """Methods x columns (datasets x methods for ``transpose: true``), colour = mean metric (green = good), one
    panel per table; grey = no value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [t for t in tables if t.rows and t.columns]
    if not panels:
        panels = list(tables)
    grids = [_grid(t, bench.transpose) for t in panels]
    widths = [max(4.0, 0.75 * len(x) + 2.5) for _, x, _ in grids]
    heights = [max(2.0, 0.38 * len(y) + 1.6) for y, _, _ in grids]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(widths, default=6), sum(heights) or 3), squeeze=False,
                             gridspec_kw={"height_ratios": heights or [1]})
    higher = tables[0].metric in ("auroc", "aupr_in", "aupr_out") if tables else True
    cmap = matplotlib.colormaps["RdYlGn" if higher else "RdYlGn_r"].with_extremes(bad="#dddddd")
    for ax, t, (ylabels, xlabels, value) in zip(axes[:, 0], panels, grids):
        m = np.array([[np.nan if value(i, j).mean is None else value(i, j).mean for j in range(len(xlabels))]
                      for i in range(len(ylabels))], dtype=float).reshape(len(ylabels), len(xlabels))
        im = ax.imshow(np.ma.masked_invalid(m * SCALE), cmap=cmap, vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(xlabels)), xlabels, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(ylabels)), ylabels, fontsize=8)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                v = value(i, j)
                txt = value_text(v, decimals).split(" ± ")[0] if v.mean is None else f"{m[i, j] * SCALE:.{decimals}f}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=7, fontweight="bold" if v.best else "normal")
        ax.set_title((f"{bench.name}" + (f": {t.name}" if t.name else "")) + f" ({METRIC_TITLES[t.metric]} %)",
                     fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(out_dir: Path, bench: Benchmark, tables: Sequence[Table], results: Sequence[CellResult],
              metric: str, decimals: int = 1) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "table.md", "tex": out_dir / "table.tex", "csv": out_dir / "table.csv",
             "cells": out_dir / "cells.json", "png": out_dir / f"{metric}.png"}
    paths["md"].write_text(markdown(bench, tables, results, decimals))
    paths["tex"].write_text(latex(bench, tables, results, decimals))
    write_csv(paths["csv"], tables)
    write_cells(paths["cells"], bench, results, metric)
    heatmap(paths["png"], bench, tables, decimals)
    return paths
