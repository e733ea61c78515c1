"""Tests for t2t.data.vocab: T5 id conventions, sentinels, encode/decode, training."""

import hashlib
import io
import os
import pickle
import random
import string

import numpy as np
import pytest
import sentencepiece as spm

from t2t.data.vocab import Vocabulary, default_vocabulary, train_vocabulary

SENTENCES = [
    "We hold these truths to be self-evident, that all men are created equal.",
    "Call me Ishmael.",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
    "The Congress shall have power to lay and collect taxes, duties, imposts and excises.",
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
]


def tiny_corpus() -> list[str]:
    """A few hundred generated sentences of made-up words, enough for a 200-piece vocabulary."""
    rng = random.Random(0)
    syllables = ["ka", "lo", "mir", "te", "su", "ran", "vel", "do", "qui", "sha", "pe", "tor", "bu"]
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(400)]
    return [" ".join(rng.choices(words, k=10)).capitalize() + "." for _ in range(300)]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return default_vocabulary()


def test_special_ids(vocab):
    assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
    sp = spm.SentencePieceProcessor(model_file=str(vocab.model_path))
    assert [sp.id_to_piece(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"]
    assert sp.bos_id() == -1


def test_sizes(vocab):
    assert vocab.num_pieces == 8000
    assert vocab.extra_ids == 100
    assert vocab.vocab_size == 8100
    assert vocab.padded_vocab_size == 8192
    assert vocab.padded_vocab_size % 128 == 0


def test_sentinel_ids_are_last_and_above_pieces(vocab):
    assert vocab.sentinel_id(0) == vocab.vocab_size - 1
    ids = [vocab.sentinel_id(i) for i in range(vocab.extra_ids)]
    assert ids == [vocab.vocab_size - 1 - i for i in range(100)]
    assert min(ids) == vocab.num_pieces
    with pytest.raises(IndexError, match="out of range"):
        vocab.sentinel_id(100)
    with pytest.raises(IndexError):
        vocab.sentinel_id(-1)


def test_no_sentinels_error_names_the_fix(vocab):
    bare = Vocabulary(vocab.model_path, extra_ids=0)
    assert bare.vocab_size == bare.num_pieces == 8000
    with pytest.raises(IndexError, match="no sentinels; span corruption needs extra_ids>0"):
        bare.sentinel_id(0)


def test_no_extra_id_pieces_inside_model(vocab):
    sp = spm.SentencePieceProcessor(model_file=str(vocab.model_path))
    assert not any("extra_id" in sp.id_to_piece(i) for i in range(sp.get_piece_size()))


@pytest.mark.parametrize("text", SENTENCES)
def test_round_trip(vocab, text):
    ids = vocab.encode(text)
    assert ids.dtype == np.int32 and ids.ndim == 1
    assert vocab.eos_id not in ids and vocab.unk_id not in ids
    assert ids.max() < vocab.num_pieces
    assert vocab.decode(ids) == text


def test_encode_batch_matches_encode(vocab):
    texts = SENTENCES + ["a <extra_id_3> b", ""]
    batch = vocab.encode_batch(texts)
    assert len(batch) == len(texts)
    for text, ids in zip(texts, batch):
        assert ids.dtype == np.int32
        np.testing.assert_array_equal(ids, vocab.encode(text))


def test_decode_renders_sentinels_stops_at_eos_and_skips_pad(vocab):
    ids = np.concatenate([
        vocab.encode("Thank you"), [vocab.sentinel_id(0)], vocab.encode("me to your party"),
        [vocab.sentinel_id(1), vocab.pad_id], vocab.encode("week."), [vocab.eos_id],
        vocab.encode("ignored after EOS"), [vocab.pad_id] * 3,
    ])
    assert vocab.decode(ids) == "Thank you<extra_id_0> me to your party<extra_id_1> week."
    assert vocab.decode([vocab.sentinel_id(99)]) == "<extra_id_99>"
    assert vocab.decode([vocab.eos_id, 5, 6]) == ""


def test_encode_maps_sentinel_strings(vocab):
    ids = vocab.encode("Thank you <extra_id_0> me <extra_id_1>")
    assert ids[-1] == vocab.sentinel_id(1)
    assert vocab.sentinel_id(0) in ids
    assert vocab.decode(ids) == "Thank you<extra_id_0> me<extra_id_1>"
    # Not a sentinel of this vocabulary: stays text.
    assert vocab.decode(vocab.encode("<extra_id_100>")) == "<extra_id_100>"


def test_out_of_range_ids_decode_as_unk(vocab):
    assert vocab.decode([vocab.vocab_size + 5]) == vocab.decode([vocab.unk_id])


def test_model_sha256_and_pickle(vocab):
    assert vocab.model_sha256 == hashlib.sha256(vocab.model_path.read_bytes()).hexdigest()
    copy = pickle.loads(pickle.dumps(vocab))
    assert copy.vocab_size == vocab.vocab_size
    np.testing.assert_array_equal(copy.encode(SENTENCES[0]), vocab.encode(SENTENCES[0]))


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.model"):
        Vocabulary(tmp_path / "nope.model")


def test_wrong_special_ids_rejected(tmp_path):
    # SentencePiece's own defaults (unk=0, bos=1, eos=2) are not T5's.
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(tiny_corpus()), model_writer=model,
                                   vocab_size=100, logstream=open(os.devnull, "w"))
    path = tmp_path / "default_ids.model"
    path.write_bytes(model.getvalue())
    with pytest.raises(ValueError, match="pad_id=0, eos_id=1, unk_id=2"):
        Vocabulary(path)


def test_train_vocabulary_is_deterministic(tmp_path):
    a = train_vocabulary(tiny_corpus(), tmp_path / "a" / "spm", vocab_size=200)
    b = train_vocabulary(tiny_corpus(), tmp_path / "b" / "spm", vocab_size=200)
    assert a == tmp_path / "a" / "spm.model"
    assert a.read_bytes() == b.read_bytes()
    vocab = Vocabulary(a)
    assert (vocab.num_pieces, vocab.vocab_size, vocab.padded_vocab_size) == (200, 300, 384)
    sp = spm.SentencePieceProcessor(model_file=str(a))
    assert not any("extra_id" in sp.id_to_piece(i) for i in range(sp.get_piece_size()))
    text = tiny_corpus()[0]
    assert vocab.decode(vocab.encode(text)) == text


def test_every_printable_ascii_char_is_known(vocab):
    assert all(vocab.unk_id not in vocab.encode(c) for c in string.printable.strip())
    text = "<b>x</b> {a: 1} @user ~/path [X] 50% & more"
    assert vocab.decode(vocab.encode(text)) == text
