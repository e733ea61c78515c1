"""Fine-tuning: parameters from INITIAL_CHECKPOINT_PATH, partial restore, supervised pairs, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from t2t.configuration import ConfigError, parse_gin
from t2t.training import initial_checkpoint
from t2t.training.trainer import train

TINY = ["gin_configs/experiments/t5_1_1_tiny_embedded.gin"]
SMALL = ["BATCH_SIZE=8", "train.eval_batches=1", "train.log_every=1", "train.checkpoint_every=2",
         "TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 8}"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("pretrain")
    parse_gin(TINY, SMALL + ["TRAIN_STEPS=2", f"MODEL_DIR='{run}'"])
    train()
    return run


def _params(run: Path, step: int):
    return ocp.PyTreeCheckpointer().restore(run / "checkpoints" / str(step) / "state")["params"]


def _pairs(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    words = "north south east west river lake hill town".split()
    for split in ("train", "validation"):
        with open(tmp_path / f"{split}.jsonl", "w") as f:
            for _ in range(40):
                w = list(rng.choice(words, 6))
                f.write(json.dumps({"inputs": "reverse: " + " ".join(w),
                                    "targets": " ".join(w[::-1])}) + "\n")
    return str(tmp_path / "{split}.jsonl")


def _finetune(tmp_path: Path, pretrained: Path, steps: int, extra=()) -> Path:
    run = tmp_path / "finetune"
    parse_gin(TINY + ["gin_configs/runs/finetune.gin"],
              SMALL + [f"TRAIN_STEPS={steps}", f"MODEL_DIR='{run}'",
                       f"INITIAL_CHECKPOINT_PATH='{pretrained}'",
                       f"DATA_SOURCE='{_pairs(tmp_path)}'", *extra])
    train()
    return run


def test_step_zero_of_finetuning_holds_the_pretrained_params(tmp_path, pretrained):
    """Evaluation at step 0 of fine-tuning sees exactly the pretrained parameters: compare trees."""
    run = _finetune(tmp_path, pretrained, steps=0)
    before, after = _params(pretrained, 2), _params(run, 0)
    jax.tree.map(np.testing.assert_array_equal, before, after)


def test_partial_restore_keeps_a_fresh_init_for_excluded_params(tmp_path, pretrained):
    run = _finetune(tmp_path, pretrained, steps=0,
                    extra=["train.initial_checkpoint_exclude=['lm_head']"])
    before, after = _params(pretrained, 2), _params(run, 0)
    flat_before = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(before)}
    flat_after = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(after)}
    for name, value in flat_after.items():
        if "lm_head" in name:
            assert not np.array_equal(value, flat_before[name]), name
        else:
            np.testing.assert_array_equal(value, flat_before[name], err_msg=name)
    assert any("lm_head" in n for n in flat_after)


def test_finetuning_on_pairs_lowers_the_loss(tmp_path, pretrained):
    run = _finetune(tmp_path, pretrained, steps=30, extra=["train.eval_every=30"])
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    valid = [l["loss"] for l in lines if l["split"] == "validation"]
    assert valid[-1] < valid[0] - 0.5


def test_a_model_that_does_not_fit_the_checkpoint_is_named(tmp_path, pretrained):
    with pytest.raises(ConfigError, match="does not fit the model.*d_model|shape"):
        _finetune(tmp_path, pretrained, steps=1, extra=["model_config.d_model=128"])


def test_missing_checkpoint_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no t2t checkpoint"):
        initial_checkpoint.find_checkpoint(tmp_path)


def test_params_only_checkpoint_of_t2t_convert_starts_a_finetuning(tmp_path, pretrained):
    """`t2t convert import` writes DIR/params + DIR/model_config.json; fine-tuning reads it too."""
    from t2t.interop.checkpoint import load_run_params, save_params
    params, config, _ = load_run_params(pretrained)
    save_params(tmp_path / "params_only", params, config)
    run = _finetune(tmp_path, tmp_path / "params_only", steps=0)
    jax.tree.map(np.testing.assert_array_equal, _params(pretrained, 2), _params(run, 0))
