"""``t2t sweep run``: every (trial, seed) of a sweep as a ``t2t train`` subprocess on this machine.

    t2t sweep run experiments/t5_table2/sweep.py --parallel 2

- Each run is ``<train command> --gin_file=... --gin.K=V ... --gin.SEED=s
  --gin.MODEL_DIR=<sweep_dir>/<trial>/seed_<s>``, then the trial's after-commands, one after
  another; their output goes to ``<run dir>/sweep.log``, which is kept.
- Results go to ``<sweep_dir>/results.sqlite`` (`t2t.sweeps.store`), written by this process only.
- Done runs are skipped when the sweep is run again, so an edited sweep runs only what is new:
  new trials and seeds, and on done runs the after-commands added since (a new downstream task is
  fine-tuned and scored from each finished pretraining run, which is not trained again).
  The store records every command that ended; runs done before it did count as having run the
  commands their ``sweep.log`` shows since their last training command. A run that is resumed
  (interrupted, or failed with ``--retry_failed``) skips the commands it already finished.
- A run whose command fails is recorded as failed with the tail of its log, and the others go on;
  ``--retry_failed`` runs failed ones again.
- Ctrl-C (or SIGTERM) stops every child: each gets SIGTERM, on which ``t2t train`` checkpoints and
  exits, then SIGKILL after a grace period (or at a second Ctrl-C). Those runs are recorded as
  interrupted and resume from their checkpoints at the next ``t2t sweep run``.
- One runner per sweep directory: a second one is refused while the first is alive.

The train command is injectable (``--train_command``, ``run_sweep(train_command=...)``): tests and
other trainers take the same flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence, TextIO

from tqdm import tqdm

from t2t.sweeps.commands import (TRAIN_COMMAND, after_commands, command_key, pending_runs,
                                 select_runs, shell_line, train_flags)
from t2t.sweeps.spec import Sweep, Trial, results_path, run_subdir
from t2t.sweeps.store import ResultsStore, run_metrics
from t2t.training.run_lock import RunLock, RunLockedError

LOG_NAME = "sweep.log"
TAIL_LINES = 20
_LOG_HEADER = re.compile(r"^=== \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \$ (.*)$")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one run ended: ``done``, ``failed`` or ``interrupted``, and a one-line summary."""

    trial: str
    seed: int
    status: str
    seconds: float
    summary: str


def _log_tail(path: Path, offset: int, lines: int = TAIL_LINES) -> str:
    """The last non-empty lines written to `path` after `offset` (progress-bar carriage returns
    count as line breaks)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    kept = [line.rstrip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    return "\n".join(line for line in kept[-lines:] if not line.startswith("=== "))


def logged_commands(log_path: Path, train_command: list[str]) -> set[str]:
    """The commands (by `command_key`) that ``sweep.log`` shows since its last ``train_command``
    (all of them if it has none): what a run that is done ran, to the end, in its last attempt."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return set()
    keys = [command_key(shlex.split(m.group(1))) for m in map(_LOG_HEADER.match, lines) if m]
    train = command_key(train_command)
    last_attempt = max((i for i, key in enumerate(keys) if key == train), default=0)
    return set(keys[last_attempt:])


class _Run:
    """One (trial, seed) in flight: its commands run one after another, each in its own process
    group (so a signal reaches whatever the command starts), all logging to ``sweep.log``.
    ``extension`` marks after-commands added to a done run; ``completed`` collects the commands
    that succeeded, for the runner to record."""

    def __init__(self, trial: Trial, seed: int, commands: list[list[str]], run_dir: Path,
                 extension: bool = False) -> None:
        self.trial, self.seed, self.run_dir, self.extension = trial, seed, run_dir, extension
        self.completed: list[list[str]] = []
        self._commands = list(commands)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = run_dir / LOG_NAME
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.started = time.monotonic()
        self.command: list[str] | None = None
        self.process: subprocess.Popen | None = None
        self._launch_error: str | None = None

    def advance(self) -> str | None:
        """Poll; start the next command once the current one succeeded. Returns None while
        running, "done" when every command succeeded, "failed" when one did not."""
        if self.process is not None:
            returncode = self.process.poll()
            if returncode is None:
                return None
            if returncode != 0:
                return "failed"
            self.completed.append(self.command)
            self.process = None
        if not self._commands:
            return "done"
        self.command = self._commands.pop(0)
        with open(self.log_path, "a") as log:
            log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} $ {shell_line(self.command)}\n")
            log.flush()
            try:
                self.process = subprocess.Popen(
                    self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            except OSError as error:
                self._launch_error = f"cannot start {self.command[0]!r}: {error}"
                return "failed"
        return None

    def send(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def error(self) -> str:
        """What failed: the command, its exit status, and the last lines of its log."""
        if self._launch_error:
            return self._launch_error
        returncode = self.process.returncode
        how = (f"was killed by {signal.Signals(-returncode).name}" if returncode < 0
               else f"exited with status {returncode}")
        command = shell_line(self.command)
        command = command if len(command) <= 200 else command[:200] + " ..."
        return (f"{command} {how}. Last lines of {self.log_path}:\n"
                f"{_log_tail(self.log_path, self._log_offset)}")


def _duration(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _done_summary(rows: list[tuple[str, str, int, float]]) -> str:
    """"validation loss 4.912 at step 200", or the row count without a validation loss."""
    losses = [(step, value) for split, metric, step, value in rows
              if split == "validation" and metric == "loss"]
    if losses:
        step, value = max(losses)
        return f"validation loss {value:.4f} at step {step}"
    return f"{len(rows)} metric values"


class SweepRunner:
    """Runs a sweep's pending (trial, seed) pairs, ``parallel`` at a time (see the module doc)."""

    def __init__(self, sweep: Sweep, sweep_dir: str | Path, *, parallel: int = 1,
                 train_command: Sequence[str] = TRAIN_COMMAND, grace_seconds: float = 120.0,
                 poll_seconds: float = 0.2, out: TextIO | None = None) -> None:
        if parallel < 1:
            raise ValueError(f"--parallel must be at least 1, got {parallel}")
        self.sweep, self.sweep_dir = sweep, Path(sweep_dir)
        self.parallel, self.train_command = parallel, list(train_command)
        self.grace_seconds, self.poll_seconds = grace_seconds, poll_seconds
        self.out = out or sys.stdout

    def commands(self, trial: Trial, seed: int) -> list[list[str]]:
        """The run's commands: training, then the trial's after-commands."""
        model_dir = str(self.sweep_dir / run_subdir(trial.name, seed))
        return ([self.train_command + train_flags(self.sweep, trial, seed, model_dir)]
                + after_commands(trial, seed, model_dir, str(self.sweep_dir)))

    def unfinished(self, trial: Trial, seed: int,
                   recorded: dict[tuple[str, int], dict[str, str]]) -> list[list[str]]:
        """The commands a run that is not done still has to run: all of them, less those at the
        start that an earlier attempt finished (an interrupted run whose training and first
        evaluation were done goes on with the second), while its directory is still there."""
        commands = self.commands(trial, seed)
        ended = recorded.get((trial.name, seed), {})
        if not (self.sweep_dir / run_subdir(trial.name, seed)).is_dir():
            return commands
        finished = 0
        while finished < len(commands) and ended.get(command_key(commands[finished])) == "done":
            finished += 1
        return commands[finished:]

    def extensions(self, runs: list[tuple[Trial, int]], statuses: dict[tuple[str, int], str],
                   recorded: dict[tuple[str, int], dict[str, str]], retry_failed: bool
                   ) -> tuple[list[tuple[Trial, int, list[list[str]]]], int]:
        """The after-commands that done runs have not run, in order, per run (those added to the
        sweep since); and how many runs were skipped because one of theirs failed (rerun with
        ``retry_failed``)."""
        todo, failed = [], 0
        for trial, seed in runs:
            if statuses.get((trial.name, seed)) != "done" or not trial.after:
                continue
            train, *after = self.commands(trial, seed)
            ended = dict(recorded.get((trial.name, seed), {}))
            if ended.get(command_key(train)) != "done":  # done before the store recorded commands
                log = self.sweep_dir / run_subdir(trial.name, seed) / LOG_NAME
                for key in logged_commands(log, train):
                    ended.setdefault(key, "done")
            missing = [c for c in after if ended.get(command_key(c)) != "done"]
            if any(ended.get(command_key(c)) == "failed" for c in missing) and not retry_failed:
                failed += 1
            elif missing:
                todo.append((trial, seed, missing))
        return todo, failed

    def _print(self, message: str) -> None:
        tqdm.write(message, file=self.out)

    def run(self, only: str | None = None, retry_failed: bool = False,
            dry_run: bool = False) -> list[Outcome]:
        runs = select_runs(self.sweep, only)
        statuses, recorded = {}, {}
        if results_path(self.sweep_dir).exists():
            with ResultsStore(self.sweep_dir) as store:
                statuses, recorded = store.statuses(), store.commands()
        pending, done, failed = pending_runs(runs, statuses, retry_failed)
        extend, failed_extensions = self.extensions(runs, statuses, recorded, retry_failed)
        work = ([(trial, seed, self.unfinished(trial, seed, recorded), False)
                 for trial, seed in pending]
                + [(trial, seed, commands, True) for trial, seed, commands in extend])
        skipped = " (skipped; --retry_failed reruns them)" if failed + failed_extensions else ""
        extended = f" ({len(extend)} with new after-commands)" if extend else ""
        failed_after = (f" ({failed_extensions} with failed after-commands)" if failed_extensions
                        else "")
        pace = "" if dry_run else f", {self.parallel} at a time"
        self._print(f"Sweep {self.sweep.name} in {self.sweep_dir}: {len(runs)} runs, {done} done"
                    f"{extended}{failed_after}, {failed} failed{skipped}, {len(pending)} to run"
                    f"{pace}.")
        if dry_run:
            for _, _, commands, _ in work:
                for command in commands:
                    self._print(shell_line(command))
            return []
        try:
            lock = RunLock(self.sweep_dir).acquire()
        except RunLockedError as error:
            raise RunLockedError(f"another `t2t sweep run` is using {self.sweep_dir}: {error}")
        try:
            with ResultsStore(self.sweep_dir) as store:
                return self._run_all(store, work)
        finally:
            lock.release()

    def _run_all(self, store: ResultsStore,
                 work: list[tuple[Trial, int, list[list[str]], bool]]) -> list[Outcome]:
        queue, active, outcomes = list(work), [], []
        progress = tqdm(total=len(queue), desc=self.sweep.name, unit="run", disable=None,
                        dynamic_ncols=True)
        try:
            while queue or active:
                while queue and len(active) < self.parallel:
                    trial, seed, commands, extension = queue.pop(0)
                    if not extension:
                        store.mark_running(trial.name, seed, trial.tags)
                    active.append(_Run(trial, seed, commands,
                                       self.sweep_dir / run_subdir(trial.name, seed), extension))
                for run in list(active):
                    state = run.advance()
                    for command in run.completed:
                        store.mark_command(run.trial.name, run.seed, command_key(command), "done")
                    run.completed.clear()
                    if state is not None:
                        outcomes.append(self._record(store, run, state))
                        active.remove(run)
                        progress.update(1)
                time.sleep(self.poll_seconds)
        except KeyboardInterrupt:
            outcomes += self._interrupt(store, active)
        finally:
            progress.close()
        return outcomes

    def _record(self, store: ResultsStore, run: _Run, state: str) -> Outcome:
        """Write a finished run to the store (metrics and done, or failed with its error)."""
        seconds = time.monotonic() - run.started
        error = run.error() if state == "failed" else None
        if error is not None:
            store.mark_command(run.trial.name, run.seed, command_key(run.command), "failed",
                               error)
        if run.extension:
            return self._record_extension(store, run, error, seconds)
        rows = run_metrics(run.run_dir) if state == "done" else []
        if state == "done" and rows:
            store.mark_done(run.trial.name, run.seed, rows)
            summary = _done_summary(rows)
        else:
            error = error or (f"the run's commands succeeded but wrote no metrics (*.jsonl) in "
                              f"{run.run_dir}; is MODEL_DIR passed on to the trainer?")
            store.mark_stopped(run.trial.name, run.seed, "failed", error)
            state, summary = "failed", f"{error.splitlines()[-1].strip()} (log: {run.log_path})"
        self._print(f"{state:<6} {run.trial.name} seed {run.seed} in {_duration(seconds)}: "
                    f"{summary}")
        return Outcome(run.trial.name, run.seed, state, seconds, summary)

    def _record_extension(self, store: ResultsStore, run: _Run, error: str | None,
                          seconds: float) -> Outcome:
        """New after-commands on a done run (`error`: how one failed, else None): add the new
        metric rows of those that succeeded; the run stays done whatever happened (its training
        results stand)."""
        added = store.add_results(run.trial.name, run.seed, run_metrics(run.run_dir))
        summary = f"after-commands added {added} metric values"
        state = "done" if error is None else "failed"
        if error is not None:
            summary = (f"{error.splitlines()[-1].strip()} (log: {run.log_path}); {summary}"
                       f"; the run stays done, --retry_failed reruns the failed command")
        self._print(f"{state:<6} {run.trial.name} seed {run.seed} in {_duration(seconds)}: "
                    f"{summary}")
        return Outcome(run.trial.name, run.seed, state, seconds, summary)

    def _interrupt(self, store: ResultsStore, active: list[_Run]) -> list[Outcome]:
        """Stop every child (SIGTERM, then SIGKILL after the grace period or a second Ctrl-C) and
        record its run as interrupted."""
        self._print(f"Interrupted: stopping {len(active)} run(s); they checkpoint and exit (up to "
                    f"{self.grace_seconds:.0f} s; Ctrl-C again to kill them now).")
        for run in active:
            run.send(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        try:
            while any(run.alive() for run in active) and time.monotonic() < deadline:
                time.sleep(self.poll_seconds)
        except KeyboardInterrupt:
            pass
        outcomes = []
        for run in active:
            if run.alive():
                run.send(signal.SIGKILL)
                run.process.wait()
            summary = "interrupted; `t2t sweep run` again resumes it from its last checkpoint"
            if not run.extension:  # a done run stays done; its new commands run next time
                store.mark_stopped(run.trial.name, run.seed, "interrupted", summary)
            outcomes.append(Outcome(run.trial.name, run.seed, "interrupted",
                                    time.monotonic() - run.started, summary))
            self._print(f"interrupted {run.trial.name} seed {run.seed}")
        return outcomes


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """``t2t sweep run``; exit status 0 if every run is done, 1 if one failed, 130 if stopped."""
    from t2t.sweeps.cli import add_sweep_arguments, load_from_args

    parser = argparse.ArgumentParser(prog="t2t sweep run", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_arguments(parser)
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--dry_run", action="store_true",
                        help="print the commands of the runs that would start, start nothing")
    parser.add_argument("--train_command", default=None, help="the trainer, as a shell line "
                        f"(default: {shell_line(list(TRAIN_COMMAND))})")
    args = parser.parse_args(argv)
    sweep, sweep_dir = load_from_args(parser, args)
    train_command = shlex.split(args.train_command) if args.train_command else TRAIN_COMMAND
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        runner = SweepRunner(sweep, sweep_dir, parallel=args.parallel, train_command=train_command)
        outcomes = runner.run(only=args.only, retry_failed=args.retry_failed, dry_run=args.dry_run)
    except (ValueError, RunLockedError) as error:
        print(f"t2t sweep run: {error}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "failed", "interrupted")}
    if outcomes:
        print(f"Sweep {sweep.name}: {counts['done']} done, {counts['failed']} failed, "
              f"{counts['interrupted']} interrupted. Report: t2t sweep report {sweep_dir}")
    return 130 if counts["interrupted"] else 1 if counts["failed"] else 0
