"""Pre-training objectives: noise masks composed with input/target functions (T5 semantics, NumPy).

An objective turns raw token segments into ``{'inputs', 'targets'}`` examples. Following the T5 library
(``t5.data.preprocessors.denoise``), a denoising objective is three interchangeable pieces:

    noise_mask_fn(length, noise_density, rng, num_examples) -> bool [B, L]      which tokens are noise
    inputs_fn(tokens [B, L], noise_mask [B, L], vocab_size, rng) -> Ragged       what the encoder sees
    targets_fn(tokens [B, L], noise_mask [B, L], vocab_size, rng) -> Ragged      what the decoder predicts

Everything is vectorised over a batch of B segments of the same length L (no Python loop over examples
or spans), and every random draw comes from the ``np.random.Generator`` passed in, so an objective applied
to the same segments with an identically seeded generator gives identical examples.

Sentinels follow T5: ``<extra_id_i>`` = ``vocab_size - 1 - i``, and the k-th (1-based) span replaced by a
unique sentinel becomes ``vocab_size - k``. EOS (id 1) is appended to both inputs and targets, as T5's
``append_eos_after_trim`` does; nothing is ever trimmed here (lengths are checked by ``raw_length`` and by
the feature converter instead).

Outputs are ragged, held as :class:`Ragged`: one flat ``values`` array plus per-row ``lengths``. This keeps
the whole batch in two contiguous arrays, so the feature converter can pack it with one vectorised
scatter instead of a Python loop over rows.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Protocol

import gin
import numpy as np

# --------------------------------------------------------------------------------------------------
# Ragged batches
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ragged:
    """A batch of B variable-length token sequences stored as flat values plus row lengths.

    Row i is ``values[offsets[i]:offsets[i + 1]]`` with ``offsets = [0, cumsum(lengths)]``.

    >>> r = Ragged.from_rows([[5, 6, 7], [], [8]])
    >>> r.values, r.lengths, r.offsets
    (array([5, 6, 7, 8], dtype=int32), array([3, 0, 1]), array([0, 3, 3, 4]))
    >>> r.append(1).to_list()
    [[5, 6, 7, 1], [1], [8, 1]]

    Attributes:
      values: [N] tokens of all rows, concatenated (int32).
      lengths: [B] int64 length of each row; ``lengths.sum() == N``.
    """

    values: np.ndarray
    lengths: np.ndarray

    def __post_init__(self):
        if self.values.ndim != 1 or self.lengths.ndim != 1:
            raise ValueError("Ragged values and lengths must be 1-D.")
        if int(self.lengths.sum()) != self.values.shape[0]:
            raise ValueError(f"lengths sum to {int(self.lengths.sum())} but there are {self.values.shape[0]} values.")

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """[B + 1] int64 start of each row in ``values`` (and the total length at the end)."""
        offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=offsets[1:])
        return offsets

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def to_list(self) -> list[list[int]]:
        return [self[i].tolist() for i in range(len(self))]

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[int]], dtype=np.int32) -> Ragged:
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        values = np.concatenate([np.asarray(r, dtype=dtype) for r in rows]) if len(rows) else np.zeros(0, dtype)
        return cls(values.astype(dtype, copy=False), lengths)

    @classmethod
    def from_dense(cls, tokens: np.ndarray, keep: np.ndarray | None = None) -> Ragged:
        """Rows of a [B, L] array, keeping only the positions where ``keep`` [B, L] is True."""
        if keep is None:
            return cls(tokens.reshape(-1), np.full(tokens.shape[0], tokens.shape[1], dtype=np.int64))
        return cls(tokens[keep], keep.sum(axis=1, dtype=np.int64))

    @classmethod
    def concat(cls, parts: Sequence[Ragged]) -> Ragged:
        """The rows of all parts, in order."""
        if len(parts) == 1:
            return parts[0]
        return cls(np.concatenate([p.values for p in parts]), np.concatenate([p.lengths for p in parts]))

    def slice(self, start: int, stop: int) -> Ragged:
        """Rows ``start:stop`` (a view of ``values``, no copy)."""
        return Ragged(self.values[self.offsets[start] : self.offsets[stop]], self.lengths[start:stop])

    def take(self, rows: np.ndarray) -> Ragged:
        """Rows in the order given by the integer array ``rows``."""
        lengths = self.lengths[rows]
        new_offsets = np.concatenate([[0], np.cumsum(lengths)])
        # Source index of output token j = its row's old start + (j - its row's new start).
        index = np.repeat(self.offsets[rows] - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
        return Ragged(self.values[index], lengths)

    def append(self, token: int) -> Ragged:
        """Each row with ``token`` appended (used for EOS)."""
        lengths = self.lengths + 1
        ends = np.cumsum(lengths) - 1  # where the appended token of each row lands
        out = np.empty(self.values.shape[0] + len(self), dtype=self.values.dtype)
        is_new = np.zeros(out.shape[0], dtype=bool)
        is_new[ends] = True
        out[is_new] = token
        out[~is_new] = self.values
        return Ragged(out, lengths)


Examples = dict[str, Ragged]  # {'inputs': Ragged, 'targets': Ragged}, rows aligned


# --------------------------------------------------------------------------------------------------
# Lengths
# --------------------------------------------------------------------------------------------------


def random_spans_helper(
    inputs_length: int,
    noise_density: float,
    mean_noise_span_length: float,
    extra_tokens_per_span_inputs: int = 1,
    extra_tokens_per_span_targets: int = 1,
) -> tuple[int, int]:
    """Raw segment length and targets length so that span corruption fills ``inputs_length`` exactly.

    For T raw tokens: noise = round(T * density), spans = round(noise / mean_span), and (EOS included)
    inputs = (T - noise) + spans * extra_in + 1 and targets = noise + spans * extra_tgt + 1. T is the
    largest length whose inputs still fit in ``inputs_length``. Rounding is Python's (half to even), as
    in the T5 library.

    >>> random_spans_helper(512, 0.15, 3.0)   # noise 85, spans 28: 483 + 28 + 1 = 512, 85 + 28 + 1 = 114
    (568, 114)
    >>> random_spans_helper(64, 0.2, 2.0), random_spans_helper(64, 0.2, 1.0)
    ((70, 22), (63, 27))

    Returns:
      (tokens_length, targets_length): raw tokens per segment and the targets length they produce.
    """

    def lengths(tokens_length: int) -> tuple[int, int]:
        num_noise = int(round(tokens_length * noise_density))
        num_spans = int(round(num_noise / mean_noise_span_length))
        return (
            tokens_length - num_noise + num_spans * extra_tokens_per_span_inputs + 1,
            num_noise + num_spans * extra_tokens_per_span_targets + 1,
        )

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    _, targets_length = lengths(tokens_length)
    # T5 quirk kept for parity: at density 0.5 keep targets no longer than inputs.
    if noise_density == 0.5 and targets_length > inputs_length:
        tokens_length -= 1
        targets_length -= 1
    return tokens_length, targets_length


def _span_counts(length, noise_density: float, mean_noise_span_length: float):
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


# --------------------------------------------------------------------------------------------------
# Noise masks: (length, noise_density, rng, num_examples) -> bool [num_examples, length]
# --------------------------------------------------------------------------------------------------


class NoiseMaskFn(Protocol):
    def __call__(self, length: int, noise_density: float, *, rng: np.random.Generator,
                 num_examples: int) -> np.ndarray: ...


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
    if rng is None:
        raise ValueError("random_spans_noise_mask needs an rng (np.random.Generator).")
    if noise_density == 0.0:
        return np.zeros((num_examples, length), dtype=bool)
    padded, num_noise, num_spans = (int(x) for x in _span_counts(length, noise_density, mean_noise_span_length))
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


# --------------------------------------------------------------------------------------------------
# Input / target functions: (tokens [B, L], noise_mask [B, L], vocab_size, rng) -> Ragged
# --------------------------------------------------------------------------------------------------


class InputsTargetsFn(Protocol):
    def __call__(self, tokens: np.ndarray, noise_mask: np.ndarray, vocab_size: int,
                 rng: np.random.Generator | None = None) -> Ragged: ...


def _span_to_unique_sentinel(tokens: np.ndarray, mask: np.ndarray, vocab_size: int) -> Ragged:
    """Replace each run of True in ``mask`` by one sentinel; the k-th run becomes vocab_size - k."""
    previous = np.zeros_like(mask)
    previous[:, 1:] = mask[:, :-1]
    first = mask & ~previous
    sentinels = vocab_size - np.cumsum(first, axis=1, dtype=tokens.dtype)
    return Ragged.from_dense(np.where(first, sentinels, tokens), ~(mask & previous))


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


# --------------------------------------------------------------------------------------------------
# Objectives
# --------------------------------------------------------------------------------------------------


class Objective(Protocol):
    """What the pipeline needs from an objective."""

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int:
        """Raw tokens per segment for the given task feature lengths."""

    def __call__(self, segments: Ragged, rng: np.random.Generator, vocab_size: int,
                 eos_id: int = 1) -> Examples:
        """Examples ({'inputs', 'targets'} Ragged, EOS appended) for each segment, rows aligned."""


@gin.configurable
class Denoise:
    """A denoising objective: a noise mask, then inputs and targets built from tokens + mask.

    ``targets_fn=None`` makes the targets the whole original segment (BERT/MASS-style). Segments of
    different lengths (the final, shorter piece of a stream) are masked in separate vectorised calls,
    one per distinct length; draws happen in order of first appearance of each length.

    Example (``Denoise(random_spans_noise_mask, noise_span_to_unique_sentinel,
    nonnoise_span_to_unique_sentinel, 0.15)`` = span corruption), vocab 32100, EOS 1, segment 100..139
    whose mask is True at positions 10-11 and 36-39:

        inputs  = [100, ..., 109, 32099, 112, ..., 135, 32098, 1]       # 37 = 34 + 2 sentinels + EOS
        targets = [32099, 110, 111, 32098, 136, 137, 138, 139, 1]       # 9 = 6 + 2 sentinels + EOS
    """

    def __init__(
        self,
        noise_mask_fn: NoiseMaskFn = random_spans_noise_mask,
        inputs_fn: InputsTargetsFn = noise_span_to_unique_sentinel,
        targets_fn: InputsTargetsFn | None = nonnoise_span_to_unique_sentinel,
        noise_density: float = 0.15,
    ):
        self.noise_mask_fn = noise_mask_fn
        self.inputs_fn = inputs_fn
        self.targets_fn = targets_fn
        self.noise_density = noise_density

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int:
        """T5's ``split_tokens_to_inputs_length``: inputs_length - 1 raw tokens, leaving room for EOS."""
        return feature_lengths["inputs"] - 1

    def __call__(self, segments: Ragged, rng: np.random.Generator, vocab_size: int,
                 eos_id: int = 1) -> Examples:
        """Apply the objective to each segment.

        Args:
          segments: B raw token segments.
          rng: source of all randomness (mask first, then inputs_fn, then targets_fn, per length group).
          vocab_size: vocabulary size including sentinels; sentinel k is ``vocab_size - k``.
          eos_id: appended to both inputs and targets.

        Returns:
          {'inputs': Ragged [B, ...], 'targets': Ragged [B, ...]}, row i made from segment i.
        """
        unique_lengths, first_row = np.unique(segments.lengths, return_index=True)
        groups = [np.flatnonzero(segments.lengths == unique_lengths[i]) for i in np.argsort(first_row)]
        inputs, targets = [], []
        for rows in groups:
            length = int(segments.lengths[rows[0]])
            tokens = segments.values[segments.offsets[rows][:, None] + np.arange(length)]  # [b, length]
            mask = self.noise_mask_fn(length, self.noise_density, rng=rng, num_examples=len(rows))
            inputs.append(self.inputs_fn(tokens, mask, vocab_size, rng))
            targets.append(Ragged.from_dense(tokens) if self.targets_fn is None
                           else self.targets_fn(tokens, mask, vocab_size, rng))
        examples = {"inputs": Ragged.concat(inputs), "targets": Ragged.concat(targets)}
        if len(groups) > 1:  # restore segment order
            order = np.argsort(np.concatenate(groups), kind="stable")
            examples = {k: v.take(order) for k, v in examples.items()}
        return {k: v.append(eos_id) for k, v in examples.items()}


@gin.configurable("span_corruption")
class SpanCorruption(Denoise):
    """T5's final pre-training objective (``preprocessors.span_corruption``), gin name ``span_corruption``.

    Segments of ``random_spans_helper(inputs_length)[0]`` raw tokens (568 for 512 inputs at 15% / 3)
    get a random-spans mask; each noise span becomes a unique sentinel in the inputs, each non-noise
    span a unique sentinel in the targets, and EOS ends both. A full segment always yields exactly
    512 inputs / 114 targets (no padding): 483 kept + 28 sentinels + EOS, and 85 noise + 28 + EOS.

    Worked example (vocab 32100, 40 raw tokens 100..139, density 0.15 -> 6 noise tokens in 2 spans,
    non-noise parts [10, 24], noise parts [2, 4]):

        mask    = positions 10-11 and 36-39
        inputs  = [100, ..., 109, 32099, 112, ..., 135, 32098, 1]
        targets = [32099, 110, 111, 32098, 136, 137, 138, 139, 1]

    Because the mask starts with non-noise and ends with noise, input sentinel k and target sentinel k
    always mark the same span, inputs end with [sentinel, EOS] and targets end with [noise token, EOS].
    """

    def __init__(self, noise_density: float = 0.15, mean_noise_span_length: float = 3.0):
        super().__init__(
            noise_mask_fn=functools.partial(random_spans_noise_mask, mean_noise_span_length=mean_noise_span_length),
            inputs_fn=noise_span_to_unique_sentinel,
            targets_fn=nonnoise_span_to_unique_sentinel,
            noise_density=noise_density,
        )
        self.mean_noise_span_length = mean_noise_span_length

    def output_lengths(self, raw_length) -> tuple[np.ndarray, np.ndarray]:
        """Exact (inputs, targets) lengths, EOS included, for segments of ``raw_length`` tokens.

        Exact because the noise and span counts depend only on the length (an upper bound for a
        1-token segment, which is masked as 2 tokens then cut). Works elementwise on arrays.
        """
        if self.noise_density == 0.0:  # all-False mask: the inputs are the segment, the targets one sentinel
            return np.asarray(raw_length) + 1, np.full_like(raw_length, 2)
        length, num_noise, num_spans = _span_counts(raw_length, self.noise_density, self.mean_noise_span_length)
        return length - num_noise + num_spans + 1, num_noise + num_spans + 1

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int:
        """Raw tokens per segment; raises if the targets length would not hold every example.

        This is ``random_spans_helper(inputs_length)[0]`` (568 for 512 / 0.15 / 3), checked against the
        exact lengths the mask produces. The two can differ where the T5 library would silently trim:
        the helper rounds in float64 and lets the span count be 0, the mask rounds in float32 and uses at
        least one span. E.g. inputs 191, density 0.15, span 1: the helper says targets 57, but a
        190-token segment gets round(28.500002) = 29 noise tokens, so 59 targets. Here the segment is
        shortened until the inputs fit, and too-short targets are an error, never a truncation.

        >>> SpanCorruption().raw_length({'inputs': 512, 'targets': 114})
        568
        """
        inputs_length, targets_length = feature_lengths["inputs"], feature_lengths["targets"]
        tokens_length, _ = random_spans_helper(inputs_length, self.noise_density, self.mean_noise_span_length)
        # The stream's last segment is shorter, so every length up to a full segment must fit.
        inputs, targets = (np.maximum.accumulate(x) for x in self.output_lengths(np.arange(1, tokens_length + 1)))
        tokens_length = int(np.searchsorted(inputs, inputs_length, side="right"))
        if tokens_length == 0:
            raise ValueError(f"inputs={inputs_length} is too short for span corruption.")
        needed_targets = int(targets[tokens_length - 1])
        if needed_targets > targets_length:
            raise ValueError(
                f"TASK_FEATURE_LENGTHS['targets']={targets_length} is too short for span corruption "
                f"(noise_density={self.noise_density}, mean_noise_span_length={self.mean_noise_span_length}): "
                f"with inputs={inputs_length} it needs targets >= {needed_targets}. Set "
                f"--gin.TASK_FEATURE_LENGTHS=\"{{'inputs': {inputs_length}, 'targets': {needed_targets}}}\"")
        return tokens_length

