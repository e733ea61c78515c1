"""The one-knob ladder: shapes grow with the knob; parameter counts are the built model's."""

import doctest

import jax
import numpy as np
import pytest

from t2t.models.config import FAMILIES
from t2t.models.families import build_model, dummy_batch
from t2t.scaling import fit, isoflop, ladder
from t2t.scaling.ladder import ladder_config, ladder_point

LENGTHS = {"encoder_decoder": {"inputs": 64, "targets": 16}, "decoder_only": {"targets": 64},
           "encoder_only": {"inputs": 64}}
VOCAB = 1000  # no other dimension of knobs 1-3 is 1000, so vocabulary-sized tables stand out


def _leaves(config):
    shapes = jax.eval_shape(build_model(config).init, jax.random.key(0), dummy_batch(config))
    return [(jax.tree_util.keystr(path), leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]]


@pytest.mark.parametrize("family", FAMILIES)
def test_sizes_and_costs_grow_with_the_knob(family):
    points = [ladder_point(family, k, VOCAB, LENGTHS[family]) for k in (1, 2, 3, 4)]
    for key in ("non_embedding_params", "params", "training_flops_per_token"):
        values = [getattr(p, key) for p in points]
        assert all(a < b for a, b in zip(values, values[1:])), (key, values)
    for k, p in enumerate(points, start=1):
        c = p.config
        assert (c.d_model, c.num_heads * c.head_dim, c.dropout_rate) == (64 * k, 64 * k, 0.0)
        assert max(c.num_encoder_layers, c.num_decoder_layers) == k
        gated = len(c.mlp_activations) > 1
        assert c.d_ff == (5 * c.d_model // 2 if gated else 4 * c.d_model)
        narrow = ladder_config(family, k, width=16)
        assert (narrow.d_model, narrow.num_heads, narrow.head_dim) == (16 * k, k, 16)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("knob", [1, 3])
def test_parameter_counts_are_the_built_models(family, knob):
    """N = every parameter outside the embedder and off vocabulary-sized axes, from the tree."""
    point = ladder_point(family, knob, VOCAB, LENGTHS[family])
    leaves = _leaves(point.config)
    assert point.params == sum(int(np.prod(shape)) for _, shape in leaves)
    non_embedding = sum(int(np.prod(shape)) for path, shape in leaves
                        if "embedder" not in path and VOCAB not in shape)
    assert point.non_embedding_params == non_embedding


def test_decoder_only_ladder_is_kaplans_twelve_l_d_squared():
    """Kaplan's N ≈ 12 · layers · d_model² (d_ff = 4 d_model), up to norms and biases."""
    for k in (1, 2, 4):
        n = ladder_point("decoder_only", k, VOCAB, LENGTHS["decoder_only"]).non_embedding_params
        assert n == pytest.approx(12 * k * (64 * k) ** 2, rel=0.03)


def test_bad_knobs_and_bases_fail_clearly():
    with pytest.raises(ValueError, match="integer >= 1"):
        ladder_config("decoder_only", 0)
    with pytest.raises(ValueError, match="not decoder_only"):
        ladder_config("decoder_only", 1, base="t5_1_1/tiny")
    with pytest.raises(ValueError, match="Unknown family"):
        ladder_config("decoder", 1)


def test_docstring_examples():
    for module in (ladder, isoflop, fit):
        assert doctest.testmod(module).failed == 0, module.__name__
