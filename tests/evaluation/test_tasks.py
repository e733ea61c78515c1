"""Downstream tasks: T5's exact text-to-text formats, on hand-written records (T5's own docstring
examples) and on TFDS mock data read through the random-access path without TensorFlow."""

import dataclasses
import json
import re

import numpy as np
import pytest

from t2t.evaluation import metrics
from t2t.evaluation.tasks import (TASKS, TOPICS, LabelId, SuiteSource, get_task, pad_punctuation,
                                  to_float)


# ----- hand-written records (no TFDS needed) -----

def test_glue_format_from_t5s_qqp_docstring():
    record = {"question1": "Why do I easily get bored of my friends?",
              "question2": "Why do I get bored of friends so quickly?", "label": 1, "idx": 10}
    assert get_task("glue_qqp").preprocess(record) == {
        "inputs": "qqp question1: Why do I easily get bored of my friends? question2: Why do I get bored of "
                  "friends so quickly?", "targets": "duplicate"}
    assert get_task("glue_qqp").preprocess({**record, "label": -1})["targets"] == "<unk>"  # unlabelled test


def test_glue_keys_are_sorted_and_superglue_formats_match_t5():
    mnli = {"premise": "A man sleeps.", "hypothesis": "A person rests.", "label": 0, "idx": 3}
    assert get_task("glue_mnli").preprocess(mnli)["inputs"] == \
        "mnli hypothesis: A person rests. premise: A man sleeps."
    copa = {"premise": "The man broke his toe.", "question": "cause",
            "choice1": "He dropped a hammer on his foot.", "choice2": "He got a hole in his sock.",
            "label": 0, "idx": 0}
    assert get_task("super_glue_copa").preprocess(copa) == {
        "inputs": "copa choice1: He dropped a hammer on his foot. choice2: He got a hole in his sock. "
                  "premise: The man broke his toe. question: cause", "targets": "choice1"}
    boolq = {"question": "is the sky blue", "passage": "The sky is blue.", "label": 1, "idx": 0}
    assert get_task("super_glue_boolq").preprocess(boolq) == {
        "inputs": "boolq passage: The sky is blue. question: is the sky blue", "targets": "True"}
    wic = {"sentence1": "Bank of a river.", "sentence2": "A bank loan.", "word": "bank", "start1": 0, "end1": 4,
           "start2": 2, "end2": 6, "label": 0, "idx": 1}  # the span indices are ignored, as in T5
    assert get_task("super_glue_wic").preprocess(wic)["inputs"] == \
        "wic sentence1: Bank of a river. sentence2: A bank loan. word: bank"
    cb = {"premise": "It rained.", "hypothesis": "It was dry.", "label": 1, "idx": 0}
    assert get_task("super_glue_cb").preprocess(cb) == {
        "inputs": "cb hypothesis: It was dry. premise: It rained.", "targets": "contradiction"}


def test_stsb_rounds_to_point_two_like_tensorflow():
    record = {"sentence1": "Three more US soldiers killed in Afghanistan",
              "sentence2": "NATO Soldier Killed in Afghanistan", "label": 1.8, "idx": 0}
    assert get_task("glue_stsb").preprocess(record) == {
        "inputs": "stsb sentence1: Three more US soldiers killed in Afghanistan sentence2: NATO Soldier Killed "
                  "in Afghanistan", "targets": "1.8"}

    def target(label: float) -> str:
        return get_task("glue_stsb").preprocess({**record, "label": np.float32(label)})["targets"]

    assert [target(x) for x in (0.0, 5.0, 3.33, 4.91)] == ["0.0", "5.0", "3.4", "5.0"]
    assert target(2.5) == "2.4" and target(2.7) == "2.8"  # x5 = 12.5 and 13.5: tf.round is half-to-even


def test_translation_summarization_and_squad_formats():
    assert get_task("wmt14_ende").preprocess({"de": "Das ist gut.", "en": "That is good."}) == {
        "inputs": "translate English to German: That is good.", "targets": "Das ist gut."}
    assert get_task("wmt16_enro").preprocess({"ro": "E bine.", "en": "It is good."})["inputs"] == \
        "translate English to Romanian: It is good."
    assert get_task("cnn_dailymail").preprocess({"article": "A long story.", "highlights": "Short."}) == {
        "inputs": "summarize: A long story.", "targets": "Short."}
    squad = {"question": "Who won Super Bowl 50?", "context": "The Denver Broncos (AFC) won.", "id": "x",
             "answers": {"text": ["Denver Broncos", "The Broncos."], "answer_start": [0, 4]}}
    assert get_task("squad").preprocess(squad) == {
        "inputs": "question: Who won Super Bowl 50 ? context: The Denver Broncos ( AFC ) won . ",
        "targets": "Denver Broncos", "answers": ["Denver Broncos", "The Broncos . "]}
    assert pad_punctuation("Beyoncé's") == "Beyonc é ' s"  # RE2's \W is ASCII-only, as in T5


def test_postprocessors_and_targets():
    cola = get_task("glue_cola")
    assert [cola.postprocess(s) for s in ("acceptable", " unacceptable", "maybe")] == [1, 0, -1]
    assert cola.target({"inputs": "", "targets": "acceptable"}) == 1
    assert to_float("3.8") == 3.8 and to_float("three") == -1.0
    squad = get_task("squad")
    assert squad.target({"targets": "a", "answers": ["a", "b"]}) == ["a", "b"]  # every reference
    assert LabelId(("x", "y"))("y") == 1


def test_label_names_are_tfds_label_classes_and_every_glue_config_is_a_task():
    pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.text import glue, super_glue

    glue_configs = glue.Glue.builder_configs
    assert {f"glue_{name}" for name in glue_configs} <= set(TASKS)
    for name, config in glue_configs.items():
        if config.label_classes:
            assert get_task(f"glue_{name}").label_names == tuple(config.label_classes)
    configs = super_glue.SuperGlue.builder_configs
    labelled = ("boolq", "cb", "copa", "multirc", "rte", "wic")
    for name in labelled:
        assert get_task(f"super_glue_{name}").label_names == tuple(configs[name].label_classes)
    # ReCoRD and WSC generate names (an entity, the referent): no labels to rank.
    assert get_task("super_glue_record").label_names is None
    wsc = get_task("super_glue_wsc_simple")
    assert wsc.label_names is None and wsc.source.name == "super_glue/wsc.fixed:1.0.2"
    assert "wsc.fixed" in configs  # TFDS's version with the spans fixed, which T5 reads


# ----- MultiRC, ReCoRD and WSC: T5's own formats, on records as TFDS gives them -----

def test_multirc_sorts_keys_strips_markup_everywhere_and_keeps_the_question_group():
    record = {"paragraph": b"<b>Sent 1: </b>Tom ran home.<br><b>Sent 2: </b>He slept.<br>",
              "question": b"Who <b>ran</b>?", "answer": b"Tom", "label": np.int64(1),
              "idx": {"paragraph": np.int32(3), "question": np.int32(7), "answer": np.int32(21)}}
    task = get_task("super_glue_multirc")
    example = task.preprocess(record)
    assert example == {"inputs": "multirc answer: Tom paragraph: Sent 1: Tom ran home. Sent 2: He "
                                 "slept.  question: Who ran?", "targets": "True", "group": (3, 7)}
    assert task.target(example) == metrics.Grouped(1, (3, 7))
    assert task.prediction("False", example) == 0 and task.prediction("maybe", example) == -1
    assert task.preprocess({**record, "label": np.int64(-1)})["targets"] == "<unk>"


RECORD = {"passage": b"Tom met Ann in Rome.\n@highlight\nThey wed\n@highlight\n\"We did!\"\n"
                     b"@highlight\nRome is far",
          "query": b"@placeholder married Tom.",
          "entities": np.array([b"Ann", b"Rome", b"Tom"], dtype=object),
          "answers": np.array([b"Ann", b"Ann Smith"], dtype=object),
          "idx": {"passage": np.int32(0), "query": np.int32(4)}}


def test_record_cleans_highlights_and_evaluates_each_record_once():
    example = get_task("super_glue_record").preprocess(RECORD)
    # "@highlight" after a full stop or quote -> a space; otherwise -> a full stop.
    assert example == {"inputs": "record query: @placeholder married Tom. entities: Ann, Rome, Tom "
                                 "passage: Tom met Ann in Rome. They wed. \"We did!\" Rome is far",
                       "targets": "Ann", "answers": ["Ann", "Ann Smith"]}
    test_record = {**RECORD, "answers": np.array([], dtype=object)}
    assert get_task("super_glue_record").preprocess(test_record)["targets"] == "<unk>"
    assert get_task("super_glue_record").target(example) == ["Ann", "Ann Smith"]


def wsc_record(text, span2_index, span2_text, label=1, span1_text="Tom"):
    return {"text": text.encode(), "span1_index": np.int32(2), "span1_text": span1_text.encode(),
            "span2_index": np.int32(span2_index), "span2_text": span2_text.encode(),
            "label": np.int64(label), "idx": np.int32(0)}


def test_wsc_simple_marks_the_pronoun_at_its_word_index():
    task = get_task("super_glue_wsc_simple")
    record = wsc_record("Mitchell asked Tom if he could lend some money.", 4, "he")
    assert task.preprocess(record) == {
        "inputs": "wsc: Mitchell asked Tom if *he* could lend some money.", "targets": "Tom",
        "label": 1}  # T5's docstring example
    # The word index, not the first occurrence: the second "he" is marked.
    second = task.preprocess(wsc_record("Tom said he knew he was late.", 4, "he", label=0))
    assert second["inputs"] == "wsc: Tom said he knew *he* was late." and second["label"] == 0
    # Words are split at single spaces (two spaces make an empty word), as in T5; a last word
    # keeps a space after its mark.
    assert task.preprocess(wsc_record("Tom  saw him", 3, "him"))["inputs"] == "wsc: Tom  saw *him* "
    with pytest.raises(ValueError, match="not the pronoun 'she'"):
        task.preprocess(wsc_record("Mitchell asked Tom if he could lend some money.", 4, "she"))
    with pytest.raises(ValueError, match="index 0"):
        task.preprocess(wsc_record("He asked Tom.", 0, "He"))
    # T5's fix of a text whose pronoun "him," is followed by a quote.
    text = ('The boy continued to whip the pony , and eventually the pony threw him over. John '
            'laughed out quite loud. "Good for him," he said. ')
    assert task.preprocess(wsc_record(text, 22, "him"))["inputs"].endswith(
        'loud. "Good for *him* ," he said.')


def test_wsc_referent_match_follows_t5s_postprocessor():
    task = get_task("super_glue_wsc_simple")
    example = task.preprocess(wsc_record("The owner of the dog said he was late.", 6, "he",
                                         span1_text="The owner of the dog"))

    def match(output):
        return task.prediction(output, example)

    assert match("the owner of the dog") == 1 and match(" The Owner ") == 1  # a subset of words
    # Determiners go wherever they stand (not only in front): "owner of a dog" is the referent.
    assert match("owner of a dog") == 1 and match("his owner of every dog") == 1
    assert match("the cat") == 0 and match("owner of a cat") == 0
    assert match("the owner's dog") == 0  # a possessive on one side only
    assert match("the") == -1 and match("") == -1  # nothing left: never a label
    # Scored against the label: a "no" example is right when the output names someone else.
    assert task.target(example) == 1
    no = {**example, "label": 0}
    assert metrics.accuracy([task.target(example), task.target(no)],
                            [match("owner"), task.prediction("a cat", no)]) == {"accuracy": 100.0}


def test_train_split_expands_record_per_answer_and_keeps_true_wsc_referents(tmp_path):
    record = {k: v for k, v in RECORD.items() if k != "idx"}
    record = {k: v.decode() if isinstance(v, bytes) else v for k, v in record.items()}
    record.update(entities=["Ann", "Rome", "Tom"], answers=["Ann", "Ann Smith"])
    no_answers = {**record, "answers": []}
    wsc = [{"text": "Tom asked Bob if he could go.", "span1_index": 0, "span1_text": t,
            "span2_index": 4, "span2_text": "he", "label": label, "idx": 0}
           for t, label in (("Tom", 1), ("Bob", 0), ("Tom", 1))]
    for name, records in (("record", [record, no_answers]), ("wsc", wsc)):
        for split in ("train", "validation"):
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / f"{split}.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in records))
    record_task = dataclasses.replace(get_task("super_glue_record"), source=SuiteSource("record"))
    train = record_task.examples("train", data_dir=str(tmp_path))
    assert [e["targets"] for e in train] == ["Ann", "Ann Smith", "<unk>"]
    assert all(e["answers"] == ["Ann", "Ann Smith"] for e in train[:2])
    validation = record_task.examples("validation", data_dir=str(tmp_path))
    assert [e["targets"] for e in validation] == ["Ann", "<unk>"]  # one example per record
    wsc_task = dataclasses.replace(get_task("super_glue_wsc_simple"), source=SuiteSource("wsc"))
    wsc_train = wsc_task.examples("train", data_dir=str(tmp_path))
    assert [e["targets"] for e in wsc_train] == ["Tom", "Tom"]  # "Bob" is not the referent
    assert len(wsc_task.examples("train", max_examples=2, data_dir=str(tmp_path))) == 1  # records
    assert [e["label"] for e in wsc_task.examples(data_dir=str(tmp_path))] == [1, 0, 1]


def test_unknown_task_and_split_are_clear_errors():
    with pytest.raises(ValueError, match="Did you mean 'glue_cola'"):
        get_task("glue_cloa")
    with pytest.raises(ValueError, match="has no split 'test'"):
        get_task("squad").examples("test")


# ----- the offline suite's tasks, read from a built directory -----

def test_suite_tasks_read_jsonl_and_reformat_from_raw_fields(tmp_path):
    (tmp_path / "wiki_topic").mkdir()
    records = [{"inputs": "stale", "targets": "stale", "title": f"T{i}", "extract": f"Article {i} is art.",
                "topic": TOPICS[i]} for i in range(3)]
    (tmp_path / "wiki_topic" / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    task = get_task("wiki_topic")
    examples = task.examples(max_examples=2, data_dir=str(tmp_path))
    assert [e["inputs"] for e in examples] == ["topic: Article 0 is art.", "topic: Article 1 is art."]
    assert [task.target(e) for e in examples] == [0, 1] and task.label_names == TOPICS
    assert get_task("wiki_description").preprocess({"extract": "X is a film.", "description": "1968 film"}) == {
        "inputs": "describe: X is a film.", "targets": "1968 film"}
    assert get_task("gettext_enfr").preprocess({"en": "cannot open %s", "fr": "impossible d'ouvrir %s"}) == {
        "inputs": "translate English to French: cannot open %s", "targets": "impossible d'ouvrir %s"}
    with pytest.raises(ValueError, match="t2t data build-eval"):
        task.examples("test", data_dir=str(tmp_path))


# ----- TFDS mock data through tfds.data_source (random access, no TensorFlow) -----

@pytest.fixture(scope="module")
def mock_tfds():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=4):
        yield tfds


def raw_records(tfds, name, split):
    source = tfds.data_source(name, split=split)
    return [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in source[i].items()} for i in range(4)]


def spaced(text: str) -> str:
    """T5's punctuation padding, stated another way: word runs and single other characters, one space apart."""
    return " ".join(re.findall(r"[0-9A-Za-z_]+|\S", text))


@pytest.mark.parametrize("task_name,feature_keys", [("glue_cola", ["sentence"]),
                                                    ("glue_mnli", ["hypothesis", "premise"])])
def test_classification_on_mock_data(mock_tfds, task_name, feature_keys):
    task = get_task(task_name)
    examples = task.examples(max_examples=4)
    raw = raw_records(mock_tfds, task.source.name, task.eval_split)
    benchmark = task_name.split("_")[1]
    assert [e["inputs"] for e in examples] == [
        benchmark + "".join(f" {k}: {r[k]}" for k in feature_keys) for r in raw]
    assert [e["targets"] for e in examples] == [task.label_names[int(r["label"])] for r in raw]
    assert [task.target(e) for e in examples] == [int(r["label"]) for r in raw]


def test_regression_on_mock_data(mock_tfds):
    task = get_task("glue_stsb")
    examples, raw = task.examples(max_examples=4), raw_records(mock_tfds, "glue/stsb:2.0.0", "validation")
    for example, record in zip(examples, raw):
        assert example["inputs"] == f"stsb sentence1: {record['sentence1']} sentence2: {record['sentence2']}"
        value = float(example["targets"])
        assert re.fullmatch(r"\d\.\d", example["targets"]) and abs(value - float(record["label"])) <= 0.1 + 1e-6
        assert abs(value * 5 - round(value * 5)) < 1e-9  # a multiple of 0.2


def test_summarization_on_mock_data(mock_tfds):
    examples = get_task("cnn_dailymail").examples(max_examples=4)
    raw = raw_records(mock_tfds, "cnn_dailymail:3.4.0", "validation")
    assert examples == [{"inputs": f"summarize: {r['article']}", "targets": r["highlights"]} for r in raw]


@pytest.mark.parametrize("task_name,language,name", [("wmt14_ende", "de", "German"),
                                                    ("wmt14_enfr", "fr", "French"),
                                                    ("wmt16_enro", "ro", "Romanian")])
def test_translation_on_mock_data(mock_tfds, task_name, language, name):
    task = get_task(task_name)
    examples = task.examples(max_examples=4)
    raw = raw_records(mock_tfds, task.source.name, "validation")
    assert examples == [{"inputs": f"translate English to {name}: {r['en']}",
                         "targets": r[language]} for r in raw]


def test_multirc_on_mock_data(mock_tfds):
    task = get_task("super_glue_multirc")
    examples = task.examples(max_examples=4)
    for example, r in zip(examples, raw_records(mock_tfds, task.source.name, "validation")):
        assert example["inputs"] == (f"multirc answer: {r['answer']} paragraph: {r['paragraph']} "
                                     f"question: {r['question']}")  # mock text has no markup
        assert example["targets"] == ("False", "True")[int(r["label"])]
        assert example["group"] == (int(r["idx"]["paragraph"]), int(r["idx"]["question"]))


def test_record_on_mock_data(mock_tfds):
    task = get_task("super_glue_record")
    raw = raw_records(mock_tfds, task.source.name, "validation")
    for example, r in zip(task.examples(max_examples=4), raw):
        assert example["inputs"] == (f"record query: {r['query']} entities: "
                                     f"{', '.join(r['entities'])} passage: {r['passage']}")
        assert example["answers"] == list(r["answers"])
        assert example["targets"] == (r["answers"][0] if len(r["answers"]) else "<unk>")
    train = task.examples("train", max_examples=4)
    assert len(train) == sum(max(len(r["answers"]), 1)
                             for r in raw_records(mock_tfds, task.source.name, "train"))


def test_question_answering_on_mock_data(mock_tfds):
    task = get_task("squad")
    examples = task.examples(max_examples=4)
    source = mock_tfds.data_source("squad/v1.1:3.0.0", split="validation")
    for i, example in enumerate(examples):
        record = source[i]
        answers = [a.decode() if isinstance(a, bytes) else a for a in record["answers"]["text"]]
        question, context = spaced(record["question"]), spaced(record["context"])
        assert example["inputs"].strip() == f"question: {question} context: {context}"
        assert [a.strip() for a in example["answers"]] == [spaced(a) for a in answers]
        assert example["targets"] == example["answers"][0]
        assert metrics.squad([task.target(example)], [answers[-1]])["em"] == 100.0
