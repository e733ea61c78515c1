"""Ragged batches and VocabInfo."""

import dataclasses

import numpy as np
import pytest

from t2t.data.objectives import Ragged, VocabInfo
from t2t.data.vocab import default_vocabulary


def test_ragged_helpers():
    r = Ragged.from_rows([[5, 6, 7], [], [8]])
    assert r.offsets.tolist() == [0, 3, 3, 4]
    assert r.row_ids.tolist() == [0, 0, 0, 2] and r.positions.tolist() == [0, 1, 2, 0]
    assert r.append(1).to_list() == [[5, 6, 7, 1], [1], [8, 1]]
    assert r.take(np.array([2, 0, 1])).to_list() == [[8], [5, 6, 7], []]
    assert r.slice(1, 3).to_list() == [[], [8]]
    assert Ragged.concat([r, r.slice(0, 1)]).to_list() == [[5, 6, 7], [], [8], [5, 6, 7]]
    assert r.replace_rows(np.array([2, 1]), Ragged.from_rows([[9, 9], [4]])).to_list() == [[5, 6, 7], [4], [9, 9]]
    tokens, valid = r.dense(pad=0)
    assert tokens.tolist() == [[5, 6, 7], [0, 0, 0], [8, 0, 0]]
    assert valid.sum(axis=1).tolist() == [3, 0, 1]
    with pytest.raises(ValueError):
        Ragged(np.zeros(3, np.int32), np.array([1, 1]))


def test_vocab_info_simple():
    v = VocabInfo.simple(1000, sentence_end_ids=[13])
    assert (v.vocab_size, v.num_pieces, v.eos_id, v.pad_id, v.unk_id) == (1000, 900, 1, 0, 2)
    assert (v.mask_id, v.cls_id, v.sep_id) == (999, 998, 997)
    assert v.sentence_end.shape == (1000,) and np.flatnonzero(v.sentence_end).tolist() == [13]
    assert VocabInfo.coerce(1000).vocab_size == 1000 and VocabInfo.coerce(v) is v
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.vocab_size = 5
    with pytest.raises(ValueError):
        VocabInfo(vocab_size=10, num_pieces=20)
    with pytest.raises(ValueError, match="shape"):
        VocabInfo(vocab_size=10, num_pieces=8, sentence_end=np.zeros(5, bool))


def test_vocab_info_from_vocabulary():
    vocab = default_vocabulary()
    info = VocabInfo.from_vocabulary(vocab)
    assert (info.vocab_size, info.num_pieces) == (vocab.vocab_size, vocab.num_pieces)
    assert info.mask_id == vocab.sentinel_id(0) and info.cls_id == vocab.sentinel_id(1)
    ends = np.flatnonzero(info.sentence_end)
    assert len(ends) > 0 and ends.max() < vocab.num_pieces and ends.min() > 2
    period = vocab.encode("Hello world.")[-1]
    assert info.sentence_end[period]
    assert not info.sentence_end[vocab.encode("Hello")].any()


def test_vocab_info_from_id_to_piece():
    class Fake:
        vocab_size, num_pieces = 10, 8

        def id_to_piece(self, i):
            return ["<pad>", "</s>", "<unk>", "a", "b.", "?", "c!", "d"][i]

    info = VocabInfo.from_vocabulary(Fake())
    assert np.flatnonzero(info.sentence_end).tolist() == [4, 5, 6]
