"""The command lines of one run: the ``t2t train`` flags of a (trial, seed) and its after-commands.

Shared by the local runner and the remote launcher, so a sweep runs the same configuration on a
laptop, a TPU pod and a SLURM cluster.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import sys
from typing import Any

from t2t.sweeps.spec import Sweep, Trial

# `t2t train`, as a module of this interpreter: the runner's children use the same environment
# whether or not the `t2t` script is on PATH.
TRAIN_COMMAND = (sys.executable, "-m", "t2t.cli", "train")
_SAFE_WORD = re.compile(r"^[A-Za-z0-9_./:=@%+,-]+$")
_DOUBLE_QUOTE_UNSAFE = re.compile(r'["$`\\!]')


def shell_line(args: list[str]) -> str:
    """``args`` as one shell line that reads well: safe words bare, and a word holding single
    quotes but nothing a shell expands inside double quotes, double-quoted (like tpu_scripts),
    e.g. ``["t2t", "train", "--gin.MODEL_DIR='runs/x'", "a b"]`` ->
    ``t2t train "--gin.MODEL_DIR='runs/x'" 'a b'``.
    """
    def quote(word: str) -> str:
        if _SAFE_WORD.match(word):
            return word
        if "'" in word and not _DOUBLE_QUOTE_UNSAFE.search(word):
            return f'"{word}"'
        return shlex.quote(word)

    return " ".join(quote(word) for word in args)


_PYTHON = re.compile(r"^python[0-9.]*$")


def command_key(args: list[str]) -> str:
    """How the results store names a run's command: its shell line with the program by its base
    name, and any Python interpreter as ``python``, so that the same command from a moved
    environment, or a runner started as ``t2t`` (python3.11) rather than ``python -m``, is the
    same command.

    >>> command_key(["/opt/venv/bin/python3.11", "-m", "t2t.cli", "eval", "--task=wiki_topic"])
    'python -m t2t.cli eval --task=wiki_topic'
    """
    if not args:
        return ""
    program = os.path.basename(args[0])
    return shell_line(["python" if _PYTHON.match(program) else program, *args[1:]])


def gin_literal(value: Any) -> str:
    """A binding's value as gin text, quoted as t2t.configuration expects.

    >>> gin_literal(300), gin_literal("adafactor"), gin_literal("@span_3_15_u_u()")
    ('300', "'adafactor'", '@span_3_15_u_u()')
    >>> gin_literal({"inputs": 128, "targets": 64})
    "{'inputs': 128, 'targets': 64}"
    """
    if isinstance(value, str):
        return value if value.startswith(("@", "%")) else repr(value)
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        return repr(value)  # Python's repr of literals is gin syntax
    raise TypeError(f"cannot write a {type(value).__name__} ({value!r}) as a gin binding: use a "
                    f"number, string, bool, None, or a dict/list/tuple of them")


def train_flags(sweep: Sweep, trial: Trial, seed: int, model_dir: str) -> list[str]:
    """``--gin_file=...`` and ``--gin.K=V`` flags for one run: the trial's gin files, the sweep's
    bindings, the trial's (which win), then SEED and MODEL_DIR.

    >>> sweep = Sweep("s", [Trial("t", ("a.gin",), {"TRAIN_STEPS": 200})])
    >>> train_flags(sweep, sweep.trials[0], 1, "runs/s/t/seed_1")[1:]
    ['--gin.TRAIN_STEPS=200', '--gin.SEED=1', "--gin.MODEL_DIR='runs/s/t/seed_1'"]
    """
    bindings = {**sweep.bindings, **trial.bindings, "SEED": seed, "MODEL_DIR": model_dir}
    return ([f"--gin_file={f}" for f in trial.gin_files]
            + [f"--gin.{name}={gin_literal(value)}" for name, value in bindings.items()])


def after_commands(trial: Trial, seed: int, model_dir: str, sweep_dir: str) -> list[list[str]]:
    """The trial's after-command templates for one run, as argument lists.

    Each template is split into words first and then formatted, so a path with spaces stays one
    argument: ``"{python} eval.py --dir={model_dir}"`` -> ``[sys.executable, "eval.py",
    "--dir=runs/s/t/seed_0"]``.
    """
    fields = {"model_dir": model_dir, "seed": seed, "trial": trial.name, "sweep_dir": sweep_dir,
              "python": sys.executable}
    return [[word.format(**fields) for word in shlex.split(template)] for template in trial.after]


def select_runs(sweep: Sweep, only: str | None) -> list[tuple[Trial, int]]:
    """The sweep's (trial, seed) pairs whose trial name matches one of the comma-separated globs
    in ``only`` (all of them if None)."""
    if not only:
        return sweep.runs()
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    runs = [(t, s) for t, s in sweep.runs()
            if any(fnmatch.fnmatchcase(t.name, p) for p in patterns)]
    if not runs:
        raise ValueError(f"--only {only!r} matches no trial of sweep {sweep.name!r}; its trials: "
                         f"{', '.join(t.name for t in sweep.trials)}")
    return runs


def pending_runs(runs: list[tuple[Trial, int]], statuses: dict[tuple[str, int], str],
                 retry_failed: bool) -> tuple[list[tuple[Trial, int]], int, int]:
    """(runs to start, number skipped as done, number skipped as failed).

    Done runs are never rerun; failed ones only with ``retry_failed``; interrupted, running
    (left by a runner that was killed) and new ones always run, resuming from their checkpoints.
    """
    pending, done, failed = [], 0, 0
    for trial, seed in runs:
        status = statuses.get((trial.name, seed))
        if status == "done":
            done += 1
        elif status == "failed" and not retry_failed:
            failed += 1
        else:
            pending.append((trial, seed))
    return pending, done, failed
