"""T5's metrics against independent references: T5's own expected values, sacrebleu's documented
output, the ROUGE and BLEU papers' definitions worked by hand, scikit-learn and scipy."""

import collections
import doctest
import math

import numpy as np
import pytest

from t2t.evaluation import metrics


def close(actual: dict, expected: dict, tol: float = 1e-6) -> bool:
    return actual.keys() == expected.keys() and all(abs(actual[k] - expected[k]) < tol for k in expected)


# ----- values from T5's t5/evaluation/metrics_test.py -----

def test_classification_and_regression_match_t5s_expected_values():
    assert close(metrics.mean_multiclass_f1(3)([0, 1, 1, 2], [0, 0, 2, 2]), {"mean_3class_f1": 400 / 9})
    assert close(metrics.pearson_corrcoef([0, 2], [0, 1]), {"pearson_corrcoef": 100.0})
    assert close(metrics.spearman_corrcoef([0, 2, 1], [0, 1, 2]), {"spearman_corrcoef": 50.0})
    assert close(metrics.matthews_corrcoef([0, 0, 2, 1], [0, 1, 2, 1]), {"matthews_corrcoef": 70.0})
    assert close(metrics.f1_with_invalid([0, 1, 1, 0], [0, 1, 2, 2]), {"f1": 50.0})
    assert close(metrics.accuracy([0, 0, 2, 1], [0, 1, 2, 1]), {"accuracy": 75.0})


def test_squad_matches_t5s_expected_values():
    ref = "this is a string"
    assert close(metrics.squad([["", ref], [ref, ref]], [ref, ref]), {"em": 100.0, "f1": 100.0})
    assert close(metrics.squad([[ref, ref], [ref, ref]], ["", ""]), {"em": 0.0, "f1": 0.0})
    big = metrics.squad([["big moose", "hippo"], ["correct1"], ["correct2.1", "correct2.2"], ["a", "b"]],
                        ["a big  Moose!", "wrong", "correct2.2", "c"])
    assert close(big, {"em": 50.0, "f1": 50.0})
    assert close(metrics.squad([["abc abd", "$$$$"]], ["abd"]), {"em": 0.0, "f1": 200 / 3})


def test_squad_normalisation_drops_case_punctuation_and_articles():
    assert metrics.normalize_squad("The  Denver Broncos!") == "denver broncos"
    assert metrics.normalize_squad("An apple, a pear") == "apple pear"
    # "Broncos" alone: P = 1, R = 1/2 -> F1 2/3; the best of the references counts.
    assert close(metrics.squad([["Denver Broncos", "Broncos"]], ["the Broncos"]), {"em": 100.0, "f1": 100.0})
    assert close(metrics.squad([["Denver Broncos"]], ["Broncos"]), {"em": 0.0, "f1": 200 / 3})


def test_length_mismatch_and_empty_input_are_clear_errors():
    with pytest.raises(ValueError, match="2 targets but 1 predictions"):
        metrics.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="no examples"):
        metrics.accuracy([], [])
    with pytest.raises(TypeError, match="lists of reference answers"):
        metrics.squad(["Denver"], ["Denver"])


# ----- BLEU -----

def reference_bleu(references: list[str], hypotheses: list[str], max_order: int = 4) -> float:
    """BLEU from Papineni et al. (2002) on whitespace tokens: clipped n-gram precisions over the corpus,
    their geometric mean, times the brevity penalty exp(1 - r/c) when c < r."""
    matches, totals = [0] * max_order, [0] * max_order
    ref_len = hyp_len = 0
    for ref, hyp in zip(references, hypotheses):
        r, h = ref.split(), hyp.split()
        ref_len, hyp_len = ref_len + len(r), hyp_len + len(h)
        for n in range(1, max_order + 1):
            r_ngrams = collections.Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
            h_ngrams = collections.Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            matches[n - 1] += sum((r_ngrams & h_ngrams).values())
            totals[n - 1] += max(len(h) - n + 1, 0)
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_order
    brevity = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * brevity * math.exp(log_precision)


def test_bleu_equals_the_papers_formula_on_whitespace_tokens():
    pytest.importorskip("sacrebleu")
    references = ["the cat is on the mat today", "there is a cat on the mat", "a dog sat by the old door"]
    hypotheses = ["the cat is on the mat", "there is a big cat on the mat", "a dog sat by the door"]
    expected = reference_bleu(references, hypotheses)
    assert 20 < expected < 90
    assert abs(metrics.bleu(references, hypotheses)["bleu"] - expected) < 1e-9


def test_bleu_reproduces_sacrebleus_documented_example_and_uses_t5s_tokenizer():
    pytest.importorskip("sacrebleu")
    hypotheses = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    references = [["The dog bit the man.", "The dog had bit the man."],
                  ["It was not unexpected.", "No one was surprised."],
                  ["The man bit him first.", "The man had bitten the dog."]]
    # sacrebleu's README: "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ...)" with its default 13a.
    assert round(metrics.bleu(references, hypotheses, tokenize="13a")["bleu"], 2) == 48.53
    assert round(metrics.bleu(references, hypotheses)["bleu"], 2) != 48.53  # T5's default is "intl"
    assert close(metrics.bleu(["this is a string"] * 2, ["", ""]), {"bleu": 0.0})
    assert metrics.bleu(["Das ist gut."], ["das ist gut."])["bleu"] < 100  # case-sensitive, as T5


# ----- ROUGE -----

def test_rouge_hand_worked_unigram_and_bigram_f_measures():
    pytest.importorskip("rouge_score")
    # Reference 6 tokens, prediction 7; unigram overlap 6 -> P 6/7, R 1; bigram overlap 4 of 6 and 5.
    result = metrics.rouge(["the cat was under the bed"], ["the cat was found under the bed"])
    f = lambda p, r: 200 * p * r / (p + r)  # noqa: E731
    assert abs(result["rouge1"] - f(6 / 7, 1)) < 1e-9
    assert abs(result["rouge2"] - f(4 / 6, 4 / 5)) < 1e-9
    assert close(metrics.rouge(["this is a string"] * 2, ["this is a string"] * 2),
                 {"rouge1": 100.0, "rouge2": 100.0, "rougeLsum": 100.0})


def test_rouge_lsum_splits_sentences_at_space_dot_space_as_t5():
    pytest.importorskip("rouge_score")
    # Lin (2004), section 3.2: reference w1..w5, candidate sentences c1 = w1 w2 w6 w7 w8 and
    # c2 = w1 w3 w8 w9 w5. The union LCS with the reference is w1 w2 w3 w5: R = 4/5, P = 4/10, F = 8/15.
    reference = "w1 w2 w3 w4 w5"
    prediction = "w1 w3 w8 w9 w5 . w1 w2 w6 w7 w8"  # c2 first, so one LCS over both cannot reach 4
    result = metrics.rouge([reference], [prediction], score_keys=("rougeLsum", "rougeL"))
    assert abs(result["rougeLsum"] - 100 * 8 / 15) < 1e-9
    # Without the sentence split (plain rougeL) the LCS is w1 w3 w5 -> R 3/5, P 3/10, F 0.4.
    assert abs(result["rougeL"] - 40.0) < 1e-9


# ----- against scikit-learn and scipy -----

def random_labels(seed: int, n: int = 200, classes: int = 3, invalid: bool = True):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, classes, n)
    predictions = np.where(rng.random(n) < 0.6, targets, rng.integers(-1 if invalid else 0, classes, n))
    return targets.tolist(), predictions.tolist()


@pytest.mark.parametrize("seed", range(3))
def test_classification_metrics_equal_scikit_learns(seed):
    sk = pytest.importorskip("sklearn.metrics")
    t, p = random_labels(seed)
    assert abs(metrics.accuracy(t, p)["accuracy"] - 100 * sk.accuracy_score(t, p)) < 1e-9
    assert abs(metrics.matthews_corrcoef(t, p)["matthews_corrcoef"] - 100 * sk.matthews_corrcoef(t, p)) < 1e-9
    macro = sk.fbeta_score(t, p, beta=1, labels=range(3), average="macro", zero_division=0)
    assert abs(metrics.mean_multiclass_f1(3)(t, p)["mean_3class_f1"] - 100 * macro) < 1e-9
    bt, bp = random_labels(seed, classes=2)
    fixed = [1 - y if q not in (0, 1) else q for y, q in zip(bt, bp)]  # T5: invalid counts as wrong
    assert abs(metrics.f1_with_invalid(bt, bp)["f1"] - 100 * sk.f1_score(bt, fixed)) < 1e-9
    assert abs(metrics.matthews_corrcoef(bt, bp)["matthews_corrcoef"]
               - 100 * sk.matthews_corrcoef(bt, bp)) < 1e-9


def test_binary_mcc_and_f1_hand_worked():
    # TP 6, TN 3, FP 1, FN 2: MCC = (6*3 - 1*2) / sqrt(7*8*4*5); F1 = 2*6 / (2*6 + 1 + 2).
    targets = [1] * 6 + [0] * 3 + [0] + [1] * 2
    predictions = [1] * 6 + [0] * 3 + [1] + [0] * 2
    assert abs(metrics.matthews_corrcoef(targets, predictions)["matthews_corrcoef"]
               - 100 * 16 / math.sqrt(1120)) < 1e-9
    assert abs(metrics.f1_with_invalid(targets, predictions)["f1"] - 80.0) < 1e-9
    assert metrics.matthews_corrcoef([0, 1, 0], [1, 1, 1]) == {"matthews_corrcoef": 0.0}  # constant predictor


def test_multirc_f1a_over_all_answers_and_exact_match_per_question_hand_worked():
    """Three questions: q (0, 0) all right, (0, 1) one answer wrong, (1, 0) an invalid output.

    F1a pools the six answers: the invalid output counts as the wrong class (0 for a 1), so
    TP 2, FP 0, FN 2 -> F1 = 2*2 / (2*2 + 0 + 2) = 2/3. Exact match is per question: only
    (0, 0) is all right -> 1/3, although 3 of the 6 answers sit in all-right questions (a mean
    over answers would give 1/2) and 4 of 6 are right. (1, 0) and (0, 0) share a question index
    but are different questions: pooled they would give 0 instead.
    """
    grouped = metrics.Grouped
    targets = [grouped(1, (0, 0)), grouped(0, (0, 0)), grouped(1, (0, 0)),
               grouped(0, (0, 1)), grouped(1, (0, 1)), grouped(1, (1, 0))]
    predictions = [1, 0, 1, 0, 0, -1]
    assert close(metrics.f1_over_all_answers(targets, predictions), {"f1a": 200 / 3})
    exact_match = metrics.mean_group_metric(metrics.all_match)
    assert close(exact_match(targets, predictions), {"exact_match": 100 / 3})
    assert close(exact_match(targets, [1, 0, 1, 0, 1, 1]), {"exact_match": 100.0})
    assert close(metrics.f1_over_all_answers([1, 0], [1, 1]), {"f1a": 200 / 3})  # plain labels
    with pytest.raises(TypeError, match="Grouped targets"):
        exact_match([1, 0], [1, 0])


def test_correlations_equal_scipys_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    targets = np.round(rng.uniform(0, 5, 100) * 5) / 5  # STS-B-like, many ties
    predictions = np.round((targets + rng.normal(0, 1, 100)) * 5) / 5
    assert abs(metrics.pearson_corrcoef(targets, predictions)["pearson_corrcoef"]
               - 100 * stats.pearsonr(targets, predictions)[0]) < 1e-9
    assert abs(metrics.spearman_corrcoef(targets, predictions)["spearman_corrcoef"]
               - 100 * stats.spearmanr(targets, predictions)[0]) < 1e-9
    assert math.isnan(metrics.pearson_corrcoef([1, 2, 3], [2, 2, 2])["pearson_corrcoef"])


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # as if not installed
    with pytest.raises(ImportError, match=r"BLEU metric needs sacrebleu: pip install 't2t\[eval\]'"):
        metrics.bleu(["a b c"], ["a b c"])


def test_docstring_examples_hold():
    """The worked examples in the metrics' docstrings (MultiRC's F1a and grouped exact match)."""
    assert doctest.testmod(metrics).failed == 0

