"""Gradient accumulation: one step over 2 or 4 microbatches equals one step over the whole batch."""

import functools

import jax
import numpy as np
import pytest

from t2t.data.converters import EncDecFeatureConverter
from t2t.models.sizes import get_size
from t2t.training.optimizers import adafactor
from t2t.training.partitioning import make_partitioner
from t2t.training.trainer import ShardedModel

CFG = get_size("t5_1_1/tiny").replace(vocab_size=256, d_model=32, d_ff=64, num_heads=4, head_dim=8)
LENGTHS = {"inputs": 16, "targets": 8}
BATCH = 32


def _batch():
    """Rows with different amounts of padding, so per-microbatch token counts differ."""
    rng = np.random.default_rng(0)
    converter = EncDecFeatureConverter(LENGTHS, pack=False)
    examples = [{"inputs": rng.integers(3, 256, rng.integers(2, 16)).tolist(),
                 "targets": rng.integers(3, 256, rng.integers(1, 8)).tolist()}
                for _ in range(BATCH)]
    return converter(examples, BATCH)


@functools.cache
def _step(microbatches):
    partitioner = make_partitioner("fsdp")
    sharded = ShardedModel(CFG, adafactor(learning_rate=0.01), partitioner,
                           EncDecFeatureConverter(LENGTHS), BATCH, microbatches=microbatches)
    step, _ = sharded.compile_train_step()
    state, metrics = step(sharded.init_state(), partitioner.shard_batch(_batch()))
    return jax.device_get(state.params), jax.device_get(metrics)


@pytest.mark.parametrize("microbatches", [2, 4])
def test_accumulated_step_equals_the_full_batch_step(microbatches):
    params, metrics = _step(1)
    acc_params, acc_metrics = _step(microbatches)
    for key in ("cross_entropy", "weight", "correct"):
        assert acc_metrics[key] == pytest.approx(metrics[key], rel=1e-5)
    assert acc_metrics["grad_norm"] == pytest.approx(metrics["grad_norm"], rel=1e-4)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 acc_params, params)
