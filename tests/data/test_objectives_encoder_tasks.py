"""Encoder fine-tuning objectives: examples against the vocabulary's own encoding, BERT's truncation
rules, QA answers that truncation cuts off, and packing of the heads' labels by the converter."""

import json

import gin
import numpy as np
import pytest

from t2t.configuration import REPO_GIN_DIR, parse_gin
from t2t.models.config import model_config

from t2t.data.converters import EncoderFeatureConverter
from t2t.data.objectives.encoder_tasks import (IGNORE, SentencePairClassification, SequenceClassification,
                                               SpanQA, TokenTagging, answer_words, encode_words, truncate_pair)
from t2t.data.objectives.ragged import Ragged
from t2t.data.objectives.vocab_info import VocabInfo
from t2t.data.vocab import default_vocabulary

VOCAB = default_vocabulary()
INFO = VocabInfo.from_vocabulary(VOCAB)
CLS, SEP = INFO.cls_id, INFO.sep_id
TEXT = "Erbium is a chemical element; its symbol is Er."


def examples(objective, records, length):
    texts = [json.dumps([r[f] for f in objective.fields]) for r in records]
    return objective.from_documents(objective.encode_documents(VOCAB, texts), None, INFO, {"inputs": length})


def test_words_encoded_separately_give_the_texts_own_pieces():
    """encode_words' concatenated tokens are the whole text's encoding; word ranges decode to words."""
    text = "Photosynthesis converts light, water and CO2 into glucose."
    (tokens, starts), = encode_words(VOCAB, [text])
    np.testing.assert_array_equal(tokens, VOCAB.encode(text))
    assert [VOCAB.decode(tokens[a:b]) for a, b in zip(starts[:-1], starts[1:])] == text.split()


def test_sequence_classification_example_and_truncation():
    objective = SequenceClassification(labels=["Arts", "Physical sciences"])
    record = {"text": TEXT, "label": "Physical sciences"}
    ex = examples(objective, [record], 64)
    assert ex["inputs"][0].tolist() == [CLS, *VOCAB.encode(TEXT), SEP]
    assert ex["token_types"][0].tolist() == [0] * len(ex["inputs"][0])
    assert ex["classification_labels"][0].tolist() == [1]
    short = examples(objective, [record], 6)
    assert short["inputs"][0].tolist() == [CLS, *VOCAB.encode(TEXT)[:4], SEP]
    with pytest.raises(ValueError, match=r"label 'Maths' is not one of sequence_classification.labels"):
        examples(objective, [{"text": TEXT, "label": "Maths"}], 64)


def test_cached_documents_follow_label_names_not_indices():
    """Documents (what the token cache keeps) decode with the current label list, in any order."""
    record = json.dumps([TEXT, "Physical sciences"])
    docs = SequenceClassification(labels=["Arts", "Physical sciences"]).encode_documents(VOCAB, [record])
    reordered = SequenceClassification(labels=["Physical sciences", "History", "Arts"])
    assert reordered.from_documents(docs, None, INFO, {"inputs": 64})["classification_labels"][0].tolist() == [0]
    with pytest.raises(ValueError, match="not one of sequence_classification.labels"):
        SequenceClassification(labels=["Arts"]).from_documents(docs, None, INFO, {"inputs": 64})


def bert_truncate_seq_pair(len_a, len_b, budget):
    """BERT's create_pretraining_data._truncate_seq_pair, one token at a time (the reference)."""
    while len_a + len_b > budget:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_pair_truncation_is_berts_longest_first():
    rng = np.random.default_rng(0)
    for len_a, len_b, budget in rng.integers(0, 40, (500, 3)):
        assert truncate_pair(len_a, len_b, budget) == bert_truncate_seq_pair(len_a, len_b, budget)


@pytest.mark.parametrize("use_token_types", [True, False])
def test_sentence_pair_example(use_token_types):
    objective = SentencePairClassification(labels=["mismatch", "match"], use_token_types=use_token_types)
    a, b = "Chemical element", TEXT
    ex = examples(objective, [{"text_a": a, "text_b": b, "label": "match"}], 12)
    keep_a, keep_b = bert_truncate_seq_pair(len(VOCAB.encode(a)), len(VOCAB.encode(b)), 12 - 3)
    assert ex["inputs"][0].tolist() == [CLS, *VOCAB.encode(a)[:keep_a], SEP, *VOCAB.encode(b)[:keep_b], SEP]
    second = int(use_token_types)
    assert ex["token_types"][0].tolist() == [0] * (keep_a + 2) + [second] * (keep_b + 1)
    assert ex["classification_labels"][0].tolist() == [1]


def test_tagging_labels_first_subwords_only():
    words = "Photosynthesis converts light , Photosynthesis again".split()
    tags = ["new", "new", "new", "punct", "repeat", "new"]
    objective = TokenTagging(labels=["punct", "new", "repeat"])
    record = {"words": " ".join(words), "tags": " ".join(tags)}
    ex = examples(objective, [record], 64)
    tokens, labels = ex["inputs"][0].tolist(), ex["token_labels"][0].tolist()
    assert tokens == [CLS, *VOCAB.encode(record["words"]), SEP]
    # Walk the words with the vocabulary: the first piece of each carries its tag, the rest IGNORE.
    expected = [IGNORE]
    for word, tag in zip(words, tags):
        pieces = len(VOCAB.encode(word))
        expected += [objective.labels.index(tag)] + [IGNORE] * (pieces - 1)
    assert labels == expected + [IGNORE]
    assert len(VOCAB.encode("Photosynthesis")) > 1  # the case is covered
    # Truncation keeps the tags of words whose first piece is kept.
    short = examples(objective, [record], 5)["token_labels"][0].tolist()
    assert short == expected[:4] + [IGNORE]
    with pytest.raises(ValueError, match="6 words but 2 tags"):
        examples(objective, [{"words": record["words"], "tags": "new new"}], 64)


QA = {"question": "What is the symbol of erbium?", "context": "Erbium is a chemical element with symbol Er "
      "and atomic number 68.", "answer": "Er", "answer_start": "41"}


def test_span_qa_positions_point_at_the_answer():
    objective = SpanQA()
    assert QA["context"][41:43] == "Er"
    ex = examples(objective, [QA], 64)
    tokens = ex["inputs"][0]
    question = VOCAB.encode(QA["question"])
    assert tokens.tolist() == [CLS, *question, SEP, *VOCAB.encode(QA["context"]), SEP]
    assert ex["token_types"][0].tolist() == [0] * (len(question) + 2) + [1] * (len(tokens) - len(question) - 2)
    start, end = ex["span_positions"][0].tolist()
    assert VOCAB.decode(tokens[start:end + 1]) == "Er"
    # Without answer_start, the first occurrence, here inside "Erbium": answers widen to whole words.
    start, end = examples(SpanQA(answer_start_field=None), [QA], 64)["span_positions"][0].tolist()
    assert VOCAB.decode(tokens[start:end + 1]) == "Erbium"
    assert answer_words("the cat sat down", "at s", 5) == (1, 2)


def test_span_qa_truncation_labels_cls_when_the_answer_is_cut():
    """The context fills what the question leaves; an answer past the end is labelled (0, 0)."""
    objective = SpanQA(max_question_length=4)
    ex = examples(objective, [QA], 64)
    assert ex["inputs"][0][1:6].tolist() == [*VOCAB.encode(QA["question"])[:4], SEP]
    start, end = ex["span_positions"][0].tolist()
    just_fits = end + 2  # the answer's last token, then [SEP]
    assert examples(objective, [QA], just_fits)["span_positions"][0].tolist() == [start, end]
    assert examples(objective, [QA], just_fits - 1)["span_positions"][0].tolist() == [0, 0]
    wrong_offset = dict(QA, answer_start="3")
    assert examples(objective, [wrong_offset], 64)["span_positions"][0].tolist() == [0, 0]


def test_converter_packs_the_heads_labels():
    """The converter docstring's example: labels at each packed example's first position."""
    heads = ("token_classification", "span_qa")
    converter = EncoderFeatureConverter({"inputs": 8}, heads=heads)
    batch = converter({"inputs": Ragged.from_rows([[5, 11, 12, 6], [5, 21, 6]]),
                       "token_labels": Ragged.from_rows([[-1, 3, -1, -1], [-1, 0, -1]]),
                       "span_positions": Ragged.from_rows([[1, 2], [0, 0]])})
    assert set(batch) == set(EncoderFeatureConverter.FEATURES) | {
        "token_labels", "token_loss_weights", "span_start_positions", "span_end_positions", "span_loss_weights"}
    assert set(batch) == set(converter.output_lengths())
    assert batch["encoder_segment_ids"].tolist() == [[1, 1, 1, 1, 2, 2, 2, 0]]
    assert batch["token_labels"].tolist() == [[0, 3, 0, 0, 0, 0, 0, 0]]
    assert batch["token_loss_weights"].tolist() == [[0, 1, 0, 0, 0, 1, 0, 0]]
    assert batch["span_start_positions"].tolist() == [[1, 0, 0, 0, 0, 0, 0, 0]]
    assert batch["span_end_positions"].tolist() == [[2, 0, 0, 0, 0, 0, 0, 0]]
    assert batch["span_loss_weights"].tolist() == [[1, 0, 0, 0, 1, 0, 0, 0]]
    assert batch["mlm_loss_weights"].sum() == batch["nsp_loss_weights"].sum() == 0


def test_classification_labels_round_trip_through_packing():
    """Many examples of random lengths: each packed example's label sits at its first position."""
    objective = SequenceClassification(labels=[str(i) for i in range(5)])
    rng = np.random.default_rng(1)
    words = "alpha beta gamma delta river stone light".split()
    records = [{"text": " ".join(rng.choice(words, rng.integers(1, 12))), "label": str(rng.integers(5))}
               for _ in range(60)]
    batch = EncoderFeatureConverter({"inputs": 48}, heads=("sequence_classification",))(
        examples(objective, records, 48))
    first = (batch["encoder_positions"] == 0) & (batch["encoder_segment_ids"] > 0)
    assert batch["classification_loss_weights"].tolist() == first.astype(int).tolist()
    assert batch["classification_labels"][first].tolist() == [int(r["label"]) for r in records]
    assert (batch["encoder_input_tokens"][first] == CLS).all()
    assert batch["encoder_input_tokens"].shape[0] < 30  # packed: several examples per row


def test_converter_names_a_missing_head_label():
    converter = EncoderFeatureConverter({"inputs": 8}, heads=("sequence_classification",))
    with pytest.raises(ValueError, match="the sequence_classification head needs 'classification_labels'"):
        converter({"inputs": Ragged.from_rows([[5, 11, 6]])})


BERT_TASKS = sorted(p.name for p in (REPO_GIN_DIR / "experiments" / "bert_tasks").glob("*.gin"))
OBJECTIVES = {cls.name: cls for cls in (SequenceClassification, SentencePairClassification, TokenTagging, SpanQA)}


@pytest.mark.parametrize("name", BERT_TASKS)
def test_bert_task_gin_files_agree_with_their_model(name):
    """Each experiment's objective trains a head the model has, with as many labels as the model's."""
    parse_gin([f"experiments/bert_tasks/{name}"], ["INITIAL_CHECKPOINT_PATH=None"])
    try:
        objective = OBJECTIVES[gin.query_parameter("train.objective").selector]()
        config = model_config()
    finally:
        gin.clear_config()
    assert config.encoder_heads == (objective.head,)
    if objective.labels:
        assert config.num_labels == len(objective.labels)
