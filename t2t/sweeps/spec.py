"""What a sweep is: named trials, each a gin experiment plus overrides, run once per seed.

A sweep file is a Python file in ``experiments/`` that defines ``SWEEP``::

    # experiments/t5_table2/sweep.py
    from t2t.sweeps.spec import Sweep, Trial

    SWEEP = Sweep(
        name="t5_table2",
        trials=[Trial(name="encoder_decoder-denoising",
                      gin_files=("experiments/t5_table2/encoder_decoder-denoising.gin",),
                      bindings={"TRAIN_STEPS": 300},
                      tags={"architecture": "encoder_decoder", "objective": "denoising"})],
        seeds=(0, 1, 2),
    )

Each (trial, seed) is one run: ``t2t train --gin_file=... --gin.K=V ... --gin.SEED=<seed>
--gin.MODEL_DIR=<sweep_dir>/<trial>/seed_<seed>``. ``tags`` are free-form columns that reports
and the scaling-law fits read (architecture, objective, parameter count, tokens, FLOPs, ...).

Binding values are Python values written as gin literals: ``300`` -> ``300``, ``'adafactor'`` ->
``'adafactor'`` (quoted), ``{'inputs': 128}`` as is; a string that starts with ``@`` or ``%`` is a
gin reference (``'@span_3_15_u_u()'``, ``'%TRAIN_STEPS'``) and is passed unquoted.

After training, a run may run more commands (evaluation, export, ...): ``Trial.after`` holds
command templates, run in order (in the runner's working directory) once ``t2t train`` has
succeeded, each split into words like a shell line (``shlex``) and then formatted word by word with
``{model_dir}``, ``{seed}``, ``{trial}``, ``{sweep_dir}`` and ``{python}`` (this interpreter), e.g.
``"{python} -m t2t.cli eval --model_dir={model_dir} --task=glue_sst2"``. A command that exits
non-zero fails the run. Metrics they write as ``*.jsonl`` files in the run directory, in
``metrics.jsonl``'s line format (``{"step": s, "split": "eval:<task>", name: value, ...}``), are
stored with the training metrics. An after-command added to a trial later (a new downstream task)
runs on that trial's done runs at the next ``t2t sweep run``, without training them again.

The results store (``<sweep_dir>/results.sqlite``) has three tables, readable with
``pandas.read_sql("SELECT * FROM results", sqlite3.connect(path))``:

* ``runs(trial TEXT, seed INTEGER, status TEXT, error TEXT, started REAL, finished REAL,
  tags TEXT)``: one row per (trial, seed); ``status`` is ``done``, ``failed``, ``running`` or
  ``interrupted`` (stopped by Ctrl-C or SIGTERM, resumable); ``error`` is the tail of a failed run's
  log; ``started``/``finished`` are Unix times; ``tags`` is the trial's tags as JSON.
* ``results(trial TEXT, seed INTEGER, split TEXT, metric TEXT, step INTEGER, value REAL)``: one row
  per (trial, seed, split, metric, step), e.g.
  ``("shared-lm", 1, "validation", "loss", 600, 4.91)``.
  Rows are only ever added, never changed: a run's when it is done, and the new ones of its
  directory after each later after-command; NaN is stored as NULL.
* ``commands(trial TEXT, seed INTEGER, command TEXT, status TEXT, error TEXT, finished REAL)``:
  each command of a run that ended, ``done`` or ``failed``, by its shell line (the interpreter by
  its base name, so a moved environment does not rerun anything).

Only done runs have results. A ``running`` row whose runner is gone (killed) is simply run again.
"""

from __future__ import annotations

import dataclasses
import re
import string
from pathlib import Path
from typing import Any, Mapping, Sequence

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_GIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_./]*$")

RESULTS_FILE = "results.sqlite"
RUN_STATUSES = ("running", "done", "failed", "interrupted")
# Set per run by the runner, never by a trial.
PER_RUN_MACROS = ("SEED", "MODEL_DIR")
# The placeholders a `Trial.after` command template may use.
AFTER_FIELDS = ("model_dir", "seed", "trial", "sweep_dir", "python")
DIRECTIONS = ("lower", "higher")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    trial TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL, error TEXT,
    started REAL, finished REAL, tags TEXT,
    PRIMARY KEY (trial, seed));
CREATE TABLE IF NOT EXISTS results (
    trial TEXT NOT NULL, seed INTEGER NOT NULL, split TEXT NOT NULL, metric TEXT NOT NULL,
    step INTEGER NOT NULL, value REAL,
    UNIQUE (trial, seed, split, metric, step));
CREATE TABLE IF NOT EXISTS commands (
    trial TEXT NOT NULL, seed INTEGER NOT NULL, command TEXT NOT NULL, status TEXT NOT NULL,
    error TEXT, finished REAL,
    PRIMARY KEY (trial, seed, command));
"""


def run_subdir(trial: str, seed: int) -> str:
    """A run's directory relative to its sweep directory: ``"shared-lm/seed_1"``."""
    return f"{trial}/seed_{seed}"


def results_path(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir) / RESULTS_FILE


def _check_bindings(owner: str, bindings: Mapping[str, Any]) -> None:
    for name in bindings:
        if not _GIN_NAME.match(name):
            raise ValueError(f"{owner}: binding name {name!r} is not a gin name (MACRO or "
                             f"configurable.parameter)")
        if name in PER_RUN_MACROS:
            raise ValueError(f"{owner} binds {name}, which the runner sets for each run (SEED from "
                             f"the sweep's seeds, MODEL_DIR from the sweep directory): remove it")


def _check_after(trial: str, template: str) -> None:
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    unknown = sorted(fields - set(AFTER_FIELDS))
    if unknown:
        allowed = ", ".join("{" + f + "}" for f in AFTER_FIELDS)
        raise ValueError(f"trial {trial!r}: after-command {template!r} uses {unknown}; the "
                         f"placeholders are {allowed} (write {{{{ for a literal brace)")


@dataclasses.dataclass(frozen=True)
class Trial:
    """One configuration: gin files (applied in order), then ``--gin.K=V`` bindings.

    ``seeds``, when given, replaces the sweep's seeds for this trial. ``after``: command templates
    run once training has succeeded (see the module docstring).
    """

    name: str
    gin_files: tuple[str, ...] = ()
    bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tags: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    after: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _SAFE_NAME.match(self.name):
            raise ValueError(f"trial name {self.name!r} becomes a folder name: use letters, digits "
                             f"and _ . + - only")
        object.__setattr__(self, "gin_files", tuple(self.gin_files))
        object.__setattr__(self, "bindings", dict(self.bindings))
        object.__setattr__(self, "tags", dict(self.tags))
        if self.seeds is not None:
            object.__setattr__(self, "seeds", tuple(self.seeds))
        if isinstance(self.after, str):
            raise ValueError(f"trial {self.name!r}: after must be a tuple of command templates, "
                             f"got one string; write after=({self.after!r},)")
        object.__setattr__(self, "after", tuple(self.after))
        _check_bindings(f"trial {self.name!r}", self.bindings)
        for template in self.after:
            _check_after(self.name, template)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Trials x seeds. ``bindings`` apply to every trial, before the trial's own.

    ``directions`` tells reports whether a metric is better ``"lower"`` or ``"higher"``, keyed by
    metric name (``"loss"``) or ``"split/metric"`` (``"eval:glue/score"``); names it does not list
    are decided from the name (losses and perplexities lower, accuracy, BLEU, ROUGE, F1 higher).
    """

    name: str
    trials: Sequence[Trial]
    seeds: tuple[int, ...] = (0,)
    bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    directions: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [t.name for t in self.trials]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"sweep {self.name!r} has duplicate trial names {duplicates}")
        if not self.trials:
            raise ValueError(f"sweep {self.name!r} declares no trials")
        object.__setattr__(self, "trials", tuple(self.trials))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "bindings", dict(self.bindings))
        object.__setattr__(self, "directions", dict(self.directions))
        _check_bindings(f"sweep {self.name!r}", self.bindings)
        bad = {k: v for k, v in self.directions.items() if v not in DIRECTIONS}
        if bad:
            raise ValueError(f"sweep {self.name!r}: directions {bad} must each be one of "
                             f"{DIRECTIONS}")

    def runs(self) -> list[tuple[Trial, int]]:
        """Every (trial, seed) pair, seed-major: every trial's first seed, then every trial's second
        seed, ..., so that a sweep stopped half-way already has a whole table with fewer seeds."""
        rounds = max(len(self.seeds_of(t)) for t in self.trials)
        return [(t, self.seeds_of(t)[r]) for r in range(rounds) for t in self.trials
                if r < len(self.seeds_of(t))]

    def seeds_of(self, trial: Trial) -> tuple[int, ...]:
        return trial.seeds or self.seeds

    def trial(self, name: str) -> Trial:
        for t in self.trials:
            if t.name == name:
                return t
        raise KeyError(f"sweep {self.name!r} has no trial {name!r}")
