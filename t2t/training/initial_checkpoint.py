"""Start a run from another run's parameters: fine-tuning (`INITIAL_CHECKPOINT_PATH`).

Only the parameters travel: the step, the optimizer state and the data position start fresh, so a
model pretrained with Adafactor can be fine-tuned with AdamW, on another task, at another batch size.
A partial restore takes the parameters whose path matches `include` and not `exclude` (regular
expressions over "/"-joined paths such as ``lm_head/kernel``); the others keep their
fresh initialisation (a new classification head, say). Every parameter the model expects from the
checkpoint must be there with the same shape, or the error names it and the fix.

Accepted paths: a run directory (its newest checkpoint), a run's ``checkpoints`` directory, or one
step's directory (``.../checkpoints/<step>``); any orbax checkpoint whose ``state`` item holds a
``params`` tree (such as ``t2t convert import`` writes) works the same way.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Sequence

import jax
import orbax.checkpoint as ocp

from t2t.training.checkpointing import locate_params, restore_params

log = logging.getLogger(__name__)


def find_checkpoint(path: str | Path) -> tuple[Path, str | None]:
    """(the orbax directory `path` names, the key of the parameters in its tree, None at the root):
    a run's newest step for a run directory; ``<dir>/params`` for a params-only checkpoint."""
    try:
        directory, key, _ = locate_params(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"INITIAL_CHECKPOINT_PATH: {error}") from None
    return directory, key


def _path_str(key_path: tuple) -> str:
    """"encoder/layers_0/mlp/wo/kernel" (flax's partitioning box adds a trailing "value": dropped)."""
    parts = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in key_path]
    return "/".join(parts[:-1] if parts and parts[-1] == "value" else parts)


def select(params: Any, include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """Paths of the leaves of `params` to restore: matching an `include` pattern, no `exclude` one."""
    inc = [re.compile(p) for p in include]
    exc = [re.compile(p) for p in exclude]
    paths = [_path_str(kp) for kp, _ in jax.tree_util.tree_leaves_with_path(params)]
    return [p for p in paths if any(r.search(p) for r in inc) and not any(r.search(p) for r in exc)]


def load_params(path: str | Path, abstract_params: Any, include: Sequence[str] = (".*",),
                exclude: Sequence[str] = ()) -> tuple[Any, list[str]]:
    """Restore the selected parameters of `abstract_params` from the checkpoint at `path`.

    `abstract_params` is the model's tree of jax.ShapeDtypeStruct with shardings (arrays land
    sharded as the new run wants, whatever mesh saved them). Returns (a tree like
    `abstract_params` whose unselected leaves are None, the restored paths).
    """
    directory, key = find_checkpoint(path)
    wanted = set(select(abstract_params, include, exclude))
    if not wanted:
        raise ValueError(f"initial_checkpoint_include={list(include)} / exclude={list(exclude)} "
                         f"select no parameter of the model; nothing would be restored.")
    saved_tree = ocp.PyTreeCheckpointer().metadata(directory).item_metadata.tree
    saved_params = saved_tree.get(key, {}) if key else saved_tree
    saved_shapes = {_path_str(kp): tuple(leaf.shape)
                    for kp, leaf in jax.tree_util.tree_leaves_with_path(saved_params)}
    problems = []
    for kp, leaf in jax.tree_util.tree_leaves_with_path(abstract_params):
        name = _path_str(kp)
        if name not in wanted:
            continue
        if name not in saved_shapes:
            problems.append(f"{name}: not in the checkpoint")
        elif saved_shapes[name] != tuple(leaf.shape):
            problems.append(f"{name}: checkpoint shape {saved_shapes[name]} vs model {leaf.shape}")
    if problems:
        raise ValueError(
            f"the checkpoint {directory} does not fit the model for {len(problems)} parameter(s): "
            + "; ".join(problems[:8]) + ("; ..." if len(problems) > 8 else "")
            + ". Use the same model config (scan_layers included), or leave these parameters "
              "freshly initialised with --gin.train.initial_checkpoint_exclude=\"['<regex>']\".")

    def keep(kp, leaf):
        return leaf if _path_str(kp) in wanted else None

    restored, _ = restore_params(path, jax.tree_util.tree_map_with_path(keep, abstract_params))
    log.info("Restored %d of %d parameter arrays from %s.", len(wanted),
             len(jax.tree.leaves(abstract_params)), directory)
    return restored, sorted(wanted)


def merge(fresh: Any, restored: Any) -> Any:
    """`restored` where it has a leaf, `fresh` elsewhere."""
    leaves, treedef = jax.tree.flatten(fresh)
    return treedef.unflatten([f if r is None else r
                              for f, r in zip(leaves, treedef.flatten_up_to(restored))])
