"""T5's downstream metrics as plain functions: ``metric(targets, predictions) -> {name: value}``.

Every metric takes the postprocessed targets and predictions of a task (strings, class ids or numbers,
see t2t/evaluation/tasks.py; MultiRC's targets are :class:`Grouped`) and returns a dict, on T5's
0-100 scale and under T5's names, so that results line up with the paper's tables:

    bleu             {"bleu"}                             sacrebleu corpus BLEU, T5's arguments
    rouge            {"rouge1", "rouge2", "rougeLsum"}    rouge-score F-measures
    squad            {"em", "f1"}                         SQuAD v1.1 normalisation, max over references
    accuracy         {"accuracy"}
    f1_with_invalid  {"f1"}                               binary F1; an unknown label counts as wrong
    f1_over_all_answers {"f1a"}                           MultiRC: that F1 over every answer
    mean_group_metric(all_match) {"exact_match"}          MultiRC: share of questions all right
    mean_multiclass_f1(n) {"mean_<n>class_f1"}            unweighted mean of per-class F1 (CB)
    matthews_corrcoef {"matthews_corrcoef"}               CoLA
    pearson_corrcoef, spearman_corrcoef                   STS-B

BLEU and ROUGE need the ``eval`` extra (``pip install 't2t[eval]'``: sacrebleu, rouge-score), imported
only when called. The others are computed here with numpy (tested against scikit-learn and scipy).
"""

from __future__ import annotations

import collections
import importlib
import re
import string
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np

Metric = Callable[[Sequence[Any], Sequence[Any]], dict[str, float]]


def _require(module: str, package: str, metric: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"the {metric} metric needs {package}: pip install 't2t[eval]' "
                          f"(or pip install {package})") from error


def _check_lengths(targets: Sequence, predictions: Sequence) -> None:
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions; "
                         "a metric needs one prediction per target")
    if not len(targets):
        raise ValueError("no examples to score: pass at least one target and prediction")


# ----- generation metrics -----

def bleu(targets: Sequence[str] | Sequence[Sequence[str]], predictions: Sequence[str],
         tokenize: str = "intl") -> dict[str, float]:
    """Corpus BLEU with T5's sacrebleu settings: "intl" tokenisation, exponential smoothing with value 0
    (i.e. none), case-sensitive, no effective order.

    ``targets`` holds one reference per prediction, or a list of references per prediction (the same
    number for every one).

    >>> round(bleu(["The cat sat on the mat."], ["The cat sat on the mat."])["bleu"], 6)
    100.0
    """
    _check_lengths(targets, predictions)
    sacrebleu = _require("sacrebleu", "sacrebleu", "BLEU")
    per_example = [[t] if isinstance(t, str) else list(t) for t in targets]
    if len({len(refs) for refs in per_example}) != 1:
        raise ValueError("bleu needs the same number of references for every prediction")
    streams = [list(stream) for stream in zip(*per_example)]  # sacrebleu wants one list per reference index
    score = sacrebleu.corpus_bleu(list(predictions), streams, smooth_method="exp", smooth_value=0.0,
                                  force=False, lowercase=False, tokenize=tokenize, use_effective_order=False)
    return {"bleu": float(score.score)}


def _sentence_per_line(summary: str) -> str:
    # T5's rougeLsum preparation: rouge-score splits summaries into sentences at newlines, and T5
    # (whose CNN/DM targets are space-tokenised) marks a sentence end with " . ".
    return summary.replace(" . ", " .\n")


def rouge(targets: Sequence[str], predictions: Sequence[str],
          score_keys: Sequence[str] = ("rouge1", "rouge2", "rougeLsum")) -> dict[str, float]:
    """Mean ROUGE F-measures over examples (rouge-score's default tokenizer, no stemming, as T5).

    T5 reports the median of 1000 bootstrap resamples of this mean (``BootstrapAggregator``'s "mid");
    we report the mean itself, which that median estimates, so results are deterministic.
    """
    _check_lengths(targets, predictions)
    rouge_scorer = _require("rouge_score.rouge_scorer", "rouge-score", "ROUGE")
    scorer = rouge_scorer.RougeScorer(list(score_keys))
    totals = collections.defaultdict(float)
    for target, prediction in zip(targets, predictions):
        scores = scorer.score(target=_sentence_per_line(target), prediction=_sentence_per_line(prediction))
        for key in score_keys:
            totals[key] += scores[key].fmeasure
    return {key: 100 * totals[key] / len(targets) for key in score_keys}


# ----- question answering -----

def normalize_squad(text: str) -> str:
    """SQuAD v1.1's answer normalisation: lower case, drop punctuation and articles, squeeze spaces.

    >>> normalize_squad("The  Denver Broncos!")
    'denver broncos'
    """
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(target: str, prediction: str) -> float:
    target_tokens, prediction_tokens = target.split(), prediction.split()
    same = sum((collections.Counter(target_tokens) & collections.Counter(prediction_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction_tokens), same / len(target_tokens)
    return 2 * precision * recall / (precision + recall)


def squad(targets: Sequence[Sequence[str]], predictions: Sequence[str]) -> dict[str, float]:
    """Exact match and token F1 after SQuAD normalisation, each the max over an example's answers.

    >>> squad([["Denver Broncos", "The Broncos"]], ["the Denver broncos team"])
    {'em': 0.0, 'f1': 80.0}
    """
    _check_lengths(targets, predictions)
    em = f1 = 0.0
    for answers, prediction in zip(targets, predictions):
        if isinstance(answers, str):
            raise TypeError("squad targets are lists of reference answers, one list per example")
        prediction = normalize_squad(prediction)
        answers = [normalize_squad(a) for a in answers]
        em += max(float(a == prediction) for a in answers)
        f1 += max(_token_f1(a, prediction) for a in answers)
    return {"em": 100 * em / len(targets), "f1": 100 * f1 / len(targets)}


# ----- classification -----

def accuracy(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
    """Percentage of predictions equal to their target."""
    _check_lengths(targets, predictions)
    return {"accuracy": 100 * float(np.mean([t == p for t, p in zip(targets, predictions)]))}


def _f1_per_class(targets: np.ndarray, predictions: np.ndarray, label: Any) -> float:
    true_positive = np.sum((predictions == label) & (targets == label))
    false_positive = np.sum((predictions == label) & (targets != label))
    false_negative = np.sum((predictions != label) & (targets == label))
    denominator = 2 * true_positive + false_positive + false_negative
    return float(2 * true_positive / denominator) if denominator else 0.0


def f1_with_invalid(targets: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """F1 of the positive class 1 (MRPC, QQP). A prediction that is neither 0 nor 1 (an unparseable
    label, -1) counts as the wrong class, as in T5's ``f1_score_with_invalid``."""
    _check_lengths(targets, predictions)
    targets, predictions = np.asarray(targets), np.asarray(predictions).copy()
    invalid = (predictions != 0) & (predictions != 1)
    predictions[invalid] = 1 - targets[invalid]
    return {"f1": 100 * _f1_per_class(targets, predictions, 1)}


class Grouped(NamedTuple):
    """A target with the group its example belongs to, for metrics scored per group: a MultiRC
    answer's label with its question, ``Grouped(1, (paragraph_idx, question_idx))``."""

    value: Any
    group: Hashable


def f1_over_all_answers(targets: Sequence[Grouped | int], predictions: Sequence[int]
                        ) -> dict[str, float]:
    """MultiRC's "F1a": :func:`f1_with_invalid` over every answer of every question, ignoring
    the groups (T5's ``multirc_f1_over_all_answers``), under the SuperGLUE paper's name.

    >>> f1_over_all_answers([Grouped(1, "q1"), Grouped(0, "q1"), Grouped(1, "q2")], [1, 1, 1])
    {'f1a': 80.0}
    """
    values = [t.value if isinstance(t, Grouped) else t for t in targets]
    return {"f1a": f1_with_invalid(values, predictions)["f1"]}


def all_match(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
    """100 when every prediction equals its target, else 0 (T5's ``all_match``): a group's
    exact match under :func:`mean_group_metric`."""
    _check_lengths(targets, predictions)
    return {"exact_match": 100.0 * all(t == p for t, p in zip(targets, predictions))}


def mean_group_metric(metric: Metric) -> Metric:
    """``metric`` on each group's values (targets are :class:`Grouped`), averaged over groups
    with equal weight (T5's ``mean_group_metric``). MultiRC's exact match is
    ``mean_group_metric(all_match)``: the share of questions whose answers are all labelled
    right, so a question with five answers counts as much as one with two.

    >>> em = mean_group_metric(all_match)
    >>> em([Grouped(1, "q1"), Grouped(0, "q1"), Grouped(1, "q2")], [1, 1, 1])
    {'exact_match': 50.0}
    """

    def grouped(targets: Sequence[Grouped], predictions: Sequence[Any]) -> dict[str, float]:
        _check_lengths(targets, predictions)
        groups: dict[Hashable, tuple[list, list]] = {}
        for target, prediction in zip(targets, predictions):
            if not isinstance(target, Grouped):
                raise TypeError("mean_group_metric needs Grouped targets (a task with a "
                                f"group_key), got {target!r}")
            group_targets, group_predictions = groups.setdefault(target.group, ([], []))
            group_targets.append(target.value)
            group_predictions.append(prediction)
        scores = collections.defaultdict(list)
        for group_targets, group_predictions in groups.values():
            for key, value in metric(group_targets, group_predictions).items():
                scores[key].append(value)
        return {key: float(np.mean(values)) for key, values in scores.items()}

    return grouped


def mean_multiclass_f1(num_classes: int) -> Metric:
    """The unweighted mean over classes ``0..num_classes-1`` of per-class F1 (CB's "macro F1").

    A class that is neither predicted nor present contributes 0, as in scikit-learn's default.
    """

    def metric(targets: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
        _check_lengths(targets, predictions)
        t, p = np.asarray(targets), np.asarray(predictions)
        return {f"mean_{num_classes}class_f1":
                100 * float(np.mean([_f1_per_class(t, p, c) for c in range(num_classes)]))}

    return metric


def matthews_corrcoef(targets: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """Matthews correlation (Gorodkin's multiclass form, which is the usual MCC for two classes).

    From the confusion matrix C over every label seen (an invalid prediction -1 is a label of its own):
    (trace(C) n - t·p) / sqrt((n² - p·p)(n² - t·t)), t and p the true and predicted label counts;
    0 when either factor of the denominator is 0 (e.g. a constant predictor).
    """
    _check_lengths(targets, predictions)
    labels, indices = np.unique(np.concatenate([np.asarray(targets), np.asarray(predictions)]),
                                return_inverse=True)
    t_index, p_index = indices[:len(targets)], indices[len(targets):]
    confusion = np.zeros((len(labels), len(labels)))
    np.add.at(confusion, (t_index, p_index), 1)
    t, p, n = confusion.sum(axis=1), confusion.sum(axis=0), len(targets)
    denominator = np.sqrt((n * n - p @ p) * (n * n - t @ t))
    return {"matthews_corrcoef": 100 * float((np.trace(confusion) * n - t @ p) / denominator)
            if denominator else 0.0}


# ----- regression -----

def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator else float("nan")  # constant input: undefined


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing the mean of their ranks: [10, 20, 20, 30] -> [1, 2.5, 2.5, 4]."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + 1 + end) / 2
    return ranks


def pearson_corrcoef(targets: Sequence[float], predictions: Sequence[float]) -> dict[str, float]:
    """Pearson correlation ×100 (nan when either side is constant)."""
    _check_lengths(targets, predictions)
    return {"pearson_corrcoef": 100 * _pearson(np.asarray(targets, float), np.asarray(predictions, float))}


def spearman_corrcoef(targets: Sequence[float], predictions: Sequence[float]) -> dict[str, float]:
    """Spearman rank correlation ×100: Pearson's on average ranks (nan when either side is constant)."""
    _check_lengths(targets, predictions)
    return {"spearman_corrcoef": 100 * _pearson(_average_ranks(np.asarray(targets, float)),
                                                _average_ranks(np.asarray(predictions, float)))}
