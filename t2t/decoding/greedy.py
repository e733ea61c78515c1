"""Left-to-right decoding, one token per row per step, and its simplest rule: greedy (argmax).

Every row stops at its first EOS (= 1); later slots hold PAD (= 0). The loop is a `lax.while_loop`
over fixed shapes that ends when every row has stopped or after `max_length` tokens:

    step        0    1    2    3
    row 0       12   7    1    0      <- EOS at step 2, PAD after it
    row 1       5    5    9    4      <- no EOS within max_length = 4
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from t2t.data.vocab import EOS_ID, PAD_ID
from t2t.decoding.adapter import Decoder

Array = jax.Array
# (logits [n, v] float32, step index) -> the next token of each row [n] int32.
TokenChooser = Callable[[Array, Array], Array]


class Generated(NamedTuple):
    """Outputs of left-to-right decoding."""

    tokens: Array  # [n, max_length] int32: each row's tokens up to its EOS, then PAD
    log_likelihood: Array  # [n] float32: the model's log-probability of those tokens, EOS included


def generate(decoder: Decoder, inputs: Array, max_length: int,
             choose: TokenChooser) -> Generated:
    """Decode each row of `inputs` [n, m] with `choose` picking each next token."""
    logits, state = decoder.start(inputs)
    n = inputs.shape[0]

    def not_finished(carry) -> Array:
        i, _, _, _, done, _ = carry
        return (i < max_length) & ~jnp.all(done)

    def one_token(carry):
        i, logits, state, tokens, done, log_likelihood = carry
        token = jnp.where(done, PAD_ID, choose(logits, i).astype(jnp.int32))
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), token[:, None], axis=1)[:, 0]
        log_likelihood = log_likelihood + jnp.where(done, 0.0, log_prob)
        tokens = tokens.at[:, i].set(token)
        done = done | (token == EOS_ID)
        logits, state = decoder.step(token, state)
        return i + 1, logits, state, tokens, done, log_likelihood

    carry = (jnp.array(0), logits, state, jnp.full((n, max_length), PAD_ID, jnp.int32),
             jnp.zeros(n, bool), jnp.zeros(n, jnp.float32))
    _, _, _, tokens, _, log_likelihood = jax.lax.while_loop(not_finished, one_token, carry)
    return Generated(tokens, log_likelihood)


def greedy(decoder: Decoder, inputs: Array, max_length: int) -> Generated:
    """The most likely next token at every step (ties: the lowest id)."""
    return generate(decoder, inputs, max_length, lambda logits, _: jnp.argmax(logits, axis=-1))
