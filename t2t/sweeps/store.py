"""The results store: ``<sweep_dir>/results.sqlite`` with the ``runs``, ``results`` and ``commands``
tables of `t2t.sweeps.spec`, and reading a run directory's ``*.jsonl`` metric files into it.

Safe with several writers: the database is in WAL mode (readers never block the writer) and every
connection waits up to a minute for a lock instead of failing. The local runner writes from one
process anyway; WAL and the timeout cover a report, an ingest or a scaling-law fit reading or
writing at the same moment. (WAL needs a local filesystem; keep sweep directories off NFS.)

Results are append-only: a run's rows are inserted, with its ``done`` status, in one transaction,
and never updated or deleted; an after-command that runs later on a done run adds only the rows
that are new.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from t2t.sweeps.spec import RUN_STATUSES, SCHEMA, results_path

Row = tuple[str, str, int, float]  # (split, metric, step, value)


def read_metric_lines(path: str | Path) -> Iterator[Row]:
    """(split, metric, step, value) for every number in a ``metrics.jsonl``-format file.

    A line ``{"step": 200, "split": "validation", "loss": 4.9, "accuracy": 0.31}`` gives
    ``("validation", "loss", 200, 4.9)`` and ``("validation", "accuracy", 200, 0.31)``. Non-finite
    values written as strings ("nan", "inf") are read back as floats; lines without ``step`` and
    ``split`` (other JSON-lines files, e.g. predictions), non-numeric fields and a torn last line
    (a run killed mid-write) are skipped.
    """
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict) or "step" not in record or "split" not in record:
                continue
            step, split = int(record["step"]), str(record["split"])
            for name, value in record.items():
                if name in ("step", "split") or isinstance(value, bool):
                    continue
                try:
                    yield split, name, step, float(value)
                except (TypeError, ValueError):
                    continue


def run_metrics(run_dir: str | Path) -> list[Row]:
    """Every metric in the run directory's top-level ``*.jsonl`` files, one row per (split, metric,
    step): where a step was logged twice (a run resumed from an earlier checkpoint logs the steps
    after it again), the last line wins."""
    latest: dict[tuple[str, str, int], float] = {}
    for path in sorted(Path(run_dir).glob("*.jsonl")):
        for split, metric, step, value in read_metric_lines(path):
            latest[(split, metric, step)] = value
    return [(split, metric, step, value) for (split, metric, step), value in latest.items()]


class ResultsStore:
    """``with ResultsStore(sweep_dir) as store:`` opens (creating) ``sweep_dir/results.sqlite``."""

    def __init__(self, sweep_dir: str | Path, timeout: float = 60.0) -> None:
        self.path = results_path(sweep_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=timeout)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._db:
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def statuses(self) -> dict[tuple[str, int], str]:
        """{(trial, seed): status} of every recorded run."""
        return {(t, s): status for t, s, status in
                self._db.execute("SELECT trial, seed, status FROM runs")}

    def runs(self) -> list[dict[str, Any]]:
        """Every run row, in the order runs were first recorded, with ``tags`` decoded."""
        cursor = self._db.execute("SELECT * FROM runs ORDER BY rowid")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor]
        for row in rows:
            row["tags"] = json.loads(row["tags"]) if row["tags"] else {}
        return rows

    def results(self, status: str | None = "done") -> list[tuple[str, int, str, str, int, float]]:
        """(trial, seed, split, metric, step, value) rows, of runs with ``status`` (None: all)."""
        query = "SELECT r.trial, r.seed, r.split, r.metric, r.step, r.value FROM results r"
        if status is None:
            return list(self._db.execute(query))
        query += " JOIN runs USING (trial, seed) WHERE runs.status = ?"
        return list(self._db.execute(query, (status,)))

    def mark_running(self, trial: str, seed: int, tags: Mapping[str, Any]) -> None:
        """Record a run as started (again, if it failed or was interrupted; never a done one)."""
        with self._db:
            self._db.execute(
                "INSERT INTO runs (trial, seed, status, error, started, finished, tags) "
                "VALUES (?, ?, 'running', NULL, ?, NULL, ?) ON CONFLICT (trial, seed) DO UPDATE "
                "SET status = 'running', error = NULL, started = excluded.started, finished = NULL,"
                " tags = excluded.tags WHERE runs.status != 'done'",
                (trial, seed, time.time(), _tags_json(tags)))

    def mark_stopped(self, trial: str, seed: int, status: str, error: str | None) -> None:
        """Record a run that ended without results: ``failed`` or ``interrupted``."""
        if status not in RUN_STATUSES or status in ("running", "done"):
            raise ValueError(f"mark_stopped takes 'failed' or 'interrupted', got {status!r}; "
                             f"use mark_done for a finished run")
        with self._db:
            self._set_status(trial, seed, status, error)

    def mark_done(self, trial: str, seed: int, rows: Iterable[Row],
                  tags: Mapping[str, Any] | None = None) -> int:
        """Add a finished run's metric rows and mark it done, in one transaction; returns the row
        count. ``tags`` are recorded if the run has no row yet (a run ingested from elsewhere).

        Refuses (sqlite3.IntegrityError) a run that already has results: results are append-only.
        """
        rows = _db_rows(trial, seed, rows)
        with self._db:
            self._db.executemany("INSERT INTO results (trial, seed, split, metric, step, value) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._set_status(trial, seed, "done", None, tags)
        return len(rows)

    def add_results(self, trial: str, seed: int, rows: Iterable[Row]) -> int:
        """Add the rows of a done run that are not stored yet (those of an after-command that ran
        later), keeping every stored value; returns how many were added."""
        rows = _db_rows(trial, seed, rows)
        with self._db:
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO results (trial, seed, split, metric, "
                                 "step, value) VALUES (?, ?, ?, ?, ?, ?)", rows)
            return self._db.total_changes - before

    def mark_command(self, trial: str, seed: int, command: str, status: str,
                     error: str | None = None) -> None:
        """Record how one of a run's commands ended: ``done`` or ``failed`` (with ``error``)."""
        if status not in ("done", "failed"):
            raise ValueError(f"a command ends 'done' or 'failed', got {status!r}")
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO commands (trial, seed, command, status, "
                             "error, finished) VALUES (?, ?, ?, ?, ?, ?)",
                             (trial, seed, command, status, error, time.time()))

    def commands(self) -> dict[tuple[str, int], dict[str, str]]:
        """{(trial, seed): {command: status}} of every command recorded."""
        out: dict[tuple[str, int], dict[str, str]] = {}
        for trial, seed, command, status in self._db.execute(
                "SELECT trial, seed, command, status FROM commands"):
            out.setdefault((trial, seed), {})[command] = status
        return out

    def _set_status(self, trial: str, seed: int, status: str, error: str | None,
                    tags: Mapping[str, Any] | None = None) -> None:
        """Within the caller's transaction: set the run's status, adding its row if there is none
        (with ``tags``). A done run stays done."""
        self._db.execute(
            "INSERT INTO runs (trial, seed, status, error, started, finished, tags) "
            "VALUES (?, ?, ?, ?, NULL, ?, ?) ON CONFLICT (trial, seed) DO UPDATE SET "
            "status = excluded.status, error = excluded.error, finished = excluded.finished "
            "WHERE runs.status != 'done'",
            (trial, seed, status, error, time.time(), _tags_json(tags or {})))


def _db_rows(trial: str, seed: int, rows: Iterable[Row]) -> list[tuple]:
    """A run's (split, metric, step, value) rows as ``results`` rows; NaN is stored as NULL."""
    return [(trial, seed, split, metric, int(step), None if math.isnan(v) else v)
            for split, metric, step, v in rows]


def _tags_json(tags: Mapping[str, Any]) -> str:
    return json.dumps(dict(tags), default=str)
