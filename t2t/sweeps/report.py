"""``t2t sweep report``: a sweep's results as a table laid out like the T5 paper's.

    t2t sweep report experiments/t5_table2/sweep.py --out experiments/t5_table2
    t2t sweep report runs/sweeps/t5_table2 --metrics validation/loss --step 200

Rows are trials (in sweep order), columns are metrics (``split/metric``; default every metric of
every split but ``train``, except the z-loss and example counts), and each cell is mean ± std over
the trial's seeds, with ``(n=k)`` where fewer than all its seeds are done. As in the paper
(§3.1.5), a cell is **bold** when it is within two standard deviations of the column's best. The paper takes that σ from its baseline's
ten runs; here it is the run-to-run std pooled over every trial with two or more seeds, one σ per
column. Which way is best comes from the sweep's ``directions`` or else from the metric's name
(`metric_direction`). Where a trial's tags select a published row (`t2t.sweeps.paper`), the
paper's scores are set beside ours.

Worked example (lower is better): trials A = 2.00 ± 0.10, B = 2.15 ± 0.10, C = 2.30 ± 0.10 (two
seeds each) give a pooled σ of 0.10, so A (the best) and B (0.15 < 2σ from it) are bold, C not.

Writes ``<out>/<sweep>.md`` and ``<out>/<sweep>.csv`` (default out: the sweep directory), the
figures of `t2t.sweeps.plot` (``<sweep>.png``, the table as dot plots; ``<sweep>_curves.png``,
training loss against step), and prints the Markdown. With published rows, the notes give each
column's rank agreement with the paper's ordering (`paper_agreement`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from t2t.sweeps.paper import CITATION, COLUMNS, PaperRow, find_row, paper_column
from t2t.sweeps.spec import Sweep, results_path
from t2t.sweeps.store import ResultsStore

# Left out of the default columns: an auxiliary loss term and an evaluation's example count, not
# measures of the model.
HIDDEN_BY_DEFAULT = ("z_loss", "num_examples")
# Whole words of a metric name that say which way is better.
_LOWER = re.compile(r"(^|[^a-z])(loss|nll|perplexity|ppl|error|err|wer|cer|ter|time)([^a-z]|$)")
_HIGHER = re.compile(r"(^|[^a-z])(acc|accuracy|bleu|sacrebleu|rouge\w*|f1|em|exact_match|mcc|"
                     r"pearson|spearman|glue|sglue|score|mfu|tokens_per_second)([^a-z]|$)")


def metric_direction(column: str, overrides: Mapping[str, str] | None = None) -> str | None:
    """"lower" or "higher" is better for ``column`` ("split/metric"), or None if unknown.

    ``overrides`` (a sweep's ``directions``) are looked up by "split/metric", then by metric name.

    >>> metric_direction("validation/loss"), metric_direction("eval:cnndm/rouge2")
    ('lower', 'higher')
    >>> metric_direction("eval:wmt/bleu", {"bleu": "lower"})
    'lower'
    """
    metric, overrides = column.rsplit("/", 1)[-1], overrides or {}
    if column in overrides or metric in overrides:
        return overrides.get(column, overrides.get(metric))
    name = metric.lower()
    if _LOWER.search(name):
        return "lower"
    if _HIGHER.search(name):
        return "higher"
    return None


@dataclasses.dataclass(frozen=True)
class Cell:
    """One trial's metric over its seeds (one value per seed): mean, sample std, count."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> "Cell | None":
        return cls(tuple(values)) if values else None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / self.n

    @property
    def std(self) -> float | None:
        """The sample standard deviation; None below two seeds."""
        if self.n < 2:
            return None
        return math.sqrt(math.fsum((v - self.mean) ** 2 for v in self.values) / (self.n - 1))


def pooled_std(cells: Sequence[Cell | None]) -> float | None:
    """sqrt(Σ (n_i - 1) s_i² / Σ (n_i - 1)) over the cells with two or more values."""
    spread = [(c.n - 1, c.std) for c in cells if c is not None and c.std is not None]
    dof = sum(d for d, _ in spread)
    return math.sqrt(sum(d * s * s for d, s in spread) / dof) if dof else None


def bold_cells(cells: Sequence[Cell | None], direction: str | None) -> list[bool]:
    """Which cells are within 2σ (`pooled_std`) of the best mean; none if the direction is
    unknown. Without any σ (one seed each) only the best is bold."""
    present = [c.mean for c in cells if c is not None and math.isfinite(c.mean)]
    if direction is None or not present:
        return [False] * len(cells)
    best = min(present) if direction == "lower" else max(present)
    # The tiny relative slack keeps a tie with the best bold despite float rounding.
    margin = 2 * (pooled_std(cells) or 0.0) + 1e-12 * max(1.0, abs(best))
    return [c is not None and math.isfinite(c.mean) and abs(c.mean - best) <= margin
            for c in cells]


def pick_value(by_step: Mapping[int, float], step: str, direction: str | None) -> float | None:
    """One run's value of one metric: at its last step ("final"), its best over steps ("best"),
    or at a given step ("600"); None if that step was not logged."""
    if not by_step:
        return None
    if step == "final":
        return by_step[max(by_step)]
    if step == "best":
        if direction is None:
            raise ValueError("--step best needs to know which way is better for every metric; "
                             "set the sweep's directions")
        return (min if direction == "lower" else max)(by_step.values())
    return by_step.get(int(step))


@dataclasses.dataclass(frozen=True)
class TrialInfo:
    name: str
    tags: Mapping[str, Any]
    seeds: tuple[int, ...]  # only these seeds' results count


@dataclasses.dataclass
class Report:
    """The table: per trial, a cell and a bold flag per metric, and its paper row."""

    title: str
    step: str
    trials: list[TrialInfo]
    tag_columns: list[str]
    metrics: list[str]
    directions: dict[str, str | None]
    cells: dict[str, list[Cell | None]]  # metric -> one per trial
    bold: dict[str, list[bool]]
    paper: list[PaperRow | None]


def build_report(title: str, trials: Sequence[TrialInfo],
                 results: Sequence[tuple[str, int, str, str, int, float | None]],
                 metrics: Sequence[str] | None = None, step: str = "final",
                 overrides: Mapping[str, str] | None = None) -> Report:
    """Summarise ``results`` rows (trial, seed, split, metric, step, value) per trial and metric."""
    series: dict[tuple[str, str, int], dict[int, float]] = {}
    for trial, seed, split, metric, at, value in results:
        if value is not None:
            series.setdefault((f"{split}/{metric}", trial, seed), {})[at] = value
    # Validation loss first, then the rest of validation, then other splits (eval:<task>, ...).
    available = sorted({column for column, _, _ in series},
                       key=lambda c: (not c.startswith("validation/"), c != "validation/loss", c))
    if metrics is None:
        metrics = [c for c in available if not c.startswith("train/")
                   and c.rsplit("/", 1)[-1] not in HIDDEN_BY_DEFAULT]
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise ValueError(f"no results for metric(s) {unknown}; the sweep has: "
                         f"{', '.join(available) or 'no results yet'}")
    if step not in ("final", "best") and not step.isdigit():
        raise ValueError(f"--step must be 'final', 'best' or a step number, got {step!r}")
    directions = {m: metric_direction(m, overrides) for m in metrics}
    cells, bold = {}, {}
    for metric in metrics:
        cells[metric] = []
        for trial in trials:
            values = [pick_value(series.get((metric, trial.name, seed), {}), step,
                                 directions[metric]) for seed in trial.seeds]
            cells[metric].append(Cell.of([v for v in values if v is not None]))
        bold[metric] = bold_cells(cells[metric], directions[metric])
    tag_keys = list(dict.fromkeys(k for t in trials for k in t.tags))
    varying = [k for k in tag_keys if len({str(t.tags.get(k)) for t in trials}) > 1]
    return Report(title, step, list(trials), varying, list(metrics), directions, cells, bold,
                  [find_row(t.tags) for t in trials])


def paper_agreement(report: Report) -> dict[str, tuple[float, int] | None]:
    """Per metric, (Spearman ρ, n) between the trials' means and the paper's column for that
    metric (`t2t.sweeps.paper.paper_column`: translation to its language pair, GLUE by default)
    over the n trials that have both, with our metric turned so that larger is better: +1 when
    our ordering of the rows is the paper's, -1 when it is reversed. None with fewer than three
    such trials, an unknown direction, or a constant column.

    Worked example: three Table 2 rows whose GLUE averages are 83.28 > 80.88 > 74.70 in the paper
    and whose losses are 2.0 < 2.5 < 3.0 here are in the paper's order, ρ = +1.
    """
    from scipy.stats import spearmanr

    out: dict[str, tuple[float, int] | None] = {}
    for metric in report.metrics:
        sign = {"higher": 1.0, "lower": -1.0}.get(report.directions[metric])
        column = paper_column(metric)
        pairs = [(sign * cell.mean, paper.scores[column])
                 for cell, paper in zip(report.cells[metric], report.paper)
                 if sign is not None and cell is not None and paper is not None
                 and math.isfinite(cell.mean)]
        ours, theirs = zip(*pairs) if pairs else ((), ())
        if len(pairs) < 3 or len(set(ours)) < 2 or len(set(theirs)) < 2:
            out[metric] = None
        else:
            out[metric] = (float(spearmanr(ours, theirs).statistic), len(pairs))
    return out


def _number(x: float) -> str:
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 10 else f"{x:.3f}"


def cell_text(cell: Cell | None, seeds: int) -> str:
    """"4.912 ± 0.021", with " (n=2)" when fewer than all seeds are done; "–" when none are."""
    if cell is None:
        return "–"
    text = _number(cell.mean) + (f" ± {_number(cell.std)}" if cell.std is not None else "")
    return text + (f" (n={cell.n})" if cell.n < seeds else "")


def _arrow(direction: str | None) -> str:
    return {"lower": " ↓", "higher": " ↑"}.get(direction, "")


def to_markdown(report: Report) -> str:
    has_paper = any(report.paper)
    header = (["Trial"] + report.tag_columns
              + [m + _arrow(report.directions[m]) for m in report.metrics]
              + (["T5 row"] + [f"T5 {c}" for c in COLUMNS] if has_paper else []))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, trial in enumerate(report.trials):
        row = [trial.name] + [str(trial.tags.get(k, "")) for k in report.tag_columns]
        for m in report.metrics:
            text = cell_text(report.cells[m][i], len(trial.seeds))
            row.append(f"**{text}**" if report.bold[m][i] else text)
        if has_paper:
            paper = report.paper[i]
            row += ([paper.source] + [f"{paper.scores[c]:.2f}" for c in COLUMNS] if paper
                    else [""] * (1 + len(COLUMNS)))
        lines.append("| " + " | ".join(row) + " |")
    step = {"final": "each run's final", "best": "each run's best"}.get(report.step,
                                                                       f"step {report.step}")
    notes = [f"## {report.title}", "",
             f"Mean ± std over seeds of {step} value; (n=k): only k seeds done. **Bold**: within "
             f"2σ of the best in its column (σ: run-to-run std pooled over trials); ↓ lower is "
             f"better, ↑ higher."]
    undecided = [m for m in report.metrics if report.directions[m] is None]
    if undecided:
        notes.append(f"Not bolded, direction unknown: {', '.join(undecided)} (set the sweep's "
                     f"directions).")
    if has_paper:
        notes.append(f"T5 columns: published scores after fine-tuning ({CITATION}; GLUE/SGLUE "
                     f"averages, CNNDM ROUGE-2-F, SQuAD EM, WMT BLEU), beside ours.")
        agreement = [f"{m} vs {paper_column(m)} {rho:+.2f} (n={n})"
                     for m, found in paper_agreement(report).items() if found
                     for rho, n in [found]]
        if agreement:
            notes.append("Ordering of the rows vs the paper's (Spearman ρ of each column's means "
                         "against the paper's column for the same kind of task, GLUE's average "
                         "by default; better = larger; +1 the paper's order, -1 reversed): "
                         + "; ".join(agreement) + ".")
    return "\n".join(notes + [""] + lines) + "\n"


def write_csv(report: Report, path: Path) -> None:
    has_paper = any(report.paper)
    header = ["trial"] + report.tag_columns
    for m in report.metrics:
        header += [f"{m} mean", f"{m} std", f"{m} n", f"{m} bold"]
    header += (["t5_row"] + [f"t5_{c}" for c in COLUMNS]) if has_paper else []
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, trial in enumerate(report.trials):
            row: list[Any] = [trial.name] + [trial.tags.get(k, "") for k in report.tag_columns]
            for m in report.metrics:
                cell = report.cells[m][i]
                row += ([cell.mean, "" if cell.std is None else cell.std, cell.n] if cell
                        else ["", "", 0]) + [int(report.bold[m][i])]
            if has_paper:
                paper = report.paper[i]
                row += ([paper.source] + [paper.scores[c] for c in COLUMNS] if paper
                        else [""] * (1 + len(COLUMNS)))
            writer.writerow(row)


def _trials_from(sweep: Sweep | None, runs: list[dict[str, Any]]) -> list[TrialInfo]:
    """The sweep's trials in order. Without a sweep file, the store's, in the order first run,
    each expected to have every seed that any run of the store has."""
    if sweep is not None:
        return [TrialInfo(t.name, t.tags, sweep.seeds_of(t)) for t in sweep.trials]
    seeds = tuple(sorted({run["seed"] for run in runs}))
    tags: dict[str, Mapping[str, Any]] = {}
    for run in runs:
        tags.setdefault(run["trial"], run["tags"])
    return [TrialInfo(name, trial_tags, seeds) for name, trial_tags in tags.items()]


def main(argv: Sequence[str] | None = None) -> int:
    from t2t.sweeps.cli import default_sweep_dir
    from t2t.sweeps.sweep_file import SweepFileError, load_sweep

    parser = argparse.ArgumentParser(prog="t2t sweep report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="a sweep file (SWEEP_FILE.py) or a sweep directory")
    parser.add_argument("--sweep_dir", default=None, help="with a sweep file: its directory "
                                                          "(default runs/sweeps/NAME)")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated split/metric columns (default: all but train/*)")
    parser.add_argument("--step", default="final", help="final (default), best, or a step number")
    parser.add_argument("--out", default=None, help="where the .md and .csv go (default: the "
                                                    "sweep directory)")
    args = parser.parse_args(argv)
    sweep = None
    if Path(args.sweep).is_dir():
        sweep_dir = Path(args.sweep)
    else:
        try:
            sweep = load_sweep(args.sweep)
        except SweepFileError as error:
            parser.exit(2, f"{parser.prog}: {error}\n")
        sweep_dir = Path(args.sweep_dir) if args.sweep_dir else default_sweep_dir(sweep)
    if not results_path(sweep_dir).exists():
        parser.exit(2, f"{parser.prog}: no {results_path(sweep_dir)}; run the sweep first "
                       f"(t2t sweep run) or pass --sweep_dir\n")
    with ResultsStore(sweep_dir) as store:
        runs, results = store.runs(), store.results()
    name = sweep.name if sweep else sweep_dir.name
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    try:
        report = build_report(f"Sweep {name}", _trials_from(sweep, runs), results, metrics,
                              args.step, sweep.directions if sweep else {})
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    out = Path(args.out) if args.out else sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(report)
    (out / f"{name}.md").write_text(markdown)
    write_csv(report, out / f"{name}.csv")
    from t2t.sweeps.plot import curves_figure, report_figure

    written = [out / f"{name}.md", out / f"{name}.csv", out / f"{name}.png"]
    report_figure(report, written[-1])
    if curves_figure(report.title, report.trials, results, out / f"{name}_curves.png"):
        written.append(out / f"{name}_curves.png")
    print(markdown + f"\nWrote {', '.join(str(p) for p in written)}.")
    return 0
