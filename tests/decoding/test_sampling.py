"""Sampling: truncation rules, determinism per seed, and the empirical distribution of draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from decoding_fakes import markov_decoder, markov_table

from t2t.decoding.greedy import greedy
from t2t.decoding.sampling import sample, truncated_logits

TABLE = jnp.asarray(markov_table(6, 8, seed=3, scale=1.0))
INPUTS = jnp.arange(8)[:, None]


def test_truncation_keeps_top_k_and_the_nucleus():
    # The module docstring's example: probabilities [0.5, 0.3, 0.15, 0.05].
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    probs = lambda **kw: np.asarray(jax.nn.softmax(truncated_logits(logits, **kw)))[0]
    np.testing.assert_allclose(probs(top_k=2), [0.625, 0.375, 0, 0], atol=1e-6)
    np.testing.assert_allclose(probs(top_p=0.9), [0.5, 0.3, 0.15, 0] / np.float32(0.95), atol=1e-6)
    np.testing.assert_allclose(probs(top_p=0.5), [1, 0, 0, 0], atol=1e-6)  # at least one token
    np.testing.assert_allclose(probs(temperature=0.5), [0.25, 0.09, 0.0225, 0.0025] / np.float32(
        0.365), atol=1e-6)  # p^2, renormalised


def test_top_k_1_and_temperature_0_are_greedy():
    decoder = markov_decoder(TABLE)
    run = jax.jit(lambda rng: (greedy(decoder, INPUTS, 6), sample(decoder, INPUTS, 6, rng, top_k=1),
                               sample(decoder, INPUTS, 6, rng, temperature=0.0)))
    out, top1, cold = run(jax.random.key(5))
    np.testing.assert_array_equal(top1.tokens, out.tokens)
    np.testing.assert_array_equal(cold.tokens, out.tokens)
    np.testing.assert_allclose(top1.log_likelihood, out.log_likelihood, rtol=1e-6)


def test_sampling_is_deterministic_per_seed():
    run = jax.jit(lambda rng: sample(markov_decoder(TABLE), INPUTS, 6, rng).tokens)
    first, again, other = run(jax.random.key(0)), run(jax.random.key(0)), run(jax.random.key(1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def _expected(logits, temperature, top_k, top_p):
    """softmax(logits / T) restricted to the top k, then to the smallest set reaching top_p."""
    p = np.exp(logits / temperature - np.max(logits / temperature))
    p /= p.sum()
    order = np.argsort(-p)
    keep = np.zeros_like(p, bool)
    keep[order[:top_k or len(p)]] = True
    p = np.where(keep, p, 0) / np.sum(np.where(keep, p, 0))
    mass_before = np.cumsum(p[order]) - p[order]
    keep[order[mass_before >= top_p]] = False
    return np.where(keep, p, 0) / np.sum(np.where(keep, p, 0))


@pytest.mark.parametrize("temperature,top_k,top_p", [(0.7, 0, 1.0), (1.0, 3, 1.0), (1.5, 0, 0.8)])
def test_draws_follow_the_tempered_truncated_softmax(temperature, top_k, top_p):
    n = 20_000  # frequencies within ~0.0035 (1 sd) of the probabilities
    inputs = jnp.full((n, 1), 4)
    tokens = jax.jit(lambda rng: sample(markov_decoder(TABLE), inputs, 1, rng, temperature, top_k,
                                        top_p).tokens)(jax.random.key(7))
    frequencies = np.bincount(np.asarray(tokens[:, 0]), minlength=8) / n
    expected = _expected(np.asarray(TABLE[0, 4], np.float64), temperature, top_k, top_p)
    np.testing.assert_allclose(frequencies, expected, atol=0.015)
    assert np.all(frequencies[expected == 0] == 0)
