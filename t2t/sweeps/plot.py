"""A sweep report's figures, written next to its table by ``t2t sweep report``.

    <sweep>.png         one panel per metric, one row per trial (the table's order): every seed
                        as a dot, the mean ± std as a bar, filled where the table bolds it; with
                        published rows, a last panel of the paper's GLUE averages on the same rows,
                        and each metric's Spearman ρ against the paper's column for its kind of
                        task in its title (`t2t.sweeps.paper.paper_column`)
    <sweep>_curves.png  training loss against step, one line per trial (mean over its seeds)

Figures are `matplotlib.figure.Figure`s (the Agg backend, no pyplot state), as in
t2t/scaling/plot.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from t2t.sweeps.paper import DEFAULT_COLUMN, paper_column
from t2t.sweeps.report import Report, TrialInfo, paper_agreement


def report_figure(report: Report, path: Path) -> None:
    """The table as dot plots: per metric, each trial's seeds, mean and std (see module doc)."""
    has_paper = any(report.paper)
    panels = len(report.metrics) + has_paper
    rows = len(report.trials)
    fig = Figure(figsize=(2.6 * panels + 1.6, 0.32 * rows + 1.4))
    axes = fig.subplots(1, panels, sharey=True, squeeze=False)[0]
    y = np.arange(rows)[::-1]  # first trial on top, as in the table
    agreement = paper_agreement(report) if has_paper else {}
    for ax, metric in zip(axes, report.metrics):
        for row, cell, bold in zip(y, report.cells[metric], report.bold[metric]):
            if cell is None:
                continue
            ax.plot(cell.values, [row] * len(cell.values), "o", ms=3, color="0.6", zorder=2)
            ax.errorbar(cell.mean, row, xerr=cell.std or 0, fmt="D", ms=5, capsize=2,
                        color="C0", mfc="C0" if bold else "white", zorder=3)
        arrow = {"lower": " (lower is better)", "higher": " (higher is better)"}.get(
            report.directions[metric], "")
        title = metric
        if agreement.get(metric):
            rho, n = agreement[metric]
            title += f"\nρ vs paper's {paper_column(metric)} {rho:+.2f} (n={n})"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel(arrow.strip(" ()"), fontsize=7)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
    if has_paper:
        ax = axes[-1]
        scores = [(row, paper.scores[DEFAULT_COLUMN]) for row, paper in zip(y, report.paper)
                  if paper is not None]
        ax.barh([r for r, _ in scores], [v for _, v in scores], color="C1", height=0.6)
        low = min(v for _, v in scores)
        ax.set_xlim(low - 5, max(v for _, v in scores) + 2)
        ax.set_title(f"T5 paper: {DEFAULT_COLUMN} average", fontsize=8)
        ax.set_xlabel("higher is better", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(y, [t.name for t in report.trials])
    fig.suptitle(f"{report.title}: ◆ mean ± std over seeds (filled: within 2σ of the best), "
                 f"● each seed", fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def curves_figure(title: str, trials: Sequence[TrialInfo],
                  results: Sequence[tuple[str, int, str, str, int, float | None]],
                  path: Path, column: str = "train/loss") -> bool:
    """``column`` against step, one line per trial (mean over its seeds at each step where all
    its finished seeds logged it); False (nothing written) if no trial logged it."""
    split, metric = column.rsplit("/", 1)
    series: dict[str, dict[int, dict[int, float]]] = {}
    for trial, seed, s, m, step, value in results:
        if s == split and m == metric and value is not None:
            series.setdefault(trial, {}).setdefault(seed, {})[step] = value
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    drawn = False
    for i, trial in enumerate(trials):
        seeds = [series.get(trial.name, {}).get(seed) for seed in trial.seeds]
        seeds = [s for s in seeds if s]
        if not seeds:
            continue
        steps = sorted(set.intersection(*(set(s) for s in seeds)))
        mean = [np.mean([s[step] for s in seeds]) for step in steps]
        ax.plot(steps, mean, color=f"C{i % 10}", ls="-" if i < 10 else "--", lw=1.2,
                label=f"{trial.name} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})")
        drawn = True
    if not drawn:
        return False
    ax.set(xlabel="step", ylabel=column, title=f"{title}: {column}, mean over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return True
