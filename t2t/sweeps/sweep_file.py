"""Load a sweep file: a Python file (usually in ``experiments/``) that defines ``SWEEP``."""

from __future__ import annotations

import importlib.util
import traceback
from pathlib import Path

from t2t.sweeps.spec import Sweep


class SweepFileError(ValueError):
    """The sweep file is missing, fails to import, or defines no valid ``SWEEP``."""


def load_sweep(path: str | Path) -> Sweep:
    """The ``SWEEP`` that the Python file at ``path`` defines.

    The file is executed as a fresh module each call, so edits are picked up; an exception in it
    (including a `Trial`/`Sweep` validation error) is reported with the line of the sweep file.
    """
    path = Path(path)
    if not path.is_file():
        raise SweepFileError(f"sweep file {str(path)!r} not found. Pass the path of a Python file "
                             f"that defines SWEEP, e.g. experiments/t5_table2/sweep.py")
    if path.suffix != ".py":
        raise SweepFileError(f"sweep file {str(path)!r} must be a Python file (.py) defining SWEEP")
    spec = importlib.util.spec_from_file_location(f"t2t_sweep_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # any mistake in user code: say where, keep the cause
        frames = [f for f in traceback.extract_tb(error.__traceback__)
                  if Path(f.filename).resolve() == path.resolve()]
        where = f" (line {frames[-1].lineno})" if frames else ""
        raise SweepFileError(f"sweep file {str(path)!r} failed to load{where}: "
                             f"{type(error).__name__}: {error}") from error
    sweep = getattr(module, "SWEEP", None)
    if sweep is None:
        raise SweepFileError(f"sweep file {str(path)!r} defines no SWEEP. Add SWEEP = "
                             f"Sweep(name=..., trials=[Trial(...), ...]) "
                             f"(from t2t.sweeps.spec import Sweep, Trial)")
    if not isinstance(sweep, Sweep):
        raise SweepFileError(f"SWEEP in {str(path)!r} is a {type(sweep).__name__}, not a "
                             f"t2t.sweeps.spec.Sweep")
    return sweep
