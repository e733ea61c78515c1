"""What objectives need to know about a vocabulary: sizes, special ids and which pieces end a sentence.

Id layout (T5 conventions, see t2t/data/vocab.py):

    0 PAD | 1 EOS | 2 UNK | 3 .. num_pieces-1: pieces | num_pieces .. vocab_size-1: sentinels

Special tokens of the non-T5 objectives are taken from the top sentinels, so no id is added:
MASK = ``<extra_id_0>`` = vocab_size - 1 (the token T5's "BERT-style" and MASS-style objectives use),
CLS = vocab_size - 2 and SEP = vocab_size - 3.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

SENTENCE_END_CHARS = (".", "!", "?")


@dataclasses.dataclass(frozen=True, eq=False)
class VocabInfo:
    """Sizes and special ids of a vocabulary, as objectives use them.

    Attributes:
      vocab_size: every id is below this (pieces + sentinels).
      num_pieces: ids below this are SentencePiece pieces (random replacement tokens of BERT and BART
        are drawn from the real pieces [3, num_pieces)).
      eos_id, pad_id, unk_id: T5's 1, 0, 2.
      sentence_end: bool [vocab_size], True for pieces ending a sentence (ending in '.', '!' or '?');
        BART's sentence permutation splits after them.
    """

    vocab_size: int
    num_pieces: int
    eos_id: int = 1
    pad_id: int = 0
    unk_id: int = 2
    sentence_end: np.ndarray | None = None

    def __post_init__(self):
        if not 3 < self.num_pieces <= self.vocab_size:
            raise ValueError(f"need 3 < num_pieces <= vocab_size, got {self.num_pieces} and {self.vocab_size}.")
        ends = np.zeros(self.vocab_size, bool) if self.sentence_end is None else np.asarray(self.sentence_end, bool)
        if ends.shape != (self.vocab_size,):
            raise ValueError(f"sentence_end must have shape ({self.vocab_size},), got {ends.shape}.")
        ends.flags.writeable = False
        object.__setattr__(self, "sentence_end", ends)

    @property
    def mask_id(self) -> int:
        """``<extra_id_0>``, the single mask/sentinel token of BERT-, MASS- and BART-style noising."""
        return self.vocab_size - 1

    @property
    def cls_id(self) -> int:
        return self.vocab_size - 2

    @property
    def sep_id(self) -> int:
        return self.vocab_size - 3

    @classmethod
    def simple(cls, vocab_size: int, sentence_end_ids=(), num_pieces: int | None = None) -> VocabInfo:
        """A vocabulary for tests: ``num_pieces`` (default vocab_size - 100, at least 4) pieces."""
        num_pieces = max(vocab_size - 100, 4) if num_pieces is None else num_pieces
        ends = np.zeros(vocab_size, bool)
        ends[list(sentence_end_ids)] = True
        return cls(vocab_size=vocab_size, num_pieces=num_pieces, sentence_end=ends)

    @classmethod
    def coerce(cls, vocab: VocabInfo | int) -> VocabInfo:
        """``vocab`` itself, or ``VocabInfo.simple(vocab)`` for a bare vocabulary size (tests, T5 objectives)."""
        return vocab if isinstance(vocab, VocabInfo) else cls.simple(int(vocab))

    @classmethod
    def from_vocabulary(cls, vocab) -> VocabInfo:
        """From a :class:`t2t.data.vocab.Vocabulary` (or anything with ``vocab_size``, ``num_pieces`` and
        either ``id_to_piece(i)`` or a SentencePiece ``model_path``)."""
        num_pieces = int(getattr(vocab, "num_pieces", vocab.vocab_size))
        if hasattr(vocab, "id_to_piece"):
            pieces = [vocab.id_to_piece(i) for i in range(num_pieces)]
        else:
            pieces = _sentencepiece_pieces(str(vocab.model_path))[:num_pieces]
        ends = np.zeros(vocab.vocab_size, bool)
        ends[:num_pieces] = [i > 2 and p.endswith(SENTENCE_END_CHARS) for i, p in enumerate(pieces)]
        return cls(vocab_size=int(vocab.vocab_size), num_pieces=num_pieces, eos_id=int(getattr(vocab, "eos_id", 1)),
                   pad_id=int(getattr(vocab, "pad_id", 0)), unk_id=int(getattr(vocab, "unk_id", 2)), sentence_end=ends)


@functools.lru_cache(maxsize=8)
def _sentencepiece_pieces(model_path: str) -> tuple[str, ...]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model_path)
    return tuple(sp.id_to_piece(i) for i in range(sp.get_piece_size()))
