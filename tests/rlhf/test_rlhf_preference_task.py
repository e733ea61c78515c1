"""The synthetic preference task: its rule, seeded generators and the ranking of comparisons."""

import json

import numpy as np

from t2t.rlhf.preference_task import (MAX_WORDS, clauses, comparisons, demonstrations,
                                      describe_rule, main, satisfies_rule)


def test_rule_clauses_on_the_module_docstring_examples():
    assert clauses("horse", "the old horse is fast.") == (True, True, True)
    assert clauses("horse", "a red tree near the river") == (False, True, False)
    assert not satisfies_rule("cat", " ".join(["cat"] * (MAX_WORDS + 1)) + ".")
    assert describe_rule("describe: cat", "a cat.")


def test_generators_are_seeded_and_demonstrations_rarely_satisfy_the_rule():
    first, again = list(demonstrations(2000, seed=3)), list(demonstrations(2000, seed=3))
    assert first == again and first != list(demonstrations(2000, seed=4))
    rate = np.mean([describe_rule(d["inputs"], d["targets"]) for d in first])
    assert 0.08 < rate < 0.22  # 5/9 * 1/2 * 1/2 = 0.139 in expectation


def test_comparisons_prefer_the_response_satisfying_more_clauses():
    pairs = list(comparisons(200, seed=0))
    assert pairs
    for pair in pairs:
        subject = pair["prompt"].split()[-1]
        assert sum(clauses(subject, pair["chosen"])) > sum(clauses(subject, pair["rejected"]))


def test_main_writes_both_splits(tmp_path):
    assert main(["--output", str(tmp_path), "--seed", "1", "--demonstrations", "20", "5",
                 "--comparison_prompts", "10", "5"]) == 0
    for kind in ("demonstrations", "comparisons"):
        for split in ("train", "validation"):
            lines = (tmp_path / kind / f"{split}.jsonl").read_text().splitlines()
            assert lines and json.loads(lines[0])
