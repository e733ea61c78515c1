"""Greedy decoding, beam search, sampling and scoring of decoder-only models, causal and prefix LM,
checked against one uncached forward pass of the model.

The reference (`reference_log_probs`) lays each row out by hand as training does, BOS ⧺ prompt ⧺
output with a prefix LM's BOS ⧺ prompt fully visible, independently of t2t.decoding: every token a
search emits, and every score it reports, must follow from that pass.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from decoding_fakes import INPUTS, emitted, penalised_scores, tiny_model

from t2t.data.vocab import EOS_ID, PAD_ID, default_vocabulary
from t2t.decoding.adapter import make_decoder
from t2t.decoding.beam_search import beam_search
from t2t.decoding.greedy import greedy
from t2t.decoding.predictor import Predictor
from t2t.decoding.sampling import sample
from t2t.decoding.scoring import option_scores

VOCAB, MAX_LENGTH, ALPHA, BEAMS = 16, 8, 0.6, 4
# Weights whose outputs depend on the prompt, without near-ties in greedy's choices (seed 0's
# causal LM starts every output with EOS; seed 0's prefix LM has a 2e-6 tie for first place).
SEEDS = {"causal_lm": 3, "prefix_lm": 5}
# Sampling checks draw for each of INPUTS' rows 4 times (rows draw independently).
SAMPLED = jnp.tile(INPUTS, (4, 1))
TOP_K, TOP_P = 3, 0.6

pytestmark = pytest.mark.parametrize("kind", list(SEEDS))


def _model(kind: str, vocab: int = VOCAB):
    return tiny_model(kind, vocab=vocab, seed=SEEDS[kind])


@functools.cache
def _forward(kind: str, vocab: int):
    model, _ = _model(kind, vocab)
    return jax.jit(lambda p, batch: jax.nn.log_softmax(model.apply({"params": p}, batch)["logits"]))


def reference_log_probs(kind: str, prompts, outputs, vocab: int = VOCAB) -> np.ndarray:
    """[n, t, v]: each output position's next-token log-probabilities given its row's prompt and
    the outputs before it (prompts [n, m] and outputs [n, t], PAD-padded on the right), from one
    forward pass without a cache over BOS ⧺ prompt ⧺ outputs. BOS ⧺ prompt is a prefix LM's
    fully visible prefix; whatever follows a row's EOS is fed too, but nothing before it sees it."""
    prompts, outputs = np.asarray(prompts), np.asarray(outputs)
    (n, t), lengths = outputs.shape, np.sum(prompts != PAD_ID, axis=1)
    width = 1 + prompts.shape[1] + t
    tokens = np.full((n, width), PAD_ID, np.int32)  # slot 0: BOS = PAD
    for row, length in enumerate(lengths):
        tokens[row, 1:1 + length + t] = np.concatenate([prompts[row, :length], outputs[row]])
    slots = np.broadcast_to(np.arange(width), (n, width))
    batch = {"decoder_input_tokens": tokens, "decoder_positions": slots,
             "decoder_segment_ids": np.ones_like(tokens),
             "decoder_causal_attention": (slots <= lengths[:, None]).astype(np.int32)}
    log_probs = np.asarray(_forward(kind, vocab)(_model(kind, vocab)[1], batch))
    # Slot length + i holds output i - 1 (the prompt's last token for i = 0) and predicts output i.
    return np.take_along_axis(log_probs, (lengths[:, None] + np.arange(t))[..., None], axis=1)


def _chosen(log_probs: np.ndarray, tokens) -> np.ndarray:
    """[n, t] log-probabilities of `tokens` [n, t] under `log_probs` [n, t, v]."""
    return np.take_along_axis(log_probs, np.asarray(tokens)[..., None], axis=-1)[..., 0]


@functools.cache
def _searches(kind: str) -> dict:
    """Greedy decoding, one beam without length penalty and BEAMS beams with ALPHA, of INPUTS."""
    model, params = _model(kind)

    @jax.jit
    def run(params):
        decoder = make_decoder(model, params, MAX_LENGTH)
        return {"greedy": greedy(decoder, INPUTS, MAX_LENGTH),
                "one_beam": beam_search(decoder, INPUTS, MAX_LENGTH, beam_size=1, alpha=0.0),
                "beams": beam_search(decoder, INPUTS, MAX_LENGTH, beam_size=BEAMS, alpha=ALPHA)}

    return jax.device_get(run(params))


@functools.cache
def _sampler(kind: str):
    """seed -> SAMPLED's samples: near-zero temperature, top_k=1, TOP_K and TOP_P (jitted)."""
    model, params = _model(kind)

    @jax.jit
    def run(params, rng):
        decoder = make_decoder(model, params, MAX_LENGTH)
        draw = functools.partial(sample, decoder, SAMPLED, MAX_LENGTH, rng)
        return {"cold": draw(temperature=1e-4), "top_1": draw(top_k=1),
                "top_k": draw(top_k=TOP_K), "top_p": draw(top_p=TOP_P)}

    return lambda seed: jax.device_get(run(params, jax.random.key(seed)))


def test_greedy_continues_each_prompt_with_the_full_forward_argmax(kind):
    """Greedy output starts right after each row's prompt (rows of different lengths): each token
    up to EOS is the argmax of the reference distribution at its position, and the reported
    log-likelihood is the reference's sum over those tokens."""
    out = _searches(kind)["greedy"]
    log_probs = reference_log_probs(kind, INPUTS, out.tokens)
    argmax = np.where(emitted(out.tokens), np.argmax(log_probs, axis=-1), PAD_ID)
    np.testing.assert_array_equal(argmax, out.tokens)
    np.testing.assert_allclose(out.log_likelihood,
                               penalised_scores(_chosen(log_probs, out.tokens), out.tokens, 0.0),
                               rtol=1e-5)
    assert len({tuple(row) for row in out.tokens}) > 1  # the output depends on the prompt


def test_one_beam_without_length_penalty_is_greedy(kind):
    """beam_size=1, alpha=0: greedy's tokens, scored with greedy's log-likelihood."""
    searches = _searches(kind)
    np.testing.assert_array_equal(searches["one_beam"].tokens[:, 0], searches["greedy"].tokens)
    np.testing.assert_allclose(searches["one_beam"].scores[:, 0],
                               searches["greedy"].log_likelihood, rtol=1e-5)


def test_beam_scores_are_reference_rescorings_and_beat_greedy(kind):
    """Every returned beam's score is its reference log-likelihood over T5's length penalty
    (`penalised_scores`); the beams of a row differ; and each row's best beam scores at least
    greedy's output under the same rule (strictly more on some row)."""
    searches = _searches(kind)
    tokens = searches["beams"].tokens.reshape(-1, MAX_LENGTH)
    log_probs = reference_log_probs(kind, np.repeat(INPUTS, BEAMS, axis=0), tokens)
    np.testing.assert_allclose(searches["beams"].scores.reshape(-1),
                               penalised_scores(_chosen(log_probs, tokens), tokens, ALPHA),
                               rtol=1e-4)
    assert all(len({tuple(beam) for beam in row}) == BEAMS for row in searches["beams"].tokens)
    greedy_tokens = searches["greedy"].tokens
    greedy_scores = penalised_scores(
        _chosen(reference_log_probs(kind, INPUTS, greedy_tokens), greedy_tokens), greedy_tokens,
        ALPHA)
    best = searches["beams"].scores[:, 0]
    assert np.all(best >= greedy_scores - 1e-5) and np.any(best > greedy_scores + 1e-2)


def test_only_a_prefix_lm_reads_its_prompt_bidirectionally(kind):
    """The first output token's logits after the prompt [5, 6, 7, 3, 1], prefilled in one call,
    against the same prompt prefilled up to [5, 6, 7] and fed on one token at a time: a causal
    LM's earlier positions never see later ones, so both agree; a prefix LM's prompt positions
    see each other, so feeding the prompt's end causally changes the distribution."""
    model, params = _model(kind)
    prompt = INPUTS[:1, :5]

    @jax.jit
    def run(params):
        decoder = make_decoder(model, params, MAX_LENGTH)
        prefilled, _ = decoder.start(prompt)
        stepped, state = decoder.start(prompt[:, :3])
        for token in prompt[0, 3:]:
            stepped, state = decoder.step(jnp.full(1, token), state)
        return jax.nn.log_softmax(prefilled), jax.nn.log_softmax(stepped)

    prefilled, stepped = run(params)
    np.testing.assert_allclose(prefilled, reference_log_probs(kind, prompt, [[EOS_ID]])[:, 0],
                               atol=1e-5)
    if kind == "causal_lm":
        np.testing.assert_allclose(stepped, prefilled, atol=1e-5)
    else:
        assert np.max(np.abs(stepped - prefilled)) > 0.1


def test_cold_and_top_1_sampling_are_greedy(kind):
    """Temperature -> 0 (1e-4) and top_k=1 sample greedy's tokens, and report its likelihood."""
    samples = _sampler(kind)(0)
    greedy_out = _searches(kind)["greedy"]
    # No near-tie for a 1e-4 temperature's noise to break: greedy's choices lead by > 1e-3.
    top_two = np.sort(reference_log_probs(kind, INPUTS, greedy_out.tokens), axis=-1)[..., -2:]
    assert np.min(np.diff(top_two, axis=-1)[..., 0][emitted(greedy_out.tokens)]) > 1e-3
    repeats = (len(SAMPLED) // len(INPUTS), 1)  # SAMPLED is INPUTS, repeated
    for name in ["cold", "top_1"]:
        np.testing.assert_array_equal(samples[name].tokens, np.tile(greedy_out.tokens, repeats))
        np.testing.assert_allclose(samples[name].log_likelihood.reshape(repeats[0], -1),
                                   np.tile(greedy_out.log_likelihood, repeats), rtol=1e-5)


def _likelier(log_probs: np.ndarray, tokens) -> np.ndarray:
    """[n, t, v] bool: the tokens that `log_probs` [n, t, v] finds strictly likelier than each of
    `tokens` [n, t]."""
    return log_probs > _chosen(log_probs, tokens)[..., None]


def test_top_k_sampling_draws_only_the_k_likeliest_tokens(kind):
    """Every emitted token is among the TOP_K likeliest of the reference distribution at its
    position (and not always the likeliest: the check is not vacuous)."""
    tokens = _sampler(kind)(0)["top_k"].tokens
    likelier = _likelier(reference_log_probs(kind, SAMPLED, tokens), tokens)
    ranks = np.sum(likelier, axis=-1)[emitted(tokens)]
    assert np.all(ranks < TOP_K) and np.any(ranks > 0), ranks


def test_top_p_sampling_draws_only_from_the_nucleus(kind):
    """Every emitted token belongs to the smallest set of likeliest tokens whose reference mass
    reaches TOP_P: the tokens likelier than it hold less than TOP_P."""
    tokens = _sampler(kind)(0)["top_p"].tokens
    log_probs = reference_log_probs(kind, SAMPLED, tokens)
    likelier = _likelier(log_probs, tokens)
    mass_before = np.sum(np.where(likelier, np.exp(log_probs), 0.0), axis=-1)[emitted(tokens)]
    assert np.all(mass_before < TOP_P) and np.any(mass_before > 0), mass_before


def test_samples_repeat_with_the_seed_and_differ_across_seeds(kind):
    """Two runs with seed 0 draw the same tokens; seed 1 draws others."""
    draw = _sampler(kind)
    first, again, other = (draw(seed)["top_k"].tokens for seed in (0, 0, 1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_scores_and_rank_classification_are_reference_log_likelihoods(kind):
    """`Predictor.score` of (input, option) texts is the reference sum of the option's token
    log-probabilities, EOS included, after the input (with EOS for a prefix LM's task, continued
    as is by a plain LM); `classify` picks each input's option of highest reference score."""
    vocabulary = default_vocabulary()
    model, params = _model(kind, vocabulary.padded_vocab_size)
    with_eos = kind == "prefix_lm"
    predictor = Predictor(model.config, params, vocabulary, inputs_end_with_eos=with_eos,
                          batch_size=8)
    inputs = ["Is the sky blue?", "Two plus two is"]
    options = [["yes", "no", "it is grey"], ["four", "five"]]
    scores = np.concatenate(option_scores(predictor, inputs, options))

    pairs = [(x, o) for x, opts in zip(inputs, options) for o in opts]
    pad = lambda rows: np.array([np.pad(r, (0, 12 - len(r))) for r in rows], np.int32)
    prompts = pad([np.append(vocabulary.encode(x), [EOS_ID] * with_eos) for x, _ in pairs])
    targets = pad([np.append(vocabulary.encode(o), EOS_ID) for _, o in pairs])
    log_probs = _chosen(reference_log_probs(kind, prompts, targets, vocabulary.padded_vocab_size),
                        targets)
    expected = np.sum(np.where(targets != PAD_ID, log_probs, 0.0), axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert predictor.classify(inputs, options) == [int(np.argmax(expected[:3])),
                                                   int(np.argmax(expected[3:]))]
    assert np.min(np.abs(np.diff(np.sort(expected)))) > 1e-3  # no near-tie decides the classes
