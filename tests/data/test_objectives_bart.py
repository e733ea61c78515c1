"""BART's noising steps and objective."""

import gin
import numpy as np
import pytest

from t2t.data.objectives import (Bart, DocumentRotation, Ragged, SentencePermutation, TextInfilling, TokenDeletion,
                                 TokenMasking, VocabInfo, infill, permute_sentences, rotate)

WORDS = "Thank you for inviting me to your party last week .".split()
SENTENCE = list(range(3, 3 + len(WORDS)))  # "." is 13
VOCAB = VocabInfo.simple(1000, sentence_end_ids=[13])  # MASK 999


def words(ids):
    return " ".join("<M>" if i == 999 else "EOS" if i == 1 else WORDS[i - 3] for i in ids)


def test_infill_worked_example():
    tokens = Ragged.from_rows([SENTENCE])
    out = infill(tokens, np.array([0, 0]), np.array([2, 8]), np.array([2, 0]), 999)
    assert words(out[0]) == "Thank you <M> me to your party <M> last week ."
    out = infill(Ragged.from_rows([[10, 11, 12, 13, 14, 15, 16], [20, 21]]), np.array([1, 0, 0]),
                 np.array([0, 5, 2]), np.array([2, 0, 2]), 99)
    assert out.to_list() == [[10, 11, 99, 14, 99, 15, 16], [99]]


def removal_groups(row, n):
    """Runs of original tokens (3 .. 3 + n - 1, increasing) missing from ``row``."""
    kept = row[row != 999]
    bounds = np.concatenate([[2], kept, [3 + n]])
    return int((np.diff(bounds) > 1).sum())


def test_text_infilling_statistics():
    n = 200
    segments = np.arange(3, 3 + n, dtype=np.int32)[None].repeat(500, axis=0)  # increasing: easy to align
    out = TextInfilling(0.3, 3.0)(Ragged.from_dense(segments), np.random.default_rng(0), VOCAB)
    spans = groups = 0
    for i in range(500):
        row = out[i]
        kept = row[row != 999]
        assert len(kept) == n - 60 and (np.diff(kept) > 0).all()  # round(0.3 * 200) tokens removed, in order
        spans += int((row == 999).sum())
        groups += removal_groups(row, n)
    assert 2.6 < 500 * 60 / spans < 3.4  # mean span ~ Poisson(3), the last one cut to cover exactly 60
    assert spans > groups  # empty spans insert masks (and adjacent spans give adjacent masks)


def test_text_infilling_empty_spans_insert_masks():
    segments = Ragged.from_dense(np.arange(3, 103, dtype=np.int32)[None].repeat(200, axis=0))
    out = TextInfilling(0.1, 0.5)(segments, np.random.default_rng(0), VOCAB)  # P(span = 0) = e^-0.5
    masks = (out.values == 999).reshape(-1)
    assert (out.lengths == 100 - 10 + np.bincount(out.row_ids[masks], minlength=200)).all()
    assert masks.sum() > 2 * sum(removal_groups(out[i], 100) for i in range(200))


def test_token_masking_and_deletion():
    segments = Ragged.from_dense(np.full((100, 100), 7, np.int32))
    masked = TokenMasking(0.3)(segments, np.random.default_rng(0), VOCAB)
    assert masked.lengths.tolist() == [100] * 100 and abs((masked.values == 999).mean() - 0.3) < 0.02
    deleted = TokenDeletion(0.3)(segments, np.random.default_rng(0), VOCAB)
    assert abs(deleted.lengths.mean() - 70) < 1 and (deleted.values == 7).all()


def test_permute_sentences():
    ends = np.zeros(20, bool)
    ends[13] = True
    tokens = Ragged.from_rows([[3, 4, 13, 5, 13, 6], [7, 8], [], [13, 13]])
    keys = np.array([0.5, 0.1, 0.9, 0.3, 0.2, 0.1])  # row 0: 3 sentences; row 1: 1; row 3: 2
    assert permute_sentences(tokens, ends, keys).to_list() == [[5, 13, 3, 4, 13, 6], [7, 8], [], [13, 13]]
    # Random keys: sentences keep their tokens and order inside; every order shows up.
    step = SentencePermutation()
    sentence = Ragged.from_rows([[3, 13, 4, 13, 5, 13]] * 300)
    out = step(sentence, np.random.default_rng(0), VocabInfo.simple(1000, sentence_end_ids=[13]))
    orders = {tuple(r) for r in out.to_list()}
    assert len(orders) == 6 and all(sorted(r) == [3, 4, 5, 13, 13, 13] for r in orders)
    assert step(Ragged.from_rows([SENTENCE]), np.random.default_rng(0), VOCAB).to_list() == [SENTENCE]


def test_document_rotation():
    assert rotate(Ragged.from_rows([[3, 4, 5, 6], [7, 8], []]), np.array([1, 0, 0])).to_list() == \
        [[4, 5, 6, 3], [7, 8], []]
    out = DocumentRotation()(Ragged.from_rows([SENTENCE] * 200), np.random.default_rng(0), VOCAB)
    firsts = set()
    for row in out.to_list():
        k = SENTENCE.index(row[0])
        assert row == SENTENCE[k:] + SENTENCE[:k]
        firsts.add(k)
    assert firsts == set(range(11))


def test_bart_objective():
    segments = np.random.default_rng(0).integers(3, 900, size=(64, 511)).astype(np.int32)
    segments[:, ::17] = 13  # sentence ends
    objective = Bart()
    out = objective(Ragged.from_dense(segments), np.random.default_rng(0), VOCAB, {"inputs": 512, "targets": 512})
    assert out["targets"].to_list() == [s.tolist() + [1] for s in segments]
    assert all(row[-1] == 1 for row in out["inputs"].to_list())
    assert (out["inputs"].lengths < 512).all() and objective.family_features == "text_to_text"
    assert objective.raw_length({"inputs": 512, "targets": 512}) == 511
    assert objective.feature_lengths(512) == {"inputs": 512, "targets": 512}
    with pytest.raises(ValueError, match="TASK_FEATURE_LENGTHS\\['inputs'\\]=300 is too short for bart"):
        objective.raw_length({"inputs": 300, "targets": 512})
    # Determinism.
    again = objective(Ragged.from_dense(segments), np.random.default_rng(0), VOCAB, {"inputs": 512, "targets": 512})
    np.testing.assert_array_equal(again["inputs"].values, out["inputs"].values)


def test_bart_steps_compose_in_order():
    segments = Ragged.from_rows([SENTENCE])
    out = Bart([TokenMasking(1.0)])(segments, np.random.default_rng(0), VOCAB)
    assert out["inputs"].to_list() == [[999] * 11 + [1]]
    out = Bart([TokenDeletion(0.0), DocumentRotation()])(segments, np.random.default_rng(0), VOCAB)
    assert sorted(out["inputs"][0][:-1]) == SENTENCE


def test_bart_gin():
    gin.clear_config()
    try:
        gin.parse_config("bart.steps = [@bart_token_deletion(), @bart_text_infilling()]\n"
                         "bart_token_deletion.rate = 0.2\nbart_text_infilling.density = 0.1")
        objective = Bart()
        assert [type(s).__name__ for s in objective.steps] == ["TokenDeletion", "TextInfilling"]
        assert objective.steps[0].rate == 0.2 and objective.steps[1].density == 0.1
    finally:
        gin.clear_config()
