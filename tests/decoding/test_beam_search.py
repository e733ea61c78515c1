"""Beam search: T5's length penalty, exhaustive correctness on a fake model, and consistency with
greedy decoding and the model's own scores."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from decoding_fakes import INPUTS, markov_decoder, markov_table, penalised_scores, tiny_model

from t2t.data.vocab import EOS_ID, PAD_ID
from t2t.decoding.adapter import make_decoder
from t2t.decoding.beam_search import beam_search, length_penalty
from t2t.decoding.greedy import greedy
from t2t.decoding.scoring import teacher_forced_features


def _lp(length, alpha):  # GNMT / T5: (5 + |Y|)^alpha / (5 + 1)^alpha
    return (5 + length) ** alpha / 6 ** alpha


def test_length_penalty_is_gnmt_formula():
    assert float(length_penalty(1, 0.6)) == pytest.approx(1.0)
    assert float(length_penalty(7, 1.0)) == pytest.approx(2.0)
    assert float(length_penalty(19, 0.5)) == pytest.approx(2.0)
    assert float(length_penalty(40, 0.0)) == pytest.approx(1.0)
    np.testing.assert_allclose(length_penalty(jnp.arange(1, 50), 0.6),
                               _lp(np.arange(1, 50), 0.6), rtol=1e-6)


def _all_sequences(table, first_token, max_length, alpha):
    """Brute force: (finished, unfinished) sequences, each a best-first list of (score, tokens).

    Finished ones end with their first EOS within max_length; unfinished ones have max_length
    tokens and no EOS, and are penalised as of max_length."""
    log_probs = np.asarray(jax.nn.log_softmax(table))
    others = [t for t in range(table.shape[-1]) if t != EOS_ID]
    finished = [body + (EOS_ID,) for length in range(max_length)
                for body in itertools.product(others, repeat=length)]
    unfinished = list(itertools.product(others, repeat=max_length))

    def score(sequence):
        previous, total = first_token, 0.0
        for step, token in enumerate(sequence):
            total += log_probs[step, previous, token]
            previous = token
        return total / _lp(len(sequence), alpha)

    rank = lambda sequences: sorted(((score(s), s) for s in sequences), reverse=True)
    return rank(finished), rank(unfinished)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_search_ranks_every_sequence_like_brute_force(alpha):
    # 4 tokens, 3 steps: 1 + 3 + 9 = 13 sequences end in EOS and 27 run out of length, from at most
    # 4 * 9 = 36 extensions per step. With 64 beams nothing is pruned: the outputs must be exactly
    # the brute-force ranking of the finished sequences, then of the unfinished ones.
    table = markov_table(3, 4, seed=1)
    inputs = jnp.array([[2], [3]])
    beams = jax.jit(lambda: beam_search(markov_decoder(jnp.asarray(table)), inputs, 3,
                                        beam_size=64, alpha=alpha))()
    for row, first in enumerate([2, 3]):
        finished, unfinished = _all_sequences(table, first, 3, alpha)
        expected = finished + unfinished
        assert (len(finished), len(expected)) == (13, 40)
        np.testing.assert_allclose(beams.scores[row, :40], [s for s, _ in expected], rtol=1e-5)
        for (_, sequence), tokens in zip(expected, np.asarray(beams.tokens[row])):
            np.testing.assert_array_equal(tokens, list(sequence) + [PAD_ID] * (3 - len(sequence)))
        assert np.all(np.isneginf(beams.scores[row, 40:]))  # no other sequence exists


def test_beam_of_one_without_length_penalty_is_greedy():
    # EOS is made likely enough that greedy finishes every row (a beam search that finishes
    # nothing returns its live beam, which is greedy's path too).
    table = markov_table(8, 6, seed=3, scale=1.0)
    table[..., EOS_ID] += 0.3
    decoder = markov_decoder(jnp.asarray(table))
    inputs = jnp.arange(6)[:, None]
    out, beams = jax.jit(lambda: (greedy(decoder, inputs, 8),
                                  beam_search(decoder, inputs, 8, beam_size=1, alpha=0.0)))()
    lengths = np.argmax(np.asarray(out.tokens) == EOS_ID, axis=1) + 1
    assert np.all(np.any(out.tokens == EOS_ID, axis=1)) and len(set(lengths)) > 2
    np.testing.assert_array_equal(beams.tokens[:, 0], out.tokens)
    np.testing.assert_allclose(beams.scores[:, 0], out.log_likelihood, rtol=1e-5)


def test_beam_search_beats_greedy_under_the_length_penalised_score():
    table = markov_table(8, 6, seed=3, scale=1.0)
    table[..., EOS_ID] += 0.3  # greedy finishes every row, after 2 to 7 tokens
    decoder = markov_decoder(jnp.asarray(table))
    inputs = jnp.arange(6)[:, None]
    out, beams = jax.jit(lambda: (greedy(decoder, inputs, 8),
                                  beam_search(decoder, inputs, 8, beam_size=4, alpha=0.6)))()
    lengths = np.argmax(np.asarray(out.tokens) == EOS_ID, axis=1) + 1
    assert np.all(np.any(out.tokens == EOS_ID, axis=1))
    greedy_scores = np.asarray(out.log_likelihood) / _lp(lengths, 0.6)
    assert np.all(beams.scores[:, 0] >= greedy_scores - 1e-6)
    assert np.any(beams.scores[:, 0] > greedy_scores + 1e-3)  # and sometimes strictly better


def test_beam_search_on_a_scanned_model_scores_each_beam_with_the_model():
    # Scanned layers keep the cache's batch on axis 1: reordering beams must follow it, or the
    # beams' scores stop matching their tokens.
    model, params = tiny_model("enc_dec", scan_layers=True, vocab=8)
    max_length, k = 6, 4
    beams = jax.jit(lambda p: beam_search(make_decoder(model, p, max_length), INPUTS, max_length,
                                          beam_size=k, alpha=0.6))(params)
    tokens = np.asarray(beams.tokens).reshape(-1, max_length)
    features, _ = teacher_forced_features("encoder_decoder", jnp.repeat(INPUTS, k, axis=0), tokens)
    log_probs = jax.jit(lambda p, f: jax.nn.log_softmax(model.apply({"params": p}, f)["logits"]))(
        params, features)
    log_probs = np.take_along_axis(np.asarray(log_probs), tokens[..., None], -1)[..., 0]
    np.testing.assert_allclose(np.asarray(beams.scores).reshape(-1),
                               penalised_scores(log_probs, tokens, 0.6), rtol=1e-4)
    assert len({tuple(t) for t in tokens}) == len(tokens)  # k different beams per row
