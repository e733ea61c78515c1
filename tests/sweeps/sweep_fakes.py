"""Shared by the sweep tests: the fake trainer's command and sweep files written on the fly."""

import sys
import textwrap
from pathlib import Path

FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")
FAKE_TRAIN_COMMAND = [sys.executable, str(FAKE_TRAINER)]
FAKE_EVAL = f"{{python}} {FAKE_TRAINER} eval {{model_dir}} {{seed}}"


def write_sweep_file(directory: Path, trials: str, seeds=(0, 1), name: str = "fake") -> Path:
    """A sweep file in `directory` whose SWEEP has the trials given as Python source."""
    path = directory / f"{name}_sweep.py"
    body = textwrap.indent(textwrap.dedent(trials).strip(), "    ")
    path.write_text("from t2t.sweeps.spec import Sweep, Trial\n\n"
                    f"SWEEP = Sweep(name={name!r}, seeds={tuple(seeds)!r}, trials=[\n{body}\n])\n")
    return path
