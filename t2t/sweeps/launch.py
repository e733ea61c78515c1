"""``t2t sweep launch``: one ``tpu_scripts`` command per (trial, seed), printed or run.

    t2t sweep launch experiments/t5_table2/sweep.py --target tpu \\
        --model_dir_prefix gs://my-bucket/sweeps/t5_table2 -- --name=t5 --zone=us-central2-b
    t2t sweep launch experiments/t5_table2/sweep.py --target slurm -- --nodes=1 --partition=gpu

``--target tpu`` gives ``tpu_scripts/launch.sh --run-name=RUN SCRIPT_ARGS -- TRAIN_FLAGS`` (one
run in the background on every worker of the TPU VM named in SCRIPT_ARGS), ``--target slurm``
gives ``tpu_scripts/slurm/submit.sh --job-name=RUN SCRIPT_ARGS -- TRAIN_FLAGS`` (one queued job).
TRAIN_FLAGS are exactly the local runner's, with MODEL_DIR = ``<prefix>/<trial>/seed_<seed>``;
the prefix defaults to the sweep directory. Without ``--run`` the commands are printed, one per
line, as a shell script; with it they are run in turn.

Done runs in the local store are skipped (and failed ones unless ``--retry_failed``), so after
``t2t sweep ingest`` only what is missing is launched again. A TPU VM runs one training at a time:
launch each run when the previous one is finished (``logs.sh``), or give each its own VM.
Trials' after-commands are not run remotely; they are printed as notes, to run where the results
are. Launching a sweep again after a preemption resumes every run from its checkpoint.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from t2t.sweeps.commands import (after_commands, pending_runs, select_runs, shell_line,
                                 train_flags)
from t2t.sweeps.spec import Sweep, Trial, results_path, run_subdir
from t2t.sweeps.store import ResultsStore

SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "tpu_scripts"
TARGETS = {"tpu": ("launch.sh", "--run-name"), "slurm": ("slurm/submit.sh", "--job-name")}


def run_name(sweep: Sweep, trial: str, seed: int) -> str:
    """A name the scripts accept (letters, digits, '.', '_', '-'): ``t5_table2.shared-lm.s1``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{sweep.name}.{trial}.s{seed}").lstrip("._-")


def remote_model_dir(prefix: str, trial: str, seed: int) -> str:
    """``prefix/trial/seed_s``, joined as text so that ``gs://`` keeps its double slash."""
    return f"{prefix.rstrip('/')}/{run_subdir(trial, seed)}"


def _script_path(name: str) -> str:
    """The script, relative to the working directory when it is below it (shorter to read)."""
    path = SCRIPTS_DIR / name
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def launch_commands(sweep: Sweep, target: str, model_dir_prefix: str,
                    script_args: Sequence[str] = (),
                    runs: list[tuple[Trial, int]] | None = None,
                    ) -> list[tuple[list[str], list[str]]]:
    """(launch command, notes) per (trial, seed) of ``runs`` (default all of the sweep's)."""
    if target not in TARGETS:
        raise ValueError(f"--target must be one of {sorted(TARGETS)}, got {target!r}")
    script, name_flag = TARGETS[target]
    commands = []
    for trial, seed in sweep.runs() if runs is None else runs:
        model_dir = remote_model_dir(model_dir_prefix, trial.name, seed)
        command = ([_script_path(script), f"{name_flag}={run_name(sweep, trial.name, seed)}",
                    *script_args, "--", *train_flags(sweep, trial, seed, model_dir)])
        notes = [f"then, where {model_dir} is readable: {shell_line(after)}"
                 for after in after_commands(trial, seed, model_dir, model_dir_prefix)]
        commands.append((command, notes))
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    from t2t.sweeps.cli import add_sweep_arguments, load_from_args

    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    argv, script_args = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(
        prog="t2t sweep launch", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Arguments after -- go to the script: the TPU VM (--name, --zone, ...) for "
               "launch.sh, the allocation (--nodes, --partition, ...) for submit.sh.")
    add_sweep_arguments(parser)
    parser.add_argument("--target", required=True, choices=sorted(TARGETS))
    parser.add_argument("--model_dir_prefix", default=None,
                        help="where runs write, e.g. gs://bucket/sweeps/NAME (default: the sweep "
                             "directory)")
    parser.add_argument("--run", action="store_true", help="run the commands, not print them")
    args = parser.parse_args(argv)
    sweep, sweep_dir = load_from_args(parser, args)
    try:
        runs = select_runs(sweep, args.only)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    statuses = {}
    if results_path(sweep_dir).exists():
        with ResultsStore(sweep_dir) as store:
            statuses = store.statuses()
    pending, done, failed = pending_runs(runs, statuses, args.retry_failed)
    commands = launch_commands(sweep, args.target, args.model_dir_prefix or str(sweep_dir),
                               script_args, pending)
    print(f"# sweep {sweep.name}: {len(pending)} run(s) to launch ({done} done, {failed} failed "
          f"skipped, per {results_path(sweep_dir)})")
    if args.target == "tpu":
        print("# A TPU VM trains one run at a time: start each when the last is done (logs.sh), "
              "or give each its own --name.")
    failures = 0
    for command, notes in commands:
        line = shell_line(command)
        print(line if not args.run else f"+ {line}", flush=True)
        if args.run:
            failures += subprocess.run(command, env=os.environ).returncode != 0
        for note in notes:
            print(f"# {note}")
    if failures:
        print(f"t2t sweep launch: {failures} of {len(commands)} launch commands failed",
              file=sys.stderr)
    return 1 if failures else 0
