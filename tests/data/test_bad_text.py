"""Bad text neither crashes nor stalls the pipeline: empty documents are skipped, invalid UTF-8
and unencodable code points are replaced, control characters dropped, and a document of a million
tokens is cut into segments like any other."""

import json

import numpy as np

from t2t.data.converters import EncDecFeatureConverter
from t2t.data.objectives import SpanCorruption
from t2t.data.pipeline import data_pipeline
from t2t.data.vocab import default_vocabulary

LENGTHS = {"inputs": 64, "targets": 14}


def test_pipeline_survives_bad_documents(tmp_path):
    path = tmp_path / "bad.jsonl"
    with open(path, "wb") as f:
        for text in ["", "   ", "plain text about the union and its people. " * 20,
                     "control\x00chars\x07and\x1b[31m escapes " * 20]:
            f.write(json.dumps({"text": text}).encode() + b"\n")
        f.write(b'{"text": "invalid utf-8 \xff\xfe bytes in the middle of a sentence. "}\n')
        f.write(b'{"text": "a lone surrogate \\ud800 from a JSON escape, then more words."}\n')
        f.write(json.dumps({"text": "word " * 1_000_000}).encode() + b"\n")  # ~1M tokens
    pipeline = data_pipeline(str(path), "train", default_vocabulary(), SpanCorruption(),
                             EncDecFeatureConverter(LENGTHS), batch_size=8, num_epochs=1,
                             cache_dir=None, num_shards=1, host_index=0, num_hosts=1)
    batches = [next(pipeline) for _ in range(3)]
    for batch in batches:
        assert batch["encoder_input_tokens"].shape == (8, 64)
        assert np.all(batch["encoder_segment_ids"][:, 0] > 0)  # every row holds an example
    sample = pipeline.sample_tokens()
    assert len(sample) > 1_000_000  # the long document is kept, not dropped
