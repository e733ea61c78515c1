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
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
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
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


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
    with _open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {line_no}: not valid JSON ({e})") from None
            if not isinstance(record, dict) or field not in record:
                keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise ValueError(f"{path}, line {line_no}: no field {field!r} (found {keys}); "
                                 "pass field=<name> to jsonl_files")
            text = record[field]
            if not isinstance(text, str):
                raise ValueError(f"{path}, line {line_no}: field {field!r} is a "
                                 f"{type(text).__name__}, not a string")
            if text.strip():
                yield text


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
