"""Two local processes (4 fake CPU devices each, gloo collectives) train exactly like one process
with 8 devices on the same mesh shape: fsdp within each process (the "slice", over ICI), data
across the two (over DCN); and a preemption notice that reaches one of them stops both at the same
step, from which the same command resumes them to the same losses."""

import json
import textwrap

import gin
import pytest

from t2t.configuration import parse_gin
from t2t.training.loop import MULTIHOST_NOTICE
from t2t.training.trainer import train

from two_processes import run_two_processes

STEPS = 12
BINDINGS = [
    f"TRAIN_STEPS={STEPS}", "BATCH_SIZE=16", "TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 14}",
    "model_config.d_model=32", "model_config.num_heads=2", "model_config.head_dim=16",
    "model_config.d_ff=64", "model_config.num_encoder_layers=1",
    "model_config.num_decoder_layers=1", "train.log_every=1", f"train.eval_every={STEPS}",
    "train.eval_batches=1", f"train.checkpoint_every={STEPS}", "PARTITIONING='fsdp'",
]
TWO_LEVELS = ["MESH_SHAPE={'fsdp': 4}", "DCN_MESH_SHAPE={'data': 2}"]

# argv: port, process id, run directory, the step at whose batch process 1 gets SIGTERM (0: never),
# gin bindings. After the signal, process 1 takes 0.3 s over each batch, so the notice reaches the
# other process (JAX's notifier polls about once a second) well before the run would end.
WORKER = textwrap.dedent("""
    import os, signal, sys, time
    from t2t.configuration import parse_gin
    from t2t.training import distributed, trainer

    port, process_id, model_dir, sigterm_at, *bindings = sys.argv[1:]
    batches = 0

    def on_batch(self, batch, on_batch=trainer._PretrainLoop.on_batch):
        global batches
        on_batch(self, batch)
        batches += 1
        if process_id == "1" and batches == int(sigterm_at):
            os.kill(os.getpid(), signal.SIGTERM)
        if process_id == "1" and 0 < int(sigterm_at) <= batches:
            time.sleep(0.3)

    trainer._PretrainLoop.on_batch = on_batch
    parse_gin([], bindings + [f"MODEL_DIR='{model_dir}'"])
    distributed.initialize(f"127.0.0.1:{port}", 2, int(process_id))
    result = trainer.train()
    print(f"RESULT step={result.step} preempted={result.preempted}")
""")


def _train_losses(run_dir):
    lines = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return [m["loss"] for m in lines if m["split"] == "train"]


def _results(outputs):
    return [next(line for line in out.splitlines() if line.startswith("RESULT")) for out in outputs]


@pytest.fixture(scope="module")
def one_process_losses(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("one")
    parse_gin([], BINDINGS + ["MESH_SHAPE={'data': 2, 'fsdp': 4}", f"MODEL_DIR='{run_dir}'"])
    try:
        train()  # this process: 8 fake devices (tests/conftest.py), the same fsdp mesh
    finally:
        gin.clear_config()
    return _train_losses(run_dir)


def test_two_processes_match_one_process(tmp_path, one_process_losses):
    outputs = run_two_processes(WORKER, str(tmp_path), "0", *BINDINGS, *TWO_LEVELS)
    assert "mesh {'data': 2, 'fsdp': 4, 'tensor': 1}" in outputs[0]
    assert _results(outputs) == [f"RESULT step={STEPS} preempted=None"] * 2
    two = _train_losses(tmp_path)
    assert len(two) == STEPS  # only process 0 writes metrics
    assert two == pytest.approx(one_process_losses, rel=1e-5)


def test_sigterm_on_one_host_stops_both_at_one_step_and_resumes_exactly(tmp_path,
                                                                         one_process_losses):
    outputs = run_two_processes(WORKER, str(tmp_path), "2", *BINDINGS, *TWO_LEVELS)
    results = _results(outputs)
    assert results[0] == results[1], results  # the same step on both hosts
    step = int(results[0].split()[1].removeprefix("step="))
    assert 2 <= step < STEPS and results[0].endswith(f"preempted={MULTIHOST_NOTICE}"), results
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert checkpoints == [str(step)]

    outputs = run_two_processes(WORKER, str(tmp_path), "0", *BINDINGS, *TWO_LEVELS)
    assert _results(outputs) == [f"RESULT step={STEPS} preempted=None"] * 2
    assert f"Resumed from the checkpoint at step {step}" in outputs[0]
    assert _train_losses(tmp_path) == pytest.approx(one_process_losses, rel=1e-5)
