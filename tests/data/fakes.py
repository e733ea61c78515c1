"""Small stand-ins shared by the pipeline tests: a hashing vocabulary and short segments."""

import zlib

import numpy as np

from t2t.data.objectives import SpanCorruption

VOCAB_SIZE = 1000


class FakeVocab:
    """Whitespace words hashed to ids 3..802 (below the sentinels 900..999)."""

    vocab_size = VOCAB_SIZE
    num_pieces = 900
    eos_id = 1

    def __init__(self, model_sha256="fake-model-1"):
        self.model_sha256 = model_sha256
        self.calls = 0

    def encode_batch(self, texts):
        self.calls += 1
        return [np.array([3 + zlib.crc32(w.encode()) % 800 for w in t.split()], np.int32)
                for t in texts]

    def id_to_piece(self, i):
        return "." if i == 5 else f"w{i}"


class ShortSegments(SpanCorruption):
    """Span corruption on 20-token segments, so that several examples pack into one row."""

    def raw_length(self, feature_lengths):
        return 20
