"""A deterministic, checkpointable, host-sharded pre-training input pipeline.

Virtual shards (``ShardedPipeline``, what ``train`` uses)
---------------------------------------------------------
A source (t2t/data/sources.py) is a list of *units*: a file (raw C4 json.gz, a build-local part) or a
range of records (a TFDS ArrayRecord split, an in-memory corpus). ``num_shards`` virtual shards split every
epoch: epoch e permutes the units with rng(seed, 2, e) (a mixture draws them by weight instead) and shard s
owns every S-th unit of that order, starting at s. Within a unit, documents are shuffled by rng(seed, 3, e,
unit) where the unit has random access (files are read in order). Documents go in blocks of
``docs_per_block`` through SentencePiece (lazily, or from a per-unit pre-tokenised .npy cache), are joined
and cut into segments of ``objective.raw_length`` tokens (the last, shorter piece of a block is kept), the
objective runs on each block with rng(seed, 1, e, unit, block), and the shard packs its examples in order
into ``batch_size / S`` rows per step. A global batch is the shards' rows in shard order.

So the global batch sequence is a function of (data config, step) only: the number of hosts H (which must
divide S, and the batch) and of workers only decide who computes which shard. Host h computes shards
[h S/H, (h+1) S/H) and reads only their units. The state is each shard's position (epoch, unit, block,
example) plus the data config and its fingerprint; ``set_state`` refuses a different config, naming the
fields that differ, and resumes by recomputing one block per shard, never by replaying the stream.
Workers (processes or threads) each run whole shards; a worker's run-ahead is dropped on ``set_state``.

Why not grain: grain's index-based sources and checkpointable iterators fit the *record* level, but
its per-process sharding (``ShardOptions``/``ShardByJaxProcess``) splits records by process count, so the
global batch would change with the number of hosts, and the pipeline's unit of determinism here is the
sequential per-shard chain documents → concat → segments → objective → packed rows, whose resumable
position is four integers. Building that on grain would still need our own virtual shards, block
arithmetic and packer, with grain contributing only a worker pool (whose iterator state is tied to its
worker count). We therefore keep the pipeline dependency-free and read TFDS ArrayRecord through
``tfds.data_source`` directly. (Decision partly driven by time: grain was not benchmarked against this.)

The older in-memory ``Pipeline`` (below) is kept for existing users and tests.

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
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import gin
import numpy as np

from t2t.data import mixtures as _mixtures  # noqa: F401  (registers gin configurables)
from t2t.data import tfds as _tfds  # noqa: F401
from t2t.data.sources import make_source
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

    def __call__(self, examples: Sequence[Mapping[str, Any]], num_rows: int) -> dict[str, np.ndarray]:
        """The model features [num_rows, ...] of ``examples``; ``[]`` gives padding rows."""


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
        data = text.encode("utf-8", "surrogatepass")
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


# ===================================================================================================
# The sharded pipeline: what `train` uses. See the module docstring ("Virtual shards").
# ===================================================================================================

STATE_VERSION = 2


def _describe(obj: Any, depth: int = 0) -> Any:
    """A JSON-able, address-free description of a configuration object (for the data fingerprint)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [_describe(x, depth + 1) for x in obj]
    if isinstance(obj, Mapping):
        return {str(k): _describe(v, depth + 1) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 64 else hashlib.sha256(obj.tobytes()).hexdigest()[:16]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if depth > 4 or callable(obj) and not hasattr(obj, "__dict__"):
        return type(obj).__name__
    fields = getattr(obj, "__dict__", {})
    return {"type": type(obj).__name__,
            **{k: _describe(v, depth + 1) for k, v in sorted(fields.items()) if not k.startswith("_")}}


def _document_format(objective: Any) -> str:
    """What the token cache's arrays depend on besides the text and the vocabulary: nothing for
    plain tokenisation; an objective that encodes documents itself (supervised pairs, labelled
    encoder tasks) and its settings (labels, fields), which two objectives reading the same
    files may not share."""
    if getattr(objective, "encode_documents", None) is None:
        return ""
    return json.dumps(_describe(objective), sort_keys=True, default=str)


def _cache_paths(cache_dir: str, unit_key: str, vocab_sha: str,
                 document_format: str = "") -> tuple[str, str]:
    key = hashlib.sha256(f"{unit_key}:{vocab_sha}{document_format}".encode()).hexdigest()
    return (os.path.join(cache_dir, f"{key}.unit.tokens.npy"), os.path.join(cache_dir, f"{key}.unit.offsets.npy"))


class _Shard:
    """One virtual data shard: its units per epoch → document blocks → tokens → segments → examples → rows.

    Position (the checkpointed state): ``[epoch, unit position in the epoch's unit list, block within the
    unit, example within the block]`` of the next example to pack.
    """

    def __init__(self, index: int, num_shards: int, source: Any, vocab: Vocab, objective: Any,
                 converter: Converter, rows: int, seed: int, shuffle: bool, num_epochs: int | None,
                 docs_per_block: int, cache_dir: str | None):
        self.index, self.num_shards, self.units = index, num_shards, list(source.units)
        self.source_order = source if hasattr(source, "epoch_order") else None
        self.vocab, self.objective, self.converter = vocab, objective, converter
        self.rows, self.seed, self.shuffle, self.num_epochs = rows, seed, shuffle, num_epochs
        self.docs_per_block, self.cache_dir = docs_per_block, cache_dir
        self.info = VocabInfo.from_vocabulary(vocab)
        self.document_format = _document_format(objective)  # part of every token-cache key
        self.feature_lengths = dict(converter.feature_lengths)
        self.raw_length = objective.raw_length(self.feature_lengths)
        self.position = [0, 0, 0, 0]
        self._reset_caches()

    def _reset_caches(self) -> None:
        self._epoch_units: tuple[int, np.ndarray] | None = None
        self._block_cache: collections.OrderedDict = collections.OrderedDict()
        self._reader: tuple | None = None  # (epoch, unit_pos, next block, iterator) for sequential units

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_epoch_units=None, _block_cache=collections.OrderedDict(), _reader=None)
        return state

    # ----- which units, which documents -----

    def units_of_epoch(self, epoch: int) -> np.ndarray:
        if self._epoch_units is None or self._epoch_units[0] != epoch:
            n = len(self.units)
            if hasattr(self.source_order, "epoch_order"):  # e.g. a weighted mixture's draw
                order = self.source_order.epoch_order(self.seed, epoch)
            else:
                order = (np.random.default_rng([self.seed, 2, epoch]).permutation(n) if self.shuffle
                         else np.arange(n))
            self._epoch_units = (epoch, order[self.index :: self.num_shards])
        return self._epoch_units[1]

    def _cached_tokens(self, unit_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The unit's (tokens, offsets) from the token cache, building it on first use; None without a cache."""
        if self.cache_dir is None:
            return None
        unit = self.units[unit_id]
        paths = _cache_paths(self.cache_dir, unit.key, self.vocab.model_sha256,
                             self.document_format)
        if not all(os.path.exists(p) for p in paths):
            docs: list[np.ndarray] = []
            batch: list[str] = []
            for text in unit.read(0):
                batch.append(text)
                if len(batch) == 512:
                    docs += self._encode(batch)
                    batch = []
            if batch:
                docs += self._encode(batch)
            docs = [np.asarray(d, np.int32) for d in docs if len(d)]
            tokens = np.concatenate(docs) if docs else np.zeros(0, np.int32)
            offsets = np.zeros(len(docs) + 1, np.int64)
            np.cumsum([len(d) for d in docs], out=offsets[1:])
            os.makedirs(self.cache_dir, exist_ok=True)
            for path, array in zip(paths, (tokens, offsets)):  # offsets last: marks completion
                tmp = f"{path}.{os.getpid()}.{id(self)}.tmp"
                with open(tmp, "wb") as f:
                    np.save(f, array)
                os.replace(tmp, path)
        return tuple(np.load(p, mmap_mode="r") for p in paths)  # type: ignore[return-value]

    def _doc_order(self, epoch: int, unit_id: int, num_docs: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(num_docs)
        return np.random.default_rng([self.seed, 3, epoch, unit_id]).permutation(num_docs)

    def _block_tokens(self, epoch: int, unit_pos: int, block: int) -> list[np.ndarray] | None:
        """Token arrays of the documents of one block; None when the unit has no such block."""
        unit_id = int(self.units_of_epoch(epoch)[unit_pos])
        unit, k = self.units[unit_id], self.docs_per_block
        cached = self._cached_tokens(unit_id)
        if cached is not None:  # random access into the token cache; documents shuffled within the unit
            tokens, offsets = cached
            num_docs = len(offsets) - 1
            if block * k >= num_docs:
                return None
            order = self._doc_order(epoch, unit_id, num_docs)[block * k : (block + 1) * k]
            return [np.asarray(tokens[offsets[i] : offsets[i + 1]]) for i in order]
        if unit.random_access:
            num_docs = unit.size()
            if block * k >= num_docs:
                return None
            order = self._doc_order(epoch, unit_id, num_docs)[block * k : (block + 1) * k]
            texts = unit.get([int(i) for i in order])
        else:  # a file: read in order, continuing the open reader when the next block is asked for
            r = self._reader
            if r is None or r[:2] != (epoch, unit_pos) or r[2] != block:
                it = unit.read(block * k)
                r = (epoch, unit_pos, block, it)
            texts = [t for _, t in zip(range(k), r[3])]
            self._reader = (epoch, unit_pos, block + 1, r[3])
            if not texts:
                return None
        return [ids for ids in self._encode(texts) if len(ids)]

    def _encode(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each document: the objective's own encoding (e.g. supervised pairs) or the vocab's."""
        custom = getattr(self.objective, "encode_documents", None)
        return custom(self.vocab, texts) if custom else self.vocab.encode_batch(texts)

    def examples_at(self, epoch: int, unit_pos: int, block: int) -> Examples | None:
        """The objective applied to the block's documents; None when the unit has no such block."""
        key = (epoch, unit_pos, block)
        if key not in self._block_cache:
            docs = self._block_tokens(epoch, unit_pos, block)
            if docs is None:
                return None
            self._block_cache[key] = self._examples(docs, epoch, unit_pos, block)
            if len(self._block_cache) > 2:
                self._block_cache.popitem(last=False)
        return self._block_cache[key]

    def _examples(self, docs: list[np.ndarray], epoch: int, unit_pos: int, block: int) -> Examples:
        """Documents joined and cut every raw_length tokens into segments for the objective; or, for a
        per-document objective (supervised pairs), one example per document."""
        if getattr(self.objective, "per_document", False):
            return self.objective.from_documents(docs, None, self.info, self.feature_lengths)
        tokens = np.concatenate(docs).astype(np.int32) if docs else np.zeros(0, np.int32)
        n = math.ceil(len(tokens) / self.raw_length)
        if not n:
            return {}
        lengths = np.full(n, self.raw_length, np.int64)
        lengths[-1] = len(tokens) - (n - 1) * self.raw_length
        unit_id = int(self.units_of_epoch(epoch)[unit_pos])
        rng = np.random.default_rng([self.seed, 1, epoch, unit_id, block])
        return self.objective(Ragged(tokens, lengths), rng, self.info, self.feature_lengths)

    # ----- rows -----

    def done(self) -> bool:
        return self.num_epochs is not None and self.position[0] >= self.num_epochs

    def next_rows(self) -> dict[str, np.ndarray]:
        """This shard's ``rows`` packed rows of the next batch (empty rows once a finite stream ends)."""
        epoch, unit_pos, block, example = self.position
        parts: list[tuple[list[int], Examples]] = []
        seen_in_epoch = example > 0 or block > 0 or unit_pos > 0
        merged: Examples = {}
        rows = np.zeros(0, np.int64)
        while not (self.num_epochs is not None and epoch >= self.num_epochs):
            units = self.units_of_epoch(epoch)
            if unit_pos >= len(units):
                if not seen_in_epoch:
                    raise ValueError(
                        f"data shard {self.index} of {self.num_shards} got no example in epoch {epoch}: "
                        f"its {len(units)} units hold no tokens. The source is empty or too small for "
                        f"{self.num_shards} shards; use fewer shards (data.num_shards) or more data.")
                epoch, unit_pos, block, example, seen_in_epoch = epoch + 1, 0, 0, 0, False
                continue
            examples = self.examples_at(epoch, unit_pos, block)
            if examples is None:
                unit_pos, block, example = unit_pos + 1, 0, 0
                continue
            count = len(next(iter(examples.values()))) if examples else 0
            if count > example:
                seen_in_epoch = True
                parts.append(([epoch, unit_pos, block, example],
                              {k: v.slice(example, count) for k, v in examples.items()}))
                merged = {k: Ragged.concat([p[1][k] for p in parts]) for k in parts[0][1]}
                rows = self.converter.assign_rows(merged, self.rows)
                if len(rows) < len(next(iter(merged.values()))):
                    break
            block, example = block + 1, 0
        if not parts:
            self.position = [epoch, unit_pos, block, example]
            return None  # type: ignore[return-value]
        # Advance to the first example the batch did not take.
        taken = len(rows)
        for start, part in parts:
            n = len(next(iter(part.values())))
            if taken < n:
                self.position = [start[0], start[1], start[2], start[3] + taken]
                break
            taken -= n
        else:
            self.position = [epoch, unit_pos, block, example]
        return self.converter.scatter(merged, rows, self.rows)


def _worker_main(shards: list[_Shard], out_queue: Any, stop: Any) -> None:
    """A worker process: run its shards ahead, putting (rows per shard, positions) on the queue."""
    import traceback
    try:
        while not stop.is_set():
            rows = [s.next_rows() for s in shards]
            out_queue.put(("ok", rows, [list(s.position) for s in shards]))
    except Exception as error:  # reported to the consumer, which raises it
        out_queue.put(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}", None))


class ShardedPipeline:
    """Global batches as a pure function of (data config, step), independent of hosts and workers.

    ``num_shards`` virtual shards each own every ``num_shards``-th unit of the source's epoch permutation
    and fill ``batch_size / num_shards`` rows of every batch. Host ``h`` of ``H`` runs shards
    ``[h S/H, (h+1) S/H)`` and returns rows ``[h B/H, (h+1) B/H)`` of the global batch. The state is each
    shard's position, plus the data config and its fingerprint (checked on ``set_state``).

    Example:
        pipeline = ShardedPipeline(make_source('embedded', min_units=8), vocab, SpanCorruption(),
                                   EncDecFeatureConverter({'inputs': 512, 'targets': 114}), batch_size=128)
        batch = next(pipeline)            # dict of int32 [128, 512] / [128, 114] arrays
        state = pipeline.get_state()      # {'version': 2, 'fingerprint': ..., 'shards': {...}, ...}
    """

    def __init__(self, source: Any, vocab: Vocab, objective: Any, converter: Converter, batch_size: int,
                 seed: int = 0, shuffle: bool = True, num_epochs: int | None = None,
                 num_shards: int | None = None, docs_per_block: int = 64, cache_dir: str | None = None,
                 host_index: int = 0, num_hosts: int = 1, num_workers: int = 0,
                 worker_type: str = "process", prefetch: int = 4):
        num_shards = num_shards or default_num_shards(batch_size)
        if batch_size < 1 or num_shards < 1 or docs_per_block < 1:
            raise ValueError("batch_size, num_shards and docs_per_block must be positive.")
        if batch_size % num_hosts:
            raise ValueError(f"the global batch size {batch_size} is not divisible by the number of hosts "
                             f"{num_hosts}; every host must get the same number of rows.")
        if batch_size % num_shards:
            raise ValueError(f"the global batch size {batch_size} is not divisible by data.num_shards="
                             f"{num_shards}; pick num_shards dividing it (e.g. {math.gcd(batch_size, num_shards)}).")
        if num_shards % num_hosts:
            raise ValueError(f"data.num_shards={num_shards} is not divisible by the number of hosts "
                             f"{num_hosts}; each host must own whole shards (set num_shards to a multiple "
                             f"of {num_hosts}).")
        if not 0 <= host_index < num_hosts:
            raise ValueError(f"host_index {host_index} is not in [0, {num_hosts}).")
        if worker_type not in ("process", "thread"):
            raise ValueError(f"worker_type must be 'process' or 'thread', not {worker_type!r}.")
        units = source.units
        if len(units) < num_shards:
            raise ValueError(f"{source!r} has {len(units)} units (files or record ranges), fewer than "
                             f"data.num_shards={num_shards}: some shards would get no data. Use fewer "
                             "shards, or a source with more files.")
        self.source, self.batch_size, self.num_shards = source, batch_size, num_shards
        self.host_index, self.num_hosts = host_index, num_hosts
        self.num_workers, self.worker_type, self.prefetch = num_workers, worker_type, prefetch
        self.num_epochs = num_epochs
        rows = batch_size // num_shards
        per_host = num_shards // num_hosts
        self._padding = converter([], rows)  # what a finished shard contributes to a batch
        self.local_shards = list(range(host_index * per_host, (host_index + 1) * per_host))
        self.shards = [_Shard(i, num_shards, source, vocab, objective, converter, rows, seed, shuffle,
                              num_epochs, docs_per_block, cache_dir) for i in self.local_shards]
        self.config = {
            "source": getattr(source, "description", repr(source)),
            "source_fingerprint": source.fingerprint(),
            "vocab_sha256": vocab.model_sha256,
            "objective": _describe(objective),
            "converter": _describe(converter),
            "feature_lengths": dict(converter.feature_lengths),
            "batch_size": batch_size, "num_shards": num_shards, "seed": seed, "shuffle": shuffle,
            "num_epochs": num_epochs, "docs_per_block": docs_per_block,
        }
        self.fingerprint = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:16]
        self._workers: list | None = None
        self._pool = None

    # ----- state -----

    @property
    def _real_hosts(self) -> bool:
        """Whether the hosts are JAX processes, each running this pipeline (not simulated in one)."""
        return self.num_hosts > 1 and _process_count() == self.num_hosts

    def get_state(self) -> dict:
        """JSON-serialisable: every shard's position, the data config and its fingerprint.

        With several hosts this gathers the positions of all shards (a collective: every host calls it at
        the same step), so the state saved by the primary host resumes any host count.
        """
        positions = np.array([s.position for s in self.shards], np.int64)
        if self._real_hosts:
            from jax.experimental import multihost_utils
            positions = np.asarray(multihost_utils.process_allgather(positions)).reshape(-1, 4)
            indices = range(self.num_shards)
        else:
            indices = self.local_shards
        return {"version": STATE_VERSION, "fingerprint": self.fingerprint, "config": self.config,
                "shards": {str(i): [int(x) for x in p] for i, p in zip(indices, positions)}}

    def reset(self) -> None:
        """Back to the start of the stream (e.g. the fixed validation batches)."""
        self._stop_workers()
        for s in self.shards:
            s.position = [0, 0, 0, 0]
            s._reset_caches()

    def set_state(self, state: Mapping) -> None:
        """Resume at ``state`` (from ``get_state`` of this or any host count's run with the same data config)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError("the checkpoint's data state is from an older pipeline (no 'version': "
                             f"{STATE_VERSION}); it cannot be resumed exactly. Start a new run directory.")
        if state["fingerprint"] != self.fingerprint:
            saved = state.get("config", {})
            differ = sorted(k for k in set(saved) | set(self.config) if saved.get(k) != self.config.get(k))
            details = "; ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {self.config.get(k)!r}"
                                for k in differ)
            raise ValueError(f"the data config differs from the checkpoint's (fingerprint "
                             f"{state['fingerprint']} vs {self.fingerprint}): {details or 'unknown fields'}. "
                             "Resume with the same data settings, or start a new run directory.")
        missing = [s.index for s in self.shards if str(s.index) not in state["shards"]]
        if missing:
            raise ValueError(f"the data state has no position for shards {missing}.")
        self._stop_workers()
        for s in self.shards:
            s.position = [int(x) for x in state["shards"][str(s.index)]]
            s._reset_caches()

    # ----- batches -----

    def __iter__(self) -> ShardedPipeline:
        return self

    def _assemble(self, rows: list) -> dict[str, np.ndarray]:
        """This host's rows from its shards' rows (None: a finite shard has ended), or StopIteration.

        A finished shard contributes padding rows until every shard has ended, on every host: with
        real hosts a finite stream (the validation split) ends on all of them at the same batch,
        since each batch is a global array that every host must feed (a host stopping early would
        leave the others waiting in the evaluation's collectives). That takes one all-gather of a
        flag per batch, on finite streams only.
        """
        ended = all(r is None for r in rows)
        if self.num_epochs is not None and self._real_hosts:
            from jax.experimental import multihost_utils
            ended = bool(np.all(multihost_utils.process_allgather(np.array(ended))))
        if ended:
            raise StopIteration
        return {k: np.concatenate([(self._padding if r is None else r)[k] for r in rows])
                for k in self._padding}

    def __next__(self) -> dict[str, np.ndarray]:
        """This host's rows of the next global batch: int32 [batch_size / num_hosts, ...] features."""
        if self.num_workers <= 0:
            return self._assemble([s.next_rows() for s in self.shards])
        if self.worker_type == "thread":
            if self._pool is None:
                import concurrent.futures
                self._pool = concurrent.futures.ThreadPoolExecutor(self.num_workers)
            return self._assemble(list(self._pool.map(lambda s: s.next_rows(), self.shards)))
        return self._next_from_processes()

    def _next_from_processes(self) -> dict[str, np.ndarray]:
        import multiprocessing as mp
        import queue as queue_lib
        if self._workers is None:
            ctx = mp.get_context("spawn")  # never fork a process that may hold JAX's threads
            groups = [list(range(w, len(self.shards), self.num_workers)) for w in range(self.num_workers)]
            self._workers = []
            for group in groups:
                if not group:
                    continue
                q, stop = ctx.Queue(self.prefetch), ctx.Event()
                proc = ctx.Process(target=_worker_main, args=([self.shards[i] for i in group], q, stop),
                                   daemon=True)
                proc.start()
                self._workers.append((group, q, stop, proc))
        rows: list = [None] * len(self.shards)
        for group, q, stop, proc in self._workers:
            while True:
                try:
                    kind, payload, positions = q.get(timeout=5)
                    break
                except queue_lib.Empty:
                    if not proc.is_alive():
                        self._stop_workers()
                        raise RuntimeError(f"a data worker process died (exit code {proc.exitcode}).")
            if kind == "error":
                self._stop_workers()
                raise RuntimeError(f"a data worker failed: {payload}")
            for i, r, pos in zip(group, payload, positions):
                rows[i] = r
                self.shards[i].position = pos
        return self._assemble(rows)

    def _stop_workers(self) -> None:
        if self._workers:
            for _, q, stop, proc in self._workers:
                stop.set()
                proc.terminate()
                proc.join(timeout=5)
                q.close()
        self._workers = None

    def close(self) -> None:
        self._stop_workers()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ----- corpus statistics -----

    def sample_tokens(self, max_tokens: int = 1 << 22) -> np.ndarray:
        """Up to ``max_tokens`` tokens of the source's documents (units in order), e.g. for unigram entropy."""
        shard = self.shards[0]
        out, total = [], 0
        for unit_id, unit in enumerate(self.source.units):
            cached = shard._cached_tokens(unit_id)
            if cached is not None:
                out.append(np.asarray(cached[0][: max_tokens - total], np.int32))
                total += len(out[-1])
            else:
                batch: list[str] = []
                for text in unit.read(0):
                    batch.append(text)
                    if len(batch) == 256:
                        out += [np.asarray(d, np.int32) for d in shard.vocab.encode_batch(batch)]
                        total += sum(len(d) for d in out[-len(batch):])
                        batch = []
                        if total >= max_tokens:
                            break
                if batch:
                    out += [np.asarray(d, np.int32) for d in shard.vocab.encode_batch(batch)]
                    total += sum(len(d) for d in out[-len(batch):])
            if total >= max_tokens:
                break
        return np.concatenate(out)[:max_tokens]


@gin.configurable("data", denylist=["source", "split", "vocab", "objective", "converter", "batch_size",
                                    "seed", "shuffle", "num_epochs", "cache_dir"])
def data_pipeline(source: str, split: str, vocab: Vocab, objective: Any, converter: Converter,
                  batch_size: int, seed: int = 0, shuffle: bool = True, num_epochs: int | None = None,
                  cache_dir: str | None = None, num_shards: int | None = None, docs_per_block: int = 64,
                  num_workers: int = 0, worker_type: str = "process", cache_tokens: bool = True,
                  host_index: int | None = None, num_hosts: int | None = None) -> ShardedPipeline:
    """The trainer's pipeline for ``train.data_source`` (see ``t2t.data.sources.make_source``).

    Gin knobs (``data.NAME``): ``num_shards`` (virtual shards; default gcd(batch, 8); a multiple of the
    host count), ``docs_per_block``, ``num_workers`` / ``worker_type`` ('process' or 'thread'; do not
    change the data), ``cache_tokens`` (keep a per-unit token cache in ``cache_dir``: for repeated sweeps
    over one corpus; turn off for C4-sized sources). Hosts default to JAX's process index and count.
    """
    if host_index is None or num_hosts is None:
        import jax
        host_index, num_hosts = jax.process_index(), jax.process_count()
    num_shards = num_shards or default_num_shards(batch_size)
    src = make_source(source, split, min_units=num_shards,
                      field=getattr(objective, "source_field", "text"))
    return ShardedPipeline(src, vocab, objective, converter, batch_size, seed=seed, shuffle=shuffle,
                           num_epochs=num_epochs, num_shards=num_shards, docs_per_block=docs_per_block,
                           cache_dir=cache_dir if cache_tokens else None, host_index=host_index,
                           num_hosts=num_hosts, num_workers=num_workers, worker_type=worker_type)


def _process_count() -> int:
    import sys
    if "jax" not in sys.modules:
        return 1
    return sys.modules["jax"].process_count()


def default_num_shards(batch_size: int) -> int:
    """Virtual shards when none is configured: the largest of 8, 4, 2, 1 that divides the batch size."""
    return math.gcd(batch_size, 8)


def unigram_entropy(tokens: np.ndarray) -> float:
    """Entropy of the unigram distribution of ``tokens``, in nats per token."""
    counts = np.bincount(np.asarray(tokens))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
