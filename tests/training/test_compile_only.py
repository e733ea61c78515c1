"""`train(compile_only=True)` (what `t2t compile-only` runs): a report without training or data."""

import gin
import pytest

from t2t.configuration import parse_gin
from t2t.training.trainer import train

TINY = ["BATCH_SIZE=16", "model_config.d_model=64", "model_config.d_ff=128",
        "model_config.num_heads=4", "model_config.head_dim=16"]


def _report(tmp_path, *bindings):
    parse_gin([], TINY + [f"MODEL_DIR='{tmp_path / 'run'}'", *bindings])
    try:
        return train(compile_only=True)
    finally:
        gin.clear_config()


def test_report_without_a_run_directory(tmp_path):
    report = _report(tmp_path)
    assert not (tmp_path / "run").exists()
    assert report["devices"] == 8 and report["mesh"] == {"data": 8, "fsdp": 1, "tensor": 1}
    assert report["model_flops_per_step"] > 0 and report["compile_seconds"] > 0
    assert report["memory_per_device"]["peak_estimate_gib"] > 0


def test_fsdp_shards_the_state_that_data_parallel_replicates(tmp_path):
    """The per-device arguments (parameters + optimizer state + batch) shrink about 8x under FSDP."""
    replicated = _report(tmp_path, "PARTITIONING='data_parallel'")
    sharded = _report(tmp_path, "PARTITIONING='fsdp'")
    ratio = (replicated["memory_per_device"]["arguments_gib"]
             / sharded["memory_per_device"]["arguments_gib"])
    assert ratio == pytest.approx(8, rel=0.25)
