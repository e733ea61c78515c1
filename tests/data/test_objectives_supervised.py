"""Supervised pairs: one example per JSON line, EOS on both sides, truncation to the feature lengths."""

import json

import numpy as np

from t2t.data.converters import EncDecFeatureConverter
from t2t.data.objectives import Supervised, VocabInfo
from t2t.data.pipeline import ShardedPipeline
from t2t.data.sources import file_source

from fakes import FakeVocab

INFO = VocabInfo(vocab_size=1000, num_pieces=900)


def test_worked_example_from_the_docstring():
    vocab = FakeVocab()
    objective = Supervised()
    doc, = objective.encode_documents(vocab, [json.dumps(["a b c d", "e"])])
    a_b_c_d, e = vocab.encode_batch(["a b c d", "e"])
    assert doc.tolist() == [4, *a_b_c_d, *e]
    examples = objective.from_documents([doc], None, INFO, {"inputs": 8, "targets": 4})
    assert examples["inputs"].to_list() == [[*a_b_c_d, 1]]
    assert examples["targets"].to_list() == [[*e, 1]]


def test_long_sides_are_truncated_keeping_eos():
    vocab = FakeVocab()
    doc, = Supervised().encode_documents(vocab, [json.dumps(["a b c d e f", "g h i"])])
    examples = Supervised().from_documents([doc], None, INFO, {"inputs": 3, "targets": 2})
    assert [len(r) for r in examples["inputs"].to_list()] == [3]
    assert examples["inputs"].to_list()[0][-1] == 1 and examples["targets"].to_list()[0] == [
        vocab.encode_batch(["g"])[0][0], 1]


def test_pipeline_yields_every_pair_once_per_epoch(tmp_path):
    path = tmp_path / "pairs.jsonl"
    pairs = [(f"q{i} x", f"a{i}") for i in range(24)]
    path.write_text("".join(json.dumps({"inputs": q, "targets": a}) + "\n" for q, a in pairs))
    vocab = FakeVocab()
    objective = Supervised()
    source = file_source(str(path), field=objective.source_field, min_files=4)
    converter = EncDecFeatureConverter({"inputs": 8, "targets": 4}, pack=False)
    pipeline = ShardedPipeline(source, vocab, objective, converter, batch_size=4, num_shards=4,
                               num_epochs=1, shuffle=True, seed=3)
    seen = sorted(int(t) for batch in pipeline for t in batch["decoder_target_tokens"][:, 0] if t)
    expected = sorted(int(vocab.encode_batch([a])[0][0]) for _, a in pairs)
    assert seen == expected
