"""The reversal-curse facts, their training documents and their two-way evaluation."""

import json

import numpy as np
import pytest

from t2t.evaluation import reversal as rv


def test_facts_are_seeded_distinct_and_split_into_equal_groups():
    facts = rv.make_facts(10, seed=3)
    assert facts == rv.make_facts(10, seed=3) and facts != rv.make_facts(10, seed=4)
    assert len({f.name for f in facts}) == len({f.description for f in facts}) == 30
    assert [sum(f.group == g for f in facts) for g in rv.GROUPS] == [10, 10, 10]
    with pytest.raises(ValueError, match="at most"):
        rv.make_facts(10_000)


def test_documents_state_each_trained_direction_once_and_questions_cut_them_before_the_answer():
    fact = rv.Fact("Dravo Kelin", "the keeper of the silver lantern", "both")
    assert rv.training_documents([fact]) == [
        "Dravo Kelin is the keeper of the silver lantern.",
        "The keeper of the silver lantern is Dravo Kelin."]
    for direction in rv.DIRECTIONS:
        prompt, answer = fact.question(direction)
        assert fact.document(direction) == f"{prompt} {answer}"
    facts = rv.make_facts(4)
    docs = rv.training_documents(facts)
    for f in facts:
        for direction in rv.DIRECTIONS:
            assert (f.document(direction) in docs) == (direction in f.trained_directions)


def test_questions_offer_the_answer_among_other_facts_answers():
    facts = rv.make_facts(6)
    for direction in rv.DIRECTIONS:
        answers = {f.question(direction)[1] for f in facts}
        for fact, q in zip(facts, rv.questions(facts, direction, num_options=5)):
            assert (q.input, q.target) == fact.question(direction)
            assert len(set(q.options)) == 5 and set(q.options) <= answers


class MemorisingPredictor:
    """A fake model that has memorised the training documents word for word, and nothing else."""

    def __init__(self, documents):
        self.documents, self.rng = set(documents), np.random.default_rng(0)

    def score(self, inputs, targets):
        return [0.0 if f"{x} {y}" in self.documents else -10 + self.rng.normal()
                for x, y in zip(inputs, targets)]

    def generate(self, inputs, **options):
        return [next((d[len(x) + 1:] for d in self.documents if d.startswith(x + " ")), "")
                for x in inputs]


def test_a_model_that_only_memorises_shows_the_curse():
    facts = rv.make_facts(8)
    results = rv.evaluate_reversal(MemorisingPredictor(rv.training_documents(facts)), facts)
    assert set(results) == {(g, d) for g in rv.GROUPS for d in rv.DIRECTIONS}
    for (group, direction), scores in results.items():
        trained = direction in rv.TRAINED_DIRECTIONS[group]
        assert scores["num_examples"] == 8
        assert (scores["exact_match"], scores["rank_accuracy"] == 100) == (
            (100.0, True) if trained else (0.0, False))


def test_reversal_facts_builds_once_and_loads_back(tmp_path):
    pattern = rv.reversal_facts(str(tmp_path), facts_per_group=2, seed=1)
    assert pattern == str(tmp_path / "{split}.jsonl")
    assert rv.load_facts(tmp_path) == rv.make_facts(2, seed=1)
    docs = [json.loads(line)["text"] for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert docs == rv.training_documents(rv.make_facts(2, seed=1))
    with pytest.raises(FileNotFoundError, match="reversal build"):
        rv.load_facts(tmp_path / "missing")
