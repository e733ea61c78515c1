"""Masked language modeling for encoder-only models: BERT (MLM + next-sentence prediction) and RoBERTa.

Outputs (``family_features = "mlm"``), all rows of one example the same length:

    inputs       [CLS] ... [SEP] token ids, 15% of the text tokens chosen for prediction and corrupted
    targets      the original token where the MLM loss applies, 0 (PAD, no loss) elsewhere
    token_types  segment A / B ids (0 / 1)
    nsp_labels   (BERT only) one value per row: 0 IsNext, 1 NotNext (as HF's ``next_sentence_label``)

Corruption follows BERT (Devlin et al. §3.1): of the chosen positions, 80% become [MASK], 10% a random
piece in [3, num_pieces), 10% stay unchanged. The number of chosen positions is ``max(1, round(rate * n))``
for n maskable (non-special) tokens, as BERT's ``create_pretraining_data``. Special ids come from the
top sentinels (``VocabInfo``): MASK = vocab_size - 1, CLS = vocab_size - 2, SEP = vocab_size - 3.

Dynamic masking (RoBERTa §4.1) needs nothing here: the pipeline draws each block's noise from
rng(seed, epoch, block), so every epoch sees a new mask. Full-sentence packing is our stream: segments are
contiguous text across document boundaries.
"""

from __future__ import annotations

from collections.abc import Mapping

import gin
import numpy as np

from t2t.data.objectives.base import MLM, Objective, gin_fix
from t2t.data.objectives.ragged import Examples, Ragged
from t2t.data.objectives.transforms import NUM_RESERVED_TOKENS
from t2t.data.objectives.vocab_info import VocabInfo

MASK, RANDOM, KEEP = 0, 1, 2


def choose_positions(maskable: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """bool [B, W]: ``max(1, round(rate * n))`` positions per row, uniformly among its n maskable ones."""
    n = maskable.sum(axis=1)
    count = np.where(n > 0, np.maximum(1, np.rint(rate * n)), 0)
    keys = np.where(maskable, rng.random(maskable.shape), 2.0)
    rank = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
    return rank < count[:, None]


def corrupt(tokens: np.ndarray, chosen: np.ndarray, action: np.ndarray, random_tokens: np.ndarray,
            mask_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) [B, W] for chosen positions and their action (MASK / RANDOM / KEEP).

    >>> tokens = np.array([[7, 10, 11, 12, 13, 8]])          # [CLS] a b c d [SEP]
    >>> chosen = np.array([[0, 1, 0, 1, 1, 0]], bool)
    >>> action = np.array([[0, MASK, 0, RANDOM, KEEP, 0]])
    >>> corrupt(tokens, chosen, action, np.full((1, 6), 42), mask_id=9)
    (array([[ 7,  9, 11, 42, 13,  8]]), array([[ 0, 10,  0, 12, 13,  0]]))
    """
    inputs = np.where(chosen & (action == MASK), mask_id, np.where(chosen & (action == RANDOM), random_tokens, tokens))
    return inputs.astype(tokens.dtype), np.where(chosen, tokens, 0).astype(tokens.dtype)


class _MaskedLM(Objective):
    """Shared MLM machinery: choose positions, draw actions, corrupt."""

    family_features = MLM
    length_features = ("inputs",)
    num_special = 2

    def __init__(self, mlm_rate: float = 0.15, mask_prob: float = 0.8, random_prob: float = 0.1):
        if not (0 <= mask_prob and 0 <= random_prob and mask_prob + random_prob <= 1):
            raise ValueError(f"need mask_prob + random_prob <= 1, got {mask_prob} + {random_prob}.")
        self.mlm_rate, self.mask_prob, self.random_prob = mlm_rate, mask_prob, random_prob

    def _mlm(self, tokens: np.ndarray, maskable: np.ndarray, rng: np.random.Generator,
             vocab: VocabInfo) -> tuple[np.ndarray, np.ndarray]:
        chosen = choose_positions(maskable, self.mlm_rate, rng)
        u = rng.random(tokens.shape)
        action = np.where(u < self.mask_prob, MASK, np.where(u < self.mask_prob + self.random_prob, RANDOM, KEEP))
        random_tokens = rng.integers(NUM_RESERVED_TOKENS, vocab.num_pieces, size=tokens.shape)
        return corrupt(tokens, chosen, action, random_tokens, vocab.mask_id)

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int:
        inputs_length = int(feature_lengths["inputs"])
        minimum = self.num_special + self.min_raw
        if inputs_length < minimum:
            raise ValueError(
                f"TASK_FEATURE_LENGTHS['inputs']={inputs_length} is too short for {self.name}: it needs "
                f"inputs >= {minimum} ({self.num_special} special tokens + {self.min_raw} text tokens). "
                f"Set {gin_fix(self.feature_lengths(max(512, minimum)))}")
        return inputs_length - self.num_special

    min_raw = 1

    def needed_lengths(self, raw_length: int) -> dict[str, int]:
        return {"inputs": raw_length + self.num_special}

    suggested_lengths = needed_lengths

    def feature_lengths(self, inputs_length: int) -> dict[str, int]:
        """{'inputs': inputs_length}: targets and token types have the inputs' length."""
        return {"inputs": inputs_length}


@gin.configurable("roberta")
class RobertaMLM(_MaskedLM):
    """RoBERTa's objective: ``[CLS] segment [SEP]``, MLM 15% with 80/10/10, no NSP.

    Segments are ``inputs_length - 2`` raw tokens. Example (chosen: "inviting" -> MASK, "party" ->
    random "apple", "week" kept):

        tokens      = Thank you for inviting me to your party last week .
        inputs      = [CLS] Thank you for [MASK] me to your apple last week . [SEP]
        targets     =   0    0    0   0  inviting 0 0  0   party  0   week  0   0
        token_types = all 0
    """

    name = "roberta"

    def apply(self, segments: Ragged, rng: np.random.Generator, vocab: VocabInfo) -> Examples:
        text, valid = segments.dense()
        batch, width = text.shape
        n = segments.lengths[:, None]
        q = np.arange(width + 2)[None, :]
        seq = np.full((batch, width + 2), vocab.pad_id, dtype=segments.values.dtype)
        seq[:, 1 : width + 1] = text
        seq = np.where(q == 0, vocab.cls_id, np.where(q == n + 1, vocab.sep_id, seq)).astype(segments.values.dtype)
        real = q < n + 2
        inputs, targets = self._mlm(seq, (q >= 1) & (q <= n), rng, vocab)
        return {"inputs": Ragged.from_dense(inputs, real), "targets": Ragged.from_dense(targets, real),
                "token_types": Ragged.from_dense(np.zeros_like(seq), real)}


@gin.configurable("bert")
class BertMLM(_MaskedLM):
    """BERT's objective: ``[CLS] A [SEP] B [SEP]``, next-sentence prediction and MLM 15% with 80/10/10.

    Segments are ``inputs_length - 3`` raw tokens. Each is split at a uniform point s in [1, n - 1]
    into A = tokens[:s] and B = tokens[s:] (the true continuation, label 0 IsNext). With probability
    ``nsp_prob`` B is replaced by a piece of the same length from another full segment of the block, at
    a uniform offset (label 1 NotNext); so every example has exactly ``inputs_length`` tokens. Token
    types are 0 for [CLS] A [SEP] and 1 for B [SEP]. MLM then chooses among the A and B tokens.

    Example, s = 5, IsNext, chosen "inviting" -> MASK and "party" -> random "apple":

        tokens      = Thank you for inviting me | to your party last week .
        inputs      = [CLS] Thank you for [MASK] me [SEP] to your apple last week . [SEP]
        targets     =   0    0    0   0  inviting 0   0   0   0  party  0    0  0   0
        token_types =   0    0    0   0    0      0   0   1   1    1    1    1  1   1
        nsp_labels  = [0]

    A row without a possible donor (the block's only full segment, or a 1-token segment whose B is
    empty) is always IsNext.
    """

    name = "bert"
    num_special = 3
    min_raw = 2

    def __init__(self, mlm_rate: float = 0.15, mask_prob: float = 0.8, random_prob: float = 0.1,
                 nsp_prob: float = 0.5):
        super().__init__(mlm_rate, mask_prob, random_prob)
        self.nsp_prob = nsp_prob

    def apply(self, segments: Ragged, rng: np.random.Generator, vocab: VocabInfo) -> Examples:
        n = segments.lengths
        batch = len(n)
        # Split point s in [1, max(n - 1, 1)]; B has n - s tokens.
        split = rng.integers(1, np.maximum(n - 1, 1) + 1)
        b_len = n - split
        # Donors: the full-length segments (every B fits in one), never the row itself.
        full = np.flatnonzero(n == n.max()) if batch else np.zeros(0, np.int64)
        rank_in_full = np.full(batch, -1)
        rank_in_full[full] = np.arange(len(full))
        is_full = rank_in_full >= 0
        pick = rng.integers(0, np.maximum(len(full) - is_full, 1))  # uniform over donors other than the row
        donor = full[np.where(is_full, (rank_in_full + 1 + pick) % max(len(full), 1), pick)] if len(full) \
            else np.arange(batch)
        has_donor = (len(full) - is_full > 0) & (b_len > 0)
        not_next = (rng.random(batch) < self.nsp_prob) & has_donor
        offset = rng.integers(0, n[donor] - b_len + 1)
        b_start = np.where(not_next, segments.offsets[donor] + offset, segments.offsets[:-1] + split)

        # Assemble [CLS] A [SEP] B [SEP] as a padded [batch, max_n + 3] array.
        width = int(n.max()) + 3 if batch else 3
        q = np.arange(width)[None, :]
        s, nn = split[:, None], n[:, None]
        a_index = np.clip(segments.offsets[:-1, None] + q - 1, 0, max(len(segments.values) - 1, 0))
        b_index = np.clip(b_start[:, None] + q - s - 2, 0, max(len(segments.values) - 1, 0))
        values = segments.values if len(segments.values) else np.zeros(1, segments.values.dtype)
        seq = np.where(q == 0, vocab.cls_id,
                       np.where(q <= s, values[a_index],
                                np.where((q == s + 1) | (q == nn + 2), vocab.sep_id, values[b_index])))
        seq = seq.astype(segments.values.dtype)
        real = q < nn + 3
        maskable = real & (q != 0) & (q != s + 1) & (q != nn + 2)
        inputs, targets = self._mlm(seq, maskable, rng, vocab)
        token_types = (q > s + 1).astype(seq.dtype)
        return {"inputs": Ragged.from_dense(inputs, real), "targets": Ragged.from_dense(targets, real),
                "token_types": Ragged.from_dense(token_types, real),
                "nsp_labels": Ragged(not_next.astype(seq.dtype), np.ones(batch, np.int64))}
