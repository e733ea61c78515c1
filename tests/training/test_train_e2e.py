"""End to end: `train` on the embedded corpus lowers the validation loss, and a stopped run resumes."""

import json

import gin
import jax
import numpy as np
import pytest

from t2t.configuration import parse_gin
from t2t.training.trainer import train

# A small model and short sequences so that each run takes seconds on a CPU.
SMALL = [
    "BATCH_SIZE=8",
    "TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 14}",  # random_spans_helper(64) = (70, 14)
    "model_config.d_model=64", "model_config.num_heads=4", "model_config.head_dim=16",
    "model_config.d_ff=128", "model_config.num_encoder_layers=1",
    "model_config.num_decoder_layers=1",
    "train.log_every=2", "train.eval_batches=2",
]


def _train(model_dir, steps, *extra):
    parse_gin([], SMALL + [f"TRAIN_STEPS={steps}", f"MODEL_DIR='{model_dir}'", *extra])
    try:
        return train()
    finally:
        gin.clear_config()


def _metrics(run_dir, split):
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [m for m in lines if m["split"] == split]


def test_short_run_lowers_validation_loss_below_unigram_entropy(tmp_path):
    result = _train(tmp_path / "run", 40, "train.eval_every=40", "train.checkpoint_every=40")
    assert result.step == 40
    assert result.validation_loss < result.initial_validation_loss - 2.0
    assert result.validation_loss < result.unigram_entropy
    train_metrics = _metrics(result.run_dir, "train")
    assert [m["step"] for m in train_metrics] == list(range(2, 41, 2))
    for m in train_metrics:
        assert m["tokens_per_second"] > 0 and 0 < m["mfu"] < 1 and m["grad_norm"] > 0
    assert (result.run_dir / "config.gin").read_text().count("TRAIN_STEPS = 40") == 1
    assert list((result.run_dir / "tensorboard" / "train").iterdir())


def test_restarted_run_continues_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    every = ["train.checkpoint_every=4", "train.eval_every=100"]
    straight = _train(tmp_path / "straight", 8, *every)
    first = _train(tmp_path / "resumed", 4, *every)
    assert first.step == 4
    second = _train(tmp_path / "resumed", 8, *every)
    assert second.step == 8 and second.initial_validation_loss is None  # no fresh start
    assert "Resumed from the checkpoint at step 4" in (tmp_path / "resumed" / "train.log").read_text()
    resumed_train = _metrics(second.run_dir, "train")
    assert [m["step"] for m in resumed_train] == [2, 4, 6, 8]  # appended, not restarted
    straight_train = _metrics(straight.run_dir, "train")
    for key in ("loss", "grad_norm", "accuracy"):
        assert [m[key] for m in resumed_train] == pytest.approx(
            [m[key] for m in straight_train], rel=1e-6)
    assert second.validation_loss == pytest.approx(straight.validation_loss, rel=1e-6)
    # The resumed run received exactly the uninterrupted run's batches: bit-identical final parameters.
    straight_params, resumed_params = (_final_params(r.run_dir, 8) for r in (straight, second))
    assert jax.tree.structure(straight_params) == jax.tree.structure(resumed_params)
    for x, y in zip(jax.tree.leaves(straight_params), jax.tree.leaves(resumed_params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _final_params(run_dir, step):
    import orbax.checkpoint as ocp

    restored = ocp.StandardCheckpointer().restore((run_dir / "checkpoints" / str(step) / "state").absolute())
    return restored["params"]
