"""Feature converters: ragged task examples -> fixed-shape model features, one per model family (NumPy).

A converter maps task features (``inputs``, ``targets``, ...) of varying length to the int32
[num_rows, length] arrays a model family reads:

    EncDecFeatureConverter    encoder-decoder (T5)            encoder_* and decoder_* features
    DecoderFeatureConverter   decoder-only, causal or prefix  decoder_* features of inputs ⧺ targets
    EncoderFeatureConverter   encoder-only (BERT, RoBERTa)    encoder_*, mlm_*, nsp_* and fine-tuning labels

With packing, several consecutive examples share a row; ``*_segment_ids`` (1, 2, ... within a row,
0 = padding) let attention stay inside an example and ``*_positions`` restart at 0 for each example.
``pack=False`` puts one example per row with the same keys (segment id 1 on real tokens), so models have
one code path.

Packing is next-fit in stream order: examples go into the current row while they still fit (in every
stream: enc-dec checks inputs and targets separately, the decoder-only family checks inputs + targets);
the first example that does not fit starts a new row. Unlike seqio's greedy bin packing over a shuffle
buffer, this makes every batch a pure function of the example stream and the index of its first example,
which is what a checkpointable pipeline needs.

Every converter splits into the two steps of the :class:`FeatureConverter` interface: ``assign_rows``
(only the lengths: which row each example goes to, and how many examples a batch of ``max_rows`` rows
holds) and ``scatter`` (one vectorised placement of all tokens). The shared machinery is three functions:
``_next_fit`` (row assignment for one or two streams, a loop over rows, not examples), ``_Layout`` (where
every token of a stream lands, with its segment id and position) and ``_shift_right`` (teacher-forcing
inputs with BOS at each packed example's start). An example longer than the row is a ValueError naming
the feature, the length and the limit: nothing is ever truncated silently.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Mapping, Sequence
from typing import Protocol, Union

import gin
import numpy as np

from t2t.data.objectives import Ragged

# What ``assign_rows`` reads: Ragged features, or just the [n] length arrays of each feature.
Lengths = Mapping[str, Union[Ragged, np.ndarray, Sequence[int]]]
ExampleInput = Union[Mapping[str, Ragged], Sequence[Mapping[str, Sequence[int]]]]


class FeatureConverter(Protocol):
    """What the data pipeline needs from a converter (all three families implement it)."""

    feature_lengths: Mapping[str, int]  # task lengths, e.g. {'inputs': 512, 'targets': 114}
    FEATURES: tuple[str, ...]  # output keys

    def output_lengths(self) -> dict[str, int]:
        """Output key -> row length."""

    def assign_rows(self, examples: Lengths, max_rows: int | None = None) -> np.ndarray:
        """Row of each example of the longest prefix of ``examples`` that fits in ``max_rows`` rows."""

    def scatter(self, examples: Mapping[str, Ragged], rows: np.ndarray,
                num_rows: int | None = None) -> dict[str, np.ndarray]:
        """The int32 [num_rows, length] features of the first ``len(rows)`` examples placed by ``rows``."""

    def __call__(self, examples: ExampleInput, num_rows: int | None = None) -> dict[str, np.ndarray]:
        """``assign_rows`` + ``scatter`` of all examples."""


# --------------------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------------------


def _lengths(feature: Ragged | np.ndarray | Sequence[int]) -> np.ndarray:
    return feature.lengths if isinstance(feature, Ragged) else np.asarray(feature, dtype=np.int64)


def _check_fits(name: str, lengths: np.ndarray, limit: int, hint: str = "") -> None:
    """ValueError naming the first example of ``lengths`` longer than ``limit``."""
    too_long = np.flatnonzero(lengths > limit)
    if too_long.size:
        i = int(too_long[0])
        raise ValueError(f"example {i} has {name} of length {int(lengths[i])} > feature length {limit}{hint}; "
                         f"examples are never truncated, raise the length or shorten the example.")


def _next_fit(lengths: Sequence[np.ndarray], capacities: Sequence[int], pack: bool,
              max_rows: int | None) -> np.ndarray:
    """Next-fit rows for examples with one or more length streams (each example fits every capacity).

    >>> _next_fit([np.array([4, 5, 3, 9])], [10], True, None)
    array([0, 0, 1, 2])

    Args:
      lengths: per stream, [n] length of each example (e.g. inputs and targets for enc-dec).
      capacities: per stream, the row length.
      pack: False puts one example per row.
      max_rows: stop before the first example that would need row ``max_rows`` (None: no limit).

    Returns:
      [m] int64 non-decreasing row of each of the first m <= n examples.
    """
    n = len(lengths[0])
    limit = n if max_rows is None else max(0, min(n, max_rows))
    if not pack:
        return np.arange(limit, dtype=np.int64)
    # Loop over rows, not examples: each row ends at the first example whose running total, in any
    # stream, passes the row's start total + capacity (a bisect on the cumulative lengths).
    cumulative = [np.cumsum(l, dtype=np.int64).tolist() for l in lengths]
    starts = []
    k = 0
    while k < n and len(starts) < limit:
        starts.append(k)
        end = n
        for totals, capacity in zip(cumulative, capacities):
            end = bisect.bisect_right(totals, (totals[k - 1] if k else 0) + capacity, k, end)
        k = end  # > previous k, because example k fits on its own
    return np.repeat(np.arange(len(starts), dtype=np.int64), np.diff(starts + [k]))


class _Layout:
    """Where the examples of one stream land when placed in rows of ``width`` by ``rows``.

    Examples in a row are contiguous, in order, from column 0, so the stream's flat tokens (what
    ``Ragged.values`` holds) fill the True entries of ``mask`` in row-major order: placing a per-token
    array is one boolean-mask assignment. Per-example values (segment id, start column, prefix length)
    are spread over their tokens densely: write each example's change from the previous one in its row
    at its first column, then a cumulative sum along the row (no per-token int64 index arrays).

    Attributes:
      shape: (num_rows, width).
      mask: bool [num_rows, width], True on real tokens.
      first: [m] flat index (row * width + column) of each example's first column.
      segment_ids: int32 [num_rows, width], 1-based index of each token's example in its row, 0 on padding.
      positions: int32 [num_rows, width], position of each token in its example, 0 on padding.
    """

    def __init__(self, rows: np.ndarray, lengths: np.ndarray, width: int, num_rows: int):
        m = len(rows)
        self.shape = (num_rows, width)
        offsets = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        self._new_row = np.ones(m, dtype=bool)
        self._new_row[1:] = rows[1:] != rows[:-1]
        self._row_first = np.maximum.accumulate(np.where(self._new_row, np.arange(m), 0))
        self._column = offsets[:-1] - offsets[self._row_first]
        self.first = rows * width + self._column
        # Empty examples closing a full row start at column == width, i.e. in the next row: skip them.
        self._starts_inside = self._column < width
        is_last = np.ones(m, dtype=bool)
        is_last[:-1] = self._new_row[1:]
        used = np.zeros(num_rows, dtype=np.int64)
        used[rows[is_last]] = self._column[is_last] + lengths[is_last]
        self.mask = np.arange(width) < used[:, None]

    def spread(self, per_example: np.ndarray, masked: bool = True) -> np.ndarray:
        """int32 [num_rows, width]: each token's example's value (0 on padding if ``masked``)."""
        values = np.asarray(per_example, dtype=np.int64)
        delta = values.copy()
        delta[1:] -= np.where(self._new_row[1:], 0, values[:-1])
        marks = np.zeros(self.shape[0] * self.shape[1], dtype=np.int32)
        # add.at, not assignment: empty examples share their first column with the next example.
        np.add.at(marks, self.first[self._starts_inside], delta[self._starts_inside])
        out = np.cumsum(marks.reshape(self.shape), axis=1, dtype=np.int32)
        if masked:
            out *= self.mask
        return out

    @functools.cached_property
    def segment_ids(self) -> np.ndarray:
        return self.spread(np.arange(len(self._column)) - self._row_first + 1)

    @functools.cached_property
    def positions(self) -> np.ndarray:
        positions = np.arange(self.shape[1], dtype=np.int32) - self.spread(self._column, masked=False)
        positions *= self.mask
        return positions

    def place(self, values: np.ndarray) -> np.ndarray:
        """int32 [num_rows, width]: the stream's flat per-token ``values`` in place, 0 on padding."""
        out = np.zeros(self.shape, dtype=np.int32)
        out[self.mask] = values
        return out

    def place_at(self, values, at: np.ndarray) -> np.ndarray:
        """int32 [num_rows, width]: ``values`` at the flat indices ``at``, 0 elsewhere."""
        out = np.zeros(self.shape[0] * self.shape[1], dtype=np.int32)
        out[at] = values
        return out.reshape(self.shape)


def _shift_right(sequences: Ragged, bos_id: int) -> np.ndarray:
    """[N] flat teacher-forcing inputs: each example shifted right by one, ``bos_id`` at its start.

    The shift never crosses an example boundary, so it stays within packed segments.
    """
    shifted = np.empty_like(sequences.values)
    shifted[1:] = sequences.values[:-1]
    shifted[sequences.offsets[:-1][sequences.lengths > 0]] = bos_id
    return shifted


def _concat_examples(first: Ragged, second: Ragged) -> Ragged:
    """Each example's ``first`` tokens followed by its ``second`` tokens (e.g. inputs ⧺ targets)."""
    if not first.values.size:
        return second
    lengths = first.lengths + second.lengths
    out_starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=out_starts[1:])
    values = np.empty(first.values.shape[0] + second.values.shape[0], dtype=first.values.dtype)
    # Destination of token j of a part = its example's new start (+ first's length) + (j - its old start).
    values[np.repeat(out_starts - first.offsets[:-1], first.lengths) + np.arange(first.values.shape[0])] = first.values
    values[np.repeat(out_starts + first.lengths - second.offsets[:-1], second.lengths)
           + np.arange(second.values.shape[0])] = second.values
    return Ragged(values, lengths)


def _to_ragged(examples: ExampleInput, keys: Sequence[str]) -> dict[str, Ragged]:
    """Ragged features from Ragged features or a list of dicts of token lists (features in ``keys`` only)."""
    if isinstance(examples, Mapping):
        return dict(examples)
    if not examples:
        return {k: Ragged.from_rows([]) for k in keys}
    return {k: Ragged.from_rows([ex[k] for ex in examples]) for k in keys if k in examples[0]}


def _num_rows(rows: np.ndarray, num_rows: int | None) -> int:
    used = int(rows[-1]) + 1 if len(rows) else 0
    if num_rows is None:
        return used
    if used > num_rows:
        raise ValueError(f"the examples need {used} rows but the batch has {num_rows}.")
    return num_rows


class _Converter:
    """Shared driver: checks, next-fit row assignment and ``__call__``; subclasses say what a row holds."""

    FEATURES: tuple[str, ...] = ()
    _KEYS: tuple[str, ...] = ()  # task features read from list-of-dict examples

    def __init__(self, feature_lengths: Mapping[str, int], pack: bool):
        self.feature_lengths = {k: int(v) for k, v in feature_lengths.items()}
        self.pack = pack

    def _streams(self, examples: Lengths) -> list[tuple[str, np.ndarray, int, str]]:
        """Per packed stream: (name for errors, [n] lengths, capacity, error hint)."""
        raise NotImplementedError

    def output_lengths(self) -> dict[str, int]:
        raise NotImplementedError

    def assign_rows(self, examples: Lengths, max_rows: int | None = None) -> np.ndarray:
        """Row of each example, for the longest prefix of the examples that fits in ``max_rows`` rows.

        >>> EncDecFeatureConverter({'inputs': 10, 'targets': 7}).assign_rows(
        ...     {'inputs': [4, 5, 3, 9], 'targets': [3, 2, 3, 1]})
        array([0, 0, 1, 2])

        Args:
          examples: task features as Ragged, or as [n] arrays of their lengths (only lengths are read).
          max_rows: stop before the first example that would need row ``max_rows`` (None: no limit).

        Returns:
          [m] int64 non-decreasing row indices, m <= n; ``m < n`` means the batch is full.

        Raises:
          ValueError: if any of the n examples is longer than the row (checked for all n, so the
            error does not depend on ``max_rows``).
        """
        streams = self._streams(examples)
        for name, lengths, capacity, hint in streams:
            _check_fits(name, lengths, capacity, hint)
        return _next_fit([s[1] for s in streams], [s[2] for s in streams], self.pack, max_rows)

    def scatter(self, examples: Mapping[str, Ragged], rows: np.ndarray,
                num_rows: int | None = None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def __call__(self, examples: ExampleInput, num_rows: int | None = None) -> dict[str, np.ndarray]:
        """Convert all ``examples`` (Ragged features or a list of dicts of token lists).

        Raises ValueError if they need more than ``num_rows`` rows; unused rows are padding.
        """
        examples = _to_ragged(examples, self._KEYS)
        return self.scatter(examples, self.assign_rows(examples), num_rows)


# --------------------------------------------------------------------------------------------------
# Encoder-decoder
# --------------------------------------------------------------------------------------------------


@gin.configurable
class EncDecFeatureConverter(_Converter):
    """Features for an encoder-decoder model, packed or not.

    Packed example (seqio's ``EncDecFeatureConverter`` docstring), feature lengths inputs 10 /
    targets 7, examples ``{inputs: [7, 8, 5, 1], targets: [3, 9, 1]}`` and
    ``{inputs: [8, 4, 9, 3, 1], targets: [4, 1]}``, one row:

        encoder_input_tokens  = [7, 8, 5, 1, 8, 4, 9, 3, 1, 0]
        encoder_segment_ids   = [1, 1, 1, 1, 2, 2, 2, 2, 2, 0]
        encoder_positions     = [0, 1, 2, 3, 0, 1, 2, 3, 4, 0]
        decoder_target_tokens = [3, 9, 1, 4, 1, 0, 0]
        decoder_input_tokens  = [0, 3, 9, 0, 4, 0, 0]     # shifted right per example, BOS = 0
        decoder_loss_weights  = [1, 1, 1, 1, 1, 0, 0]
        decoder_segment_ids   = [1, 1, 1, 2, 2, 0, 0]
        decoder_positions     = [0, 1, 2, 0, 1, 0, 0]

    An example goes into the current row only if both its inputs and its targets still fit. Loss
    weights are 1 on every real target token (seqio uses ``target != 0``; the same for any stream
    without PAD tokens inside examples).
    """

    FEATURES = ("encoder_input_tokens", "encoder_segment_ids", "encoder_positions", "decoder_target_tokens",
                "decoder_input_tokens", "decoder_loss_weights", "decoder_segment_ids", "decoder_positions")
    _KEYS = ("inputs", "targets")

    def __init__(self, feature_lengths: Mapping[str, int], pack: bool = True, bos_id: int = 0):
        """
        Args:
          feature_lengths: {'inputs': encoder length, 'targets': decoder length}.
          pack: pack several examples per row (next-fit, in order).
          bos_id: first decoder input token of every example.
        """
        super().__init__({"inputs": feature_lengths["inputs"], "targets": feature_lengths["targets"]}, pack)
        self.bos_id = bos_id

    def output_lengths(self) -> dict[str, int]:
        return {k: self.feature_lengths["inputs" if k.startswith("encoder") else "targets"] for k in self.FEATURES}

    def _streams(self, examples):
        return [(k, _lengths(examples[k]), self.feature_lengths[k], "") for k in ("inputs", "targets")]

    def scatter(self, examples: Mapping[str, Ragged], rows: np.ndarray,
                num_rows: int | None = None) -> dict[str, np.ndarray]:
        """Place the first ``len(rows)`` examples in the rows given by ``assign_rows``.

        Args:
          examples: {'inputs': Ragged, 'targets': Ragged} with at least ``len(rows)`` rows.
          rows: [m] row of each example (non-decreasing, each row's examples fitting).
          num_rows: batch size; rows past the last used one are all padding. Default: rows used.

        Returns:
          The eight int32 [num_rows, length] features listed in ``FEATURES``.
        """
        num_rows = _num_rows(rows, num_rows)
        m = len(rows)
        inputs, targets = examples["inputs"].slice(0, m), examples["targets"].slice(0, m)
        enc = _Layout(rows, inputs.lengths, self.feature_lengths["inputs"], num_rows)
        dec = _Layout(rows, targets.lengths, self.feature_lengths["targets"], num_rows)
        return {
            "encoder_input_tokens": enc.place(inputs.values),
            "encoder_segment_ids": enc.segment_ids,
            "encoder_positions": enc.positions,
            "decoder_target_tokens": dec.place(targets.values),
            "decoder_input_tokens": dec.place(_shift_right(targets, self.bos_id)),
            "decoder_loss_weights": dec.mask.astype(np.int32),
            "decoder_segment_ids": dec.segment_ids,
            "decoder_positions": dec.positions,
        }


# --------------------------------------------------------------------------------------------------
# Decoder-only (causal LM and prefix LM)
# --------------------------------------------------------------------------------------------------


@gin.configurable
class DecoderFeatureConverter(_Converter):
    """Features for a decoder-only model: each example is one sequence ``inputs ⧺ targets``.

    The row length is ``feature_lengths['inputs'] + feature_lengths['targets']`` (as seqio's LM and
    prefix-LM converters), and only the concatenated length must fit: a long prefix may use room a
    short target leaves. Examples without ``inputs`` (the ``lm`` objective) are plain causal LM.

    Packed prefix LM (seqio's ``PrefixLMFeatureConverter`` docstring), feature lengths inputs 7 /
    targets 8 (rows of 15), ``prefix_lm=True, loss_on_targets_only=True``, examples
    ``{inputs: [7, 8, 5, 1], targets: [3, 9, 1]}`` and ``{inputs: [8, 4, 9, 3, 1], targets: [4, 1]}``:

        decoder_target_tokens    = [7, 8, 5, 1, 3, 9, 1, 8, 4, 9, 3, 1, 4, 1, 0]
        decoder_input_tokens     = [0, 7, 8, 5, 1, 3, 9, 0, 8, 4, 9, 3, 1, 4, 0]
        decoder_loss_weights     = [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0]
        decoder_segment_ids      = [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 0]
        decoder_positions        = [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0]
        decoder_causal_attention = [1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0]

    ``decoder_causal_attention`` is 1 on the inputs **plus one position** (seqio's convention): the
    token at that position is the last input token fed to the decoder (``decoder_input_tokens`` is
    shifted), so the first target is predicted from the whole bidirectionally-attended prefix.

    Packed causal LM, feature length targets 8, examples ``{targets: [3, 9, 1]}``,
    ``{targets: [4, 8, 1]}``, ``{targets: [5, 6, 7, 1]}`` (the third does not fit row 0: 3 + 3 + 4 > 8):

        decoder_target_tokens    = [[3, 9, 1, 4, 8, 1, 0, 0], [5, 6, 7, 1, 0, 0, 0, 0]]
        decoder_input_tokens     = [[0, 3, 9, 0, 4, 8, 0, 0], [0, 5, 6, 7, 0, 0, 0, 0]]
        decoder_loss_weights     = [[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0]]
        decoder_segment_ids      = [[1, 1, 1, 2, 2, 2, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0]]
        decoder_positions        = [[0, 1, 2, 0, 1, 2, 0, 0], [0, 1, 2, 3, 0, 0, 0, 0]]
        decoder_causal_attention = [[0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]]
    """

    FEATURES = ("decoder_target_tokens", "decoder_input_tokens", "decoder_loss_weights", "decoder_segment_ids",
                "decoder_positions", "decoder_causal_attention")
    _KEYS = ("inputs", "targets")

    def __init__(self, feature_lengths: Mapping[str, int], pack: bool = True, loss_on_targets_only: bool = True,
                 prefix_lm: bool = False, bos_id: int = 0):
        """
        Args:
          feature_lengths: {'targets': length} and optionally {'inputs': length}; rows hold their sum.
          pack: pack several examples per row (next-fit, in order).
          loss_on_targets_only: loss weight 1 on the targets part only (else on every real token).
          prefix_lm: ``decoder_causal_attention`` marks the inputs (+1) as bidirectional; else all 0.
          bos_id: first decoder input token of every example.
        """
        super().__init__(feature_lengths, pack)
        self.length = self.feature_lengths.get("inputs", 0) + self.feature_lengths["targets"]
        self.loss_on_targets_only = loss_on_targets_only
        self.prefix_lm = prefix_lm
        self.bos_id = bos_id

    def output_lengths(self) -> dict[str, int]:
        return dict.fromkeys(self.FEATURES, self.length)

    def _streams(self, examples):
        name, lengths = "targets", _lengths(examples["targets"])
        if "inputs" in examples:
            name, lengths = "inputs + targets", lengths + _lengths(examples["inputs"])
        hint = f" (inputs {self.feature_lengths['inputs']} + targets {self.feature_lengths['targets']})" \
            if "inputs" in self.feature_lengths else ""
        return [(name, lengths, self.length, hint)]

    def scatter(self, examples: Mapping[str, Ragged], rows: np.ndarray,
                num_rows: int | None = None) -> dict[str, np.ndarray]:
        """Place the first ``len(rows)`` examples in the rows given by ``assign_rows``.

        Args:
          examples: {'targets': Ragged} and optionally {'inputs': Ragged}, at least ``len(rows)`` rows.
          rows: [m] row of each example (non-decreasing, each row's examples fitting).
          num_rows: batch size; rows past the last used one are all padding. Default: rows used.

        Returns:
          The six int32 [num_rows, length] features listed in ``FEATURES``.
        """
        num_rows = _num_rows(rows, num_rows)
        m = len(rows)
        targets = examples["targets"].slice(0, m)
        inputs = examples["inputs"].slice(0, m) if "inputs" in examples else None
        sequences = targets if inputs is None else _concat_examples(inputs, targets)
        layout = _Layout(rows, sequences.lengths, self.length, num_rows)
        # [num_rows, length] inputs length of each token's example (its targets start there).
        has_prefix = inputs is not None and inputs.values.size > 0
        prefix = layout.spread(inputs.lengths) if has_prefix else np.zeros(layout.shape, dtype=np.int32)
        if self.loss_on_targets_only and has_prefix:
            loss_weights = ((layout.positions >= prefix) & layout.mask).astype(np.int32)
        else:
            loss_weights = layout.mask.astype(np.int32)
        if self.prefix_lm:  # the inputs plus one position; with no inputs, just the first position
            causal = ((layout.positions <= prefix) & layout.mask).astype(np.int32)
        else:
            causal = np.zeros(layout.shape, dtype=np.int32)
        return {
            "decoder_target_tokens": layout.place(sequences.values),
            "decoder_input_tokens": layout.place(_shift_right(sequences, self.bos_id)),
            "decoder_loss_weights": loss_weights,
            "decoder_segment_ids": layout.segment_ids,
            "decoder_positions": layout.positions,
            "decoder_causal_attention": causal,
        }


# --------------------------------------------------------------------------------------------------
# Encoder-only (BERT-style MLM, optional NSP; fine-tuning heads)
# --------------------------------------------------------------------------------------------------


# Fine-tuning heads (``TransformerConfig.encoder_heads``) whose labels a batch carries, with the example
# feature each is read from (see ``t2t.data.objectives.encoder_tasks``) and the features it becomes.
HEAD_FEATURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sequence_classification": ("classification_labels",
                                ("classification_labels", "classification_loss_weights")),
    "token_classification": ("token_labels", ("token_labels", "token_loss_weights")),
    "span_qa": ("span_positions", ("span_start_positions", "span_end_positions", "span_loss_weights")),
}


@gin.configurable
class EncoderFeatureConverter(_Converter):
    """Features for an encoder-only model: masked LM and next-sentence prediction, plus the labels of the
    fine-tuning heads it is built with.

    Examples carry ``inputs`` (tokens with CLS/SEP) and optionally ``token_types`` (same lengths, 0/1;
    all 0 if absent). Pre-training examples (the MLM objectives) carry ``targets`` (same lengths: the
    original id where the token carries MLM loss, 0 elsewhere) and optionally ``nsp_labels`` (one per
    example: 0 = IsNext, 1 = NotNext); without them the MLM and NSP features are all 0. The NSP label of
    each packed example sits at its first position (its CLS), which is where an NSP head reads it.

    Packed example, feature length inputs 12, with CLS 5, SEP 6, MASK 4; examples
    ``{inputs: [5, 11, 4, 13, 6], targets: [0, 0, 12, 0, 0], token_types: [0, 0, 0, 0, 0], nsp_labels: [0]}``
    and ``{inputs: [5, 21, 6, 4, 23, 6], targets: [0, 0, 0, 22, 0, 0], token_types: [0, 0, 0, 1, 1, 1],
    nsp_labels: [1]}``, one row:

        encoder_input_tokens   = [5, 11, 4, 13, 6, 5, 21, 6, 4, 23, 6, 0]
        encoder_segment_ids    = [1,  1, 1,  1, 1, 2,  2, 2, 2,  2, 2, 0]
        encoder_positions      = [0,  1, 2,  3, 4, 0,  1, 2, 3,  4, 5, 0]
        encoder_token_type_ids = [0,  0, 0,  0, 0, 0,  0, 0, 1,  1, 1, 0]
        mlm_target_tokens      = [0,  0, 12, 0, 0, 0,  0, 0, 22, 0, 0, 0]
        mlm_loss_weights       = [0,  0, 1,  0, 0, 0,  0, 0, 1,  0, 0, 0]
        nsp_labels             = [0,  0, 0,  0, 0, 1,  0, 0, 0,  0, 0, 0]
        nsp_loss_weights       = [1,  0, 0,  0, 0, 1,  0, 0, 0,  0, 0, 0]

    Fine-tuning heads (``heads``) add their features (``HEAD_FEATURES``), read from these example keys:

      classification_labels  one label per example -> ``classification_labels`` at its first position,
                             ``classification_loss_weights`` 1 there (as NSP).
      token_labels           one per token, -1 where there is no loss (CLS, SEP, non-first subwords) ->
                             ``token_labels`` (0 where -1) and ``token_loss_weights`` (label >= 0).
      span_positions         (start, end) per example, positions within it -> ``span_start_positions``
                             and ``span_end_positions`` at its first position, ``span_loss_weights`` 1
                             there.

    E.g. ``heads=("token_classification", "span_qa")``, length 8, examples ``{inputs: [5, 11, 12, 6],
    token_labels: [-1, 3, -1, -1], span_positions: [1, 2]}`` and ``{inputs: [5, 21, 6], token_labels:
    [-1, 0, -1], span_positions: [0, 0]}`` add, packed in one row:

        token_labels           = [0, 3, 0, 0, 0, 0, 0, 0]
        token_loss_weights     = [0, 1, 0, 0, 0, 1, 0, 0]
        span_start_positions   = [1, 0, 0, 0, 0, 0, 0, 0]
        span_end_positions     = [2, 0, 0, 0, 0, 0, 0, 0]
        span_loss_weights      = [1, 0, 0, 0, 1, 0, 0, 0]
    """

    FEATURES = ("encoder_input_tokens", "encoder_segment_ids", "encoder_positions", "encoder_token_type_ids",
                "mlm_target_tokens", "mlm_loss_weights", "nsp_labels", "nsp_loss_weights")
    _KEYS = ("inputs", "targets", "token_types", "nsp_labels", "classification_labels", "token_labels",
             "span_positions")

    def __init__(self, feature_lengths: Mapping[str, int], pack: bool = True, heads: Sequence[str] = ()):
        """
        Args:
          feature_lengths: {'inputs': row length} (other task lengths are ignored).
          pack: pack several examples per row (next-fit, in order).
          heads: the model's ``encoder_heads``; those in ``HEAD_FEATURES`` add their label features to
            the class's ``FEATURES`` (which pre-training batches always have).
        """
        super().__init__(feature_lengths, pack)
        self.length = self.feature_lengths["inputs"]
        self.heads = tuple(h for h in heads if h in HEAD_FEATURES)
        # The instance's output keys: the pre-training features, then each fine-tuning head's.
        self.FEATURES = type(self).FEATURES + tuple(f for h in self.heads for f in HEAD_FEATURES[h][1])

    def output_lengths(self) -> dict[str, int]:
        return dict.fromkeys(self.FEATURES, self.length)

    def _streams(self, examples):
        return [("inputs", _lengths(examples["inputs"]), self.length, "")]

    def scatter(self, examples: Mapping[str, Ragged], rows: np.ndarray,
                num_rows: int | None = None) -> dict[str, np.ndarray]:
        """Place the first ``len(rows)`` examples in the rows given by ``assign_rows``.

        Args:
          examples: {'inputs', optional 'targets', 'token_types', 'nsp_labels'} Ragged features, plus the
            label feature of each of ``heads``, with at least ``len(rows)`` rows.
          rows: [m] row of each example (non-decreasing, each row's examples fitting).
          num_rows: batch size; rows past the last used one are all padding. Default: rows used.

        Returns:
          The int32 [num_rows, length] features listed in ``self.FEATURES``.
        """
        num_rows = _num_rows(rows, num_rows)
        m = len(rows)
        features = {k: v.slice(0, m) for k, v in examples.items() if k in self._KEYS}
        inputs = features["inputs"]
        for key in ("targets", "token_types", "token_labels"):
            if key in features and not np.array_equal(features[key].lengths, inputs.lengths):
                raise ValueError(f"'{key}' must have the same length as 'inputs' in every example.")
        layout = _Layout(rows, inputs.lengths, self.length, num_rows)
        zeros = np.zeros(layout.shape, dtype=np.int32)
        at_first = functools.partial(_at_first_positions, layout, inputs.lengths > 0)
        batch = {
            "encoder_input_tokens": layout.place(inputs.values),
            "encoder_segment_ids": layout.segment_ids,
            "encoder_positions": layout.positions,
            "encoder_token_type_ids": (layout.place(features["token_types"].values) if "token_types" in features
                                       else zeros),
            "mlm_target_tokens": layout.place(features["targets"].values) if "targets" in features else zeros,
            "mlm_loss_weights": layout.place(features["targets"].values > 0) if "targets" in features else zeros,
        }
        if "nsp_labels" in features:
            batch["nsp_labels"], batch["nsp_loss_weights"] = at_first(features["nsp_labels"], "nsp_labels")
        else:
            batch["nsp_labels"], batch["nsp_loss_weights"] = zeros, zeros.copy()
        for head in self.heads:
            key, names = HEAD_FEATURES[head]
            if key not in features:
                raise ValueError(f"the {head} head needs '{key}' in every example, but the examples have "
                                 f"only {sorted(features)}. Train it with the matching objective of "
                                 f"t2t/data/objectives/encoder_tasks.py (gin_configs/experiments/bert_tasks/).")
            if head == "token_classification":
                labels = features[key].values
                batch["token_labels"] = layout.place(np.maximum(labels, 0))  # IGNORE (-1) -> 0, weight 0
                batch["token_loss_weights"] = layout.place(labels >= 0)
            elif head == "span_qa":
                span = features[key]
                if not (span.lengths == 2).all():
                    raise ValueError("'span_positions' must hold exactly (start, end) per example.")
                starts = Ragged(span.values[0::2], np.ones(m, np.int64))
                ends = Ragged(span.values[1::2], np.ones(m, np.int64))
                batch["span_start_positions"], batch["span_loss_weights"] = at_first(starts, key)
                batch["span_end_positions"], _ = at_first(ends, key)
            else:
                batch[names[0]], batch[names[1]] = at_first(features[key], key)
        return batch


def _at_first_positions(layout: _Layout, real: np.ndarray, labels: Ragged, name: str
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(labels, loss weights) [num_rows, width]: each non-empty example's one label at its first position."""
    if not (labels.lengths == 1).all():
        raise ValueError(f"'{name}' must hold exactly one label per example.")
    return layout.place_at(labels.values[real], layout.first[real]), layout.place_at(1, layout.first[real])


CONVERTERS = {
    "encoder_decoder": EncDecFeatureConverter,
    "decoder_only": DecoderFeatureConverter,
    "encoder_only": EncoderFeatureConverter,
}
