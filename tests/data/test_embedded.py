"""Checks on the committed embedded corpus files: size budget, recorded hashes, vocabulary fit."""

import hashlib
import re

from t2t.data.sources import EMBEDDED_DIR, embedded_corpus
from t2t.data.vocab import default_vocabulary

FILES = ["train.jsonl.gz", "validation.jsonl.gz", "spm_8k.model"]


def test_size_budget():
    sizes = {f: (EMBEDDED_DIR / f).stat().st_size for f in FILES}
    assert sizes["train.jsonl.gz"] + sizes["validation.jsonl.gz"] <= 3_800_000
    assert sum(sizes.values()) <= 4_000_000


def test_sources_md_sha256_match():
    text = (EMBEDDED_DIR / "SOURCES.md").read_text()
    recorded = dict(re.findall(r"\| `([\w.]+)` \| [\d,]+ \| `([0-9a-f]{64})` \|", text))
    assert sorted(recorded) == sorted(FILES)
    for name, digest in recorded.items():
        assert hashlib.sha256((EMBEDDED_DIR / name).read_bytes()).hexdigest() == digest, name


def test_gzip_is_reproducible():
    for name in FILES[:2]:
        header = (EMBEDDED_DIR / name).read_bytes()[:10]
        assert header[4:8] == b"\0\0\0\0", f"{name}: gzip mtime must be 0"
        assert header[3] & 0x08 == 0, f"{name}: gzip header must not store a file name"


def test_vocabulary_fits_the_corpus():
    vocab = default_vocabulary()
    docs = embedded_corpus("validation")
    ids = vocab.encode_batch(docs)
    tokens = sum(len(x) for x in ids)
    unks = sum(int((x == vocab.unk_id).sum()) for x in ids)
    assert sum(map(len, docs)) / tokens > 3.5  # an 8k English vocabulary: ~4 characters/token
    assert unks / tokens < 1e-3
