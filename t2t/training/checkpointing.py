"""Checkpoints: the train state and the data iterator's position, saved together by orbax.

Saves are asynchronous (training continues while the arrays are written) and atomic (orbax writes
into a temporary directory and renames it when complete, so a crash never leaves a half-written
checkpoint that looks finished). Old checkpoints are deleted only after the new one is committed
(orbax's `_finalize` commits, then deletes), so a full disk or a crash mid-save never leaves fewer
good checkpoints than before. The data state travels in the same checkpoint, so a resumed run
continues with exactly the batch the uninterrupted run would have seen next.

Restoring takes the newest checkpoint that loads; one that is corrupt (a truncated or damaged
file) is skipped with a warning that names it and the checkpoint used instead.

Fine-tuning, inference and export need only the parameters: `restore_params` reads them alone
(orbax partial restore) from any of the places a user may point at (`locate_params`):

    RUN/                          a run directory: its newest checkpoint, or `step`
    RUN/checkpoints/              the same
    RUN/checkpoints/<step>/       that step's checkpoint
    DIR/  (params/ + model_config.json)   a params-only checkpoint (`t2t convert import`)
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import sys
from pathlib import Path
from typing import Any, Iterator

import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


def _state_handler() -> ocp.PyTreeCheckpointHandler:
    """The handler of the train state: orbax's, without replica-parallel writes on one process.

    Replica-parallel saving splits each replicated array into one slice per replica, so that
    several hosts share the writing. On a single process every replica is local, so it only costs:
    each slice is an eager device op, compiled per shape and device on the first save (17 s for 47
    parameters of distinct shapes on 8 CPU devices, against 0.13 s without). With several
    processes orbax's defaults stand. The array handler without replica parallelism is the one
    orbax's own emergency checkpointer uses; the per-array metadata store it leaves out is
    optional (restores do not read it).
    """
    handlers = {ty: ocp.type_handlers.get_type_handler(ty)
                for ty in ocp.type_handlers.supported_types()}
    if jax.process_count() == 1:
        handlers[jax.Array] = ocp.type_handlers.ArrayHandler(use_replica_parallel=False)
    registry = ocp.type_handlers.create_type_handler_registry(*handlers.items())
    return ocp.PyTreeCheckpointHandler(type_handler_registry=registry)


@contextlib.contextmanager
def _reads_of_failed_restores_quiet() -> Iterator[None]:
    """Drop the tracebacks of reads that complete after a failed restore, while this is open.

    Orbax restores in an event loop of its own and closes it when a read fails (a corrupt
    checkpoint); the reads still in flight then complete into the closed loop, and each reports
    RuntimeError('Event loop is closed') through `sys.unraisablehook`: dozens of tracebacks under
    the warning that says what happened. They all arrive before the next restore returns. Only
    that error is dropped.
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        error = unraisable.exc_value
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


class Checkpointer:
    """Periodic, async checkpoints of (train state, data state) under `directory`.

    Retention keeps the newest `keep`, plus every step that is a multiple of `keep_every` and one
    checkpoint per `keep_hours` of wall-clock time, when those are set.
    """

    def __init__(self, directory: str | Path, save_every: int, keep: int = 3,
                 async_save: bool = True, keep_every: int | None = None,
                 keep_hours: float | None = None) -> None:
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, enable_async_checkpointing=async_save, create=True,
                keep_period=keep_every,
                keep_time_interval=(datetime.timedelta(hours=keep_hours)
                                    if keep_hours is not None else None),
                # Only on the interval (orbax's default also saves the first step it sees).
                save_decision_policy=ocp.checkpoint_managers.AnySavePolicy([
                    ocp.checkpoint_managers.FixedIntervalPolicy(save_every),
                    ocp.checkpoint_managers.PreemptionCheckpointingPolicy()])),
            item_handlers={"state": _state_handler(), "data": ocp.JsonCheckpointHandler()},
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def should_save(self, step: int) -> bool:
        """Whether `save(step, ...)` would save (the interval, or a preemption JAX has signalled)."""
        return self._manager.should_save(step)

    def save(self, step: int, state: Any, data_state: dict, force: bool = False) -> bool:
        """Save if `step` is on the save interval (or `force`); returns whether a save started."""
        saved = self._manager.save(
            step, args=ocp.args.Composite(state=ocp.args.PyTreeSave(state),
                                          data=ocp.args.JsonSave(data_state)),
            force=force)
        if saved:
            log.info("Saving checkpoint for step %d to %s", step, self.directory)
        return saved

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict, int]:
        """Restore (state, data_state, step), placing arrays with the shardings of `abstract_state`
        (a tree of jax.ShapeDtypeStruct with `.sharding`), which may differ from the saved mesh.

        Without `step`, the newest checkpoint that loads: corrupt ones are skipped with a warning.
        """
        candidates = [step] if step is not None else self.all_steps()[::-1]
        if not candidates:
            raise FileNotFoundError(f"No checkpoint in {self.directory}.")
        failed = []
        with _reads_of_failed_restores_quiet():
            for candidate in candidates:
                try:
                    restored = self._manager.restore(
                        candidate,
                        args=ocp.args.Composite(
                            state=ocp.args.PyTreeRestore(
                                abstract_state, ocp.checkpoint_utils.construct_restore_args(
                                    abstract_state)),
                            data=ocp.args.JsonRestore()))
                except Exception as error:  # any damage: unreadable files, bad metadata, bad shapes
                    if step is not None:
                        raise
                    failed.append(candidate)
                    log.warning("Checkpoint at step %d in %s is corrupt or incomplete (%s: %s); "
                                "trying an older one.", candidate, self.directory,
                                type(error).__name__, str(error).splitlines()[0][:200])
                    continue
                if failed:
                    self._set_aside(failed)
                    log.warning("Restored step %d instead of the newer, corrupt step(s) %s, which "
                                "are kept in %s as corrupt.<step>.", candidate,
                                ", ".join(map(str, failed)), self.directory)
                return restored["state"], restored["data"], candidate
        raise RuntimeError(f"No checkpoint in {self.directory} could be restored (tried steps "
                           f"{', '.join(map(str, failed))}); see the warnings above.")

    def _set_aside(self, steps: list[int]) -> None:
        """Rename corrupt checkpoints so that the resumed run can save those steps again."""
        for step in steps:
            path = self.directory / str(step)
            if path.exists():
                path.rename(self.directory / f"corrupt.{step}")
        self._manager.reload()

    def wait(self) -> None:
        """Block until async saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def finished_steps(directory: Path) -> list[int]:
    """Steps of the finished checkpoints in a run's ``checkpoints/`` directory, ascending.

    Orbax renames a checkpoint to its step number once complete; temporary directories and the
    ``corrupt.<step>`` ones set aside are not numbers.
    """
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir()
                  if p.name.isdigit() and (p / "state").is_dir())


def locate_params(path: str | Path, step: int | None = None
                  ) -> tuple[Path, str | None, int | None]:
    """(the orbax directory, the key of the parameters in its tree, the step) that `path` names.

    See the module docstring for the accepted layouts; the key is None for a params-only
    checkpoint (its tree is the parameters), whose step is None too.
    """
    path = Path(path).expanduser().absolute()
    if (path / "params").is_dir() and (path / "model_config.json").is_file():
        if step is not None:
            raise ValueError(f"{path} is a params-only checkpoint: it has no steps to choose "
                             f"from (drop the step {step}).")
        return path / "params", None, None
    if (path / "state").is_dir():
        return path / "state", "params", int(path.name) if path.name.isdigit() else None
    for candidate in (path, path / "checkpoints"):
        steps = finished_steps(candidate)
        if steps:
            chosen = steps[-1] if step is None else step
            if chosen not in steps:
                raise FileNotFoundError(f"{path} has no checkpoint at step {step}; its steps are "
                                        f"{steps}.")
            return candidate / str(chosen) / "state", "params", chosen
    raise FileNotFoundError(
        f"{path} holds no t2t checkpoint (looked for {path}/state, {path}/<step>/state, "
        f"{path}/checkpoints/<step>/state and a params-only {path}/params). Give a run "
        f"directory, one of its checkpoints/<step> directories, or the output of "
        f"`t2t convert import`.")


def restore_params(path: str | Path, target: Any = None, step: int | None = None
                   ) -> tuple[Any, int | None]:
    """(the parameters saved at `path`, their step), without the optimizer state or data position.

    `target` is a tree of `jax.ShapeDtypeStruct`s with shardings: the arrays land sharded as the
    caller wants, whatever mesh saved them, and leaves that are None are not read (a partial
    restore). Without a target, every saved parameter comes back as a host numpy array.
    """
    directory, key, step = locate_params(path, step)
    checkpointer = ocp.PyTreeCheckpointer()
    if target is None:
        saved = checkpointer.metadata(directory).item_metadata.tree
        target = saved[key] if key else saved
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
    else:
        restore_args = jax.tree.map(lambda s: ocp.ArrayRestoreArgs(
            sharding=s.sharding, global_shape=s.shape, dtype=s.dtype), target)
    nest = (lambda tree: {key: tree}) if key else (lambda tree: tree)
    restored = checkpointer.restore(directory, args=ocp.args.PyTreeRestore(
        item=nest(target), restore_args=nest(restore_args), partial_restore=True))
    return (restored[key] if key else restored), step
