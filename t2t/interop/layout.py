"""Scanned <-> unscanned parameter trees.

With `scan_layers`, a stack's blocks are one module whose parameters carry a leading `layers`
axis; without it, each block has its own subtree. Same numbers, two layouts:

    unscanned  {"layers_0": {"mlp": {"wi": {"kernel": [e, f]}}}, "layers_1": {...}}
    scanned    {"layers": {"block": {"mlp": {"wi": {"kernel": [2, e, f]}}}}}

Both functions work on any nesting (every stack in the tree is converted) and need no config.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import numpy as np

_LAYER = re.compile(r"layers_(\d+)$")


def unscan(tree: Any) -> Any:
    """The unscanned layout of `tree` (unchanged if it has no scanned stacks)."""
    if not isinstance(tree, Mapping):
        return tree
    out = {}
    for key, value in tree.items():
        if key == "layers" and isinstance(value, Mapping) and set(value) == {"block"}:
            block = value["block"]
            num_layers = jax.tree.leaves(block)[0].shape[0]
            for i in range(num_layers):
                out[f"layers_{i}"] = unscan(jax.tree.map(lambda x: np.asarray(x)[i], block))
        else:
            out[key] = unscan(value)
    return out


def scan(tree: Any) -> Any:
    """The scanned layout of `tree` (unchanged if it has no unscanned stacks)."""
    if not isinstance(tree, Mapping):
        return tree
    layer_keys = sorted((int(m.group(1)), k) for k in tree if (m := _LAYER.match(k)))
    if layer_keys and [i for i, _ in layer_keys] != list(range(len(layer_keys))):
        raise ValueError(f"Layers {[k for _, k in layer_keys]} are not numbered 0..n-1.")
    out = {k: scan(v) for k, v in tree.items() if not _LAYER.match(k)}
    if layer_keys:
        blocks = [scan(tree[k]) for _, k in layer_keys]
        out["layers"] = {"block": jax.tree.map(lambda *xs: np.stack(xs), *blocks)}
    return out


def relayout(tree: Any, scan_layers: bool) -> Any:
    """`tree` in the layout `scan_layers` asks for, whichever layout it is in."""
    flat = unscan(tree)
    return scan(flat) if scan_layers else flat

