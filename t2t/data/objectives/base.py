"""The objective protocol and what all objectives share: length groups, length checks, overflow re-draws.

An objective turns B raw token segments into B examples:

    raw_length(feature_lengths) -> int                  raw tokens per segment for the task lengths
    __call__(segments, rng, vocab, feature_lengths)     -> {feature: Ragged}, rows aligned with segments
    feature_lengths(inputs_length) -> {feature: int}    a safe task-length pair to configure
    family_features                                     "text_to_text" or "mlm" (which model family fits)

Lengths are never trimmed. ``raw_length`` checks the configured lengths against what the objective
needs and raises a ValueError with a ready ``--gin.TASK_FEATURE_LENGTHS=...`` fix. Where the output
length is random (i.i.d. masks, BART's deletions and infilling), "needs" is the 99th percentile of the
lengths of full segments (estimated once per raw length by a seeded Monte Carlo run of the objective
itself, ``length_samples`` segments), and at call time the rare rows that would still overflow are
re-drawn, up to ``max_redraws`` rounds, each round drawing new randomness for just those rows (so the
result stays a pure function of the segments and the generator). A row that still overflows raises.
The suggested lengths (``feature_lengths``) are the 99.9th percentile rounded up to a multiple of 8,
which gives T5's own choices (512 / 192 for ``iid_15_u_u``, 512 / 104 for ``iid_15_d_d``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np

from t2t.data.objectives.ragged import Examples, Ragged
from t2t.data.objectives.vocab_info import VocabInfo

TEXT_TO_TEXT = "text_to_text"
MLM = "mlm"


class ObjectiveProtocol(Protocol):
    """What the pipeline and the trainer need from an objective."""

    family_features: str

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int: ...

    def __call__(self, segments: Ragged, rng: np.random.Generator, vocab: VocabInfo,
                 feature_lengths: Mapping[str, int] | None = None) -> Examples: ...


def round_up(n: int, multiple: int = 8) -> int:
    return -(-int(n) // multiple) * multiple


def gin_fix(lengths: Mapping[str, int]) -> str:
    """The command-line flag that sets ``lengths``."""
    return f"--gin.TASK_FEATURE_LENGTHS=\"{dict(lengths)!r}\""


def by_length_groups(segments: Ragged, fn: Callable[[np.ndarray], Examples]) -> Examples:
    """Apply ``fn(tokens [b, L]) -> {feature: Ragged (b rows)}`` to each group of equal-length segments.

    Groups are visited in order of first appearance (so random draws are deterministic) and the rows are
    put back in segment order. A block of segments has at most two lengths (full ones and the stream's
    last, shorter piece), so this loop is short.
    """
    unique_lengths, first_row = np.unique(segments.lengths, return_index=True)
    groups = [np.flatnonzero(segments.lengths == unique_lengths[i]) for i in np.argsort(first_row)]
    parts = []
    for rows in groups:
        length = int(segments.lengths[rows[0]])
        parts.append(fn(segments.values[segments.offsets[rows][:, None] + np.arange(length)]))
    if not parts:
        return {}
    examples = {k: Ragged.concat([p[k] for p in parts]) for k in parts[0]}
    if len(groups) > 1:  # restore segment order
        order = np.argsort(np.concatenate(groups), kind="stable")
        examples = {k: v.take(order) for k, v in examples.items()}
    return examples


class Objective:
    """Base class: subclasses implement ``apply`` and ``raw_length`` (and may refine the length methods).

    Attributes:
      name: gin name, used in messages.
      family_features: "text_to_text" ({'inputs', 'targets'}) or "mlm".
      uses_sentinels: whether examples contain sentinel / mask ids (the ids above the vocabulary's
        pieces), so the vocabulary must have extra ids.
      max_redraws: rounds of re-drawing rows that overflow the feature lengths.
      accept_quantile: a configured length must hold this quantile of full-segment outputs.
      suggest_quantile: ``feature_lengths`` suggests this quantile (rounded up to 8).
      length_samples: Monte Carlo segments for the length quantiles.
    """

    name = "objective"
    family_features = TEXT_TO_TEXT
    uses_sentinels = True
    max_redraws = 8
    accept_quantile = 0.99
    suggest_quantile = 0.999
    length_samples = 20_000

    def apply(self, segments: Ragged, rng: np.random.Generator, vocab: VocabInfo) -> Examples:
        """The examples of ``segments`` (EOS appended where the objective has one), lengths unchecked."""
        raise NotImplementedError

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int:
        raise NotImplementedError

    def __call__(self, segments: Ragged, rng: np.random.Generator, vocab: VocabInfo | int,
                 feature_lengths: Mapping[str, int] | None = None) -> Examples:
        """Apply the objective to each segment; with ``feature_lengths`` every example fits them.

        Args:
          segments: B raw token segments.
          rng: source of all randomness; the same generator state gives the same examples.
          vocab: the vocabulary (a bare int is taken as ``VocabInfo.simple(vocab_size)``).
          feature_lengths: task lengths to guarantee (rows that overflow are re-drawn); None: no check.

        Returns:
          {feature: Ragged with B rows}, row i made from segment i.
        """
        vocab = VocabInfo.coerce(vocab)
        examples = self.apply(segments, rng, vocab)
        if feature_lengths is None:
            return examples
        limits = {k: int(v) for k, v in feature_lengths.items() if k in examples}
        for _ in range(self.max_redraws):
            over = self._overflowing(examples, limits)
            if not over.size:
                return examples
            redrawn = self.apply(segments.take(over), rng, vocab)
            examples = {k: v.replace_rows(over, redrawn[k]) for k, v in examples.items()}
        over = self._overflowing(examples, limits)
        if over.size:
            row = int(over[0])
            longest = {k: max(int(limits[k]), int(examples[k].lengths[over].max())) for k in limits}
            raise ValueError(
                f"{self.name}: {over.size} example(s) still exceed TASK_FEATURE_LENGTHS={dict(feature_lengths)} "
                f"after {self.max_redraws} re-draws (e.g. row {row}: "
                f"{ {k: int(v.lengths[row]) for k, v in examples.items() if k in limits} }); examples are never "
                f"truncated. Use longer lengths, e.g. "
                f"{gin_fix({k: round_up(v) for k, v in longest.items()})}")
        return examples

    @staticmethod
    def _overflowing(examples: Examples, limits: Mapping[str, int]) -> np.ndarray:
        if not examples:
            return np.zeros(0, np.int64)
        over = np.zeros(len(next(iter(examples.values()))), bool)
        for k, limit in limits.items():
            over |= examples[k].lengths > limit
        return np.flatnonzero(over)

    # ----- lengths -----

    def sample_lengths(self, raw_length: int) -> dict[str, np.ndarray]:
        """Sorted output lengths per feature of ``length_samples`` random full segments (cached).

        Seeded, so deterministic; the segments are random pieces of a 32,100-id vocabulary (the lengths
        of every objective here depend on the noise only, not on the token values).
        """
        cache = self.__dict__.setdefault("_length_cache", {})
        if raw_length not in cache:
            rng = np.random.default_rng([raw_length, 1234])
            vocab = VocabInfo.simple(32100, sentence_end_ids=range(3, 32000, 10))
            lengths: dict[str, list] = {}
            chunk = max(1, min(self.length_samples, 2_000_000 // max(raw_length, 1)))
            for start in range(0, self.length_samples, chunk):
                n = min(chunk, self.length_samples - start)
                tokens = rng.integers(3, 32000, size=(n, raw_length), dtype=np.int32)
                for k, v in self.apply(Ragged.from_dense(tokens), rng, vocab).items():
                    lengths.setdefault(k, []).append(v.lengths)
            cache[raw_length] = {k: np.sort(np.concatenate(v)) for k, v in lengths.items()}
        return cache[raw_length]

    def _quantile_lengths(self, raw_length: int, q: float, round_varying: bool) -> dict[str, int]:
        out = {}
        for k in self.length_features:
            x = self.sample_lengths(raw_length)[k]
            value = int(x[min(len(x) - 1, int(np.ceil(q * len(x))) - 1)])
            out[k] = round_up(value) if round_varying and x[0] != x[-1] else value
        return out

    def needed_lengths(self, raw_length: int) -> dict[str, int]:
        """The smallest lengths that hold ``accept_quantile`` of the outputs of full segments."""
        return self._quantile_lengths(raw_length, self.accept_quantile, round_varying=False)

    def suggested_lengths(self, raw_length: int) -> dict[str, int]:
        """``suggest_quantile`` lengths, rounded up to a multiple of 8 where they vary."""
        return self._quantile_lengths(raw_length, self.suggest_quantile, round_varying=True)

    length_features: tuple[str, ...] = ("inputs", "targets")

    def check_lengths(self, raw_length: int, feature_lengths: Mapping[str, int],
                      suggestion: Mapping[str, int]) -> None:
        """Raise if a configured length is below ``needed_lengths(raw_length)``."""
        needed = self.needed_lengths(raw_length)
        for k, need in needed.items():
            have = feature_lengths.get(k)
            if have is not None and int(have) < need:
                given = ", ".join(f"{n}={int(v)}" for n, v in feature_lengths.items() if n != k)
                raise ValueError(
                    f"TASK_FEATURE_LENGTHS['{k}']={int(have)} is too short for {self.name}{self.describe()}: "
                    f"with {given or 'these lengths'} ({raw_length} raw tokens per segment) it needs "
                    f"{k} >= {need}. Set {gin_fix(suggestion)}")

    def describe(self) -> str:
        """Parameters for messages, e.g. ' (noise_density=0.15)'."""
        return ""

    def feature_lengths(self, inputs_length: int) -> dict[str, int]:
        """Task lengths that fit this objective for an encoder of ``inputs_length`` tokens."""
        raise NotImplementedError
