"""Query ⧺ response rows: per-token log-probabilities agree with decoding's and scoring's own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_fakes import QUERIES, tiny_policy
from t2t.decoding.adapter import make_decoder
from t2t.decoding.sampling import sample
from t2t.decoding.scoring import log_likelihood
from t2t.rlhf.sequences import query_response, response_mask, token_log_probs


def test_layout_of_the_module_docstring_example():
    batch = query_response(jnp.array([[7, 8, 1]]), jnp.array([[3, 9, 1, 0]]))
    assert batch.features["decoder_input_tokens"].tolist() == [[0, 7, 8, 1, 3, 9, 1, 0]]
    assert batch.slots.tolist() == [[3, 4, 5, 6]]
    assert batch.response_mask.tolist() == [[1, 1, 1, 0]]
    assert batch.last.tolist() == [6]
    assert response_mask(jnp.array([[3, 0, 9, 1]])).tolist() == [[1, 0, 0, 0]]


def test_log_probs_of_sampled_responses_match_the_kv_cache_sampler_and_scoring():
    """The rollout's teacher-forced log π(a_t) must be the distribution the tokens were drawn from
    (the cached decoder's), and sum to scoring's log-likelihood of the same pair."""
    model, params = tiny_policy()

    @jax.jit
    def run(params, rng):
        generated = sample(make_decoder(model, params, 6), QUERIES, 6, rng)
        batch = query_response(QUERIES, generated.tokens)
        logits = model.apply({"params": params}, batch.features)["logits"]
        return generated, token_log_probs(logits, batch, generated.tokens)

    generated, log_probs = run(params, jax.random.key(1))
    np.testing.assert_allclose(log_probs.sum(axis=1), generated.log_likelihood, rtol=1e-4,
                               atol=1e-4)
    # Scoring appends nothing: give it the responses as they are (EOS-terminated or cut off).
    scored = log_likelihood(model, params, QUERIES, generated.tokens)
    ended = np.asarray((generated.tokens == 1).any(axis=1))
    assert ended.any()
    np.testing.assert_allclose(np.asarray(log_probs.sum(axis=1))[ended],
                               np.asarray(scored)[ended], rtol=1e-4, atol=1e-4)
    assert float(jnp.abs(log_probs * (1 - query_response(QUERIES, generated.tokens)
                                      .response_mask)).max()) == pytest.approx(0.0)
