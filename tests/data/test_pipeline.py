"""The deterministic, checkpointable pipeline: tokenization cache, streams, epochs, state round trips."""

import json
import math

import numpy as np
import pytest

from t2t.data.converters import DecoderFeatureConverter, EncDecFeatureConverter, EncoderFeatureConverter
from t2t.data.objectives import LM, BertMLM, SpanCorruption, VocabInfo, iid_15_u_u
from t2t.data.pipeline import Pipeline, TokenizedCorpus, tokenize_documents

from fakes import VOCAB_SIZE, FakeVocab, ShortSegments

VOCAB = VocabInfo.simple(VOCAB_SIZE)  # 900 pieces + 100 sentinels


def make_corpus(num_docs=60, seed=0):
    """Documents of 1..80 tokens; document i starts with the unique token 3 + i (to parse streams back)."""
    rng = np.random.default_rng(seed)
    docs = [np.concatenate([[3 + i], rng.integers(100, 800, size=rng.integers(0, 80))]) for i in range(num_docs)]
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
    return TokenizedCorpus(np.concatenate(docs).astype(np.int32), offsets, VOCAB)


def make_pipeline(corpus=None, batch_size=4, packed=True, **kwargs):
    corpus = corpus if corpus is not None else make_corpus()
    converter = EncDecFeatureConverter({"inputs": 32, "targets": 12}, pack=packed)
    kwargs.setdefault("block_size", 8)
    return Pipeline(corpus, ShortSegments(), converter, batch_size=batch_size, **kwargs)


def unpack(batch):
    examples = []
    for row in range(batch["encoder_input_tokens"].shape[0]):
        for segment in range(1, batch["encoder_segment_ids"][row].max() + 1):
            enc = batch["encoder_segment_ids"][row] == segment
            dec = batch["decoder_segment_ids"][row] == segment
            examples.append((batch["encoder_input_tokens"][row][enc].tolist(),
                             batch["decoder_target_tokens"][row][dec].tolist()))
    return examples


def reconstruct(inputs, targets):
    """The raw segment behind a span-corruption example (EOS stripped)."""
    spans, current = {}, None
    for t in targets[:-1]:
        if t >= 900:
            current = spans.setdefault(t, [])
        else:
            current.append(t)
    return [x for t in inputs[:-1] for x in (spans[t] if t >= 900 else [t])]


def take(pipeline, n):
    return [next(pipeline) for _ in range(n)]


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


# ----- tokenization -----


def test_tokenize_documents_drops_empty_and_caches(tmp_path):
    texts = ["a b c", "", "   ", "d e", "f"]
    vocab = FakeVocab()
    corpus = tokenize_documents(texts, vocab, cache_dir=str(tmp_path))
    assert corpus.num_docs == 3 and corpus.num_tokens == 6
    assert corpus.offsets.tolist() == [0, 3, 5, 6] and corpus.tokens.dtype == np.int32
    assert corpus.vocab.vocab_size == VOCAB_SIZE and corpus.vocab.num_pieces == 900 and corpus.vocab.eos_id == 1
    assert np.flatnonzero(corpus.vocab.sentence_end).tolist() == [5]
    assert len(list(tmp_path.glob("*.npy"))) == 2
    cached = tokenize_documents(iter(texts), vocab, cache_dir=str(tmp_path))
    assert cached.vocab.vocab_size == VOCAB_SIZE
    assert vocab.calls == 1  # served from the cache
    np.testing.assert_array_equal(cached.tokens, corpus.tokens)
    np.testing.assert_array_equal(cached.offsets, corpus.offsets)
    # Another model or other texts are other cache entries.
    tokenize_documents(texts, FakeVocab("fake-model-2"), cache_dir=str(tmp_path))
    tokenize_documents(texts[:-1], vocab, cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("*.npy"))) == 6


def test_unigram_entropy():
    corpus = TokenizedCorpus(np.array([3, 4, 5, 6] * 5, np.int32), np.array([0, 7, 20]), VOCAB)
    assert corpus.unigram_entropy() == pytest.approx(math.log(4))
    assert TokenizedCorpus(np.array([7, 7], np.int32), np.array([0, 2]), VOCAB).unigram_entropy() == 0.0


# ----- determinism and state -----


def test_determinism():
    a, b = take(make_pipeline(seed=3), 6), take(make_pipeline(seed=3), 6)
    assert_batches_equal(a, b)
    c = take(make_pipeline(seed=4), 6)
    assert not np.array_equal(a[0]["encoder_input_tokens"], c[0]["encoder_input_tokens"])
    assert a[0]["encoder_input_tokens"].shape == (4, 32) and a[0]["decoder_target_tokens"].shape == (4, 12)


def test_state_round_trip_mid_stream():
    """From any state (json round trip), a fresh pipeline gives exactly the batches that followed."""
    pipeline = make_pipeline(seed=1)
    states, batches = [], []
    for _ in range(40):  # several blocks and epochs
        states.append(json.loads(json.dumps(pipeline.get_state())))
        batches.append(next(pipeline))
    assert states[-1]["epoch"] >= 1
    for i in (0, 1, 7, 13, 25, 39):
        resumed = make_pipeline(seed=1)
        resumed.set_state(states[i])
        assert_batches_equal(take(resumed, min(3, 40 - i)), batches[i : i + 3])


def test_state_does_not_depend_on_history():
    """Batches after a state are the same whether the pipeline ran there or jumped around first."""
    reference = make_pipeline(seed=2)
    take(reference, 10)
    state = reference.get_state()
    expected = take(reference, 4)
    wanderer = make_pipeline(seed=2)
    take(wanderer, 23)
    wanderer.set_state({"epoch": 0, "example": 0, "seed": 2})
    take(wanderer, 2)
    wanderer.set_state(state)
    assert_batches_equal(take(wanderer, 4), expected)


def test_examples_do_not_depend_on_batch_size():
    def examples(batch_size, n=60):
        pipeline = make_pipeline(batch_size=batch_size, seed=5)
        out = []
        while len(out) < n:
            out += unpack(next(pipeline))
        return out[:n]

    assert examples(1) == examples(3) == examples(7)
    assert examples(3) == examples(3, n=200)[:60]


# ----- epochs -----


def parse_docs(stream, corpus):
    """The document order behind a stream, checking that it is the documents joined without separators."""
    order, p = [], 0
    while p < len(stream):
        doc = stream[p] - 3
        assert stream[p : p + len(corpus.doc(doc))] == corpus.doc(doc).tolist()
        order.append(doc)
        p += len(corpus.doc(doc))
    return order


def test_finite_epochs_reproduce_the_stream():
    corpus = make_corpus()
    examples_per_epoch = math.ceil(corpus.num_tokens / 20)
    for shuffle in (False, True):
        pipeline = make_pipeline(corpus, shuffle=shuffle, num_epochs=2, seed=7)
        batches = list(pipeline)
        assert pipeline.get_state() == {"epoch": 2, "example": 0, "seed": 7}
        with pytest.raises(StopIteration):
            next(pipeline)
        examples = [ex for b in batches for ex in unpack(b)]
        assert len(examples) == 2 * examples_per_epoch
        segments = [reconstruct(*ex) for ex in examples]
        assert [len(s) for s in segments[:examples_per_epoch]] == \
            [20] * (examples_per_epoch - 1) + [corpus.num_tokens - 20 * (examples_per_epoch - 1)]
        streams = [sum(segments[e * examples_per_epoch : (e + 1) * examples_per_epoch], []) for e in (0, 1)]
        orders = [parse_docs(s, corpus) for s in streams]
        for order in orders:
            assert sorted(order) == list(range(corpus.num_docs))
        if shuffle:
            assert orders[0] != orders[1] and orders[0] != sorted(orders[0])
        else:
            assert streams[0] == streams[1] == corpus.tokens.tolist()
        # Batches run across the epoch boundary; only the very last one has empty rows.
        assert all((b["encoder_segment_ids"][:, 0] > 0).all() for b in batches[:-1])


def test_epoch_boundary_state():
    """A batch may straddle epochs; resuming at any (epoch, example) continues the same example stream."""
    def examples_from(state, n):
        pipeline = make_pipeline(seed=0)
        if state is not None:
            pipeline.set_state(state)
        out = []
        while len(out) < n:
            out += unpack(next(pipeline))
        return out[:n]

    per_epoch = make_pipeline().examples_per_epoch
    stream = examples_from(None, 2 * per_epoch + 10)
    assert examples_from({"epoch": 1, "example": 0, "seed": 0}, per_epoch + 10) == stream[per_epoch:]
    assert examples_from({"epoch": 0, "example": per_epoch - 3, "seed": 0}, 6) == stream[per_epoch - 3 : per_epoch + 3]
    assert examples_from({"epoch": 2, "example": 5, "seed": 0}, 5) == stream[2 * per_epoch + 5 :]
    assert stream[:per_epoch] != stream[per_epoch : 2 * per_epoch]  # a new document order each epoch


def test_validation_stream_is_fixed():
    pipeline = make_pipeline(shuffle=False, num_epochs=1, seed=0)
    start = pipeline.get_state()
    first_pass = list(pipeline)
    pipeline.set_state(start)
    assert_batches_equal(list(pipeline), first_pass)
    assert all(x["encoder_input_tokens"].shape == (4, 32) for x in first_pass)


# ----- errors -----


def test_empty_corpus():
    empty = TokenizedCorpus(np.zeros(0, np.int32), np.array([0]), VOCAB)
    with pytest.raises(ValueError, match="empty"):
        make_pipeline(empty)
    with pytest.raises(ValueError, match="empty"):
        make_pipeline(tokenize_documents(["", " "], FakeVocab()))


def test_corpus_shorter_than_a_segment():
    tiny = TokenizedCorpus(np.arange(3, 13, dtype=np.int32), np.array([0, 10]), VOCAB)
    with pytest.raises(ValueError, match="fewer than one segment of 20 raw tokens"):
        make_pipeline(tiny)


def test_bad_state():
    pipeline = make_pipeline(seed=1)
    with pytest.raises(ValueError, match="seed"):
        pipeline.set_state({"epoch": 0, "example": 0, "seed": 2})
    with pytest.raises(ValueError, match="invalid state"):
        pipeline.set_state({"epoch": 0, "example": pipeline.examples_per_epoch, "seed": 1})


def test_span_corruption_at_t5_lengths():
    """Full 568-token segments fill rows exactly at 512 / 114; the feature lengths are checked."""
    rng = np.random.default_rng(0)
    corpus = TokenizedCorpus(rng.integers(3, 800, size=5000).astype(np.int32), np.array([0, 2000, 5000]),
                             VOCAB)
    pipeline = Pipeline(corpus, SpanCorruption(), EncDecFeatureConverter({"inputs": 512, "targets": 114}),
                        batch_size=4, num_epochs=1, shuffle=False)
    first = next(pipeline)
    assert (first["encoder_segment_ids"] == 1).all() and (first["decoder_segment_ids"] == 1).all()
    with pytest.raises(ValueError, match="needs targets >= 114"):
        Pipeline(corpus, SpanCorruption(), EncDecFeatureConverter({"inputs": 512, "targets": 100}), batch_size=4)


# ----- other objectives and model families -----


def test_random_length_objective_fits_the_converter():
    """iid_15_u_u's targets vary; at 64 / 32 the objective re-draws the rare long rows, nothing is cut."""
    rng = np.random.default_rng(0)
    corpus = TokenizedCorpus(rng.integers(3, 800, size=20000).astype(np.int32), np.array([0, 20000]), VOCAB)
    objective = iid_15_u_u()
    converter = EncDecFeatureConverter({"inputs": 64, "targets": 32})
    pipeline = Pipeline(corpus, objective, converter, batch_size=8, num_epochs=1, block_size=64)
    assert pipeline.raw_length == 63
    batches = list(pipeline)
    used = sum(int((b["decoder_segment_ids"] > 0).any(axis=1).sum()) for b in batches)
    assert used >= pipeline.examples_per_epoch // 3  # several examples per row, every one fitted


def test_bert_through_the_encoder_converter():
    corpus = make_corpus()
    converter = EncoderFeatureConverter({"inputs": 24})
    pipeline = Pipeline(corpus, BertMLM(), converter, batch_size=4, block_size=8, seed=0)
    assert pipeline.raw_length == 21
    a = take(pipeline, 3)
    assert set(a[0]) == set(EncoderFeatureConverter.FEATURES)
    assert (a[0]["encoder_input_tokens"][:, 0] == VOCAB.cls_id).all()
    assert a[0]["nsp_loss_weights"].sum() == 4 and a[0]["mlm_loss_weights"].sum() >= 4
    resumed = Pipeline(corpus, BertMLM(), converter, batch_size=4, block_size=8, seed=0)
    resumed.set_state({"epoch": 0, "example": 4, "seed": 0})
    assert_batches_equal(take(resumed, 2), a[1:])


def test_lm_through_the_decoder_converter():
    corpus = make_corpus()
    converter = DecoderFeatureConverter({"targets": 16})
    pipeline = Pipeline(corpus, LM(), converter, batch_size=4, block_size=8, shuffle=False, num_epochs=1)
    assert pipeline.raw_length == 15
    batches = list(pipeline)
    tokens = np.concatenate([b["decoder_target_tokens"][b["decoder_segment_ids"] > 0] for b in batches])
    assert tokens[tokens != 1].tolist() == corpus.tokens.tolist()  # the stream, cut into segments + EOS
