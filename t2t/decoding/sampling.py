"""Random sampling with temperature, top-k and top-p (nucleus) truncation; seeded and jit-able.

Each step draws from softmax(logits / temperature), restricted first to the `top_k` most likely
tokens and then to the smallest set of the remaining most likely tokens whose probability reaches
`top_p` (Holtzman et al. 2020). E.g. with probabilities [0.5, 0.3, 0.15, 0.05]: top_k=2 samples from
[0.625, 0.375, 0, 0]; top_p=0.9 keeps 0.5 + 0.3 + 0.15 = 0.95 >= 0.9, so samples from
[0.526, 0.316, 0.158, 0]. Temperature 0 is greedy decoding.

Step i draws with `fold_in(rng, i)`: the same seed and the same batch give the same outputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from t2t.decoding.adapter import Decoder
from t2t.decoding.greedy import Generated, generate, greedy

Array = jax.Array


def truncated_logits(logits: Array, temperature: float = 1.0, top_k: int = 0,
                     top_p: float = 1.0) -> Array:
    """The logits [n, v] that sampling draws from: divided by `temperature`, -inf outside the
    top-k / top-p set (0 and 1.0 turn them off). Tokens tied with the last kept one are kept too."""
    logits = logits.astype(jnp.float32) / temperature
    if top_k:
        kth_largest = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth_largest, -jnp.inf, logits)
    if top_p < 1.0:
        descending = jnp.sort(logits, axis=-1)[:, ::-1]
        probs = jax.nn.softmax(descending, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        # Keep a token while the more likely ones hold less than top_p: at least the first.
        kept = jnp.sum(mass_before < top_p, axis=-1, keepdims=True)
        threshold = jnp.take_along_axis(descending, kept - 1, axis=-1)
        logits = jnp.where(logits < threshold, -jnp.inf, logits)
    return logits


def sample(decoder: Decoder, inputs: Array, max_length: int, rng: Array,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> Generated:
    """Sample each row of `inputs` [n, m]; the reported log-likelihood is the model's own
    (temperature 1, untruncated)."""
    if temperature < 0 or top_k < 0 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"Sampling needs temperature >= 0, top_k >= 0 and 0 < top_p <= 1; got "
                         f"temperature={temperature}, top_k={top_k}, top_p={top_p}.")
    if temperature == 0:
        return greedy(decoder, inputs, max_length)

    def choose(logits: Array, i: Array) -> Array:
        return jax.random.categorical(jax.random.fold_in(rng, i),
                                      truncated_logits(logits, temperature, top_k, top_p))

    return generate(decoder, inputs, max_length, choose)
