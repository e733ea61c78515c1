"""A deterministic, checkpointable pre-training input pipeline.

    documents ──► tokens ──► one stream per epoch ──► segments ──► objective ──► packed batches
    (texts)      (cached     (documents permuted by   (raw_length  (blocks of    (next-fit, in order)
                  .npy)       (seed, epoch), joined    tokens each) segments,
                              without separators)                   rng(seed, epoch, block))

Every example is a pure function of (seed, epoch, example index): the stream of epoch e depends only
on (seed, e), and the objective runs on fixed blocks of ``block_size`` segments, each with its own
generator seeded by (seed, e, block), so neither the batch size nor how far the iterator has run
changes any example. Batches take examples in order through the packer, so a batch is a pure function
of the index of its first example; the pipeline state is just that index (plus the epoch), and
``set_state`` resumes exactly, without replaying the stream from its start.

As T5's ``reduce_concat_tokens`` + ``split_tokens``, documents are joined without separators and the
stream is cut into consecutive segments of ``objective.raw_length(feature_lengths)`` raw tokens; the last,
shorter piece of each epoch is kept. Batches run across epoch boundaries; with a finite ``num_epochs``
the final batch is padded with empty rows.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np

from t2t.data.objectives import Examples, ObjectiveProtocol, Ragged, VocabInfo


class Vocab(Protocol):
    """The part of a vocabulary that tokenization needs (``VocabInfo.from_vocabulary`` reads the rest)."""

    vocab_size: int
    eos_id: int
    model_sha256: str

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]: ...


class Converter(Protocol):
    """The part of a feature converter the pipeline uses (see t2t/data/converters.py)."""

    feature_lengths: Mapping[str, int]

    def assign_rows(self, examples: Mapping[str, Ragged], max_rows: int | None) -> np.ndarray:
        """Row of each example for a prefix of ``examples`` (next-fit packing into ``max_rows`` rows)."""

    def scatter(self, examples: Mapping[str, Ragged], rows: np.ndarray, num_rows: int) -> dict[str, np.ndarray]:
        """The model features [num_rows, ...] of the examples placed by ``assign_rows``."""


@dataclasses.dataclass(frozen=True)
class TokenizedCorpus:
    """Documents as one flat token array plus document offsets.

    Document i is ``tokens[offsets[i]:offsets[i + 1]]``.

    Attributes:
      tokens: [num_tokens] int32 token ids of all documents, concatenated.
      offsets: [num_docs + 1] int64, starting at 0 and ending at num_tokens.
      vocab: the vocabulary the ids come from (sizes, special ids, sentence ends), as objectives need it.
    """

    tokens: np.ndarray
    offsets: np.ndarray
    vocab: VocabInfo

    def __post_init__(self):
        if self.offsets.ndim != 1 or len(self.offsets) < 1 or self.offsets[0] != 0 \
                or self.offsets[-1] != len(self.tokens) or np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must start at 0, be non-decreasing and end at len(tokens).")

    @property
    def num_docs(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    def doc(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def unigram_entropy(self) -> float:
        """Entropy of the corpus's unigram token distribution, in nats per token.

        A reference point for losses: a model that ignores context cannot beat it.
        """
        counts = np.bincount(self.tokens)
        p = counts[counts > 0] / self.num_tokens
        return float(-(p * np.log(p)).sum())


def _texts_sha256(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))  # length prefix: ["ab", "c"] != ["a", "bc"]
        digest.update(data)
    return digest.hexdigest()


def tokenize_documents(texts: Iterable[str], vocab: Vocab, cache_dir: str | None = None,
                       batch_size: int = 1024) -> TokenizedCorpus:
    """Tokenize documents into a :class:`TokenizedCorpus`, dropping empty ones.

    With ``cache_dir``, the result is stored as ``<key>.tokens.npy`` (int32) and ``<key>.offsets.npy``
    (int64), keyed by sha256 of the texts and ``vocab.model_sha256``, and memory-mapped on a hit.

    Args:
      texts: the documents (read once).
      vocab: has ``encode_batch``, ``vocab_size``, ``eos_id`` and ``model_sha256``, and what
        ``VocabInfo.from_vocabulary`` reads (``num_pieces`` and ``model_path`` or ``id_to_piece``).
      cache_dir: directory for the cache, created if needed; None disables caching.
      batch_size: documents per ``encode_batch`` call.
    """
    texts = list(texts)
    info = VocabInfo.from_vocabulary(vocab)
    paths = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{_texts_sha256(texts)}:{vocab.model_sha256}".encode()).hexdigest()
        paths = [os.path.join(cache_dir, f"{key}.{name}.npy") for name in ("tokens", "offsets")]
        if all(os.path.exists(p) for p in paths):
            tokens, offsets = (np.load(p, mmap_mode="r") for p in paths)
            return TokenizedCorpus(tokens, offsets, info)
    docs = []
    for start in range(0, len(texts), batch_size):
        for ids in vocab.encode_batch(texts[start : start + batch_size]):
            if len(ids):
                docs.append(np.asarray(ids, dtype=np.int32))
    tokens = np.concatenate(docs) if docs else np.zeros(0, np.int32)
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    if paths is not None:
        os.makedirs(cache_dir, exist_ok=True)
        for path, array in zip(paths, (tokens, offsets)):  # offsets last: its presence marks completion
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                np.save(f, array)
            os.replace(tmp, path)
    return TokenizedCorpus(tokens, offsets, info)


class Pipeline:
    """Packed, deterministic batches from a tokenized corpus; see the module docstring.

    Example (span corruption at 512 / 114: every full 568-token segment fills exactly one row):

        pipeline = Pipeline(corpus, SpanCorruption(), EncDecFeatureConverter({'inputs': 512, 'targets': 114}),
                            batch_size=128, seed=0)
        batch = next(pipeline)            # dict of int32 [128, 512] / [128, 114] arrays
        state = pipeline.get_state()      # {'epoch': 0, 'example': 128, 'seed': 0}
        pipeline.set_state(state)         # later, in a new process: the same next batch
    """

    def __init__(self, corpus: TokenizedCorpus, objective: ObjectiveProtocol, converter: Converter,
                 batch_size: int, seed: int = 0, shuffle: bool = True, num_epochs: int | None = None,
                 block_size: int = 1024):
        """
        Args:
          corpus: the documents.
          objective: raw segments -> examples (e.g. ``SpanCorruption()``); called with the
            converter's ``feature_lengths``, which every example it returns fits.
          converter: packs examples into rows (``assign_rows`` / ``scatter``); its ``feature_lengths``
            set the segment length through ``objective.raw_length``.
          batch_size: rows per batch.
          seed: seeds the document order and the objective's randomness.
          shuffle: permute documents each epoch (False: corpus order, e.g. for validation).
          num_epochs: None for an endless stream, else stop after this many passes.
          block_size: segments per objective call; part of the data definition (changing it changes
            the examples), and of the memory/latency trade-off (one block is held per batch).
        """
        if batch_size < 1 or block_size < 1:
            raise ValueError("batch_size and block_size must be positive.")
        if num_epochs is not None and num_epochs < 1:
            raise ValueError("num_epochs must be None or positive.")
        if corpus.num_tokens == 0:
            raise ValueError("the corpus is empty: it has no tokens (were all documents empty?).")
        self.corpus, self.objective, self.converter = corpus, objective, converter
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.num_epochs, self.block_size = num_epochs, block_size
        self.raw_length = objective.raw_length(converter.feature_lengths)
        if corpus.num_tokens < self.raw_length:
            raise ValueError(f"the corpus has {corpus.num_tokens} tokens, fewer than one segment of "
                             f"{self.raw_length} raw tokens for feature lengths {converter.feature_lengths}.")
        self.examples_per_epoch = math.ceil(corpus.num_tokens / self.raw_length)
        self._epoch, self._example = 0, 0
        # Small LRU caches: a batch touches at most a couple of blocks, usually of one epoch.
        self._layouts: collections.OrderedDict[int, tuple] = collections.OrderedDict()
        self._blocks: collections.OrderedDict[tuple[int, int], Examples] = collections.OrderedDict()

    # ----- state -----

    def get_state(self) -> dict:
        """JSON-serialisable position: the epoch and index (within it) of the next example."""
        return {"epoch": self._epoch, "example": self._example, "seed": self.seed}

    def set_state(self, state: dict) -> None:
        """Resume at ``state``: the next batch is the one the uninterrupted iterator would give."""
        if state["seed"] != self.seed:
            raise ValueError(f"state was saved with seed {state['seed']}, this pipeline has seed {self.seed}.")
        epoch, example = int(state["epoch"]), int(state["example"])
        if epoch < 0 or not 0 <= example < self.examples_per_epoch:
            raise ValueError(f"invalid state {state}: epochs have {self.examples_per_epoch} examples.")
        self._epoch, self._example = epoch, example

    # ----- the example stream -----

    def _layout(self, epoch: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(document order [D], start of each document in the epoch's stream [D + 1]); None = corpus order."""
        if not self.shuffle:
            return None
        if epoch not in self._layouts:
            # Tags 0 (document order) and 1 (objective blocks) keep the two seed families apart;
            # SeedSequence zero-pads entropy, so untagged [seed, e] and [seed, e, 0] would collide.
            order = np.random.default_rng([self.seed, 0, epoch]).permutation(self.corpus.num_docs)
            starts = np.zeros(len(order) + 1, dtype=np.int64)
            np.cumsum(np.diff(self.corpus.offsets)[order], out=starts[1:])
            self._layouts[epoch] = (order, starts)
            if len(self._layouts) > 2:
                self._layouts.popitem(last=False)
        return self._layouts[epoch]

    def _stream(self, epoch: int, start: int, stop: int) -> np.ndarray:
        """Tokens ``start:stop`` of the epoch's stream (its documents joined in permuted order)."""
        layout = self._layout(epoch)
        if layout is None:
            return np.asarray(self.corpus.tokens[start:stop])
        order, starts = layout
        first = np.searchsorted(starts, start, side="right") - 1
        last = np.searchsorted(starts, stop, side="left")  # documents first..last-1 overlap the range
        doc_start = starts[first:last]
        lo = np.maximum(start - doc_start, 0)
        hi = np.minimum(stop, starts[first + 1 : last + 1]) - doc_start
        lengths = hi - lo
        out_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        # One gather: output token j of piece i comes from the source document's offset + lo + (j - out_start).
        index = np.repeat(self.corpus.offsets[order[first:last]] + lo - out_starts, lengths) + np.arange(stop - start)
        return np.asarray(self.corpus.tokens[index])

    def _block(self, epoch: int, block: int) -> Examples:
        """Examples ``block * block_size ...`` of the epoch (the objective applied to one block of segments)."""
        key = (epoch, block)
        if key not in self._blocks:
            first = block * self.block_size
            last = min(first + self.block_size, self.examples_per_epoch)
            start, stop = first * self.raw_length, min(last * self.raw_length, self.corpus.num_tokens)
            lengths = np.full(last - first, self.raw_length, dtype=np.int64)
            lengths[-1] = stop - (last - 1) * self.raw_length
            segments = Ragged(self._stream(epoch, start, stop), lengths)
            rng = np.random.default_rng([self.seed, 1, epoch, block])
            self._blocks[key] = self.objective(segments, rng, self.corpus.vocab, self.converter.feature_lengths)
            if len(self._blocks) > 2:
                self._blocks.popitem(last=False)
        return self._blocks[key]

    def _done(self, epoch: int) -> bool:
        return self.num_epochs is not None and epoch >= self.num_epochs

    # ----- batches -----

    def __iter__(self) -> Pipeline:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        """The next packed batch: the converter's int32 [batch_size, ...] features."""
        if self._done(self._epoch):
            raise StopIteration
        # Gather examples block by block until the packer closes the batch (an example does not fit)
        # or the stream ends: only then is it known which examples the batch holds.
        parts: list[Examples] = []
        epoch, example = self._epoch, self._example
        while True:
            block = example // self.block_size
            examples = self._block(epoch, block)
            local = example - block * self.block_size
            parts.append({k: v.slice(local, len(v)) for k, v in examples.items()})
            merged = {k: Ragged.concat([p[k] for p in parts]) for k in parts[0]}
            rows = self.converter.assign_rows(merged, self.batch_size)
            if len(rows) < len(next(iter(merged.values()))):
                break
            example = block * self.block_size + len(next(iter(examples.values())))
            if example == self.examples_per_epoch:
                epoch, example = epoch + 1, 0
                if self._done(epoch):
                    break
        batch = self.converter.scatter(merged, rows, self.batch_size)
        self._advance(len(rows))
        return batch

    def _advance(self, num_examples: int) -> None:
        while num_examples:
            step = min(num_examples, self.examples_per_epoch - self._example)
            self._example += step
            num_examples -= step
            if self._example == self.examples_per_epoch:
                self._epoch, self._example = self._epoch + 1, 0
