"""MetricsWriter (metrics.jsonl + TensorBoard) and the peak-FLOP/s table behind MFU."""

import json
import math
import subprocess
import sys

import pytest

from t2t.training.metrics import MetricsWriter
from t2t.training.peak_flops import accelerator_peak_flops, measured_cpu_peak_flops


@pytest.fixture
def run_dir(tmp_path):
    return tmp_path / "run"


def _records(run_dir):
    """Parse every line of metrics.jsonl with the standard (strict) JSON parser."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()

    def strict(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return [json.loads(line, parse_constant=strict) for line in lines]


def _write_session(run_dir, rows):
    writer = MetricsWriter(run_dir)
    for step, split, metrics in rows:
        writer.write(step, metrics, split=split)
    writer.close()


def test_lines_are_json_with_step_and_split(run_dir):
    """Each write appends one JSON object with step, split and the values as floats."""
    _write_session(run_dir, [(10, "train", {"loss": 2.5, "accuracy": 0.25}),
                             (20, "validation", {"loss": 2.0})])
    assert _records(run_dir) == [
        {"step": 10, "split": "train", "loss": 2.5, "accuracy": 0.25},
        {"step": 20, "split": "validation", "loss": 2.0},
    ]


def test_non_finite_values_are_written_as_strings(run_dir):
    """NaN and ±inf become strings, so the file stays valid JSON for any reader."""
    _write_session(run_dir, [(1, "train", {"loss": float("nan"), "grad_norm": float("inf"),
                                           "z_loss": -math.inf, "lr": 0.01})])
    (record,) = _records(run_dir)
    assert record == {"step": 1, "split": "train", "loss": "nan", "grad_norm": "inf",
                      "z_loss": "-inf", "lr": 0.01}


def test_lines_are_visible_before_close(run_dir):
    """Lines reach the file as they are written (a crash loses nothing already logged)."""
    writer = MetricsWriter(run_dir)
    writer.write(5, {"loss": 1.0})
    assert _records(run_dir) == [{"step": 5, "split": "train", "loss": 1.0}]
    writer.close()


def test_reopening_appends(run_dir):
    """A resumed run's writer appends to metrics.jsonl instead of truncating it."""
    _write_session(run_dir, [(1, "train", {"loss": 3.0})])
    _write_session(run_dir, [(2, "train", {"loss": 2.0})])
    assert [r["step"] for r in _records(run_dir)] == [1, 2]


def test_tensorboard_event_files_per_split(run_dir):
    """Scalars also go to TensorBoard event files under tensorboard/<split>/, a folder per split."""
    _write_session(run_dir, [(1, "train", {"loss": 3.0}), (1, "validation", {"loss": 3.5})])
    for split in ("train", "validation"):
        events = list((run_dir / "tensorboard" / split).glob("events.out.tfevents.*"))
        assert events and all(e.stat().st_size > 0 for e in events), split
    assert sorted(p.name for p in (run_dir / "tensorboard").iterdir()) == ["train", "validation"]


def test_a_run_does_not_import_torch():
    """tensorboardX would import torch, when installed, at import (2 s of every run's start)."""
    pytest.importorskip("torch")
    check = ("import sys; import t2t.cli, t2t.training.trainer; "
             "from t2t.training.metrics import SummaryWriter; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.stdout.split() == ["False"], result.stderr[-2000:]


@pytest.mark.parametrize("device_kind, flops", [
    ("NVIDIA H100 80GB HBM3", 989e12),
    ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-40GB", 312e12),
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v6 lite", 918e12),
    ("tpu v4", 275e12),  # case-insensitive
    ("TPU v5", 459e12),  # v5p reports plain "TPU v5"
    ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA GeForce RTX 3090", None),
    ("cpu", None),
])
def test_accelerator_peak_flops_table(device_kind, flops):
    """Device kinds map to the vendors' dense bf16 peaks; unknown kinds give None."""
    assert accelerator_peak_flops(device_kind) == flops


def test_measured_cpu_peak_is_positive_and_finite():
    """The measured CPU matmul throughput is a usable MFU denominator (positive, finite)."""
    peak = measured_cpu_peak_flops(size=128, repeats=3)
    assert math.isfinite(peak) and peak > 0
