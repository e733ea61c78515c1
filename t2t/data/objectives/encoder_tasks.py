"""Encoder fine-tuning tasks: labelled JSON lines -> BERT / RoBERTa examples with the heads' labels.

Each task reads a few string fields of every JSON line (``source_field``: the source hands them over
as a JSON list), ``encode_documents`` tokenises them into one int32 array per record (so the
pipeline's token cache stores it like any document), and ``from_documents`` turns each into one
example (``per_document``, as ``Supervised``):

    sequence_classification       text -> [CLS] text [SEP], ``classification_labels`` [label id]
    sentence_pair_classification  (a, b) -> [CLS] a [SEP] b [SEP], token types 0 / 1, one label id
    token_tagging                 words + one tag per word -> ``token_labels``: the tag on each word's
                                  first subword, IGNORE (-1, no loss) on other subwords, CLS and SEP
    span_qa                       (question, context, answer) -> [CLS] q [SEP] context [SEP] and
                                  ``span_positions`` (start, end) of the answer's tokens

Examples never exceed ``TASK_FEATURE_LENGTHS['inputs']``: texts are truncated (BERT's fine-tuning
does the same). Pairs lose tokens from the longer text first (BERT's ``_truncate_seq_pair``); a span-QA
question keeps at most ``max_question_length`` tokens and the context fills the rest. A QA answer that
truncation cuts off is labelled (0, 0), the [CLS] position, as BERT's ``run_squad.py`` labels answers
outside a document window (the model learns that [CLS] means "not in this window"); there are no
sliding windows, so such an answer cannot be found at evaluation, which counts it as a miss.

Words are whitespace-separated and each word is encoded on its own: SentencePiece starts every word
with "▁" anyway, so the pieces are those of the whole text, and word boundaries map to token
positions exactly (``encode_words``). Tagging and span QA use this; span answers are widened to
whole words (as BERT's ``run_squad.py``, which aligns answers to whitespace words too).

[CLS] and [SEP] are the top sentinel ids (``VocabInfo``), so the vocabulary needs extra ids, as for
BERT pre-training. Examples have ``family_features = "mlm"``: the encoder-only family's features.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence

import gin
import numpy as np

from t2t.data.objectives.base import MLM, gin_fix
from t2t.data.objectives.ragged import Examples, Ragged
from t2t.data.objectives.vocab_info import VocabInfo

IGNORE = -1  # token label without loss (HF's -100)


def label_code(label: str) -> int:
    """How a document stores a label: a 31-bit hash of its text, not its index, so that the pipeline's
    token cache (keyed by file and fields, not by the objective's settings) stays right when the
    ``labels`` list changes; ``from_documents`` maps codes to indices into the current list."""
    return zlib.crc32(label.encode("utf-8")) & 0x7FFFFFFF


def encode_words(vocab, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(tokens, word_starts) of each text, words encoded separately (one ``encode_batch`` call).

    ``word_starts`` [n_words + 1] are offsets into ``tokens``: word i is ``tokens[starts[i]:starts[i+1]]``
    (a word that encodes to nothing, e.g. a lone control character, has an empty range).

    >>> encode_words(vocab, ["Erbium is rare"])  # doctest: +SKIP
    [(array([ 71, 512, 9, 33, 1045]), array([0, 3, 4, 5]))]      # "▁Er bi um", "▁is", "▁rare"
    """
    words = [text.split() for text in texts]
    encoded = vocab.encode_batch([w for ws in words for w in ws]) if any(words) else []
    out, k = [], 0
    for ws in words:
        pieces = encoded[k:k + len(ws)]
        k += len(ws)
        starts = np.zeros(len(ws) + 1, np.int64)
        np.cumsum([len(p) for p in pieces], out=starts[1:])
        tokens = np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32)
        out.append((tokens, starts))
    return out


def truncate_pair(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Tokens kept of two texts sharing ``budget``: BERT's ``_truncate_seq_pair`` (drop one token at a
    time from the longer, from b on ties), in closed form.

    >>> truncate_pair(3, 20, 10), truncate_pair(20, 30, 10), truncate_pair(4, 5, 10)
    ((3, 7), (5, 5), (4, 5))
    """
    if len_a + len_b <= budget:
        return len_a, len_b
    if 2 * len_a <= budget:
        return len_a, budget - len_a
    if 2 * len_b <= budget:
        return budget - len_b, len_b
    return (budget + 1) // 2, budget // 2


def join_segments(vocab: VocabInfo, *parts: np.ndarray, second_type: int = 1
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, token_types): [CLS] p0 [SEP] p1 [SEP] ..., type 0 on [CLS] p0 [SEP], then
    ``second_type`` (BERT: 1; RoBERTa has one token type: 0).

    >>> join_segments(VocabInfo.simple(100), np.array([7, 8]), np.array([9]))
    (array([98,  7,  8, 97,  9, 97]), array([0, 0, 0, 0, 1, 1]))
    """
    tokens, types = [np.array([vocab.cls_id])], [np.zeros(1, np.int64)]
    for i, part in enumerate(parts):
        tokens += [np.asarray(part), np.array([vocab.sep_id])]
        types.append(np.full(len(part) + 1, second_type if i else 0))
    return np.concatenate(tokens).astype(np.int32), np.concatenate(types).astype(np.int32)


class _EncoderTask:
    """Shared machinery: fields, label ids, length checks, one example per record.

    Subclasses set ``fields``, ``num_special`` and ``head`` (the ``encoder_heads`` entry that their labels
    train) and implement ``encode_records`` (parsed records -> one int32 array each) and ``example``
    (that array -> the example's features).
    """

    name = "encoder_task"
    head = ""
    family_features = MLM  # encoder-only examples (the trainer checks the family against it)
    uses_sentinels = True  # [CLS] and [SEP] are the top sentinel ids
    per_document = True
    num_special = 2  # [CLS] ... [SEP]
    fields: tuple[str, ...] = ()

    def __init__(self, labels: Sequence[str] = ()):
        self.labels = tuple(labels)
        self._ids_of_codes = {label_code(label): i for i, label in enumerate(self.labels)}
        if len(self._ids_of_codes) < len(self.labels):
            raise ValueError(f"{self.name}.labels {list(self.labels)} has repeated labels.")

    @property
    def source_field(self) -> str:
        """What the source reads from each JSON line (the fields, as a JSON list)."""
        return ",".join(self.fields)

    def label_code(self, label: str) -> int:
        """The label as its document stores it (``label_code``), checked against ``labels``."""
        if label not in self.labels:
            raise ValueError(f"label {label!r} is not one of {self.name}.labels {list(self.labels)}; "
                             f"add it to the gin binding {self.name}.labels (its index is the label id).")
        return label_code(label)

    def label_ids(self, codes: np.ndarray) -> np.ndarray:
        """Stored label codes -> indices into ``labels``."""
        try:
            return np.array([self._ids_of_codes[int(c)] for c in codes], np.int32)
        except KeyError:
            raise ValueError(f"a record's label is not one of {self.name}.labels {list(self.labels)} (its "
                             "tokenised documents come from a token cache built with other labels?); "
                             f"add it to the gin binding {self.name}.labels.") from None

    def raw_length(self, feature_lengths: Mapping[str, int]) -> int:
        """Examples are whole records, truncated to ``inputs``: check that some text fits."""
        length = int(feature_lengths.get("inputs", 0))
        if length <= self.num_special:
            raise ValueError(f"{self.name} needs TASK_FEATURE_LENGTHS['inputs'] > {self.num_special} "
                             f"(its special tokens), got {dict(feature_lengths)}; set "
                             f"{gin_fix({'inputs': 128})}")
        return length

    def feature_lengths(self, inputs_length: int) -> dict[str, int]:
        return {"inputs": inputs_length}

    def encode_documents(self, vocab, texts: Sequence[str]) -> list[np.ndarray]:
        """Each record (a JSON list of the ``fields``) -> one int32 array (``encode_records``)."""
        records = [json.loads(t) for t in texts]
        return [np.asarray(d, np.int32) for d in self.encode_records(vocab, records)]

    def encode_records(self, vocab, records: list[list[str]]) -> list[np.ndarray]:
        raise NotImplementedError

    def example(self, doc: np.ndarray, vocab: VocabInfo, length: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def from_documents(self, docs: Sequence[np.ndarray], rng: np.random.Generator | None,
                       vocab: VocabInfo, feature_lengths: Mapping[str, int]) -> Examples:
        """One example per document, at most ``feature_lengths['inputs']`` tokens; ``rng`` is unused."""
        del rng
        length = self.raw_length(feature_lengths)
        rows = [self.example(np.asarray(doc), vocab, length) for doc in docs]
        if not rows:
            return {}
        return {k: Ragged.from_rows([r[k] for r in rows]) for k in rows[0]}


@gin.configurable("sequence_classification")
class SequenceClassification(_EncoderTask):
    """One text -> one of ``labels`` (the wiki_topic task: article extract -> topic).

    Record ``{"text": "Erbium is a chemical element", "label": "Physical sciences"}`` with
    labels ``(..., "Physical sciences", ...)`` at index 8, and CLS 98, SEP 97:

        document               [C, 71, 512, 9, 33, 44, 1045]        C = label_code("Physical sciences"),
                                                                    then the text's tokens
        inputs                 [98, 71, 512, 9, 33, 44, 1045, 97]   [CLS] text [SEP]
        token_types            [0, 0, 0, 0, 0, 0, 0, 0]
        classification_labels  [8]
    """

    name = "sequence_classification"
    head = "sequence_classification"

    def __init__(self, labels: Sequence[str] = gin.REQUIRED, text_field: str = "text",
                 label_field: str = "label"):
        super().__init__(labels)
        self.fields = (text_field, label_field)

    def encode_records(self, vocab, records):
        texts = vocab.encode_batch([r[0] for r in records])
        return [np.concatenate([[self.label_code(r[1])], t]) for r, t in zip(records, texts)]

    def example(self, doc, vocab, length):
        tokens, types = join_segments(vocab, doc[1:1 + length - self.num_special])
        return {"inputs": tokens, "token_types": types, "classification_labels": self.label_ids(doc[:1])}


@gin.configurable("sentence_pair_classification")
class SentencePairClassification(_EncoderTask):
    """Two texts -> one of ``labels``: [CLS] a [SEP] b [SEP] with token types 0 then 1 (MNLI, QQP,
    and the offline "does this description belong to this article?" task).

    Record ``{"text_a": "Chemical element", "text_b": "Erbium is a metal", "label": "match"}`` with
    labels ``("mismatch", "match")``, CLS 98, SEP 97, ``inputs`` length 8 (5 text tokens: b loses 2):

        document               [C, 2, 61, 62, 71, 9, 33, 44]        label_code("match"), len(a), a, b
        inputs                 [98, 61, 62, 97, 71, 9, 33, 97]
        token_types            [0,  0,  0,  0,  1,  1, 1,  1]
        classification_labels  [1]
    """

    name = "sentence_pair_classification"
    head = "sequence_classification"
    num_special = 3

    def __init__(self, labels: Sequence[str] = gin.REQUIRED, first_field: str = "text_a",
                 second_field: str = "text_b", label_field: str = "label", use_token_types: bool = True):
        """``use_token_types=False`` gives b token type 0 too (RoBERTa: one token type)."""
        super().__init__(labels)
        self.fields = (first_field, second_field, label_field)
        self.second_type = int(use_token_types)

    def encode_records(self, vocab, records):
        texts = vocab.encode_batch([r[0] for r in records] + [r[1] for r in records])
        n = len(records)
        return [np.concatenate([[self.label_code(r[2]), len(texts[i])], texts[i], texts[n + i]])
                for i, r in enumerate(records)]

    def example(self, doc, vocab, length):
        n_a = int(doc[1])
        a, b = doc[2:2 + n_a], doc[2 + n_a:]
        keep_a, keep_b = truncate_pair(len(a), len(b), length - self.num_special)
        tokens, types = join_segments(vocab, a[:keep_a], b[:keep_b], second_type=self.second_type)
        return {"inputs": tokens, "token_types": types, "classification_labels": self.label_ids(doc[:1])}


@gin.configurable("token_tagging")
class TokenTagging(_EncoderTask):
    """Whitespace-separated words with one tag each -> a tag on each word's first subword.

    Record ``{"words": "Erbium is rare", "tags": "new new new"}`` with labels ``("punct", "new",
    "repeat")``, "Erbium" = 3 pieces, CLS 98, SEP 97:

        document      [3, N, N, N, 3, 1, 1, 71, 512, 9, 33, 1045]   n words, tags (N = label_code("new")),
                                                                    pieces per word, tokens
        inputs        [98, 71, 512, 9, 33, 1045, 97]
        token_labels  [-1,  1,  -1, -1, 1,  1,   -1]                IGNORE = -1: no loss

    Truncation keeps the tags of words whose first subword is kept.
    """

    name = "token_tagging"
    head = "token_classification"

    def __init__(self, labels: Sequence[str] = gin.REQUIRED, words_field: str = "words",
                 tags_field: str = "tags"):
        super().__init__(labels)
        self.fields = (words_field, tags_field)

    def encode_records(self, vocab, records):
        out = []
        for r, (tokens, starts) in zip(records, encode_words(vocab, [r[0] for r in records])):
            tags = r[1].split()
            if len(tags) != len(starts) - 1:
                raise ValueError(f"{self.name}: {len(starts) - 1} words but {len(tags)} tags in the record "
                                 f"{r[0][:60]!r}...; give one whitespace-separated tag per word.")
            out.append(np.concatenate([[len(tags)], [self.label_code(t) for t in tags], np.diff(starts), tokens]))
        return out

    def example(self, doc, vocab, length):
        n = int(doc[0])
        tags, counts, tokens = doc[1:1 + n], doc[1 + n:1 + 2 * n], doc[1 + 2 * n:]
        tokens = tokens[:length - self.num_special]
        labels = np.full(len(tokens), IGNORE, np.int32)
        firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        kept = (counts > 0) & (firsts < len(tokens))
        labels[firsts[kept]] = self.label_ids(tags[kept])
        inputs, types = join_segments(vocab, tokens)
        return {"inputs": inputs, "token_types": types,
                "token_labels": np.concatenate([[IGNORE], labels, [IGNORE]]).astype(np.int32)}


@gin.configurable("span_qa")
class SpanQA(_EncoderTask):
    """Extractive QA (SQuAD): (question, context, answer) -> answer start and end token positions.

    ``answer_start_field`` names the answer's character offset in the context (a string of digits,
    SQuAD's ``answer_start``); with None the answer's first occurrence is used. The answer is widened to
    the whitespace words it touches. Record ``{"question": "Who sat ?", "context": "the cat sat down",
    "answer": "cat", "answer_start": "4"}``, one piece per word, CLS 98, SEP 97:

        document        [3, 1, 1, 81, 82, 83, 40, 41, 42, 43]   n question tokens, answer start and end
                                                                 (context tokens), question, context
        inputs          [98, 81, 82, 83, 97, 40, 41, 42, 43, 97]
        token_types     [0,  0,  0,  0,  0,  1,  1,  1,  1,  1]
        span_positions  [6, 6]                                   "cat" is token 6 of the example

    With ``inputs`` length 7 the context keeps 2 tokens ("the cat"): still (6, 6). With length 6 it
    keeps "the" only and the answer is cut off: (0, 0), the [CLS] position (see the module docstring).
    An answer that does not match the context at ``answer_start`` (or is absent) is also (0, 0).
    """

    name = "span_qa"
    head = "span_qa"
    num_special = 3

    def __init__(self, question_field: str = "question", context_field: str = "context",
                 answer_field: str = "answer", answer_start_field: str | None = "answer_start",
                 max_question_length: int = 64, use_token_types: bool = True):
        """``use_token_types=False`` gives the context token type 0 too (RoBERTa: one token type)."""
        super().__init__()
        self.second_type = int(use_token_types)
        self.fields = (question_field, context_field, answer_field) + (
            (answer_start_field,) if answer_start_field else ())
        self.max_question_length = max_question_length

    def encode_records(self, vocab, records):
        questions = vocab.encode_batch([r[0] for r in records])
        out = []
        for r, q, (context, starts) in zip(records, questions, encode_words(vocab, [r[1] for r in records])):
            first, last = answer_words(r[1], r[2], int(r[3]) if len(r) > 3 else None)
            span = [starts[first], starts[last + 1] - 1] if first >= 0 else [-1, -1]
            out.append(np.concatenate([[len(q)], span, q, context]))
        return out

    def example(self, doc, vocab, length):
        n_q = int(doc[0])
        question = doc[3:3 + n_q][:self.max_question_length]
        context = doc[3 + n_q:][:max(0, length - self.num_special - len(question))]
        tokens, types = join_segments(vocab, question, context, second_type=self.second_type)
        start, end = int(doc[1]), int(doc[2])
        offset = len(question) + 2  # [CLS] question [SEP]
        inside = 0 <= start and end < len(context)
        span = [offset + start, offset + end] if inside else [0, 0]
        return {"inputs": tokens, "token_types": types, "span_positions": np.array(span, np.int32)}


def answer_words(context: str, answer: str, start: int | None) -> tuple[int, int]:
    """(first, last) index of the whitespace words of ``context`` that the answer touches, or (-1, -1).

    >>> answer_words("the cat sat down", "cat sa", 4), answer_words("a b a", "a", None)
    ((1, 2), (0, 0))
    """
    if start is None:
        start = context.find(answer)
    if not answer.strip() or start < 0 or context[start:start + len(answer)] != answer:
        return -1, -1
    word_ends = np.array([m_end for m_end in _word_ends(context)])
    first = int(np.searchsorted(word_ends, start, side="right"))
    last = int(np.searchsorted(word_ends, start + len(answer) - 1, side="right"))
    return first, last


def _word_ends(text: str) -> list[int]:
    """Character offset just past each whitespace-separated word of ``text``."""
    ends, inside = [], False
    for i, ch in enumerate(text):
        if ch.isspace():
            if inside:
                ends.append(i)
            inside = False
        else:
            inside = True
    if inside:
        ends.append(len(text))
    return ends
