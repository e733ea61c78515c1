"""BART's denoising objective (Lewis et al. 2019, §2.2): noise the text, reconstruct the original.

    inputs  = noising_k(... noising_1(segment)) + EOS        targets = segment + EOS

The noising is a list of steps applied in order, each vectorised over a ragged batch
(``step(tokens: Ragged, rng, vocab) -> Ragged``) and gin-configurable:

    bart_token_masking(rate)          each token -> MASK with probability ``rate``
    bart_token_deletion(rate)         each token deleted with probability ``rate``
    bart_text_infilling(density, poisson_lambda)
                                      spans of Poisson(lambda) lengths covering ``round(density * n)``
                                      tokens each become ONE MASK; a 0-length span inserts a MASK
    bart_sentence_permutation()       split after sentence-end pieces ('.', '!', '?'), shuffle sentences
    bart_document_rotation()          rotate so that a uniformly chosen token starts the sequence

BART's own setting (``Bart()``): sentence permutation, then text infilling at 30% with Poisson(3), as
fairseq's denoising dataset orders them. MASK is ``<extra_id_0>`` (``VocabInfo.mask_id``).

Example on the Table 3 sentence, infilling spans "for inviting" (length 2) and a 0-length span before
"last", then no permutation (one sentence):

    inputs  = Thank you <M> me to your party <M> last week . EOS
    targets = Thank you for inviting me to your party last week . EOS
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gin
import numpy as np

from t2t.data.objectives.base import Objective, gin_fix
from t2t.data.objectives.ragged import Examples, Ragged
from t2t.data.objectives.vocab_info import VocabInfo


def _row_counts(row_ids: np.ndarray, num_rows: int) -> np.ndarray:
    return np.bincount(row_ids, minlength=num_rows).astype(np.int64)


@gin.configurable("bart_token_masking")
class TokenMasking:
    """Each token becomes MASK with probability ``rate``: "Thank you <M> inviting me ..." (length kept)."""

    def __init__(self, rate: float = 0.15):
        self.rate = rate

    def __call__(self, tokens: Ragged, rng: np.random.Generator, vocab: VocabInfo) -> Ragged:
        masked = rng.random(tokens.values.shape) < self.rate
        return Ragged(np.where(masked, vocab.mask_id, tokens.values).astype(tokens.values.dtype), tokens.lengths)


@gin.configurable("bart_token_deletion")
class TokenDeletion:
    """Each token is deleted with probability ``rate``: "Thank you inviting me to party last week ."."""

    def __init__(self, rate: float = 0.15):
        self.rate = rate

    def __call__(self, tokens: Ragged, rng: np.random.Generator, vocab: VocabInfo) -> Ragged:
        keep = rng.random(tokens.values.shape) >= self.rate
        return Ragged(tokens.values[keep], _row_counts(tokens.row_ids[keep], len(tokens)))


def infill(tokens: Ragged, span_rows: np.ndarray, span_starts: np.ndarray, span_lengths: np.ndarray,
           mask_id: int) -> Ragged:
    """Replace each span (row, start, length) by one ``mask_id``; a 0-length span inserts one.

    Spans must not overlap; spans of a row may be given in any order.

    >>> tokens = Ragged.from_rows([[10, 11, 12, 13, 14, 15, 16]])
    >>> infill(tokens, np.array([0, 0]), np.array([2, 5]), np.array([2, 0]), 99).to_list()
    [[10, 11, 99, 14, 99, 15, 16]]
    """
    is_noise = np.zeros(tokens.values.shape[0], bool)
    noise_index = np.repeat(tokens.offsets[span_rows] + span_starts, span_lengths)
    noise_index += np.arange(len(noise_index)) - np.repeat(np.cumsum(span_lengths) - span_lengths, span_lengths)
    is_noise[noise_index] = True
    keep = ~is_noise
    # Merge kept tokens and masks by (row, position in the original row, masks first).
    rows = np.concatenate([tokens.row_ids[keep], span_rows])
    positions = np.concatenate([tokens.positions[keep], span_starts])
    kinds = np.concatenate([np.ones(keep.sum(), np.int8), np.zeros(len(span_rows), np.int8)])
    values = np.concatenate([tokens.values[keep], np.full(len(span_rows), mask_id, tokens.values.dtype)])
    order = np.lexsort((kinds, positions, rows))
    return Ragged(values[order], _row_counts(rows, len(tokens)))


@gin.configurable("bart_text_infilling")
class TextInfilling:
    """Spans with Poisson(``poisson_lambda``) lengths covering ``round(density * n)`` tokens of each row,
    each replaced by ONE mask token; 0-length spans insert a mask token.

    Per row: span lengths are drawn until they cover the noise count (the last one is cut to fit), put
    in random order, and the non-noise tokens are split into ``spans + 1`` gaps (possibly empty) at
    uniformly random points, so spans never overlap (adjacent spans give adjacent masks).
    Example: see the module docstring and ``infill``.
    """

    def __init__(self, density: float = 0.3, poisson_lambda: float = 3.0):
        self.density, self.poisson_lambda = density, poisson_lambda

    def __call__(self, tokens: Ragged, rng: np.random.Generator, vocab: VocabInfo) -> Ragged:
        n = tokens.lengths
        num_noise = np.rint(n * self.density).astype(np.int64)
        batch = len(n)
        if batch == 0 or num_noise.max() == 0:
            return tokens
        # Draw span lengths, adding columns until every row is covered (a few rounds at most).
        columns = int(np.ceil(num_noise.max() / max(self.poisson_lambda, 1e-6))) + 8
        draws = rng.poisson(self.poisson_lambda, size=(batch, columns))
        while (draws.sum(axis=1) < num_noise).any():
            draws = np.concatenate([draws, rng.poisson(self.poisson_lambda, size=(batch, columns))], axis=1)
            columns = draws.shape[1]
        covered = np.cumsum(draws, axis=1)
        num_spans = np.where(num_noise > 0, (covered < num_noise[:, None]).sum(axis=1) + 1, 0)
        is_span = np.arange(columns) < num_spans[:, None]
        before = covered - draws  # noise covered by the earlier spans
        lengths = np.where(is_span, np.minimum(draws, num_noise[:, None] - before), 0)
        # Random order of the spans within each row (else the cut one would always be last).
        keys = np.where(is_span, rng.random((batch, columns)), 2.0)
        order = np.argsort(keys, axis=1)
        lengths = np.take_along_axis(lengths, order, axis=1)
        # Gap sizes: sorted uniform cut points in [0, n - noise]; span j follows cuts[j] kept tokens.
        kept = n - num_noise
        cuts = np.where(is_span, rng.integers(0, kept[:, None] + 1, size=(batch, columns)), kept[:, None])
        cuts = np.sort(cuts, axis=1)
        starts = cuts + np.cumsum(lengths, axis=1) - lengths
        span_rows = np.nonzero(is_span)[0]
        return infill(tokens, span_rows, starts[is_span], lengths[is_span], vocab.mask_id)


def permute_sentences(tokens: Ragged, sentence_end: np.ndarray, keys: np.ndarray) -> Ragged:
    """Reorder the sentences of each row by ``keys`` (one float per sentence, in row-major order).

    A sentence ends after a token with ``sentence_end[token]``; text after the last end is a sentence too.

    >>> ends = np.zeros(20, bool); ends[[13]] = True        # 13 = "."
    >>> tokens = Ragged.from_rows([[3, 4, 13, 5, 13, 6]])   # "a b . c . d"
    >>> permute_sentences(tokens, ends, np.array([0.5, 0.1, 0.9])).to_list()
    [[5, 13, 3, 4, 13, 6]]
    """
    ends = sentence_end[tokens.values]
    # Sentence index within the row: number of sentence ends strictly before the token in its row.
    ends_before = np.cumsum(ends) - ends
    local = ends_before - np.repeat(_row_start_values(ends_before, tokens), tokens.lengths)
    sentences_per_row = np.zeros(len(tokens), np.int64)
    np.maximum.at(sentences_per_row, tokens.row_ids, local + 1)
    sentence_offsets = np.concatenate([[0], np.cumsum(sentences_per_row)])
    sentence = sentence_offsets[tokens.row_ids] + local  # global sentence id of each token
    order = np.lexsort((tokens.positions, keys[sentence], tokens.row_ids))
    return Ragged(tokens.values[order], tokens.lengths)


def _row_start_values(x: np.ndarray, tokens: Ragged) -> np.ndarray:
    """x at the first position of each row (0 for empty rows)."""
    out = np.zeros(len(tokens), x.dtype)
    nonempty = tokens.lengths > 0
    out[nonempty] = x[tokens.offsets[:-1][nonempty]]
    return out


@gin.configurable("bart_sentence_permutation")
class SentencePermutation:
    """Shuffle each row's sentences (split after sentence-end pieces): "b . a ." <- "a . b ."."""

    def __call__(self, tokens: Ragged, rng: np.random.Generator, vocab: VocabInfo) -> Ragged:
        # One key per possible sentence: at most one per token plus one per row.
        return permute_sentences(tokens, vocab.sentence_end, rng.random(len(tokens.values) + len(tokens)))


def rotate(tokens: Ragged, shifts: np.ndarray) -> Ragged:
    """Rotate row i left by ``shifts[i]`` (so its token ``shifts[i]`` comes first).

    >>> rotate(Ragged.from_rows([[3, 4, 5, 6], [7, 8]]), np.array([1, 0])).to_list()
    [[4, 5, 6, 3], [7, 8]]
    """
    n = np.maximum(tokens.lengths, 1)
    source = (tokens.positions + np.repeat(shifts, tokens.lengths)) % np.repeat(n, tokens.lengths)
    return Ragged(tokens.values[np.repeat(tokens.offsets[:-1], tokens.lengths) + source], tokens.lengths)


@gin.configurable("bart_document_rotation")
class DocumentRotation:
    """Rotate each row so that a uniformly chosen token starts it: "party last week . Thank you ..."."""

    def __call__(self, tokens: Ragged, rng: np.random.Generator, vocab: VocabInfo) -> Ragged:
        return rotate(tokens, rng.integers(0, np.maximum(tokens.lengths, 1)))


@gin.configurable("bart")
class Bart(Objective):
    """BART: inputs = the noised segment + EOS, targets = the segment + EOS (encoder-decoder family).

    Segments are ``targets_length - 1`` raw tokens. The inputs' length is random when the steps delete
    or infill; ``raw_length`` checks the inputs length against the 99th percentile of full segments,
    and the rare longer rows are re-drawn at call time (see ``base.py``).

    Args:
      steps: noising steps applied in order; default ``(SentencePermutation(), TextInfilling(0.3, 3.0))``.
        In gin: ``bart.steps = [@bart_sentence_permutation(), @bart_text_infilling()]``.
    """

    name = "bart"
    length_samples = 5_000

    def __init__(self, steps: Sequence | None = None):
        self.steps = tuple(steps) if steps is not None else (SentencePermutation(), TextInfilling())

    def apply(self, segments: Ragged, rng: np.random.Generator, vocab: VocabInfo) -> Examples:
        noised = segments
        for step in self.steps:
            noised = step(noised, rng, vocab)
        return {"inputs": noised.append(vocab.eos_id), "targets": segments.append(vocab.eos_id)}

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int:
        """``targets_length - 1``; raises if the inputs length would not hold the noised segments."""
        targets_length = int(feature_lengths["targets"])
        if targets_length < 2:
            raise ValueError(f"bart needs targets >= 2, got {targets_length}. Set {gin_fix(self.feature_lengths(512))}")
        raw = targets_length - 1
        self.check_lengths(raw, feature_lengths, self.feature_lengths(targets_length))
        return raw

    def feature_lengths(self, inputs_length: int) -> dict[str, int]:
        """Segments of ``inputs_length - 1`` tokens: {'inputs': max(inputs_length, suggested), 'targets': inputs_length}."""
        suggested = self.suggested_lengths(inputs_length - 1)
        return {"inputs": max(inputs_length, suggested["inputs"]), "targets": inputs_length}
