"""Reliability guarantees: preemption, kill -9, corrupt checkpoints, divergence, resume checks,
run-directory locks and checkpoint retention."""

import json
import os
import signal
import subprocess
import sys
import time

import gin
import pytest

from t2t.configuration import ConfigError, parse_gin
from t2t.training import preemption_stress
from t2t.training.checkpointing import Checkpointer
from t2t.training.run_lock import RunLock, RunLockedError
from t2t.training.loop import DivergenceError
from t2t.training.trainer import train

SMALL = preemption_stress.SMALL_RUN


def _train(run_dir, steps, *extra):
    parse_gin([], SMALL + [f"TRAIN_STEPS={steps}", f"MODEL_DIR='{run_dir}'", *extra])
    try:
        return train()
    finally:
        gin.clear_config()


@gin.configurable
def nan_at_steps(steps=(2,), base=0.01):
    """A learning rate that is NaN at `steps`: a transient divergence."""
    import jax.numpy as jnp

    return lambda step: jnp.where(jnp.isin(step, jnp.array(steps)), jnp.nan, base)


def test_sigterm_saves_exits_zero_and_resumes_bit_exactly(tmp_path):
    steps = 200
    process = subprocess.Popen(preemption_stress.train_command(tmp_path / "run", steps),
                               env=preemption_stress._env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    while preemption_stress._train_lines(tmp_path / "run") < 3:
        assert process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 0, output[-2000:]
    assert "Stopped by SIGTERM" in output and "Received SIGTERM" in output
    stopped_at = max(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir()
                     if p.name.isdigit())
    assert 3 <= stopped_at < steps
    preemption_stress._run(tmp_path / "run", stopped_at + 5)
    preemption_stress._run(tmp_path / "straight", stopped_at + 5)
    assert preemption_stress.same(tmp_path / "straight", tmp_path / "run")


def test_kill_9_at_random_moments_resumes_bit_exactly(tmp_path):
    """The stress script's own check, with two trials (it runs N from the command line)."""
    exact, trials = preemption_stress.stress(tmp_path, trials=2, steps=12, seed=1)
    assert exact == trials == 2


def test_corrupt_latest_checkpoint_falls_back_with_a_warning(tmp_path):
    _train(tmp_path / "straight", 6, "train.checkpoint_every=2")
    _train(tmp_path / "run", 4, "train.checkpoint_every=2")
    # Damage every data file of the newest checkpoint.
    for path in (tmp_path / "run" / "checkpoints" / "4" / "state").rglob("*"):
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(b"garbage")
    result = _train(tmp_path / "run", 6, "train.checkpoint_every=2")
    log = (tmp_path / "run" / "train.log").read_text()
    assert "Checkpoint at step 4" in log and "Restored step 2" in log
    assert (tmp_path / "run" / "checkpoints" / "corrupt.4").exists()
    assert result.step == 6
    assert preemption_stress.same(tmp_path / "straight", tmp_path / "run")


def test_divergence_stops_naming_the_step_and_keeps_the_good_checkpoint(tmp_path):
    with pytest.raises(DivergenceError, match="update norm is nan at step 3") as error:
        _train(tmp_path, 8, "train.learning_rate=@nan_at_steps()", "nan_at_steps.steps=(2,)",
               "train.checkpoint_every=2")
    assert "last good checkpoint is step" in str(error.value)
    state = preemption_stress.final_state(tmp_path)
    assert all(bool((leaf == leaf).all()) for leaf in state["leaves"])  # no NaN saved


def test_skip_policy_counts_skipped_steps_and_has_a_limit(tmp_path):
    """A skipped step leaves the optimizer's count where it was, so a schedule that is NaN at
    count 1 stays NaN: every step from the second on is skipped, and counted."""
    result = _train(tmp_path / "skip", 6, "train.learning_rate=@nan_at_steps()",
                    "nan_at_steps.steps=(1,)", "train.nan_policy='skip'")
    assert result.step == 6
    records = [json.loads(x) for x in (tmp_path / "skip" / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in records if r["split"] == "train"] == [0, 1, 2, 3, 4, 5]
    with pytest.raises(DivergenceError, match="max_skipped_steps=2"):
        _train(tmp_path / "limit", 6, "train.learning_rate=@nan_at_steps()",
               "nan_at_steps.steps=(1,)", "train.nan_policy='skip'", "train.max_skipped_steps=2")


def test_resume_with_a_different_model_is_refused(tmp_path):
    _train(tmp_path, 2)
    with pytest.raises(ConfigError, match=r"d_ff: 64 -> 128"):
        _train(tmp_path, 4, "model_config.d_ff=128")


def test_a_model_field_added_since_a_run_started_counts_as_its_default(tmp_path):
    """A run written before t2t had a field resumes under the field's default, and only there."""
    _train(tmp_path, 2)
    config_file = tmp_path / "model_config.json"
    saved = json.loads(config_file.read_text())
    del saved["kernel_gradient"]  # as written before the field existed
    config_file.write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match=r"kernel_gradient: 'auto' -> 'autodiff'"):
        _train(tmp_path, 4, "model_config.kernel_gradient='autodiff'")
    assert _train(tmp_path, 4).step == 4


def test_vocabulary_without_sentinels_is_refused_before_compile(tmp_path):
    with pytest.raises(ConfigError, match="has no sentinels"):
        _train(tmp_path, 2, "train.vocabulary_extra_ids=0")
    assert not (tmp_path / "checkpoints").exists()


def test_a_live_run_holds_its_directory_and_a_dead_one_does_not(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(json.dumps(
            {"host": os.uname().nodename, "pid": sleeper.pid, "started": time.time()}))
        with pytest.raises(RunLockedError, match=f"in use by process {sleeper.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    with RunLock(tmp_path):  # the holder is dead now: a stale lock, taken over
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()


def test_retention_keeps_the_newest_and_every_kth(tmp_path):
    import jax.numpy as jnp

    checkpointer = Checkpointer(tmp_path, save_every=1, keep=2, keep_every=4, async_save=False)
    for step in range(1, 11):
        checkpointer.save(step, {"x": jnp.full((2,), step)}, {"example": step})
    checkpointer.close()
    assert checkpointer.all_steps() == [4, 8, 9, 10]


def test_a_complete_checkpoint_exists_throughout_an_async_save(tmp_path):
    """keep=1: the old checkpoint is deleted only after the new one is committed, so at every
    moment of the save some step directory is complete."""
    import jax.numpy as jnp

    checkpointer = Checkpointer(tmp_path, save_every=1, keep=1)
    big = {"x": jnp.ones((4096, 1024))}
    checkpointer.save(1, big, {"example": 1})
    checkpointer.wait()
    checkpointer.save(2, big, {"example": 2})
    complete = lambda: [p.name for p in tmp_path.iterdir() if (p / "commit_success.txt").exists()]
    observations = []
    while not complete() == ["2"]:
        observations.append(complete())
        assert observations[-1], "no complete checkpoint on disk during the save"
        time.sleep(0.001)
    checkpointer.close()
    assert checkpointer.all_steps() == [2]
