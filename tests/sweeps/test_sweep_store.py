"""The results store: metric files in, the documented schema out, append-only, many writers."""

import json
import math
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from t2t.sweeps import spec
from t2t.sweeps.store import ResultsStore, run_metrics

ROOT = Path(__file__).resolve().parents[2]


def write_lines(path: Path, records: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run directory as t2t train and an evaluation leave it, with the awkward cases."""
    run = tmp_path / "run"
    run.mkdir()
    write_lines(run / "metrics.jsonl", [
        {"step": 0, "split": "validation", "loss": 9.5, "accuracy": 0.0},
        {"step": 20, "split": "train", "loss": 6.0, "learning_rate": 0.03, "skipped_steps": 0.0},
        {"step": 20, "split": "train", "loss": 5.9, "learning_rate": 0.03, "skipped_steps": 0.0},
        {"step": 40, "split": "train", "loss": "nan", "grad_norm": "inf"},
        '{"step": 60, "split": "train", "lo',  # torn by a kill mid-write
    ])
    write_lines(run / "eval.jsonl", [{"step": 40, "split": "eval:glue_sst2", "accuracy": 0.81,
                                      "task": "sst2"}])
    write_lines(run / "predictions.jsonl", [{"input": "a", "prediction": "b"}])
    return run


def test_run_metrics_reads_every_number_and_the_last_of_a_repeated_step(run_dir):
    rows = {(split, metric, step): value for split, metric, step, value in run_metrics(run_dir)}
    assert math.isnan(rows.pop(("train", "loss", 40)))
    assert rows == {
        ("validation", "loss", 0): 9.5, ("validation", "accuracy", 0): 0.0,
        ("train", "loss", 20): 5.9,  # the resumed run's line wins
        ("train", "learning_rate", 20): 0.03, ("train", "skipped_steps", 20): 0.0,
        ("train", "grad_norm", 40): float("inf"),
        ("eval:glue_sst2", "accuracy", 40): 0.81,
    }


def test_store_round_trip_through_plain_sqlite(run_dir, tmp_path):
    with ResultsStore(tmp_path / "sweep") as store:
        store.mark_running("t", 1, {"architecture": "shared", "params": 3_000_000})
        assert store.statuses() == {("t", 1): "running"}
        count = store.mark_done("t", 1, run_metrics(run_dir))
    db = sqlite3.connect(tmp_path / "sweep" / spec.RESULTS_FILE)
    status, error, started, finished, tags = db.execute(
        "SELECT status, error, started, finished, tags FROM runs WHERE trial = 't' AND seed = 1"
    ).fetchone()
    assert (status, error) == ("done", None) and 0 < started <= finished
    assert json.loads(tags) == {"architecture": "shared", "params": 3_000_000}
    stored = list(db.execute("SELECT trial, seed, split, metric, step, value FROM results"))
    assert len(stored) == count == 8
    assert ("t", 1, "train", "loss", 40, None) in stored  # NaN is stored as NULL
    assert ("t", 1, "eval:glue_sst2", "accuracy", 40, 0.81) in stored


def test_results_are_append_only_and_a_done_run_stays_done(run_dir, tmp_path):
    with ResultsStore(tmp_path) as store:
        store.mark_running("t", 0, {})
        store.mark_done("t", 0, run_metrics(run_dir))
        before = store.results()
        with pytest.raises(sqlite3.IntegrityError):
            store.mark_done("t", 0, [("validation", "loss", 0, 1.0)])
        store.mark_running("t", 0, {})
        store.mark_stopped("t", 0, "interrupted", "Ctrl-C")
        assert store.results() == before
        assert store.statuses() == {("t", 0): "done"}
        with pytest.raises(ValueError, match="mark_done"):
            store.mark_stopped("t", 0, "done", None)


def test_later_results_of_a_done_run_add_only_new_rows(run_dir, tmp_path):
    """An after-command that ran later: its rows are added, stored values are never changed."""
    with ResultsStore(tmp_path) as store:
        store.mark_done("t", 0, run_metrics(run_dir))
        before = set(store.results())
        added = store.add_results("t", 0, [("validation", "loss", 0, 99.0),  # stored: kept
                                           ("eval:wiki_topic", "accuracy", 40, 31.0)])
        assert added == 1
        assert set(store.results()) == before | {("t", 0, "eval:wiki_topic", "accuracy", 40, 31.0)}
        store.mark_command("t", 0, "python -m t2t.cli eval --task=a", "failed", "exit 3")
        store.mark_command("t", 0, "python -m t2t.cli eval --task=a", "done")
        store.mark_command("t", 1, "python -m t2t.cli eval --task=b", "done")
        assert store.commands() == {("t", 0): {"python -m t2t.cli eval --task=a": "done"},
                                    ("t", 1): {"python -m t2t.cli eval --task=b": "done"}}
        with pytest.raises(ValueError, match="'done' or 'failed'"):
            store.mark_command("t", 0, "x", "running")


def _documented_columns(table: str) -> list[str]:
    """Column names of `table` as spec.py's docstring (the contract) writes them."""
    declaration = re.search(rf"``{table}\(([^)]*)\)``", spec.__doc__.replace("\n", " "))
    return [part.split()[0] for part in declaration.group(1).split(",")]


def test_schema_is_the_documented_one(tmp_path):
    ResultsStore(tmp_path).close()
    db = sqlite3.connect(tmp_path / spec.RESULTS_FILE)
    for table in ("runs", "results", "commands"):
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        assert columns == _documented_columns(table)


def test_pandas_reads_the_store(run_dir, tmp_path):
    pandas = pytest.importorskip("pandas")
    with ResultsStore(tmp_path) as store:
        store.mark_running("t", 0, {"objective": "lm"})
        store.mark_done("t", 0, run_metrics(run_dir))
    db = sqlite3.connect(tmp_path / spec.RESULTS_FILE)
    results = pandas.read_sql("SELECT * FROM results", db)
    runs = pandas.read_sql("SELECT * FROM runs", db)
    assert list(results.columns) == _documented_columns("results")
    assert list(runs.columns) == _documented_columns("runs")
    loss = results.query("split == 'validation' and metric == 'loss'")
    assert loss["value"].tolist() == [9.5] and loss["step"].dtype.kind == "i"
    assert runs["status"].tolist() == ["done"]


WRITER = """
import sys
from t2t.sweeps.store import ResultsStore
sweep_dir, worker = sys.argv[1], int(sys.argv[2])
with ResultsStore(sweep_dir) as store:
    for seed in range(25):
        store.mark_running(f"w{worker}", seed, {"worker": worker})
        store.mark_done(f"w{worker}", seed,
                        [("validation", "loss", step, worker + step / 1000) for step in range(100)])
"""


def test_concurrent_writers_lose_nothing(tmp_path):
    ResultsStore(tmp_path).close()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w)], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True) for w in range(4)]
    errors = [w.communicate(timeout=60)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * 4, errors
    with ResultsStore(tmp_path) as store:
        assert set(store.statuses().values()) == {"done"} and len(store.statuses()) == 100
        assert len(store.results()) == 4 * 25 * 100
