"""A tiny random decoder-only model shared by the RLHF tests (drawn in NumPy: compiling the
model's own initialisers would cost seconds)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from t2t.models.families import DecoderOnly, dummy_batch
from t2t.models.sizes import get_size

VOCAB = 16
CONFIG = get_size("gpt2/tiny").replace(vocab_size=VOCAB, d_model=32, d_ff=64, num_heads=4,
                                       head_dim=8, num_decoder_layers=1, max_length=32,
                                       dropout_rate=0.0)
# EOS-terminated prompts of different lengths, PAD-padded.
QUERIES = jnp.array([[5, 6, 7, 1], [4, 1, 0, 0], [9, 3, 1, 0], [8, 1, 0, 0]], jnp.int32)


@functools.cache
def tiny_policy(seed: int = 0):
    """(DecoderOnly model, params) with N(0, 0.3^2) parameters."""
    model = DecoderOnly(CONFIG)
    shapes = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), dummy_batch(CONFIG)))["params"]
    rng = np.random.default_rng(seed)
    return model, jax.tree.map(lambda x: jnp.asarray(0.3 * rng.normal(size=x.shape), x.dtype),
                               shapes)
