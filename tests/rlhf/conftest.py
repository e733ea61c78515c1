"""A tiny SFT run and reward model on a few records of the preference task, shared by the tests
that need run directories (the real `t2t train` path with rlhf/sft.gin)."""

import gin
import jax
import pytest

from t2t.configuration import parse_gin
from t2t.rlhf.preference_task import write_task
from t2t.training.partitioning import make_partitioner
from t2t.training.trainer import train

TINY_MODEL = ["model_config.d_model=32", "model_config.num_heads=2", "model_config.head_dim=16",
              "model_config.d_ff=64", "model_config.num_decoder_layers=1"]


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rlhf_task")
    write_task(directory, seed=0, demonstrations_per_split=(64, 16),
               comparison_prompts_per_split=(16, 8))
    return directory


@pytest.fixture(scope="session")
def sft_run(task_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("sft")
    parse_gin(["rlhf/sft.gin"], TINY_MODEL + [
        f"DEMONSTRATIONS='{task_dir}/demonstrations/{{split}}.jsonl'", f"MODEL_DIR='{directory}'",
        "TRAIN_STEPS=2", "BATCH_SIZE=8", "train.eval_batches=1"])
    try:  # on one device: compiling for the 8 test devices would only cost time
        train(partitioner=make_partitioner(devices=jax.devices()[:1]))
    finally:
        gin.clear_config()
    return directory
