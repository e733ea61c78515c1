"""The ``t2t sweep`` command.

    t2t sweep run SWEEP_FILE [--sweep_dir DIR] [--parallel N] [--only GLOB] [--dry_run]
                  [--retry_failed] [--train_command CMD]
        Run every (trial, seed) here as a `t2t train` subprocess; results in DIR/results.sqlite.
    t2t sweep launch SWEEP_FILE --target tpu|slurm [--run] [--model_dir_prefix gs://...]
                  [--sweep_dir DIR] [--only GLOB] [--retry_failed] [-- SCRIPT_ARGS...]
        Print (or run) one tpu_scripts/launch.sh or slurm/submit.sh command per (trial, seed).
    t2t sweep ingest SWEEP_FILE [--sweep_dir DIR] [--only GLOB]
        Record finished runs found in DIR (e.g. copied back from a bucket) in DIR/results.sqlite.
    t2t sweep report SWEEP_FILE|SWEEP_DIR [--sweep_dir DIR] [--metrics validation/loss,...]
                  [--step final|best|N] [--out DIR]
        A T5-style table: mean ± std over seeds, bold within 2σ of the best, the paper's numbers
        and how our ordering agrees with its; figures of the table and of the training curves.

SWEEP_FILE is a Python file defining SWEEP (t2t/sweeps/spec.py); DIR defaults to runs/sweeps/NAME.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Sequence

from t2t.sweeps.spec import Sweep
from t2t.sweeps.sweep_file import SweepFileError, load_sweep

USAGE = __doc__
SWEEPS_ROOT = Path("runs") / "sweeps"
COMMANDS = {"run": "t2t.sweeps.runner", "launch": "t2t.sweeps.launch",
            "ingest": "t2t.sweeps.ingest", "report": "t2t.sweeps.report"}


def default_sweep_dir(sweep: Sweep) -> Path:
    return SWEEPS_ROOT / sweep.name


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """SWEEP_FILE, --sweep_dir, --only and --retry_failed, as every subcommand that runs takes."""
    parser.add_argument("sweep_file", help="a Python file that defines SWEEP")
    parser.add_argument("--sweep_dir", default=None,
                        help=f"where runs and results.sqlite go (default {SWEEPS_ROOT}/NAME)")
    parser.add_argument("--only", default=None,
                        help="comma-separated globs of trial names, e.g. 'shared-*,prefix_lm-lm'")
    parser.add_argument("--retry_failed", action="store_true", help="rerun runs that failed")


def load_from_args(parser: argparse.ArgumentParser,
                   args: argparse.Namespace) -> tuple[Sweep, Path]:
    """The sweep and its directory; a bad sweep file exits with status 2 and the reason."""
    try:
        sweep = load_sweep(args.sweep_file)
    except SweepFileError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    return sweep, Path(args.sweep_dir) if args.sweep_dir else default_sweep_dir(sweep)


def main(argv: Sequence[str] | None = None) -> int:
    """``t2t sweep COMMAND ...``: dispatch to the command's module's ``main``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
