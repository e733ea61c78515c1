"""Two local processes (4 fake CPU devices each, gloo collectives) train exactly like one process
with 8 devices on the same mesh shape: fsdp within each process (the "slice", over ICI), data
across the two (over DCN)."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import gin
import pytest

from t2t.configuration import parse_gin
from t2t.training.trainer import train

BINDINGS = [
    "TRAIN_STEPS=4", "BATCH_SIZE=16", "TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 14}",
    "model_config.d_model=32", "model_config.num_heads=2", "model_config.head_dim=16",
    "model_config.d_ff=64", "model_config.num_encoder_layers=1",
    "model_config.num_decoder_layers=1", "train.log_every=1", "train.eval_every=4",
    "train.eval_batches=1", "train.checkpoint_every=4", "PARTITIONING='fsdp'",
]
TWO_LEVELS = ["MESH_SHAPE={'fsdp': 4}", "DCN_MESH_SHAPE={'data': 2}"]

WORKER = textwrap.dedent("""
    import sys
    from t2t.configuration import parse_gin
    from t2t.training import distributed
    from t2t.training.trainer import train

    port, process_id, model_dir, *bindings = sys.argv[1:]
    parse_gin([], bindings + [f"MODEL_DIR='{model_dir}'"])
    distributed.initialize(f"127.0.0.1:{port}", 2, int(process_id))
    train()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_losses(run_dir):
    lines = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return [m["loss"] for m in lines if m["split"] == "train"]


def test_two_processes_match_one_process(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    port = _free_port()
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(port), str(i),
                                 str(tmp_path / "two"), *BINDINGS, *TWO_LEVELS], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for i in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    assert "mesh {'data': 2, 'fsdp': 4, 'tensor': 1}" in outputs[0]

    parse_gin([], BINDINGS + ["MESH_SHAPE={'data': 2, 'fsdp': 4}",
                              f"MODEL_DIR='{tmp_path / 'one'}'"])
    try:
        train()  # this process: 8 fake devices (tests/conftest.py), the same fsdp mesh
    finally:
        gin.clear_config()
    two = _train_losses(tmp_path / "two")
    assert len(two) == 4  # only process 0 writes metrics
    assert two == pytest.approx(_train_losses(tmp_path / "one"), rel=1e-5)
