"""Scoring: the log-likelihood of given targets under teacher forcing, and rank classification.

One forward pass per batch (no cache): the targets are fed as the model saw them in training and the
log-probabilities of the target tokens are summed. Rows are laid out as the feature converters lay
out one unpacked example, e.g. inputs [7, 8, 1] and targets [3, 9, 1]:

    EncoderDecoder  encoder [7, 8, 1]; decoder inputs [0, 3, 9], targets [3, 9, 1], all scored
    DecoderOnly     decoder inputs [0, 7, 8, 1, 3, 9], targets [7, 8, 1, 3, 9, 1], scored
                    [0, 0, 0, 1, 1, 1], fully visible (prefix LM) [1, 1, 1, 1, 0, 0]

Rank classification (T5X's `score` mode; `Predictor.classify`) scores each of N candidate targets
for an input and picks the most likely.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from t2t.data.vocab import PAD_ID
from t2t.decoding.adapter import BOS_ID

Array = jax.Array


def _shift_right(tokens: Array) -> Array:
    return jnp.concatenate([jnp.full((tokens.shape[0], 1), BOS_ID, tokens.dtype), tokens[:, :-1]],
                           axis=1)


def _place_after(first: Array, first_lengths: Array, second: Array) -> Array:
    """Row-wise first[:len] ⧺ second, right-padded: [n, a], [n], [n, c] -> [n, a + c].

    E.g. first [[7, 8, 1]], lengths [3], second [[3, 1, 0]] -> [[7, 8, 1, 3, 1, 0]].
    """
    width = first.shape[1] + second.shape[1]
    pad = lambda x: jnp.pad(x, ((0, 0), (0, width - x.shape[1])))  # PAD beyond each array
    offset = jnp.arange(width)[None, :] - first_lengths[:, None]  # index into `second`
    from_second = jnp.take_along_axis(pad(second), jnp.clip(offset, 0, width - 1), axis=1)
    return jnp.where(offset >= 0, from_second, pad(first))


def teacher_forced_features(family: str, inputs: Array, targets: Array) -> tuple[dict, Array]:
    """The model features of (inputs [n, m], targets [n, t]) pairs, one per row, both right-padded
    with PAD; and the decoder targets whose log-probabilities are summed, PAD where not scored."""
    if family == "encoder_decoder":
        positions = lambda x: jnp.broadcast_to(jnp.arange(x.shape[1]), x.shape)
        return {
            "encoder_input_tokens": inputs,
            "encoder_segment_ids": (inputs != PAD_ID).astype(jnp.int32),
            "encoder_positions": positions(inputs),
            "decoder_input_tokens": _shift_right(targets),
            "decoder_segment_ids": jnp.ones(targets.shape, jnp.int32),
            "decoder_positions": positions(targets),
        }, targets
    input_lengths = jnp.sum(inputs != PAD_ID, axis=1)
    sequence = _place_after(inputs, input_lengths, targets)
    slots = jnp.broadcast_to(jnp.arange(sequence.shape[1]), sequence.shape)
    is_target = (slots >= input_lengths[:, None]) & (sequence != PAD_ID)
    return {
        "decoder_input_tokens": _shift_right(sequence),
        "decoder_segment_ids": jnp.ones(sequence.shape, jnp.int32),
        "decoder_positions": slots,
        # seqio's prefix LM convention: the inputs plus one position see each other.
        "decoder_causal_attention": (slots <= input_lengths[:, None]).astype(jnp.int32),
    }, jnp.where(is_target, sequence, PAD_ID)


def log_likelihood(model: nn.Module, params: Any, inputs: Array, targets: Array) -> Array:
    """[n] float32: log p(targets | inputs) of each row, summed over its non-PAD target tokens.

    Targets should end with EOS, as in training, so that the score covers stopping there.
    """
    features, scored = teacher_forced_features(model.config.family, inputs, targets)
    logits = model.apply({"params": params}, features)["logits"]
    log_probs = jnp.take_along_axis(jax.nn.log_softmax(logits), scored[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(scored != PAD_ID, log_probs, 0.0), axis=1)


def option_scores(scorer: Any, inputs: Sequence[str], options: Sequence[Sequence[str]]
                  ) -> list[np.ndarray]:
    """log p(option | input) of each input's options, one array per input: one ``scorer.score``
    call (log p(target | input) per pair, as `Predictor.score` gives) over every pair.

    E.g. inputs ['q1', 'q2'] with options [['a', 'b'], ['c']] -> [array([s_q1a, s_q1b]),
    array([s_q2c])].
    """
    pairs = [(x, o) for x, opts in zip(inputs, options, strict=True) for o in opts]
    scores = np.asarray(scorer.score([x for x, _ in pairs], [o for _, o in pairs]), float)
    if len(scores) != len(pairs):
        raise ValueError(f"score returned {len(scores)} scores for {len(pairs)} pairs")
    ends = np.cumsum([len(opts) for opts in options])
    return [scores[end - len(opts):end] for opts, end in zip(options, ends)]


def rank_classify(scorer: Any, inputs: Sequence[str], options: Sequence[Sequence[str]]) -> list[int]:
    """For each input, the index of its most likely option (`option_scores`).

    E.g. inputs ['h.a!p/py ='] with options [['water', 'happy']] -> [1] when
    log p('happy' | input) > log p('water' | input).
    """
    return [int(np.argmax(scores)) for scores in option_scores(scorer, inputs, options)]
