"""Beam search with T5's length penalty (Wu et al. 2016, "GNMT"; T5 §3.7 uses 4 beams, alpha 0.6).

A finished sequence of `length` tokens (EOS included) and log-probability `log_p` scores

    log_p / length_penalty(length),   length_penalty(length) = ((5 + length) / 6) ** alpha

which, for alpha > 0, favours longer outputs than the raw log-probability does (alpha = 0: none).

Each step extends every live beam by every token and keeps the 2k best extensions by log-probability
(so that k of them can go on even if k end at once). The k best of those that do not end in EOS
become the next live beams. Those that end in EOS and rank among the k best extensions compete, by
score, for the k "finished" slots; ranking within k (as fairseq does; T5X admits EOS from all 2k)
makes one beam exactly greedy decoding when alpha = 0. The search stops at
`max_length` tokens, or earlier when no live beam can still beat the worst finished one: a live
beam's log-probability only falls, and its best possible score is that divided by the largest
penalty, length_penalty(max_length). A row that finishes fewer than k beams fills its remaining
outputs with its best live beams, scored as if they ended at `max_length`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from t2t.data.vocab import EOS_ID, PAD_ID
from t2t.decoding.adapter import Decoder

Array = jax.Array


def length_penalty(length: Array | int, alpha: float) -> Array:
    """((5 + length) / 6) ** alpha: 1 for one token, 2 for seven tokens at alpha = 1."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


class Beams(NamedTuple):
    """The k outputs of each row: finished ones best first, then unfinished ones best first."""

    tokens: Array  # [b, k, max_length] int32: tokens up to EOS, then PAD
    scores: Array  # [b, k] float32: log-probability / length_penalty(length); -inf: no sequence


class _Search(NamedTuple):
    step: Array  # tokens emitted so far
    logits: Array  # [b * k, v] next-token logits of the live beams
    state: dict  # the decoder's state, b * k rows (beam j of row i is row i * k + j)
    live_tokens: Array  # [b, k, max_length]
    live_log_probs: Array  # [b, k]; -inf marks an empty beam
    done_tokens: Array  # [b, k, max_length]
    done_scores: Array  # [b, k]; -inf marks an empty slot


def _take(x: Array, index: Array) -> Array:
    """x [b, k, ...] at index [b, j] along axis 1 -> [b, j, ...]."""
    return jnp.take_along_axis(x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=1)


def beam_search(decoder: Decoder, inputs: Array, max_length: int, beam_size: int = 4,
                alpha: float = 0.6) -> Beams:
    """The `beam_size` best-scoring outputs of each row of `inputs` [b, m]."""
    if beam_size < 1 or alpha < 0:
        raise ValueError(f"Beam search needs beam_size >= 1 and alpha >= 0 (the early stop assumes "
                         f"a penalty that grows with length); got beam_size={beam_size}, "
                         f"alpha={alpha}.")
    b, k = inputs.shape[0], beam_size
    logits, state = decoder.start(inputs)
    rows = jnp.repeat(jnp.arange(b), k)  # every beam of a row starts from the row's state
    empty = jnp.full((b, k, max_length), PAD_ID, jnp.int32)
    # Only beam 0 is live at first, so the first step does not pick k copies of one token.
    first = jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf)
    search = _Search(jnp.array(0), logits[rows], decoder.gather(state, rows), empty,
                     jnp.broadcast_to(first, (b, k)), empty, jnp.full((b, k), -jnp.inf))
    best_penalty = length_penalty(max_length, alpha)

    def can_improve(s: _Search) -> Array:
        best_live = s.live_log_probs[:, 0] / best_penalty
        return (s.step < max_length) & jnp.any(best_live > s.done_scores[:, -1])

    def extend(s: _Search) -> _Search:
        vocab = s.logits.shape[-1]
        log_probs = (jax.nn.log_softmax(s.logits).reshape(b, k, vocab)
                     + s.live_log_probs[:, :, None])
        top_log_probs, top = jax.lax.top_k(log_probs.reshape(b, k * vocab), 2 * k)
        parents, tokens = top // vocab, top % vocab  # [b, 2k]
        candidates = _take(s.live_tokens, parents).at[:, :, s.step].set(tokens)
        ended = tokens == EOS_ID
        finishes = ended & (jnp.arange(2 * k) < k)

        live_log_probs, live = jax.lax.top_k(jnp.where(ended, -jnp.inf, top_log_probs), k)
        scores = jnp.where(finishes, top_log_probs / length_penalty(s.step + 1, alpha), -jnp.inf)
        done_scores, done = jax.lax.top_k(jnp.concatenate([s.done_scores, scores], axis=1), k)
        done_tokens = _take(jnp.concatenate([s.done_tokens, candidates], axis=1), done)

        beam_rows = (jnp.arange(b)[:, None] * k + _take(parents, live)).reshape(-1)
        logits, state = decoder.step(_take(tokens, live).reshape(-1),
                                     decoder.gather(s.state, beam_rows))
        return _Search(s.step + 1, logits, state, _take(candidates, live), live_log_probs,
                       done_tokens, done_scores)

    s = jax.lax.while_loop(can_improve, extend, search)
    # Output j of a row with f finished beams is finished beam j if j < f, else live beam j - f.
    finished = jnp.sum(jnp.isfinite(s.done_scores), axis=1, keepdims=True)  # [b, 1]
    from_live = jnp.arange(k) >= finished
    live = jnp.clip(jnp.arange(k) - finished, 0, k - 1)
    tokens = jnp.where(from_live[:, :, None], _take(s.live_tokens, live), s.done_tokens)
    scores = jnp.where(from_live, _take(s.live_log_probs, live) / best_penalty, s.done_scores)
    return Beams(tokens, scores)
