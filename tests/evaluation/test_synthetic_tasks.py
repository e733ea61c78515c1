"""The synthetic in-context tasks: every puzzle obeys its rule, and everything is seeded."""

import json
import re

import numpy as np
import pytest

from t2t.evaluation import synthetic_tasks as st

WORDS = ("success", "garden", "letter", "river", "window", "harbour", "silver", "engine")


def solves(rule: str, puzzle: str, answer: str) -> bool:
    """Whether `puzzle` -> `answer` is an instance of `rule`, checked from the rule's definition."""
    word = answer.lower()
    if answer != (word.capitalize() if rule.endswith("_capitalised") else word):
        return False
    base = rule.removesuffix("_capitalised")
    if base == "symbol_removal":
        return puzzle != word and re.sub(r"[.,!/?;:* ]", "", puzzle) == word
    if base == "cycled_letters":
        return puzzle != word and len(puzzle) == len(word) and puzzle in word + word
    if base == "reversed_words":
        return puzzle == word[::-1]
    return base == "copy" and puzzle == word


@pytest.mark.parametrize("rule", sorted(st.RULES))
def test_every_puzzle_obeys_its_rule(rule):
    rng = np.random.default_rng(0)
    for word in WORDS * 20:
        example = st.RULES[rule].example(word, rng)
        assert solves(rule, example.input, example.target)


def test_symbol_insertion_varies_and_never_uses_the_answer_marker():
    rng = np.random.default_rng(1)
    puzzles = {st.insert_symbols("success", rng) for _ in range(50)}
    assert len(puzzles) > 20 and not any("=" in p for p in puzzles)


@pytest.mark.parametrize("rule", sorted(st.RULES))
def test_evaluation_examples_are_seeded_and_their_options_hold_the_answer(rule):
    queries, pool = st.evaluation_examples(st.RULES[rule], 12, seed=3, words=WORDS)
    again, pool_again = st.evaluation_examples(st.RULES[rule], 12, seed=3, words=WORDS)
    assert (queries, pool) == (again, pool_again)
    assert len(queries) == 12 and len(pool) == 64
    for q in queries:
        assert solves(rule, q.input, q.target)
        # The word in both cases, and another word in both cases.
        assert len(set(q.options)) == 4 and {o.lower() for o in q.options} <= set(WORDS)
        assert {q.target.lower(), q.target.capitalize()} <= set(q.options)
    assert all(solves(rule, e.input, e.target) and not e.options for e in pool)
    # Distinct words while the list lasts, and another seed gives other queries.
    assert len({q.target for q in queries[:len(WORDS)]}) == len(WORDS)
    with pytest.raises(ValueError, match="even"):
        st.evaluation_examples(st.RULES[rule], 2, words=WORDS, num_options=3)
    other, _ = st.evaluation_examples(st.RULES[rule], 12, seed=4, words=WORDS)
    assert [q.target for q in other] != [q.target for q in queries]


def test_meta_learning_corpus_mixes_one_rule_episodes_with_plain_text():
    plain = ["Plain text without any answer marker in it, number %d." % i for i in range(5)]
    docs = st.meta_learning_corpus(400, seed=7, words=WORDS, max_shots=3, plain_text=plain,
                                   plain_fraction=0.2)
    assert docs == st.meta_learning_corpus(400, seed=7, words=WORDS, max_shots=3,
                                           plain_text=plain, plain_fraction=0.2)
    assert docs != st.meta_learning_corpus(400, seed=8, words=WORDS, max_shots=3,
                                           plain_text=plain, plain_fraction=0.2)
    episodes = [d for d in docs if d not in plain]
    assert len(episodes) == 400 and len(docs) == 500
    descriptions = {r.description: r.name for r in st.RULES.values()}
    shots, described, rules_seen = set(), 0, set()
    for doc in episodes:
        lines = doc.split("\n")
        rule = descriptions.get(lines[0])
        described += rule is not None
        pairs = [line.split(" = ") for line in lines[rule is not None:]]
        assert all(len(p) == 2 and p[1].lower() in WORDS for p in pairs)
        # One rule explains every line (the described one, if any).
        fitting = {r for r in st.RULES if all(solves(r, p, w) for p, w in pairs)}
        assert rule in fitting if rule else fitting
        rules_seen |= fitting
        shots.add(len(pairs) - 1)
    assert shots == {0, 1, 2, 3} and 150 < described < 250 and rules_seen == set(st.RULES)


def test_word_list_is_frequent_lowercase_words_of_bounded_length():
    words = st.word_list(50, 5, 7)
    assert len(words) == len(set(words)) == 50
    assert all(re.fullmatch(r"[a-z]{5,7}", w) for w in words)


def test_icl_corpus_is_built_once_per_recipe(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("t2t.data.sources.embedded_corpus", lambda split: [f"{split} text"])
    monkeypatch.setattr(st, "meta_learning_corpus",
                        lambda n, seed, **kw: calls.append(seed) or [f"doc {seed}"] * n)
    pattern = st.icl_corpus(str(tmp_path), episodes=40)
    assert pattern == str(tmp_path / "{split}.jsonl") and calls == [0, 1]
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"text": "doc 0"}] * 40
    st.icl_corpus(str(tmp_path), episodes=40)
    assert calls == [0, 1]  # same recipe: kept
    st.icl_corpus(str(tmp_path), episodes=20)
    assert calls == [0, 1, 0, 1]  # another recipe: rebuilt
