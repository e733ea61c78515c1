"""Noise masks: which tokens of each segment an objective corrupts (T5 ``preprocessors.*_noise_mask``).

Every mask function has the signature

    mask_fn(length, noise_density, rng=..., num_examples=B) -> bool [B, length]

and draws B independent masks at once from the ``np.random.Generator``. ``Denoise`` composes a mask with
input/target functions (``transforms.py``). On the Table 3 sentence (11 tokens)

    Thank you for inviting me to your party last week .

an i.i.d. 15% mask might be ``[F F T T F F F F T F F]`` ("for inviting" and "last"), a random-spans mask
(15%, mean span 3) always has 2 noise tokens in 1 span, a random-prefix mask is True on the first k tokens
with k uniform in [1, 10], and a regular mask repeats ``span`` noise tokens every ``round(span / density)``.
"""

from __future__ import annotations

from typing import Protocol

import gin
import numpy as np


class NoiseMaskFn(Protocol):
    def __call__(self, length: int, noise_density: float, *, rng: np.random.Generator,
                 num_examples: int) -> np.ndarray: ...


def _need_rng(rng, name):
    if rng is None:
        raise ValueError(f"{name} needs an rng (np.random.Generator).")


@gin.configurable
def iid_noise_mask(length: int, noise_density: float, rng: np.random.Generator | None = None,
                   num_examples: int = 1) -> np.ndarray:
    """Each token is noise independently with probability ``noise_density`` (T5's ``iid_noise_mask``).

    The T5 baseline's mask (Tables 4-6). The number of noise tokens is Binomial(length, density), so the
    lengths of the examples built from it are random; see ``Denoise`` for how they are kept in bounds.

    Returns:
      bool [num_examples, length].
    """
    _need_rng(rng, "iid_noise_mask")
    return rng.random((num_examples, length)) < noise_density


@gin.configurable
def random_prefix_noise_mask(length: int, noise_density: float, rng: np.random.Generator | None = None,
                             num_examples: int = 1) -> np.ndarray:
    """True on a random prefix of k tokens (T5's ``random_prefix_noise_mask``, used by prefix LM).

    With ``max_in = length - 1`` and ``min_in = min(max_in, max(1, round((1 - 2 * density) * max_in)))``,
    k is uniform in [min_in, max_in]. At density 0.5 (prefix LM) that is [1, length - 1]: e.g. for the
    11-token Table 3 sentence and k = 4 the mask is ``[T T T T F F F F F F F]`` ("Thank you for inviting").

    Returns:
      bool [num_examples, length].
    """
    _need_rng(rng, "random_prefix_noise_mask")
    if noise_density > 0.5:
        raise ValueError(f"random_prefix_noise_mask needs noise_density <= 0.5, got {noise_density}.")
    max_input = length - 1
    min_input = min(max_input, max(1, int(np.rint((1 - 2 * noise_density) * max_input))))
    prefix = rng.integers(min_input, max_input + 1, size=(num_examples, 1)) if max_input > 0 \
        else np.zeros((num_examples, 1), np.int64)
    return np.arange(length) < prefix


@gin.configurable
def regular_noise_mask(length: int, noise_density: float, rng: np.random.Generator | None = None,
                       num_examples: int = 1, min_span_length: int = 1, max_span_length: int = 5) -> np.ndarray:
    """Periodic noise spans (T5's ``regular_noise_mask``).

    Per example: span length s uniform in [min_span_length, max_span_length], period p = round(s / density),
    offset o uniform in [0, p); position i is noise iff ``(i + o) % p < s``. E.g. s = 2, density 0.5
    (p = 4), o = 1, 11 tokens: ``[T F F T T F F T T F F]``.

    Returns:
      bool [num_examples, length].
    """
    _need_rng(rng, "regular_noise_mask")
    span = rng.integers(min_span_length, max_span_length + 1, size=(num_examples, 1))
    period = np.maximum(np.rint(span / noise_density).astype(np.int64), 1)
    offset = rng.integers(0, period)
    return (np.arange(length) + offset) % period < span


def span_counts(length, noise_density: float, mean_noise_span_length: float):
    """(padded length, #noise tokens, #noise spans) of ``random_spans_noise_mask``; works on arrays.

    Float32 arithmetic and half-to-even rounding, as ``tf.round`` in the T5 library.
    """
    length = np.maximum(np.asarray(length, dtype=np.int64), 2)  # 1 token is masked as 2, then cut
    num_noise = np.rint(length.astype(np.float32) * np.float32(noise_density)).astype(np.int64)
    num_noise = np.clip(num_noise, 1, length - 1)  # at least one noise and one non-noise token
    num_spans = np.rint(num_noise.astype(np.float32) / np.float32(mean_noise_span_length)).astype(np.int64)
    # T5 only clips below (max(spans, 1)); above, it would emit empty spans. We never do.
    num_spans = np.clip(num_spans, 1, np.minimum(num_noise, length - num_noise))
    return length, num_noise, num_spans


def _random_segment_starts(num_items: int, num_segments: int, num_rows: int,
                           rng: np.random.Generator) -> np.ndarray:
    """[num_rows, num_segments] sorted start index of each part of a random composition of num_items.

    Each row cuts ``range(num_items)`` into ``num_segments`` non-empty consecutive parts, all
    compositions equally likely: choose ``num_segments - 1`` distinct cut points among the
    ``num_items - 1`` gaps (a row-wise shuffle of a 0/1 vector, as T5's ``random_segmentation``).
    """
    cuts = np.zeros((num_rows, num_items - 1), dtype=bool)
    cuts[:, : num_segments - 1] = True
    cuts = rng.permuted(cuts, axis=1)
    # nonzero() walks row-major, so each row's cut columns come out sorted.
    starts = np.nonzero(cuts)[1].reshape(num_rows, num_segments - 1) + 1
    return np.concatenate([np.zeros((num_rows, 1), dtype=starts.dtype), starts], axis=1)


@gin.configurable
def random_spans_noise_mask(
    length: int,
    noise_density: float,
    mean_noise_span_length: float = 3.0,
    rng: np.random.Generator | None = None,
    num_examples: int = 1,
    random_roll: bool = False,
) -> np.ndarray:
    """Masks of alternating non-noise / noise spans, as T5's ``random_spans_noise_mask``.

    With L = max(length, 2): noise = clip(round(L * density), 1, L - 1) and spans = max(round(noise /
    mean_noise_span_length), 1) are fixed by the length; only the split into spans is random. The noise
    tokens and the non-noise tokens are each cut into ``spans`` non-empty parts (uniformly random
    compositions), interleaved as [nonnoise_0, noise_0, nonnoise_1, noise_1, ...]. So without
    ``random_roll`` the first token is never noise and the last token always is.

    Example: length 40, density 0.15, mean span 3 -> 6 noise tokens in 2 spans. With non-noise parts
    [10, 24] and noise parts [2, 4] the mask is True at positions 10-11 and 36-39.

    Args:
      length: tokens per segment (every row has this length).
      noise_density: fraction of tokens to mask; 0 gives an all-False mask.
      mean_noise_span_length: average noise span length.
      rng: source of randomness.
      num_examples: B, the number of independent masks to draw.
      random_roll: roll each mask by a uniform offset in [0, L) (T5 option; off for span corruption).

    Returns:
      bool [num_examples, length].
    """
    _need_rng(rng, "random_spans_noise_mask")
    if noise_density == 0.0:
        return np.zeros((num_examples, length), dtype=bool)
    padded, num_noise, num_spans = (int(x) for x in span_counts(length, noise_density, mean_noise_span_length))
    noise_starts = _random_segment_starts(num_noise, num_spans, num_examples, rng)
    nonnoise_starts = _random_segment_starts(padded - num_noise, num_spans, num_examples, rng)
    noise_lengths = np.diff(noise_starts, axis=1, append=num_noise)
    nonnoise_lengths = np.diff(nonnoise_starts, axis=1, append=padded - num_noise)
    # Interleave the part lengths and expand each part into its run of False (non-noise) or True (noise).
    run_lengths = np.stack([nonnoise_lengths, noise_lengths], axis=2).reshape(-1)
    run_values = np.tile(np.array([False, True]), num_examples * num_spans)
    mask = np.repeat(run_values, run_lengths).reshape(num_examples, padded)
    if random_roll:
        shift = rng.integers(0, padded, size=(num_examples, 1))
        mask = np.take_along_axis(mask, (np.arange(padded) - shift) % padded, axis=1)
    return mask[:, :length]
