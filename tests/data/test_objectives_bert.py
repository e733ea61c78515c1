"""BERT (MLM + NSP) and RoBERTa (MLM) objectives."""

import numpy as np
import pytest

from t2t.data.objectives import BertMLM, Ragged, RobertaMLM, VocabInfo, choose_positions, corrupt
from t2t.data.objectives.bert import KEEP, MASK, RANDOM

VOCAB = VocabInfo.simple(1000)  # MASK 999, CLS 998, SEP 997; pieces [3, 900)
WORDS = "Thank you for inviting me to your party last week .".split()
SENTENCE = list(range(3, 3 + len(WORDS)))


def test_corrupt_80_10_10_worked_example():
    tokens = np.array([[7, 10, 11, 12, 13, 8]])
    chosen = np.array([[0, 1, 0, 1, 1, 0]], bool)
    action = np.array([[0, MASK, 0, RANDOM, KEEP, 0]])
    inputs, targets = corrupt(tokens, chosen, action, np.full((1, 6), 42), mask_id=9)
    assert inputs.tolist() == [[7, 9, 11, 42, 13, 8]] and targets.tolist() == [[0, 10, 0, 12, 13, 0]]


def test_choose_positions_counts():
    maskable = np.ones((50, 40), bool)
    maskable[:, [0, -1]] = False
    maskable[1, :] = False
    chosen = choose_positions(maskable, 0.15, np.random.default_rng(0))
    assert not (chosen & ~maskable).any()
    counts = chosen.sum(axis=1)
    assert counts[1] == 0 and (np.delete(counts, 1) == round(0.15 * 38)).all()


def test_roberta_worked_example_structure():
    out = RobertaMLM()(Ragged.from_rows([SENTENCE]), np.random.default_rng(0), VOCAB, {"inputs": 13})
    inputs, targets = out["inputs"][0], out["targets"][0]
    assert len(inputs) == 13 and inputs[0] == 998 and inputs[-1] == 997
    assert out["token_types"][0].tolist() == [0] * 13 and "nsp_labels" not in out
    chosen = np.flatnonzero(targets)
    assert len(chosen) == 2 and 0 < chosen.min() and chosen.max() < 12  # round(0.15 * 11)
    np.testing.assert_array_equal(targets[chosen], np.array(SENTENCE)[chosen - 1])
    unchosen = np.setdiff1d(np.arange(1, 12), chosen)
    np.testing.assert_array_equal(inputs[unchosen], np.array(SENTENCE)[unchosen - 1])


def test_mlm_statistics():
    segments = np.random.default_rng(0).integers(3, 900, size=(2000, 100)).astype(np.int32)
    out = RobertaMLM()(Ragged.from_dense(segments), np.random.default_rng(1), VOCAB)
    inputs = out["inputs"].values.reshape(2000, 102)
    targets = out["targets"].values.reshape(2000, 102)
    chosen = targets > 0
    assert (chosen.sum(axis=1) == 15).all()
    original = targets[chosen]
    seen = inputs[chosen]
    is_mask = seen == 999
    kept = seen == original
    assert abs(is_mask.mean() - 0.8) < 0.01 and abs(kept.mean() - 0.1) < 0.01
    random = ~is_mask & ~kept
    assert abs(random.mean() - 0.1) < 0.01
    assert seen[random].min() >= 3 and seen[random].max() < 900  # real pieces only
    np.testing.assert_array_equal(inputs[:, 1:-1][~chosen[:, 1:-1]], segments[~chosen[:, 1:-1]])


def parse_bert(inputs, token_types):
    seps = np.flatnonzero(inputs == 997)
    assert inputs[0] == 998 and len(seps) == 2 and seps[1] == len(inputs) - 1
    np.testing.assert_array_equal(token_types, (np.arange(len(inputs)) > seps[0]).astype(int))
    return seps[0]


def test_bert_worked_example_structure():
    """[CLS] A [SEP] B [SEP] with A + B the segment (IsNext), token types 0 then 1."""
    objective = BertMLM(mask_prob=1.0, random_prob=0.0, nsp_prob=0.0)
    out = objective(Ragged.from_rows([SENTENCE]), np.random.default_rng(0), VOCAB, {"inputs": 14})
    inputs, targets = out["inputs"][0], out["targets"][0]
    assert len(inputs) == 14 and out["nsp_labels"].to_list() == [[0]]
    sep = parse_bert(inputs, out["token_types"][0])
    assert 2 <= sep <= 11  # s in [1, 10]
    text = np.delete(np.arange(14), [0, sep, 13])
    restored = np.where(targets[text] > 0, targets[text], inputs[text])
    assert restored.tolist() == SENTENCE
    assert (inputs[targets > 0] == 999).all() and (targets > 0).sum() == 2


def test_bert_nsp():
    segments = np.arange(400 * 30, dtype=np.int32).reshape(400, 30) % 890 + 3
    objective = BertMLM(mlm_rate=0.0, nsp_prob=0.5)
    out = objective(Ragged.from_dense(segments), np.random.default_rng(0), VOCAB, {"inputs": 33})
    labels = out["nsp_labels"].values
    assert out["nsp_labels"].lengths.tolist() == [1] * 400
    assert abs(labels.mean() - 0.5) < 0.07
    for i in range(400):
        inputs, targets = out["inputs"][i], out["targets"][i]
        inputs = np.where(targets > 0, targets, inputs)  # undo the (single) MLM choice
        sep = parse_bert(inputs, out["token_types"][i])
        a, b = inputs[1:sep], inputs[sep + 1 : -1]
        assert a.tolist() == segments[i, : len(a)].tolist() and len(a) >= 1 and len(b) >= 1
        if labels[i] == 0:
            assert b.tolist() == segments[i, len(a) :].tolist()
        else:  # a contiguous piece of another segment of the block
            donors = [j for j in range(400) if j != i and any(
                segments[j, k : k + len(b)].tolist() == b.tolist() for k in range(30 - len(b) + 1))]
            assert donors


def test_bert_lengths_and_edge_cases():
    assert BertMLM().raw_length({"inputs": 512}) == 509 and RobertaMLM().raw_length({"inputs": 512}) == 510
    assert BertMLM().feature_lengths(512) == {"inputs": 512}
    assert BertMLM.family_features == RobertaMLM.family_features == "mlm"
    with pytest.raises(ValueError, match="needs inputs >= 5") as error:
        BertMLM().raw_length({"inputs": 4})
    assert "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 512}\"" in str(error.value)
    # A lone full segment and a 1-token segment: no donor, so IsNext; lengths always n + 3.
    rows = [list(range(3, 23)), [5]]
    out = BertMLM(nsp_prob=1.0)(Ragged.from_rows(rows), np.random.default_rng(0), VOCAB)
    assert out["nsp_labels"].values.tolist() == [0, 0]
    assert out["inputs"].lengths.tolist() == [23, 4] == out["targets"].lengths.tolist()
    assert out["token_types"][1].tolist() == [0, 0, 0, 1]


def test_determinism():
    segments = Ragged.from_dense(np.random.default_rng(0).integers(3, 900, size=(16, 64)).astype(np.int32))
    for objective in (BertMLM(), RobertaMLM()):
        a = objective(segments, np.random.default_rng(4), VOCAB)
        b = objective(segments, np.random.default_rng(4), VOCAB)
        c = objective(segments, np.random.default_rng(5), VOCAB)
        for k in a:
            np.testing.assert_array_equal(a[k].values, b[k].values)
        assert not np.array_equal(a["inputs"].values, c["inputs"].values)
