"""Shared fixtures of the interop tests."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from t2t.models.families import build_model, dummy_batch


def _perturbed(params, seed: int = 0):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda x: np.asarray(x) + np.float32(0.05) * rng.standard_normal(x.shape, np.float32),
        params)


@pytest.fixture
def perturbed():
    """`perturbed(params, seed)`: `params` with independent noise on every leaf, so that biases
    (0) and norm scales (1) differ from each other and between layers, and a misplaced tensor
    changes every result."""
    return _perturbed


@pytest.fixture
def random_params():
    """`random_params(config, seed)`: random float32 parameters of a config's model. Nothing is
    compiled: the shapes come from `jax.eval_shape`."""
    def make(config, seed=0):
        shapes = jax.eval_shape(lambda: nn.unbox(
            build_model(config).init(jax.random.key(0), dummy_batch(config))["params"]))
        return _perturbed(jax.tree.map(lambda s: np.zeros(s.shape, np.float32), shapes), seed)
    return make
