"""`t2t sweep run`: reruns skip done runs, failures stay isolated and recorded, after-commands,
Ctrl-C, dry runs; a fake trainer (fake_trainer.py) for all but one real `t2t train` run."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_fakes import FAKE_EVAL, FAKE_TRAIN_COMMAND, FAKE_TRAINER, write_sweep_file

from t2t.sweeps import cli
from t2t.sweeps.ingest import configured_train_steps
from t2t.sweeps.runner import SweepRunner
from t2t.sweeps.spec import Sweep, Trial

ROOT = Path(__file__).resolve().parents[2]


def run_cli(sweep_file: Path, sweep_dir: Path, *flags: str) -> int:
    return cli.main(["run", str(sweep_file), "--sweep_dir", str(sweep_dir), "--train_command",
                     " ".join(FAKE_TRAIN_COMMAND), *flags])


def runs_table(sweep_dir: Path) -> dict[tuple[str, int], dict]:
    db = sqlite3.connect(sweep_dir / "results.sqlite")
    db.row_factory = sqlite3.Row
    return {(r["trial"], r["seed"]): dict(r) for r in db.execute("SELECT * FROM runs")}


def final_losses(sweep_dir: Path) -> dict[tuple[str, int], float]:
    db = sqlite3.connect(sweep_dir / "results.sqlite")
    return {(t, s): v for t, s, v in db.execute(
        "SELECT trial, seed, value FROM results WHERE split = 'validation' AND metric = 'loss' "
        "AND step = 10")}


def calls(sweep_dir: Path, trial: str, seed: int) -> int:
    log = sweep_dir / trial / f"seed_{seed}" / "calls.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_rerun_skips_done_runs_and_runs_only_new_ones(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    sweep_file = write_sweep_file(tmp_path, """
        Trial("low", bindings={"LOSS": 2.0}),
        Trial("high", bindings={"LOSS": 4.0}),
    """)
    assert run_cli(sweep_file, sweep_dir, "--parallel", "2") == 0
    # Every run's metrics reached the store: the fake writes LOSS + SEED / 100.
    assert final_losses(sweep_dir) == pytest.approx(
        {("low", 0): 2.0, ("low", 1): 2.01, ("high", 0): 4.0, ("high", 1): 4.01})
    assert {r["status"] for r in runs_table(sweep_dir).values()} == {"done"}

    assert run_cli(sweep_file, sweep_dir) == 0
    assert "4 done, 0 failed, 0 to run" in capsys.readouterr().out
    assert all(calls(sweep_dir, t, s) == 1 for t in ("low", "high") for s in (0, 1))

    # A new seed and a new trial: only those four runs start.
    write_sweep_file(tmp_path, """
        Trial("low", bindings={"LOSS": 2.0}),
        Trial("high", bindings={"LOSS": 4.0}),
        Trial("new"),
    """, seeds=(0, 1, 2))
    assert run_cli(sweep_file, sweep_dir, "--parallel", "3") == 0
    assert [calls(sweep_dir, t, s) for t in ("low", "high", "new") for s in (0, 1, 2)] == [1] * 9
    assert len(final_losses(sweep_dir)) == 9


def test_a_failing_run_is_recorded_with_its_error_and_the_others_finish(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    sweep_file = write_sweep_file(tmp_path, """
        Trial("good"),
        Trial("bad", bindings={"NOT_A_MACRO": 1}),
        Trial("also_good"),
    """)
    assert run_cli(sweep_file, sweep_dir, "--parallel", "3") == 1
    runs = runs_table(sweep_dir)
    assert {k: r["status"] for k, r in runs.items()} == {
        ("good", 0): "done", ("good", 1): "done", ("also_good", 0): "done",
        ("also_good", 1): "done", ("bad", 0): "failed", ("bad", 1): "failed"}
    error = runs[("bad", 0)]["error"]
    assert "exited with status 2" in error and "Unknown macro 'NOT_A_MACRO'" in error
    log = sweep_dir / "bad" / "seed_0" / "sweep.log"
    assert "Unknown macro 'NOT_A_MACRO'" in log.read_text()  # the log is kept
    assert set(final_losses(sweep_dir)) == {("good", 0), ("good", 1), ("also_good", 0),
                                             ("also_good", 1)}
    assert "failed bad seed 0" in capsys.readouterr().out

    # Fixed in the sweep file: failed runs wait for --retry_failed, done ones never rerun.
    write_sweep_file(tmp_path, """
        Trial("good"),
        Trial("bad", bindings={"LOSS": 1.0}),
        Trial("also_good"),
    """)
    assert run_cli(sweep_file, sweep_dir) == 0
    assert "2 failed (skipped; --retry_failed reruns them), 0 to run" in capsys.readouterr().out
    assert run_cli(sweep_file, sweep_dir, "--retry_failed") == 0
    assert {r["status"] for r in runs_table(sweep_dir).values()} == {"done"}
    assert runs_table(sweep_dir)[("bad", 1)]["error"] is None
    assert final_losses(sweep_dir)[("bad", 1)] == pytest.approx(1.01)
    assert calls(sweep_dir, "good", 0) == 1


def test_after_commands_run_once_training_succeeds_and_their_metrics_are_stored(tmp_path):
    sweep = Sweep("after", [
        Trial("evaluated", tags={"kind": "x"}, after=(FAKE_EVAL,)),
        Trial("broken_eval", after=("{python} -c 'import sys; sys.exit(3)'",)),
    ], seeds=(0, 1))
    outcomes = SweepRunner(sweep, tmp_path, train_command=FAKE_TRAIN_COMMAND,
                           poll_seconds=0.01).run()
    assert {(o.trial, o.seed): o.status for o in outcomes} == {
        ("evaluated", 0): "done", ("evaluated", 1): "done",
        ("broken_eval", 0): "failed", ("broken_eval", 1): "failed"}
    db = sqlite3.connect(tmp_path / "results.sqlite")
    assert dict(db.execute("SELECT seed, value FROM results WHERE split = 'eval:fake' AND "
                           "metric = 'accuracy'")) == pytest.approx({0: 0.5, 1: 0.6})
    assert json.loads(runs_table(tmp_path)[("evaluated", 0)]["tags"]) == {"kind": "x"}
    # A failed after-command fails the run and stores none of its results.
    assert "exited with status 3" in runs_table(tmp_path)[("broken_eval", 0)]["error"]
    assert not list(db.execute("SELECT * FROM results WHERE trial = 'broken_eval'"))


def evaluations(sweep_dir: Path, trial: str, seed: int) -> list[str]:
    """The fake evaluations a run has had, by task, in order."""
    path = sweep_dir / trial / f"seed_{seed}" / "eval.jsonl"
    return ([json.loads(line)["split"] for line in path.read_text().splitlines()]
            if path.exists() else [])


def test_after_commands_added_later_run_on_done_runs_without_training_again(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    sweep_file = write_sweep_file(tmp_path, f"Trial('t', after=({FAKE_EVAL!r},))")
    assert run_cli(sweep_file, sweep_dir) == 0
    # A second downstream task, and one that fails on seed 1.
    write_sweep_file(tmp_path, f"""
        Trial('t', after=({FAKE_EVAL!r}, {FAKE_EVAL + ' topic'!r}, {FAKE_EVAL + ' flaky'!r})),
    """)
    (sweep_dir / "t" / "seed_1" / "fail_flaky").write_text("")
    capsys.readouterr()
    assert run_cli(sweep_file, sweep_dir) == 1
    out = capsys.readouterr().out
    assert "2 done (2 with new after-commands)" in out and "0 to run" in out
    assert "failed t seed 1" in out and "the run stays done" in out
    assert [calls(sweep_dir, "t", s) for s in (0, 1)] == [1, 1]  # not trained again
    assert evaluations(sweep_dir, "t", 0) == ["eval:fake", "eval:topic", "eval:flaky"]
    assert evaluations(sweep_dir, "t", 1) == ["eval:fake", "eval:topic"]
    # Both runs stay done, with their training results and every new score stored once.
    assert {r["status"] for r in runs_table(sweep_dir).values()} == {"done"}
    db = sqlite3.connect(sweep_dir / "results.sqlite")
    scores = sorted(db.execute("SELECT seed, split FROM results WHERE metric = 'accuracy' "
                               "AND split LIKE 'eval:%'"))
    assert scores == [(0, "eval:fake"), (0, "eval:flaky"), (0, "eval:topic"),
                      (1, "eval:fake"), (1, "eval:topic")]
    assert len(final_losses(sweep_dir)) == 2
    # The failed command is skipped until --retry_failed, which runs only it.
    assert run_cli(sweep_file, sweep_dir) == 0
    assert "(1 with failed after-commands)" in capsys.readouterr().out
    (sweep_dir / "t" / "seed_1" / "fail_flaky").unlink()
    assert run_cli(sweep_file, sweep_dir, "--retry_failed") == 0
    assert evaluations(sweep_dir, "t", 1) == ["eval:fake", "eval:topic", "eval:flaky"]
    assert evaluations(sweep_dir, "t", 0) == ["eval:fake", "eval:topic", "eval:flaky"]
    assert run_cli(sweep_file, sweep_dir) == 0
    assert "2 done, 0 failed, 0 to run" in capsys.readouterr().out


def test_a_resumed_run_skips_the_commands_it_finished(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep_file = write_sweep_file(
        tmp_path, f"Trial('t', after=({FAKE_EVAL + ' topic'!r}, {FAKE_EVAL + ' flaky'!r}))",
        seeds=(0, 1))
    for seed in (0, 1):
        (sweep_dir / "t" / f"seed_{seed}").mkdir(parents=True)
        (sweep_dir / "t" / f"seed_{seed}" / "fail_flaky").write_text("")
    assert run_cli(sweep_file, sweep_dir) == 1  # trained and scored topic, then failed
    for seed in (0, 1):
        (sweep_dir / "t" / f"seed_{seed}" / "fail_flaky").unlink()
    # Seed 1's directory is gone: nothing of it can be skipped.
    shutil.rmtree(sweep_dir / "t" / "seed_1")
    assert run_cli(sweep_file, sweep_dir, "--retry_failed") == 0
    assert calls(sweep_dir, "t", 0) == 1 and calls(sweep_dir, "t", 1) == 1
    assert evaluations(sweep_dir, "t", 0) == ["eval:topic", "eval:flaky"]
    assert evaluations(sweep_dir, "t", 1) == ["eval:topic", "eval:flaky"]
    assert {r["status"] for r in runs_table(sweep_dir).values()} == {"done"}
    assert len(final_losses(sweep_dir)) == 2


def test_runs_done_before_commands_were_recorded_count_what_their_log_shows(tmp_path, capsys):
    """A store written before the commands table: a done run has run the commands its sweep.log
    shows since its last training command, and no others."""
    sweep_dir = tmp_path / "sweep"
    sweep_file = write_sweep_file(tmp_path, f"Trial('t', after=({FAKE_EVAL!r},))", seeds=(0,))
    assert run_cli(sweep_file, sweep_dir) == 0
    db = sqlite3.connect(sweep_dir / "results.sqlite")
    with db:
        db.execute("DELETE FROM commands")
    # The log also shows an evaluation that an earlier, failed attempt ran before training.
    log = sweep_dir / "t" / "seed_0" / "sweep.log"
    topic = f"{sys.executable} {FAKE_TRAINER} eval {log.parent} 0 topic"
    log.write_text(f"=== 2026-01-01 00:00:00 $ {topic}\n" + log.read_text())
    write_sweep_file(tmp_path, f"Trial('t', after=({FAKE_EVAL!r}, {FAKE_EVAL + ' topic'!r}))",
                     seeds=(0,))
    capsys.readouterr()
    assert run_cli(sweep_file, sweep_dir, "--dry_run") == 0
    planned = capsys.readouterr().out.splitlines()[1:]
    assert planned == [topic]


def test_dry_run_prints_the_commands_and_starts_nothing(tmp_path, capsys):
    sweep_file = write_sweep_file(tmp_path, 'Trial("t", bindings={"LOSS": 2.5})')
    assert run_cli(sweep_file, tmp_path / "sweep", "--dry_run") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("2 runs, 0 done, 0 failed, 2 to run.")
    assert len(lines) == 3 and "--gin.SEED=1" in lines[2] and "--gin.LOSS=2.5" in lines[1]
    assert not (tmp_path / "sweep").exists()


def test_only_selects_trials_by_glob_and_rejects_a_glob_that_matches_none(tmp_path, capsys):
    sweep_file = write_sweep_file(tmp_path, 'Trial("a-1"), Trial("a-2"), Trial("b-1")')
    assert run_cli(sweep_file, tmp_path / "s", "--only", "a-*") == 0
    assert set(runs_table(tmp_path / "s")) == {("a-1", 0), ("a-1", 1), ("a-2", 0), ("a-2", 1)}
    assert run_cli(sweep_file, tmp_path / "s", "--only", "c*") == 2
    assert "matches no trial" in capsys.readouterr().err


def test_ctrl_c_stops_every_child_and_leaves_the_runs_resumable(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep_file = write_sweep_file(tmp_path, 'Trial("slow", bindings={"SLEEP": 60})')
    command = [sys.executable, "-m", "t2t.sweeps.cli", "run", str(sweep_file), "--sweep_dir",
               str(sweep_dir), "--parallel", "2", "--train_command", " ".join(FAKE_TRAIN_COMMAND)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # As from a terminal: a suite started in the background (`cmd &`) inherits SIGINT ignored.
    runner = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    started = [sweep_dir / "slow" / f"seed_{s}" / "started" for s in (0, 1)]
    deadline = time.monotonic() + 30
    while not all(p.exists() for p in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not all(p.exists() for p in started):
        runner.kill()
        pytest.fail(f"the fake runs did not start:\n{runner.communicate()[0]}")
    children = [int((p.parent / "pid").read_text()) for p in started]

    runner.send_signal(signal.SIGINT)
    output, _ = runner.communicate(timeout=150)  # beyond the runner's own 120 s grace: a busy CI
    assert runner.returncode == 130, output
    for pid, path in zip(children, started):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone (reaped by the runner), not orphaned
        assert (path.parent / "checkpoint").exists()  # it got SIGTERM and checkpointed
    assert {r["status"] for r in runs_table(sweep_dir).values()} == {"interrupted"}

    assert run_cli(sweep_file, sweep_dir) == 0  # resumes both from their checkpoints
    assert {r["status"] for r in runs_table(sweep_dir).values()} == {"done"}


@pytest.mark.slow
def test_a_real_t2t_train_sweep(tmp_path, monkeypatch):
    """A 1 + 1-layer T5 v1.1 for 4 steps through `python -m t2t.cli train`: gin quoting of
    every kind of binding, and the trainer's own metrics.jsonl in the store."""
    monkeypatch.setenv("XLA_FLAGS", "")  # one CPU device in the child: faster to compile
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(tmp_path)
    sweep = Sweep("real", [Trial(
        "tiny", gin_files=("experiments/t5_1_1_tiny_embedded.gin",),
        bindings={"TRAIN_STEPS": 4, "BATCH_SIZE": 2,
                  "TASK_FEATURE_LENGTHS": {"inputs": 64, "targets": 16},
                  "PARTITIONING": "data_parallel", "model_config.d_model": 32,
                  "model_config.num_heads": 2, "model_config.head_dim": 16,
                  "model_config.d_ff": 64, "model_config.num_encoder_layers": 1,
                  "model_config.num_decoder_layers": 1, "train.log_every": 2, "train.eval_every": 4,
                  "train.eval_batches": 1, "train.checkpoint_every": 4})], seeds=(3,))
    outcome, = SweepRunner(sweep, tmp_path / "sweep dir", poll_seconds=0.1).run()
    run_dir = tmp_path / "sweep dir" / "tiny" / "seed_3"
    assert outcome.status == "done", (run_dir / "sweep.log").read_text()[-3000:]
    config = (run_dir / "config.gin").read_text()
    assert "SEED = 3" in config  # and MODEL_DIR, with its space, is where the run wrote
    assert configured_train_steps(run_dir) == 4  # what `t2t sweep ingest` reads of a real run
    assert "TASK_FEATURE_LENGTHS = {'inputs': 64, 'targets': 16}" in config
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    expected = {(r["split"], k, r["step"]) for r in lines for k in r if k not in ("step", "split")}
    db = sqlite3.connect(tmp_path / "sweep dir" / "results.sqlite")
    stored = {(split, metric, step) for split, metric, step in
              db.execute("SELECT split, metric, step FROM results")}
    assert stored == expected and ("validation", "loss", 4) in stored
