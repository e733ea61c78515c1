"""Scanned <-> unscanned parameter trees: the layouts our models really build, value for value."""

import flax.linen as nn
import jax
import numpy as np
import pytest
from flax import traverse_util

from t2t.interop.layout import relayout, scan, unscan
from t2t.models.families import build_model, dummy_batch
from t2t.models.sizes import get_size


def _shapes(config):
    tree = jax.eval_shape(lambda: nn.unbox(
        build_model(config).init(jax.random.key(0), dummy_batch(config))["params"]))
    return {k: v.shape for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


@pytest.mark.parametrize("size", ["t5_1_1/tiny", "bert/tiny"])
def test_unscan_gives_the_unscanned_models_tree_layer_by_layer(size, random_params):
    config = get_size(size).replace(vocab_size=32, d_model=16, d_ff=24, num_heads=2, head_dim=8,
                                    num_decoder_layers=3 if size.startswith("t5") else 0)
    scanned = random_params(config.replace(scan_layers=True))
    flat = unscan(scanned)
    assert {k: v.shape for k, v in traverse_util.flatten_dict(flat, sep="/").items()} == \
        _shapes(config.replace(scan_layers=False))
    stack = "decoder" if size.startswith("t5") else "encoder"
    stacked = scanned[stack]["layers"]["block"]["mlp"]["wo"]["kernel"]
    for i in range(stacked.shape[0]):  # layer i is slice i of the scanned axis
        np.testing.assert_array_equal(flat[stack][f"layers_{i}"]["mlp"]["wo"]["kernel"],
                                      stacked[i])
    back = scan(flat)
    assert jax.tree.structure(back) == jax.tree.structure(scanned)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(back),
                                                    jax.tree.leaves(scanned)))
    assert jax.tree.structure(relayout(scanned, True)) == jax.tree.structure(scanned)
    assert jax.tree.structure(relayout(flat, False)) == jax.tree.structure(flat)


def test_scan_refuses_a_gap_in_the_layer_numbers():
    with pytest.raises(ValueError, match="not numbered"):
        scan({"layers_0": {"w": np.zeros(2)}, "layers_2": {"w": np.zeros(2)}})
