"""Checkpoints: the train state and the data iterator's position, saved together by orbax.

Saves are asynchronous (training continues while the arrays are written) and atomic (orbax writes
into a temporary directory and renames it when complete, so a crash never leaves a half-written
checkpoint that looks finished). The data state travels in the same checkpoint, so a resumed run
continues with exactly the batch the uninterrupted run would have seen next.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class Checkpointer:
    """Periodic, async, keep-the-last-N checkpoints of (train state, data state) under `directory`."""

    def __init__(self, directory: str | Path, save_every: int, keep: int = 3,
                 async_save: bool = True) -> None:
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, enable_async_checkpointing=async_save, create=True,
                # Only on the interval (orbax's default also saves the first step it sees).
                save_decision_policy=ocp.checkpoint_managers.AnySavePolicy([
                    ocp.checkpoint_managers.FixedIntervalPolicy(save_every),
                    ocp.checkpoint_managers.PreemptionCheckpointingPolicy()])),
            item_names=("state", "data"),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, data_state: dict, force: bool = False) -> bool:
        """Save if `step` is on the save interval (or `force`); returns whether a save started."""
        saved = self._manager.save(
            step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                          data=ocp.args.JsonSave(data_state)),
            force=force)
        if saved:
            log.info("Saving checkpoint for step %d to %s", step, self.directory)
        return saved

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict, int]:
        """Restore (state, data_state, step), placing arrays with the shardings of `abstract_state`
        (a tree of jax.ShapeDtypeStruct with `.sharding`), which may differ from the saved mesh."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No checkpoint in {self.directory}.")
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                          data=ocp.args.JsonRestore()))
        return restored["state"], restored["data"], step

    def wait(self) -> None:
        """Block until async saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
