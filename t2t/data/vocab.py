"""SentencePiece vocabulary with T5's conventions.

Id layout (T5 / seqio, see T5_REFERENCE.md section 7):

    0 PAD | 1 EOS | 2 UNK | 3 .. pieces-1: SentencePiece pieces | pieces .. vocab_size-1: sentinels

The 100 sentinels are appended *above* the SentencePiece pieces in reverse order, so
``<extra_id_0>`` is the last id (``vocab_size - 1``) and ``<extra_id_i>`` is ``vocab_size - 1 - i``.
They are not trained into the model: the trainer would otherwise place user symbols at ids
3..102 and the layout would no longer match T5 checkpoints, gin configs or test vectors.
The embedding table has ``padded_vocab_size`` rows (a multiple of 128, e.g. 32,100 -> 32,128);
the rows above ``vocab_size`` are never produced by the vocabulary.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import string
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import sentencepiece as spm

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2

_EMBEDDED_MODEL = Path(__file__).parent / "embedded" / "spm_8k.model"
_SENTINEL_RE = re.compile(r"<extra_id_(\d+)>")
# SentencePiece skips training sentences longer than max_sentence_length (4192 bytes by default),
# so long lines are cut at whitespace into pieces of at most this many characters.
_MAX_TRAIN_SENTENCE_CHARS = 2000
# Always in the vocabulary, however rare in the training text: otherwise markup, code and maths in
# downstream data ('<', '{', '@', '~' ... never occur in the embedded corpus) and typographic
# quotes and dashes would become UNK.
_REQUIRED_CHARS = string.ascii_letters + string.digits + string.punctuation + "‘’“”–—"


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class Vocabulary:
    """A SentencePiece model plus ``extra_ids`` sentinels appended above its pieces."""

    pad_id: int = PAD_ID
    eos_id: int = EOS_ID
    unk_id: int = UNK_ID

    def __init__(self, model_path: str | os.PathLike, extra_ids: int = 100):
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"SentencePiece model not found: {path}. Train one with "
                "t2t.data.vocab.train_vocabulary(...) or use default_vocabulary()."
            )
        if extra_ids < 0:
            raise ValueError(f"extra_ids must be >= 0, got {extra_ids}")
        self._path = path
        self._extra_ids = extra_ids
        self._sp = spm.SentencePieceProcessor(model_file=str(path))
        found = (self._sp.pad_id(), self._sp.eos_id(), self._sp.unk_id())
        if found != (PAD_ID, EOS_ID, UNK_ID):
            raise ValueError(
                f"{path} has pad/eos/unk ids {found}, but t2t needs (0, 1, 2) as in T5. Retrain it "
                "with pad_id=0, eos_id=1, unk_id=2, bos_id=-1 (train_vocabulary does this)."
            )
        self._num_pieces = self._sp.get_piece_size()

    # Pickle by path (the processor itself is not picklable), e.g. for data-loader workers.
    def __reduce__(self):
        return (Vocabulary, (str(self._path), self._extra_ids))

    def __repr__(self) -> str:
        return (f"Vocabulary({str(self._path)!r}, extra_ids={self._extra_ids}, "
                f"vocab_size={self.vocab_size})")

    @property
    def model_path(self) -> Path:
        return self._path

    @property
    def num_pieces(self) -> int:
        """Size of the SentencePiece model alone (ids below this are pieces)."""
        return self._num_pieces

    @property
    def extra_ids(self) -> int:
        return self._extra_ids

    @property
    def vocab_size(self) -> int:
        """Pieces + sentinels: every id the vocabulary can produce is below this."""
        return self._num_pieces + self._extra_ids

    @property
    def padded_vocab_size(self) -> int:
        """Embedding rows: ``vocab_size`` rounded up to a multiple of 128 (matmul tile size)."""
        return _round_up(self.vocab_size, 128)

    @functools.cached_property
    def model_sha256(self) -> str:
        """sha256 of the model file bytes; a cache key for tokenized data."""
        return hashlib.sha256(self._path.read_bytes()).hexdigest()

    def sentinel_id(self, i: int) -> int:
        """Id of ``<extra_id_i>``: ``vocab_size - 1 - i``."""
        if self._extra_ids == 0:
            raise IndexError(
                f"this vocabulary has no sentinels; span corruption needs extra_ids>0 "
                f"(e.g. Vocabulary({str(self._path)!r}, extra_ids=100))"
            )
        if not 0 <= i < self._extra_ids:
            raise IndexError(f"sentinel index {i} out of range [0, {self._extra_ids})")
        return self.vocab_size - 1 - i

    def _is_sentinel(self, token_id: int) -> bool:
        return self._num_pieces <= token_id < self.vocab_size

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int32) of ``text``, without EOS.

        Literal ``<extra_id_i>`` strings map to sentinel ids, as in seqio where sentinels are
        pieces of the model; so ``encode(decode(ids))`` keeps sentinels. Text after a sentinel is
        encoded as a fresh string, i.e. SentencePiece gives it its leading "▁" (word start).
        Bad text is cleaned first (see ``clean_text``).
        """
        text = clean_text(text)
        if "<extra_id_" not in text or self._extra_ids == 0:
            return np.asarray(self._sp.encode(text), dtype=np.int32)
        ids: list[int] = []
        pos = 0
        for m in _SENTINEL_RE.finditer(text):
            i = int(m.group(1))
            if i >= self._extra_ids:
                continue  # not a sentinel of this vocabulary: left as plain text
            ids += self._sp.encode(text[pos : m.start()])
            ids.append(self.sentinel_id(i))
            pos = m.end()
        ids += self._sp.encode(text[pos:])
        return np.asarray(ids, dtype=np.int32)

    def encode_batch(self, texts: Sequence[str], num_threads: int = -1) -> list[np.ndarray]:
        """``encode`` for many texts with one multithreaded SentencePiece call."""
        texts = [clean_text(t) for t in texts]
        plain = [i for i, t in enumerate(texts) if "<extra_id_" not in t or self._extra_ids == 0]
        out: list[np.ndarray | None] = [None] * len(texts)
        encoded = self._sp.encode([texts[i] for i in plain], num_threads=num_threads)
        for i, ids in zip(plain, encoded):
            out[i] = np.asarray(ids, dtype=np.int32)
        for i, ids in enumerate(out):
            if ids is None:
                out[i] = self.encode(texts[i])
        return out  # type: ignore[return-value]

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """Text of ``ids``: stops at the first EOS, skips PAD, writes sentinels as ``<extra_id_i>``.

        Ids outside ``[0, vocab_size)`` (e.g. padded embedding rows) decode as UNK.
        """
        segments: list[str] = []
        run: list[int] = []

        def flush() -> None:
            if run:
                text = self._sp.decode(run)
                # The piece "▁the" means " the"; SentencePiece drops that space at the start of a
                # string, but after a sentinel it belongs to the text ("<extra_id_0> the").
                if segments and self._sp.id_to_piece(run[0]).startswith("\u2581"):
                    text = " " + text
                segments.append(text)
                run.clear()

        for token_id in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            if token_id == EOS_ID:
                break
            if token_id == PAD_ID:
                continue
            if self._is_sentinel(token_id):
                flush()
                segments.append(f"<extra_id_{self.vocab_size - 1 - token_id}>")
            else:
                run.append(token_id if 0 <= token_id < self._num_pieces else UNK_ID)
        flush()
        return "".join(segments)


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Text SentencePiece can always encode: control characters (other than tab and newlines)
    are dropped, and code points UTF-8 cannot hold (lone surrogates, which JSON escapes such as
    "\\ud800" produce) become "?". Invalid UTF-8 bytes in files were already replaced by U+FFFD
    when read (``t2t.data.sources``)."""
    text = _CONTROL_CHARS.sub("", text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


@functools.lru_cache(maxsize=None)
def default_vocabulary(extra_ids: int = 100) -> Vocabulary:
    """The 8k unigram vocabulary trained on the embedded corpus (+100 sentinels, 8,100 ids)."""
    return Vocabulary(_EMBEDDED_MODEL, extra_ids=extra_ids)


def sentence_iterator(texts: Iterable[str]) -> Iterator[str]:
    """Training sentences for SentencePiece: non-empty lines, long lines cut at whitespace."""
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            while len(line) > _MAX_TRAIN_SENTENCE_CHARS:
                cut = line.rfind(" ", 0, _MAX_TRAIN_SENTENCE_CHARS)
                cut = cut if cut > 0 else _MAX_TRAIN_SENTENCE_CHARS
                yield line[:cut]
                line = line[cut:].lstrip()
            if line:
                yield line


def _stderr_is_a_file() -> bool:
    try:
        sys.stderr.fileno()
        return True
    except (io.UnsupportedOperation, AttributeError, ValueError):
        return False


def train_vocabulary(
    texts: Iterable[str],
    model_prefix: str | os.PathLike,
    vocab_size: int = 8000,
    model_type: str = "unigram",
    character_coverage: float = 0.9999,
    max_sentences: int = 2_000_000,
    seed: int = 0,
) -> Path:
    """Train a SentencePiece model with T5's special ids and write ``<model_prefix>.model``.

    ``vocab_size`` counts SentencePiece pieces only; ``Vocabulary`` adds the sentinels on top, so
    the result contains no ``<extra_id_i>`` pieces. Every printable ASCII character, typographic
    quote and dash is a piece. Training is deterministic for a given input
    and seed: at most ``max_sentences`` sentences are sampled (shuffled with ``seed``), and the
    model is returned in memory rather than written by the trainer, so the file does not record
    the output path and identical inputs give identical bytes.
    """
    path = Path(f"{os.fspath(model_prefix)}.model")
    path.parent.mkdir(parents=True, exist_ok=True)
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    with contextlib.ExitStack() as stack:
        # SentencePiece silences itself by redirecting the stderr file descriptor; where stderr is
        # not a real file (pytest capture, notebooks) it cannot, so it logs instead.
        quiet = ({"logstream": stack.enter_context(open(os.devnull, "w"))}
                 if _stderr_is_a_file() else {})
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentence_iterator(texts),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            required_chars=_REQUIRED_CHARS,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            pad_id=PAD_ID,
            eos_id=EOS_ID,
            unk_id=UNK_ID,
            bos_id=-1,
            num_threads=4,  # fixed: the thread count changes the learned pieces and scores
            **quiet,
        )
    path.write_bytes(model.getvalue())
    return path
