"""The shared training loop and the step's guard (t2t/training/loop.py), on a tiny linear model:
non-finite steps are never applied, records and evaluations land where they should, divergence
stops naming the step, SIGTERM checkpoints and returns. The three runs built on it are tested end
to end in test_reliability.py, test_distillation.py and test_train_elmo.py."""

import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from t2t.training import loop as loop_module
from t2t.training.checkpointing import Checkpointer
from t2t.training.loop import (DivergenceError, TrainLoop, check_nan_policy, guarded_update,
                               held_out_evaluation)
from t2t.training.metrics import MetricsWriter
from t2t.training.trainer import TrainState

TX = optax.adam(0.1)


def _state() -> TrainState:
    params = {"w": jnp.ones((3,)), "b": jnp.zeros(())}
    return TrainState(jnp.zeros((), jnp.int32), params, TX.init(params))


def _grads(value: float) -> dict:
    return {"w": jnp.full((3,), value), "b": jnp.asarray(value)}


def _same(a, b) -> bool:
    return all(bool(jnp.array_equal(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_a_finite_step_is_applied():
    state = _state()
    new, metrics = guarded_update(state, _grads(1.0), {"cross_entropy": jnp.asarray(2.0)}, TX)
    assert int(new.step) == 1 and float(metrics["nonfinite"]) == 0.0
    assert not _same(new.params, state.params) and not _same(new.opt_state, state.opt_state)
    assert float(metrics["grad_norm"]) == pytest.approx(2.0)  # sqrt(4 x 1²)
    assert float(metrics["update_norm"]) == pytest.approx(0.2, rel=1e-3)  # adam: lr per entry


@pytest.mark.parametrize("grads,terms,tx", [
    (_grads(np.nan), {"cross_entropy": jnp.asarray(2.0)}, TX),  # a NaN gradient
    (_grads(1.0), {"forward_cross_entropy": jnp.asarray(np.inf)}, TX),  # an infinite loss term
    (_grads(1.0), {"cross_entropy": jnp.asarray(2.0)}, optax.adam(np.nan)),  # a NaN update
], ids=["gradient", "loss", "update"])
def test_a_non_finite_step_changes_neither_parameters_nor_moments(grads, terms, tx):
    state = _state()
    new, metrics = guarded_update(state, grads, terms, tx)
    assert _same(new.params, state.params) and _same(new.opt_state, state.opt_state)
    assert int(new.step) == 1  # the counter moves on: the next step draws fresh dropout
    assert float(metrics["nonfinite"]) == 1.0


def test_an_unknown_nan_policy_is_refused():
    with pytest.raises(ValueError, match=r"nan_policy must be one of \('stop', 'skip'\)"):
        check_nan_policy("ignore")


class _Numbers:
    """A pipeline of batches {"x": [n]}, n = 1, 2, ...; its state is the next n."""

    def __init__(self):
        self.next = 1

    def __next__(self):
        batch = {"x": np.full((2,), float(self.next), np.float32)}
        self.next += 1
        return batch

    def get_state(self):
        return {"next": self.next}


def _step(poison_at=(), on_step=None):
    """SGD on 0.5 * (w - x)²; the loss is NaN at the steps in `poison_at`."""

    @jax.jit
    def step(state, batch):
        loss = lambda p: 0.5 * jnp.sum(jnp.square(p["w"][:2] - batch["x"]))
        grads = jax.grad(loss)(state.params)
        poisoned = jnp.isin(state.step + 1, jnp.asarray(poison_at or (-1,)))
        terms = {"cross_entropy": jnp.where(poisoned, jnp.nan, loss(state.params)),
                 "z_loss": jnp.asarray(0.0), "correct": jnp.asarray(0.0),
                 "weight": jnp.asarray(2.0)}
        new, guard = guarded_update(state, grads, terms, optax.sgd(0.1))
        return new, {**terms, **guard}

    def run(state, batch):
        out = step(state, batch)
        if on_step is not None:
            on_step(int(out[0].step))
        return out

    return run


def _loop(tmp_path, train_step, **kwargs):
    settings = dict(train_steps=6, log_every=2, eval_every=3, show_progress=False) | kwargs
    checkpointer = Checkpointer(tmp_path / "checkpoints", save_every=4)
    writer = MetricsWriter(tmp_path)
    evaluate = lambda params: {"loss": float(jnp.sum(params["w"]))}
    return TrainLoop(train_step, _Numbers(), checkpointer, writer, evaluate, **settings)


def _close(loop):
    loop.checkpointer.close()
    loop.writer.close()


def _records(tmp_path):
    return [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]


def test_records_evaluations_and_checkpoints_land_on_their_steps(tmp_path):
    loop = _loop(tmp_path, _step())
    try:
        result = loop.run(_state(), 0)
    finally:
        _close(loop)
    assert result.step == 6 and result.preempted is None and int(result.state.step) == 6
    records = _records(tmp_path)
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6]
    assert all({"loss", "grad_norm", "update_norm", "step_time", "skipped_steps"} <= set(r)
               for r in train)
    assert [r["step"] for r in records if r["split"] == "validation"] == [0, 3, 6]
    assert result.initial_eval == {"loss": 3.0} and result.last_eval["loss"] != 3.0
    # The interval's checkpoint, and the last step's; the data position travels with them.
    assert loop.checkpointer.all_steps() == [4, 6]
    restored = Checkpointer(tmp_path / "checkpoints", save_every=4)
    _, data, step = restored.restore(jax.eval_shape(_state))
    restored.close()
    assert (step, data) == (6, {"next": 7})


def test_divergence_stops_at_the_logging_step_naming_the_step(tmp_path):
    loop = _loop(tmp_path, _step(poison_at=(3,)))
    try:
        with pytest.raises(DivergenceError, match="the loss is nan at step 3"):
            loop.run(_state(), 0)
    finally:
        _close(loop)


def test_skip_policy_counts_and_goes_on(tmp_path):
    loop = _loop(tmp_path, _step(poison_at=(3, 5)), nan_policy="skip")
    try:
        result = loop.run(_state(), 0)
    finally:
        _close(loop)
    assert result.step == 6
    assert [r["skipped_steps"] for r in _records(tmp_path) if r["split"] == "train"] == [0, 1, 2]


def test_sigterm_checkpoints_at_the_next_step_and_returns(tmp_path):
    send = lambda step: os.kill(os.getpid(), signal.SIGTERM) if step == 3 else None
    previous = signal.getsignal(signal.SIGTERM)
    loop = _loop(tmp_path, _step(on_step=send))
    try:
        result = loop.run(_state(), 0)
    finally:
        _close(loop)
    assert (result.preempted, result.step, result.last_eval) == ("SIGTERM", 3, None)
    assert loop.checkpointer.all_steps() == [3]
    assert signal.getsignal(signal.SIGTERM) == previous  # the loop's handler is gone


def test_with_several_hosts_sigterm_is_left_to_jax_and_sigint_passed_on_to_it(monkeypatch):
    """Two processes end to end: tests/training/test_multihost.py. Here, what this host does."""
    sync_points, kills = [], []
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(loop_module.multihost_utils, "reached_preemption_sync_point",
                        lambda step: sync_points.append(step) or step == 5)
    monkeypatch.setattr(loop_module.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    sigterm, sigint = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    guard = loop_module.PreemptionGuard()
    try:
        assert signal.getsignal(signal.SIGTERM) == sigterm  # JAX's notifier keeps SIGTERM
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        assert kills == [(os.getpid(), signal.SIGTERM)]
        assert [guard.requested(step) for step in (4, 5)] == [False, True]
        assert sync_points == [4, 5] and guard.signal == "SIGINT"
    finally:
        guard.restore()
    quiet = loop_module.PreemptionGuard()  # a host that another host's notice stops
    try:
        assert quiet.requested(5) and quiet.signal == loop_module.MULTIHOST_NOTICE
    finally:
        quiet.restore()

    service = jax.config.jax_enable_preemption_service
    jax.config.update("jax_enable_preemption_service", False)
    try:
        guard = loop_module.PreemptionGuard()  # logs that a signal will end the run
    finally:
        jax.config.update("jax_enable_preemption_service", service)
    assert not guard.requested(5) and sync_points == [4, 5, 5]
    assert signal.getsignal(signal.SIGINT) == sigint


def test_held_out_evaluation_reads_the_same_first_batches_each_time():
    class Validation:
        def __init__(self):
            self.position, self.resets = 0, 0

        def reset(self):
            self.position, self.resets = 0, self.resets + 1

        def __iter__(self):
            return self

        def __next__(self):
            self.position += 1
            return {"tokens": np.full((2,), self.position)}

    def eval_step(params, batch):  # batch i: i * params summed, weight 4, i correct
        i = batch["tokens"][0]
        return {"cross_entropy": jnp.float32(i * params), "z_loss": jnp.float32(0.0),
                "weight": jnp.float32(4.0), "correct": jnp.float32(i)}

    validation, shards = Validation(), []
    evaluate = held_out_evaluation(eval_step, validation,
                                   lambda batch: shards.append(batch) or batch, batches=3)
    first = evaluate(2.0)
    assert first == pytest.approx({"loss": (1 + 2 + 3) * 2.0 / 12, "z_loss": 0.0,
                                   "accuracy": (1 + 2 + 3) / 12})
    assert evaluate(2.0) == first and validation.resets == 2 and len(shards) == 6
