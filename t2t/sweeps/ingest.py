"""``t2t sweep ingest``: record runs that finished elsewhere (``t2t sweep launch``) in the store.

Copy the run directories into the sweep directory first, without their checkpoints, e.g.

    gsutil -m rsync -r -x '.*/checkpoints/.*' gs://bucket/sweeps/t5_table2 runs/sweeps/t5_table2
    t2t sweep ingest experiments/t5_table2/sweep.py --sweep_dir runs/sweeps/t5_table2

A run counts as finished when its metrics reach the ``train_steps`` of the ``config.gin`` that
``t2t train`` wrote beside them; unfinished and missing runs are listed and left for later.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Sequence

from t2t.sweeps.commands import pending_runs, select_runs
from t2t.sweeps.spec import Sweep, run_subdir
from t2t.sweeps.store import ResultsStore, run_metrics
from t2t.training.run_lock import RunLock, RunLockedError


def configured_train_steps(run_dir: Path) -> int | None:
    """``train.train_steps`` from the run's ``config.gin`` (following one macro, as
    ``train.train_steps = %TRAIN_STEPS``), or None if it cannot be read."""
    try:
        text = (run_dir / "config.gin").read_text()
    except FileNotFoundError:
        return None
    values = dict(re.findall(r"^([\w.]+) = (.+)$", text, re.M))
    value = values.get("train.train_steps", "")
    if value.startswith("%"):
        value = values.get(value[1:], "")
    return int(value) if value.isdigit() else None


def ingest(sweep: Sweep, sweep_dir: Path, only: str | None = None,
           retry_failed: bool = False) -> tuple[list[str], list[str]]:
    """Mark every finished, not yet done run of ``sweep`` in ``sweep_dir`` as done with its
    metrics. Returns (runs recorded, runs not finished or not found), as "trial/seed_s"."""
    recorded, waiting = [], []
    with RunLock(sweep_dir), ResultsStore(sweep_dir) as store:
        pending, _, _ = pending_runs(select_runs(sweep, only), store.statuses(), retry_failed)
        for trial, seed in pending:
            run_dir = sweep_dir / run_subdir(trial.name, seed)
            rows = run_metrics(run_dir) if run_dir.is_dir() else []
            steps = configured_train_steps(run_dir)
            if not rows or steps is None or max(step for _, _, step, _ in rows) < steps:
                waiting.append(run_subdir(trial.name, seed))
                continue
            store.mark_done(trial.name, seed, rows, tags=trial.tags)
            recorded.append(run_subdir(trial.name, seed))
    return recorded, waiting


def main(argv: Sequence[str] | None = None) -> int:
    from t2t.sweeps.cli import add_sweep_arguments, load_from_args

    parser = argparse.ArgumentParser(prog="t2t sweep ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_arguments(parser)
    args = parser.parse_args(argv)
    sweep, sweep_dir = load_from_args(parser, args)
    try:
        recorded, waiting = ingest(sweep, sweep_dir, args.only, args.retry_failed)
    except (ValueError, RunLockedError) as error:
        print(f"t2t sweep ingest: {error}", file=sys.stderr)
        return 2
    print(f"Recorded {len(recorded)} finished run(s) in {sweep_dir}"
          + "".join(f"\n  {name}" for name in recorded))
    if waiting:
        print(f"Not finished or not copied here yet ({len(waiting)}):"
              + "".join(f"\n  {name}" for name in waiting))
    return 0
