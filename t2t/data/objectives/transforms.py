"""Input and target functions: tokens + noise mask -> what the encoder sees / the decoder predicts.

Each function has the signature of T5's ``preprocessors.*`` inputs_fn / targets_fn, vectorised over B rows:

    fn(tokens [B, L], noise_mask [B, L], vocab_size, rng) -> Ragged (B rows)

Worked examples (T5_REFERENCE §8.7 A), tokens ``[10, 11, 12, 13, 14, 15]``, mask ``[T T F F T F]``,
vocab_size 1000 (sentinels 999, 998, ...):

    noise_token_to_sentinel            [999, 999, 12, 13, 999, 15]      (MASS-style, "m")
    noise_span_to_sentinel             [999, 12, 13, 999, 15]
    nonnoise_span_to_sentinel          [10, 11, 999, 14, 999]
    noise_span_to_unique_sentinel      [999, 12, 13, 998, 15]           ("u" inputs)
    nonnoise_span_to_unique_sentinel   [10, 11, 999, 14, 998]           ("u" targets)
    drop_noise_tokens                  [12, 13, 15]                     ("d" inputs)
    drop_nonnoise_tokens               [10, 11, 14]                     ("d" targets)
    noise_token_to_random_token        [r, r, 12, 13, r, 15], r uniform in [3, 1000)      ("r")
    noise_token_to_random_token_or_sentinel(random_prob=0.1)  each noise token: r w.p. 0.1, else 999
    permute_noise_tokens               the noise tokens 10, 11, 14 shuffled among positions 0, 1, 4

Sentinels follow T5: ``<extra_id_i>`` = ``vocab_size - 1 - i``; the k-th (1-based) unique-sentinel span
becomes ``vocab_size - k``.
"""

from __future__ import annotations

from typing import Protocol

import gin
import numpy as np

from t2t.data.objectives.ragged import Ragged

# T5's num_reserved_tokens: PAD, EOS and UNK are never drawn as random tokens.
NUM_RESERVED_TOKENS = 3


class InputsTargetsFn(Protocol):
    def __call__(self, tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                 rng: np.random.Generator | None = None) -> Ragged: ...


def _run_starts(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, continuing): True at the first token of each run of True in ``mask``, and at the others."""
    previous = np.zeros_like(mask)
    previous[:, 1:] = mask[:, :-1]
    return mask & ~previous, mask & previous


def _span_to_unique_sentinel(tokens: np.ndarray, mask: np.ndarray, vocab_size: int) -> Ragged:
    """Replace each run of True in ``mask`` by one sentinel; the k-th run becomes vocab_size - k."""
    first, continuing = _run_starts(mask)
    sentinels = vocab_size - np.cumsum(first, axis=1, dtype=tokens.dtype)
    return Ragged.from_dense(np.where(first, sentinels, tokens), ~continuing)


def _span_to_sentinel(tokens: np.ndarray, mask: np.ndarray, vocab_size: int) -> Ragged:
    """Replace each run of True in ``mask`` by the one sentinel vocab_size - 1."""
    first, continuing = _run_starts(mask)
    return Ragged.from_dense(np.where(first, np.asarray(vocab_size - 1, tokens.dtype), tokens), ~continuing)


@gin.configurable
def noise_span_to_unique_sentinel(tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                                  rng: np.random.Generator | None = None) -> Ragged:
    """Each run of noise becomes one sentinel: the k-th run (1-based) -> ``vocab_size - k``.

    >>> tokens = np.array([[10, 11, 12, 13, 14, 15]])
    >>> mask = np.array([[True, True, False, False, True, False]])
    >>> noise_span_to_unique_sentinel(tokens, mask, 1000).to_list()
    [[999, 12, 13, 998, 15]]
    """
    return _span_to_unique_sentinel(tokens, noise_mask, vocab_size)


@gin.configurable
def nonnoise_span_to_unique_sentinel(tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                                     rng: np.random.Generator | None = None) -> Ragged:
    """Each run of non-noise becomes one sentinel, counting runs independently of the inputs.

    Input sentinel k marks the k-th noise run, target sentinel k the k-th non-noise run; they align
    only when the segment starts with non-noise (always true for ``random_spans_noise_mask``). With the
    mask below (starts with noise) they do not:

    >>> tokens = np.array([[10, 11, 12, 13, 14, 15]])
    >>> mask = np.array([[True, True, False, False, True, False]])
    >>> nonnoise_span_to_unique_sentinel(tokens, mask, 1000).to_list()
    [[10, 11, 999, 14, 998]]
    """
    return _span_to_unique_sentinel(tokens, ~noise_mask, vocab_size)


@gin.configurable
def noise_span_to_sentinel(tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                           rng: np.random.Generator | None = None) -> Ragged:
    """Each run of noise becomes ``vocab_size - 1``: TTFFTF -> [999, 12, 13, 999, 15]."""
    return _span_to_sentinel(tokens, noise_mask, vocab_size)


@gin.configurable
def nonnoise_span_to_sentinel(tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                              rng: np.random.Generator | None = None) -> Ragged:
    """Each run of non-noise becomes ``vocab_size - 1``: TTFFTF -> [10, 11, 999, 14, 999]."""
    return _span_to_sentinel(tokens, ~noise_mask, vocab_size)


@gin.configurable
def drop_noise_tokens(tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                      rng: np.random.Generator | None = None) -> Ragged:
    """Keep only the non-noise tokens: [10, 11, 12, 13, 14, 15] with mask TTFFTF -> [12, 13, 15]."""
    return Ragged.from_dense(tokens, ~noise_mask)


@gin.configurable
def drop_nonnoise_tokens(tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                         rng: np.random.Generator | None = None) -> Ragged:
    """Keep only the noise tokens: [10, 11, 12, 13, 14, 15] with mask TTFFTF -> [10, 11, 14]."""
    return Ragged.from_dense(tokens, noise_mask)


@gin.configurable
def noise_token_to_sentinel(tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                            rng: np.random.Generator | None = None) -> Ragged:
    """Every noise token becomes ``vocab_size - 1`` (MASS-style); the length is preserved.

    [10, 11, 12, 13, 14, 15] with mask TTFFTF and vocab 1000 -> [999, 999, 12, 13, 999, 15].
    """
    return Ragged.from_dense(np.where(noise_mask, np.asarray(vocab_size - 1, tokens.dtype), tokens))


@gin.configurable
def noise_token_to_random_token(tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                                rng: np.random.Generator | None = None) -> Ragged:
    """Every noise token becomes a uniform id in [3, vocab_size) (T5; sentinel ids can be drawn too).

    [10, 11, 12, 13, 14, 15] with mask TTFFTF -> [r0, r1, 12, 13, r4, 15].
    """
    random = rng.integers(NUM_RESERVED_TOKENS, vocab_size, size=tokens.shape, dtype=tokens.dtype)
    return Ragged.from_dense(np.where(noise_mask, random, tokens))


@gin.configurable
def noise_token_to_random_token_or_sentinel(tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                                            rng: np.random.Generator | None = None,
                                            random_prob: float = 0.1) -> Ragged:
    """T5's "BERT-style": each noise token -> a random id in [3, vocab_size) w.p. ``random_prob``, else
    ``vocab_size - 1``. There is no keep-the-original branch (unlike BERT's 80/10/10).

    Table 3 example: "Thank you <M> <M> me to your party apple week ." (noise "for inviting" -> two
    sentinels, "last" -> the random token "apple").
    """
    use_random = rng.random(tokens.shape) < random_prob
    random = rng.integers(NUM_RESERVED_TOKENS, vocab_size, size=tokens.shape, dtype=tokens.dtype)
    replacement = np.where(use_random, random, np.asarray(vocab_size - 1, tokens.dtype))
    return Ragged.from_dense(np.where(noise_mask, replacement, tokens))


@gin.configurable
def permute_noise_tokens(tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                         rng: np.random.Generator | None = None) -> Ragged:
    """Shuffle the noise tokens among the noise positions of their row; the others stay in place.

    With an all-True mask (``all_permute``, deshuffling) the whole row is a random permutation:
    "party me for your to . last you inviting week Thank" (T5 Table 3 shows the same idea).
    """
    rows = np.nonzero(noise_mask)[0]  # row of each noise token, row-major: grouped by row
    order = np.lexsort((rng.random(rows.shape[0]), rows))  # within each row, a random order
    out = tokens.copy()
    out[noise_mask] = tokens[noise_mask][order]
    return Ragged.from_dense(out)
