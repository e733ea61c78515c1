"""The sharded pipeline: host independence, exact resume, workers, token cache, sources, clear errors."""

import gzip
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from t2t.data.converters import EncDecFeatureConverter
from t2t.data.mixtures import MixtureSource
from t2t.data.pipeline import ShardedPipeline
from t2t.data.sources import c4_json_source, file_source, list_source, make_source

from fakes import FakeVocab, ShortSegments
from two_processes import run_two_processes


def documents(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return [f"doc{i} " + " ".join(f"w{x}" for x in rng.integers(0, 500, rng.integers(1, 60))) for i in range(n)]


def make(source=None, batch_size=8, num_shards=4, vocab=None, **kwargs):
    source = source if source is not None else list_source(documents(), "test", docs_per_unit=10)
    converter = EncDecFeatureConverter({"inputs": 32, "targets": 12})
    kwargs.setdefault("docs_per_block", 4)
    return ShardedPipeline(source, vocab or FakeVocab(), ShortSegments(), converter, batch_size,
                           num_shards=num_shards, **kwargs)


def take(pipeline, n):
    return [next(pipeline) for _ in range(n)]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_two_hosts_together_read_exactly_the_global_batch_of_one_host():
    one = take(make(), 40)  # several epochs of the small source
    hosts = [make(host_index=h, num_hosts=2) for h in range(2)]
    together = [{k: np.concatenate([next_h[k] for next_h in parts]) for k in parts[0]}
                for parts in (tuple(next(h) for h in hosts) for _ in range(40))]
    assert_same(one, together)
    assert all(len(b["encoder_input_tokens"]) == 8 for b in one)
    assert all(next(iter(h_b.values())).shape[0] == 4 for h_b in [next(hosts[0])])


def test_each_host_reads_only_its_share():
    class CountingVocab(FakeVocab):
        def __init__(self):
            super().__init__()
            self.texts = []

        def encode_batch(self, texts):
            self.texts += list(texts)
            return super().encode_batch(texts)

    vocabs = [CountingVocab() for _ in range(2)]
    for h, vocab in enumerate(vocabs):
        take(make(vocab=vocab, host_index=h, num_hosts=2), 10)
    assert vocabs[0].texts and vocabs[1].texts
    assert not set(vocabs[0].texts) & set(vocabs[1].texts)  # disjoint documents (epoch 0)


def test_resume_from_any_step_gives_the_uninterrupted_batches():
    straight = take(make(), 30)
    for stop in (1, 7, 19):
        first = make()
        take(first, stop)
        state = json.loads(json.dumps(first.get_state()))  # as the checkpoint stores it
        resumed = make()
        resumed.set_state(state)
        assert_same(take(resumed, 30 - stop), straight[stop:])


def test_state_from_two_hosts_resumes_one_host():
    straight = take(make(), 12)
    hosts = [make(host_index=h, num_hosts=2) for h in range(2)]
    for h in hosts:
        take(h, 5)
    merged = hosts[0].get_state()
    merged["shards"].update(hosts[1].get_state()["shards"])
    one = make()
    one.set_state(merged)
    assert_same(take(one, 7), straight[5:])


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_workers_do_not_change_the_batches(worker_type):
    straight = take(make(), 12)
    pipeline = make(num_workers=2, worker_type=worker_type)
    try:
        assert_same(take(pipeline, 6), straight[:6])
        state = pipeline.get_state()
    finally:
        pipeline.close()
    resumed = make(num_workers=2, worker_type=worker_type)
    try:
        resumed.set_state(state)
        assert_same(take(resumed, 6), straight[6:])
    finally:
        resumed.close()


def test_seed_changes_the_order_and_shards_own_different_units():
    a, b = take(make(seed=0), 3), take(make(seed=1), 3)
    assert not np.array_equal(a[0]["encoder_input_tokens"], b[0]["encoder_input_tokens"])


def test_token_cache_is_used_on_the_second_run(tmp_path):
    first_vocab, second_vocab = FakeVocab(), FakeVocab()
    first = take(make(vocab=first_vocab, cache_dir=str(tmp_path)), 10)
    second = take(make(vocab=second_vocab, cache_dir=str(tmp_path)), 10)
    assert first_vocab.calls > 0 and second_vocab.calls == 0
    assert_same(first, second)
    assert list(tmp_path.glob("*.unit.tokens.npy"))


def finite(**kwargs):
    """One unshuffled epoch of a small source: its shards end at different batches."""
    return make(list_source(documents(40), "small", docs_per_unit=5), shuffle=False, num_epochs=1,
                **kwargs)


def test_finite_unshuffled_stream_ends_with_padding_then_stops():
    pipeline = finite()
    batches = list(pipeline)
    assert batches and np.all(batches[-1]["encoder_segment_ids"][-1] == 0)
    pipeline.reset()
    assert_same(list(pipeline), batches)


HOST_WORKER = textwrap.dedent("""
    import sys
    import jax
    import numpy as np
    port, process_id, tests_dir, out = sys.argv[1:]
    sys.path[:0] = [tests_dir, tests_dir + "/.."]  # as pytest has it: fakes, two_processes
    from test_sharded_pipeline import finite

    jax.distributed.initialize(f"127.0.0.1:{port}", 2, int(process_id))
    batches = list(finite(host_index=int(process_id), num_hosts=2))
    np.savez(f"{out}.{process_id}.npz", **{f"{i}/{k}": v for i, b in enumerate(batches)
                                           for k, v in b.items()})
""")


def test_finite_stream_ends_at_the_same_batch_on_every_real_host(tmp_path):
    one = list(finite())
    # Alone, host 1's shards run out two batches before host 0's: a validation loop would stop
    # there on host 1 while host 0 waits for it in the evaluation's collectives.
    assert [len(list(finite(host_index=h, num_hosts=2))) for h in range(2)] == [len(one), len(one) - 2]

    run_two_processes(HOST_WORKER, str(Path(__file__).parent), str(tmp_path / "batches"))
    hosts = [np.load(tmp_path / f"batches.{h}.npz") for h in range(2)]
    assert [len(h.files) // len(one[0]) for h in hosts] == [len(one), len(one)]
    assert_same(one, [{k: np.concatenate([h[f"{i}/{k}"] for h in hosts]) for k in one[0]}
                      for i in range(len(one))])


def test_data_config_mismatch_is_refused_naming_what_differs():
    state = take_state = make(seed=0)
    take(take_state, 2)
    state = take_state.get_state()
    with pytest.raises(ValueError, match="seed: checkpoint 0 vs now 1"):
        make(seed=1).set_state(state)
    with pytest.raises(ValueError, match="batch_size"):
        make(batch_size=16).set_state(state)
    with pytest.raises(ValueError, match="older pipeline"):
        make().set_state({"epoch": 0, "example": 3, "seed": 0})


def test_clear_errors_for_bad_layouts(tmp_path):
    with pytest.raises(ValueError, match="not divisible by the number of hosts 3"):
        make(batch_size=8, num_shards=4, num_hosts=3)
    with pytest.raises(ValueError, match="num_shards=4 is not divisible by the number of hosts 8"):
        make(batch_size=8, num_shards=4, num_hosts=8)
    with pytest.raises(ValueError, match="not divisible by data.num_shards=3"):
        make(batch_size=8, num_shards=3)
    with pytest.raises(ValueError, match="fewer than\ndata.num_shards|fewer than data.num_shards"):
        make(list_source(documents(10), "tiny", docs_per_unit=5), num_shards=4)
    with pytest.raises(ValueError, match="no file matches"):
        make_source(str(tmp_path / "missing-*.jsonl.gz"))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no non-empty document"):
        make_source(str(tmp_path / "empty.jsonl"), min_units=4)
    (tmp_path / "nofield.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(ValueError, match="no field 'text'"):
        make_source(str(tmp_path / "nofield.jsonl"), min_units=4)


def test_shard_without_tokens_raises_instead_of_hanging():
    source = list_source(["a b c"] * 4 + [" "] * 0, "few", docs_per_unit=1)

    class Nothing(FakeVocab):
        def encode_batch(self, texts):
            return [np.zeros(0, np.int32) for _ in texts]

    with pytest.raises(ValueError, match="got no example in epoch 0"):
        next(make(source, vocab=Nothing()))


def write_c4_layout(root, split, num_files, docs_per_file, start=0):
    root.mkdir(parents=True, exist_ok=True)
    k = start
    for i in range(num_files):
        with gzip.open(root / f"c4-{split}.{i:05d}-of-{num_files:05d}.json.gz", "wt") as f:
            for _ in range(docs_per_file):
                f.write(json.dumps({"text": documents(1, seed=k)[0], "url": f"http://x/{k}",
                                    "timestamp": "2019-04-25T12:57:54Z"}) + "\n")
                k += 1


def test_raw_c4_json_shards_one_unit_per_file(tmp_path):
    write_c4_layout(tmp_path / "en", "train", 8, 12)
    source = c4_json_source(str(tmp_path / "en"), "train", min_files=4)
    assert len(source.units) == 8 and all(u.key.startswith("file:") for u in source.units)
    pattern = str(tmp_path / "en" / "c4-{split}.*-of-*.json.gz")
    assert make_source(pattern, "train", min_units=4).fingerprint() == source.fingerprint()
    straight = take(make(source), 10)
    resumed = make(source)
    take(resumed, 4)
    state = resumed.get_state()
    again = make(source)
    again.set_state(state)
    assert_same(take(again, 6), straight[4:])
    hosts = [make(source, host_index=h, num_hosts=2) for h in range(2)]
    parts = [take(h, 10) for h in hosts]
    assert_same(straight, [{k: np.concatenate([p[i][k] for p in parts]) for k in straight[0]} for i in range(10)])


def test_few_files_are_read_into_memory_and_cut_into_units(tmp_path):
    (tmp_path / "a.txt").write_text("\n\n".join(documents(50)))
    source = file_source(str(tmp_path / "a.txt"), field=None, split_paragraphs=True, min_files=4)
    assert len(source.units) >= 4
    take(make(source), 3)


def test_mixture_weights_set_the_share_of_units():
    a = list_source([f"a{i} x y z" for i in range(400)], "a", docs_per_unit=4)
    b = list_source([f"b{i} x y z" for i in range(40)], "b", docs_per_unit=4)
    mixture = MixtureSource({"a": a, "b": b}, {"a": 0.25, "b": 0.75}, "mix")
    order = np.concatenate([mixture.epoch_order(0, e) for e in range(20)])
    from_b = np.mean(order >= len(a.units))
    assert 0.7 < from_b < 0.8
    straight = take(make(mixture), 6)
    assert_same(straight, take(make(mixture), 6))


def test_local_corpus_layout_is_a_source(tmp_path):
    write_c4_layout(tmp_path / "train", "x", 4, 5)
    for f in (tmp_path / "train").iterdir():
        f.rename(f.with_name(f.name.replace(".json.gz", ".jsonl.gz")))
    source = make_source(f"local:{tmp_path}", "train", min_units=4)
    assert len(source.units) == 4


def test_objectives_that_encode_documents_differently_do_not_share_the_token_cache(tmp_path):
    from t2t.data.converters import EncoderFeatureConverter
    from t2t.data.objectives import Supervised
    from t2t.data.objectives.encoder_tasks import SequenceClassification
    from t2t.data.vocab import default_vocabulary

    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps({"text": doc, "label": "ab"[i % 2]}) + "\n"
                            for i, doc in enumerate(documents(40))))
    vocab = default_vocabulary()
    classify = SequenceClassification(labels=["a", "b"])
    to_encoder = EncoderFeatureConverter({"inputs": 32}, heads=("sequence_classification",))

    def batches(objective, converter, cache_dir):
        source = file_source(str(path), field=objective.source_field, min_files=4)
        return take(ShardedPipeline(source, vocab, objective, converter, 8, num_shards=4,
                                    docs_per_block=4, cache_dir=str(cache_dir)), 2)

    fresh = batches(classify, to_encoder, tmp_path / "fresh")
    # The same file and fields, read first as (inputs, targets) pairs into the shared cache.
    batches(Supervised(inputs_field="text", targets_field="label"),
            EncDecFeatureConverter({"inputs": 32, "targets": 4}), tmp_path / "shared")
    assert_same(fresh, batches(classify, to_encoder, tmp_path / "shared"))
