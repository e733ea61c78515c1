"""The evaluator with fake predictors: generation and rank classification, the metrics file, `t2t eval`."""

import dataclasses
import json
import types

import pytest

from t2t.evaluation import evaluator
from t2t.decoding.scoring import rank_classify
from t2t.evaluation.evaluator import evaluate, write_eval_metrics
from t2t.evaluation.tasks import TOPICS, SuiteSource, get_task


class LookupPredictor:
    """Generates a fixed answer per input; scores a target 0 if it is that answer, else -1."""

    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.generate_calls, self.score_calls = [], []

    def generate(self, inputs, **options):
        self.generate_calls.append((list(inputs), options))
        return [self.answers.get(x, "nonsense") for x in inputs]

    def score(self, inputs, targets):
        self.score_calls.append((list(inputs), list(targets)))
        return [0.0 if self.answers.get(x) == t else -1.0 for x, t in zip(inputs, targets)]


@pytest.fixture
def suite(tmp_path):
    """A tiny built suite: 6 wiki_topic and 3 gettext_ende validation examples."""
    topics = [{"title": f"T{i}", "extract": f"Article number {i}.", "topic": TOPICS[i % 3]} for i in range(6)]
    pairs = [{"en": "cannot open the file", "de": "Datei kann nicht geöffnet werden", "package": "p"},
             {"en": "the file was removed", "de": "die Datei wurde entfernt", "package": "p"},
             {"en": "no such file or directory", "de": "Datei oder Verzeichnis nicht gefunden", "package": "p"}]
    for name, records in (("wiki_topic", topics), ("gettext_ende", pairs)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return tmp_path


def truth(task_name, suite):
    task = get_task(task_name)
    return {e["inputs"]: e["targets"] for e in task.examples(data_dir=str(suite))}


def test_generation_scores_perfect_and_partly_wrong_predictors(suite):
    answers = truth("wiki_topic", suite)
    perfect = evaluate("wiki_topic", LookupPredictor(answers), data_dir=str(suite))
    assert perfect == {"accuracy": 100.0, f"mean_{len(TOPICS)}class_f1": pytest.approx(300 / len(TOPICS)),
                       "target_nll": 0.0, "num_examples": 6}  # 3 of the 11 topics occur, each with F1 1
    wrong_two = dict(answers)
    for x in list(answers)[:2]:
        wrong_two[x] = "not a topic"  # an invalid label counts as wrong
    assert evaluate("wiki_topic", LookupPredictor(wrong_two), data_dir=str(suite))["accuracy"] == \
        pytest.approx(400 / 6)
    first_two = evaluate("wiki_topic", LookupPredictor(answers), max_examples=2, data_dir=str(suite))
    assert first_two["num_examples"] == 2


def test_translation_uses_bleu_and_passes_generate_options(suite):
    pytest.importorskip("sacrebleu")
    predictor = LookupPredictor(truth("gettext_ende", suite))
    result = evaluate("gettext_ende", predictor, data_dir=str(suite), generate_options={"max_length": 16})
    assert result["bleu"] == pytest.approx(100.0) and result["num_examples"] == 3
    assert predictor.generate_calls[0][0][0].startswith("translate English to German: ")
    assert predictor.generate_calls[0][1] == {"max_length": 16}


def test_generation_also_scores_the_reference_text(suite):
    """target_nll of a generation task: -log p(reference | input), the reference being the
    training target, here 0 for the two examples the predictor knows and 1 for the third."""
    pytest.importorskip("sacrebleu")
    answers = truth("gettext_ende", suite)
    unknown = list(answers)[2]
    predictor = LookupPredictor({x: t for x, t in answers.items() if x != unknown})
    result = evaluate("gettext_ende", predictor, data_dir=str(suite))
    assert result["target_nll"] == pytest.approx(1 / 3)
    (inputs, targets), = predictor.score_calls
    assert [answers[x] for x in inputs] == targets  # each input scored against its own reference


def test_rank_classification_scores_every_label_and_never_generates(suite):
    predictor = LookupPredictor(truth("wiki_topic", suite))
    result = evaluate("wiki_topic", predictor, data_dir=str(suite), rank_classification=True)
    assert result["accuracy"] == 100.0 and not predictor.generate_calls
    (inputs, targets), = predictor.score_calls
    assert len(inputs) == 6 * len(TOPICS) and targets[:len(TOPICS)] == list(TOPICS)
    assert result["target_nll"] == 0.0  # log p(reference) = 0 for every example
    # A predictor that is right on 4 of 6: -log p(reference) is 1 on the other two.
    answers = truth("wiki_topic", suite)
    wrong = dict(list(answers.items())[:2])
    answers.update({x: next(t for t in TOPICS if t != answers[x]) for x in wrong})
    result = evaluate("wiki_topic", LookupPredictor(answers), data_dir=str(suite),
                      rank_classification=True)
    assert result["target_nll"] == pytest.approx(2 / 6) and result["accuracy"] == pytest.approx(400 / 6)
    # The best score wins even when every score is negative.
    negative = types.SimpleNamespace(score=lambda inputs, targets: [-5.0, -0.5, -9.0])
    assert rank_classify(negative, ["q"], [["a", "b", "c"]]) == [1]
    with pytest.raises(ValueError, match="needs a classification task"):
        evaluate("gettext_ende", predictor, data_dir=str(suite), rank_classification=True)


def task_on_records(tmp_path, task_name, records):
    """``task_name`` reading ``records`` (in its TFDS fields) as its validation split."""
    (tmp_path / task_name).mkdir()
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (tmp_path / task_name / "validation.jsonl").write_text(lines)
    return dataclasses.replace(get_task(task_name), source=SuiteSource(task_name))


def test_multirc_scores_answers_and_questions_with_generation_and_rank_classification(tmp_path):
    """Question 0 has answers A (true) and B (false), question 1 answer C (true); the predictor
    calls B true: F1a = 2*2 / (2*2 + 1) = 80, exact match 1 of 2 questions = 50."""
    records = [{"paragraph": "Tom ran.", "question": f"Q{q}?", "answer": answer, "label": label,
                "idx": {"paragraph": 0, "question": q, "answer": i}}
               for i, (q, answer, label) in enumerate([(0, "A", 1), (0, "B", 0), (1, "C", 1)])]
    task = task_on_records(tmp_path, "super_glue_multirc", records)
    examples = task.examples(data_dir=str(tmp_path))
    predictor = LookupPredictor({e["inputs"]: "True" for e in examples})
    # target_nll: -log p(reference) is 1 for B alone, whether its text or its label is scored.
    expected = {"f1a": pytest.approx(80.0), "exact_match": 50.0, "num_examples": 3,
                "target_nll": pytest.approx(1 / 3)}
    assert evaluate(task, predictor, data_dir=str(tmp_path)) == expected
    assert evaluate(task, predictor, data_dir=str(tmp_path), rank_classification=True) == expected


def test_wsc_reads_each_output_against_its_examples_referent(tmp_path):
    """One text, two candidates: "Tom" (the referent, label 1) and "Bob" (label 0). Answering
    "the Tom" for both is right twice: it names the first candidate and not the second."""
    records = [{"text": "Tom asked Bob if he could go.", "span1_index": 0, "span1_text": name,
                "span2_index": 4, "span2_text": "he", "label": label, "idx": i}
               for i, (name, label) in enumerate([("Tom", 1), ("Bob", 0)])]
    task = task_on_records(tmp_path, "super_glue_wsc_simple", records)
    question = "wsc: Tom asked Bob if *he* could go."

    def accuracy(output):
        predictor = LookupPredictor({question: output})
        return evaluate(task, predictor, data_dir=str(tmp_path))["accuracy"]

    assert accuracy("the Tom") == 100.0 and accuracy("Bob") == 0.0


def test_metrics_file_appends_lines_in_the_training_metrics_format(tmp_path):
    write_eval_metrics(tmp_path, 100, "wiki_topic", {"accuracy": 50.0, "num_examples": 4})
    path = write_eval_metrics(tmp_path, 200, "wiki_topic", {"accuracy": 75.0, "num_examples": 4})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert path.name == "eval_metrics.jsonl"
    assert lines == [{"step": 100, "split": "eval:wiki_topic", "accuracy": 50.0, "num_examples": 4},
                     {"step": 200, "split": "eval:wiki_topic", "accuracy": 75.0, "num_examples": 4}]


def test_t2t_eval_main_loads_the_run_and_appends_results(suite, tmp_path, monkeypatch, capsys):
    answers = truth("wiki_topic", suite)
    loaded = {}

    def from_run_dir(run_dir, step=None):
        predictor = LookupPredictor(answers)
        predictor.step = 300
        loaded.update(run_dir=run_dir, step=step, predictor=predictor)
        return predictor

    from t2t.decoding.predictor import Predictor
    monkeypatch.setattr(Predictor, "from_run_dir", staticmethod(from_run_dir))
    run_dir = tmp_path / "run"
    assert evaluator.main(["--run_dir", str(run_dir), "--task", "wiki_topic", "--data_dir", str(suite),
                           "--decode", "max_length=8", "--decode", "method=beam"]) == 0
    assert loaded["run_dir"] == str(run_dir) and loaded["step"] is None
    assert loaded["predictor"].generate_calls[0][1] == {"max_length": 8, "method": "beam"}
    line = json.loads((run_dir / "eval_metrics.jsonl").read_text())
    assert line["step"] == 300 and line["split"] == "eval:wiki_topic" and line["accuracy"] == 100.0
    assert "wiki_topic (step 300): accuracy 100" in capsys.readouterr().out
    # --metrics_dir: the scores of a fine-tuned model go to the run it was pretrained in.
    pretrained = tmp_path / "pretrained"
    assert evaluator.main(["--run_dir", str(run_dir), "--task", "wiki_topic", "--data_dir", str(suite),
                           "--metrics_dir", str(pretrained)]) == 0
    assert json.loads((pretrained / "eval_metrics.jsonl").read_text())["accuracy"] == 100.0
    assert len((run_dir / "eval_metrics.jsonl").read_text().splitlines()) == 1
    assert evaluator.main(["--run_dir", str(run_dir), "--task", "wiki_topc"]) == 2
    assert "Did you mean 'wiki_topic'" in capsys.readouterr().err
