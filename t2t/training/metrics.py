"""Where training metrics go: `metrics.jsonl` (one JSON object per line, appended) and TensorBoard."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Mapping


def _import_tensorboardx_without_torch() -> None:
    """Import tensorboardX, keeping it from importing torch.

    When torch is installed, tensorboardX imports it at import time (2 s of every run's start),
    only so that its writer also accepts torch tensors; t2t writes floats. A None entry in
    `sys.modules` makes `import torch` raise ImportError, which tensorboardX catches. Where torch
    is already imported, nothing changes.
    """
    if "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        import tensorboardX  # noqa: F401
    finally:
        del sys.modules["torch"]


_import_tensorboardx_without_torch()
from tensorboardX import SummaryWriter  # noqa: E402


class MetricsWriter:
    """Appends `{"step": s, "split": ..., name: value, ...}` lines to `run_dir/metrics.jsonl` and writes
    the same scalars to TensorBoard event files under `run_dir/tensorboard/<split>`."""

    def __init__(self, run_dir: str | Path, enabled: bool = True) -> None:
        """`enabled=False` (every host but the first of a multi-host run) writes nothing."""
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tensorboard: dict[str, SummaryWriter] = {}
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(self.run_dir / "metrics.jsonl", "a", buffering=1)  # line-buffered

    def write(self, step: int, metrics: Mapping[str, float], split: str = "train") -> None:
        if not self.enabled:
            return
        values = {k: float(v) for k, v in metrics.items()}
        # JSON has no NaN/Infinity; write them as strings so the file stays parseable by any reader.
        record = {k: (v if math.isfinite(v) else str(v)) for k, v in values.items()}
        self._jsonl.write(json.dumps({"step": int(step), "split": split, **record}) + "\n")
        if split not in self._tensorboard:
            self._tensorboard[split] = SummaryWriter(str(self.run_dir / "tensorboard" / split))
        writer = self._tensorboard[split]
        for name, value in values.items():
            writer.add_scalar(name, value, int(step))

    def flush(self) -> None:
        if self.enabled:
            self._jsonl.flush()
        for writer in self._tensorboard.values():
            writer.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
        for writer in self._tensorboard.values():
            writer.close()
