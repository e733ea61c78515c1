"""Text sources: where documents come from before tokenization.

Every source yields plain document strings (one C4 "text" field = one document). Sources are:

* ``"embedded"``: the small public-domain corpus shipped in ``t2t/data/embedded`` (State of the
  Union addresses + Project Gutenberg books, see its SOURCES.md); runs anywhere, offline.
* JSON lines files (``*.jsonl``, ``*.jsonl.gz``, ``*.json.gz``): C4's released json.gz shards are
  of this form (``{"text": ..., "url": ..., "timestamp": ...}``).
* Plain text files: one file = one document, or one paragraph = one document.

A pattern may contain ``{split}`` (e.g. ``c4/en/c4-{split}.*.json.gz``), which ``get_source``
fills with the split name.
"""

from __future__ import annotations

import functools
import glob
import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

EMBEDDED_DIR = Path(__file__).parent / "embedded"
EMBEDDED_SPLITS = ("train", "validation")


def embedded_corpus(split: str = "train") -> list[str]:
    """Documents of the embedded corpus split ("train" or "validation"), in file order."""
    if split not in EMBEDDED_SPLITS:
        raise ValueError(f"unknown split {split!r} for the embedded corpus; "
                         f"use one of {EMBEDDED_SPLITS}")
    return list(_read_embedded(split))


@functools.lru_cache(maxsize=None)
def _read_embedded(split: str) -> tuple[str, ...]:
    path = EMBEDDED_DIR / f"{split}.jsonl.gz"
    if not path.is_file():
        raise ValueError(f"embedded corpus file {path} is missing; rebuild it with "
                         "`python -m t2t.data.embedded.build --workdir /tmp/t2t-embedded`")
    return tuple(_read_jsonl(path, "text"))


def _open_text(path: Path) -> IO[str]:
    """Text of a file; invalid UTF-8 bytes become U+FFFD instead of stopping the run."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _match(pattern: str) -> list[Path]:
    """Files matching ``pattern`` (``~`` and ``**`` allowed), sorted so the order is stable."""
    files = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True))
    files = [f for f in files if f.is_file()]
    if not files:
        raise ValueError(f"no file matches {pattern!r}; check the path (relative paths are "
                         f"resolved from {os.getcwd()}) or use 'embedded' for the built-in corpus")
    return files


def _nonempty(docs: Iterator[str], pattern: str) -> Iterator[str]:
    """Pass ``docs`` through, raising at the end if there were none (an empty source is a bug)."""
    count = 0
    for doc in docs:
        count += 1
        yield doc
    if count == 0:
        raise ValueError(f"{pattern!r} matched files but they hold no non-empty document; "
                         "point it at files with text")


def _read_jsonl(path: Path, field: str) -> Iterator[str]:
    """Each record's ``field``; a comma list ("inputs,targets") yields the fields as a JSON list."""
    fields = field.split(",")
    with _open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {line_no}: not valid JSON ({e})") from None
            missing = [k for k in fields if not isinstance(record, dict) or k not in record]
            if missing:
                keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise ValueError(f"{path}, line {line_no}: no field {missing[0]!r} (found {keys}); "
                                 "pass field=<name> to jsonl_files")
            texts = [record[k] for k in fields]
            for k, text in zip(fields, texts):
                if not isinstance(text, str):
                    raise ValueError(f"{path}, line {line_no}: field {k!r} is a "
                                     f"{type(text).__name__}, not a string")
            if len(fields) > 1:
                yield json.dumps(texts, ensure_ascii=False)
            elif texts[0].strip():
                yield texts[0]


def jsonl_files(pattern: str, field: str = "text") -> Iterator[str]:
    """Documents from JSON lines files (plain or gzipped), one record's ``field`` each.

    The pattern is checked now, the files are read lazily; records with empty text are skipped.
    """
    files = _match(pattern)
    docs = (doc for path in files for doc in _read_jsonl(path, field))
    return _nonempty(docs, pattern)


def _read_text(path: Path, split_paragraphs: bool) -> Iterator[str]:
    with _open_text(path) as f:
        text = f.read()
    parts = re.split(r"\n\s*\n", text) if split_paragraphs else [text]
    for part in parts:
        if part.strip():
            yield part.strip()


def text_files(pattern: str, split_paragraphs: bool = False) -> Iterator[str]:
    """Documents from text files: one file = one document, or one paragraph (text between blank
    lines) = one document with ``split_paragraphs=True``. Blank documents are skipped."""
    files = _match(pattern)
    docs = (doc for path in files for doc in _read_text(path, split_paragraphs))
    return _nonempty(docs, pattern)


def is_jsonl_pattern(pattern: str) -> bool:
    """Whether ``get_source`` reads ``pattern`` as JSON lines (else as plain text)."""
    name = os.path.basename(pattern)
    return ".jsonl" in name or name.endswith(".json.gz")


class _Reiterable:
    """An iterable that starts a fresh pass over the files each time it is iterated (epochs)."""

    def __init__(self, make: Callable[[], Iterator[str]], description: str):
        make()  # validates the pattern now (no file is read until iteration)
        self._make = make
        self._description = description

    def __iter__(self) -> Iterator[str]:
        return self._make()

    def __repr__(self) -> str:
        return self._description


def get_source(name_or_pattern: str, split: str = "train") -> Iterable[str]:
    """The documents of ``name_or_pattern`` for ``split``.

    * ``"embedded"``: the embedded corpus split (a list).
    * A pattern whose file name contains ``.jsonl`` or ends in ``.json.gz``: ``jsonl_files``.
    * Any other pattern: ``text_files`` (one file = one document).

    ``{split}`` in a pattern is replaced by ``split``; a pattern without it is used as is (give a
    separate pattern per split). File sources can be iterated again for another epoch.
    """
    if name_or_pattern == "embedded":
        return embedded_corpus(split)
    pattern = name_or_pattern.replace("{split}", split)
    if is_jsonl_pattern(pattern):
        return _Reiterable(functools.partial(jsonl_files, pattern), f"jsonl_files({pattern!r})")
    return _Reiterable(functools.partial(text_files, pattern), f"text_files({pattern!r})")


# ---------------------------------------------------------------------------------------------------
# Sharded sources: a source is an ordered list of *units* (a file, a range of records), the granule that
# epochs shuffle and that virtual data shards divide among themselves (see t2t/data/pipeline.py).
# ---------------------------------------------------------------------------------------------------


class Unit:
    """A piece of a source: documents read in a fixed order, from any document index on.

    ``key`` names the unit stably (it keys the token cache and the data fingerprint); ``read(start)``
    yields documents ``start, start + 1, ...``; ``random_access`` says whether ``read`` can start
    anywhere at no cost (else it reads and skips the documents before ``start``). Units are picklable,
    so worker processes can read them.
    """

    key: str
    random_access: bool = False

    def read(self, start: int = 0) -> Iterator[str]:
        raise NotImplementedError

    def size(self) -> int | None:
        """Number of documents if known without reading, else None."""
        return None


class ListUnit(Unit):
    """Documents ``start:stop`` of an in-memory tuple."""

    random_access = True

    def __init__(self, docs: tuple[str, ...], start: int, stop: int, key: str):
        self.docs, self.start, self.stop, self.key = docs, start, stop, key

    def read(self, start: int = 0) -> Iterator[str]:
        for i in range(self.start + start, self.stop):
            yield self.docs[i]

    def size(self) -> int:
        return self.stop - self.start

    def get(self, indices: Sequence[int]) -> list[str]:
        return [self.docs[self.start + i] for i in indices]


class FileUnit(Unit):
    """One JSON lines (``field``) or text file (one document per file, or per paragraph)."""

    def __init__(self, path: str, field: str | None, split_paragraphs: bool = False):
        self.path, self.field, self.split_paragraphs = str(path), field, split_paragraphs
        stat = os.stat(path)
        self.key = f"file:{os.path.abspath(path)}:{stat.st_size}:{int(stat.st_mtime)}:{field}"

    def read(self, start: int = 0) -> Iterator[str]:
        path = Path(self.path)
        if not path.exists():
            raise ValueError(f"{path} has disappeared since the source was opened.")
        docs = (_read_jsonl(path, self.field) if self.field is not None
                else _read_text(path, self.split_paragraphs))
        for i, doc in enumerate(docs):
            if i >= start:
                yield doc


class Source:
    """Documents as units, plus a description and a fingerprint (both part of the data config)."""

    def __init__(self, units: Sequence[Unit], description: str):
        if not units:
            raise ValueError(f"{description}: the source has no documents.")
        self.units = list(units)
        self.description = description

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for unit in self.units:
            digest.update(unit.key.encode())
            digest.update(b"\0")
        return digest.hexdigest()[:16]

    def documents(self) -> Iterator[str]:
        """Every document, unit by unit (e.g. to train a vocabulary)."""
        for unit in self.units:
            yield from unit.read()

    def __iter__(self) -> Iterator[str]:
        return self.documents()

    def __repr__(self) -> str:
        return f"Source({self.description}, {len(self.units)} units)"


def docs_per_unit_for(num_docs: int, min_units: int, most: int = 64) -> int:
    """Documents per unit when a source cuts its own units: enough units for ``min_units`` (e.g. one
    per virtual shard) about four times over, at most ``most`` documents each."""
    return max(1, min(most, num_docs // (4 * min_units)))


def list_source(docs: Sequence[str], description: str, docs_per_unit: int = 64) -> Source:
    """An in-memory source, cut into units of ``docs_per_unit`` documents (empty ones dropped)."""
    docs = tuple(d for d in docs if d.strip())
    if not docs:
        raise ValueError(f"{description}: no non-empty document.")
    digest = hashlib.sha256()
    for d in docs:
        data = d.encode("utf-8", "surrogatepass")  # hashing only: keep bad text intact
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    tag = digest.hexdigest()[:16]
    units = [ListUnit(docs, i, min(i + docs_per_unit, len(docs)), f"list:{tag}:{i}")
             for i in range(0, len(docs), docs_per_unit)]
    return Source(units, description)


def file_source(pattern: str, field: str | None = "text", split_paragraphs: bool = False,
                min_files: int = 1) -> Source:
    """Files matching ``pattern``, one unit per file (JSON lines with ``field``; text if ``field`` is None).

    With fewer files than ``min_files`` (e.g. fewer than the pipeline's virtual shards), the documents
    are read into memory and cut into smaller units instead.
    """
    files = _match(pattern)
    if len(files) < min_files:
        reader = ((lambda p: _read_jsonl(p, field)) if field is not None
                  else (lambda p: _read_text(p, split_paragraphs)))
        docs = [doc for path in files for doc in reader(path)]
        if not docs:
            raise ValueError(f"{pattern!r} matched files but they hold no non-empty document; "
                             "point it at files with text")
        return list_source(docs, f"files({pattern!r})", docs_per_unit_for(len(docs), min_files))
    return Source([FileUnit(str(f), field, split_paragraphs) for f in files], f"files({pattern!r})")


def c4_json_source(data_dir: str, split: str = "train", field: str = "text",
                   min_files: int = 1) -> Source:
    """Raw C4 in the allenai/c4 layout: ``<data_dir>/c4-<split>.NNNNN-of-NNNNN.json.gz`` (text, url,
    timestamp per line). ``data_dir`` may also be a full pattern containing ``{split}``."""
    pattern = (data_dir.replace("{split}", split) if "{split}" in data_dir or "*" in data_dir
               else os.path.join(data_dir, f"c4-{split}.*-of-*.json.gz"))
    return file_source(pattern, field=field, min_files=min_files)


def task_source(name: str, split: str = "train", field: str = "text", min_units: int = 1) -> Source:
    """A downstream task's examples (t2t/evaluation/tasks.py) as documents, so that fine-tuning
    reads exactly the text-to-text examples that ``t2t eval`` scores.

    With the supervised objective's field list ``"inputs,targets"`` each document is the JSON list
    ``["<inputs>", "<targets>"]``, as a JSON lines file of such records gives; a single field gives
    that field's text. E.g. ``task:glue_sst2`` ->
    ``["sst2 sentence: it 's a charming journey .", "positive"]``.
    """
    from t2t.evaluation.tasks import get_task

    task = get_task(name)
    if split == "validation" and split not in task.source.splits:
        split = task.eval_split  # e.g. MNLI's validation_matched: what the trainer validates on
    fields = field.split(",")
    docs = []
    for example in task.examples(split):
        missing = [f for f in fields if f not in example]
        if missing:
            raise ValueError(f"task {name!r} examples have no field {missing[0]!r} (they have "
                             f"{sorted(example)}); fine-tune with the supervised objective")
        texts = [str(example[f]) for f in fields]
        docs.append(json.dumps(texts, ensure_ascii=False) if len(fields) > 1 else texts[0])
    return list_source(docs, f"task:{name}[{split}]",
                       docs_per_unit=docs_per_unit_for(len(docs), min_units))


def make_source(name_or_pattern: str, split: str = "train", min_units: int = 1,
                field: str = "text") -> Source:
    """A :class:`Source` for a ``train.data_source`` string:

    * ``"embedded"``: the embedded corpus split;
    * ``"tfds:<builder>[:<version>]"`` (e.g. ``tfds:c4/en:3.1.0``): a TFDS dataset, see t2t/data/tfds.py
      (its ``data_dir`` is ``tfds_source.data_dir`` in gin);
    * ``"local:<dir>"``: a corpus made by ``t2t data build-local`` (``<dir>/<split>/*.jsonl.gz``);
    * ``"mixture:<name>"``: a mixture registered in t2t/data/mixtures.py;
    * ``"task:<name>"``: a downstream task's examples, for fine-tuning (``task_source``);
    * a file pattern (``{split}`` filled in): JSON lines (``*.jsonl*``, ``*.json.gz``, e.g. C4's
      released shards) or text files.
    """
    if name_or_pattern == "embedded":
        return list_source(embedded_corpus(split), f"embedded[{split}]",
                           docs_per_unit=docs_per_unit_for(len(_read_embedded(split)), min_units))
    if name_or_pattern.startswith("tfds:"):
        from t2t.data.tfds import tfds_source
        return tfds_source(name_or_pattern[len("tfds:"):], split=split, min_units=min_units)
    if name_or_pattern.startswith("mixture:"):
        from t2t.data.mixtures import mixture_source
        return mixture_source(name_or_pattern[len("mixture:"):], split=split, min_units=min_units)
    if name_or_pattern.startswith("task:"):
        return task_source(name_or_pattern[len("task:"):], split, field, min_units)
    if name_or_pattern.startswith("local:"):
        root = name_or_pattern[len("local:"):]
        return file_source(os.path.join(root, split, "*.jsonl.gz"), field=field, min_files=min_units)
    pattern = name_or_pattern.replace("{split}", split)
    if is_jsonl_pattern(pattern):
        return file_source(pattern, field=field, min_files=min_units)
    return file_source(pattern, field=None, min_files=min_units)
