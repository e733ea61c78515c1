"""Evaluate a model on a downstream task and append the scores to ``<run_dir>/eval_metrics.jsonl``.

    t2t eval --run_dir runs/t5_tiny --task wiki_topic --task gettext_ende [--split validation]
             [--max_examples 500] [--rank_classification] [--step N] [--data_dir DIR]
             [--decode max_length=64 --decode method=beam ...] [--metrics_dir DIR]

A predictor is anything with ``generate(inputs: list[str]) -> list[str]`` and ``score(inputs, targets)
-> list[float]`` (log-likelihood of each target given its input); ``t2t eval`` loads
``t2t.decoding.predictor.Predictor.from_run_dir``. Classification tasks can be scored by rank
classification (T5's "rank_classification"): every label string is scored for every example and the
most likely one is the prediction, so the model never produces an invalid label.

Each evaluation appends one JSON line per task, in the format of the trainer's ``metrics.jsonl`` (which
the sweep store ingests):

    {"step": 2000, "split": "eval:wiki_topic", "accuracy": 41.3, "mean_11class_f1": 30.2, "num_examples": 500}
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from t2t.decoding.scoring import option_scores
from t2t.evaluation.tasks import TASKS, Task, get_task

METRICS_FILE = "eval_metrics.jsonl"


class Predictor(Protocol):
    """What the evaluator needs of a model (``t2t.decoding.predictor.Predictor`` provides it)."""

    def generate(self, inputs: list[str], **options: Any) -> list[str]: ...

    def score(self, inputs: list[str], targets: list[str]) -> list[float]: ...


def label_scores(predictor: Predictor, inputs: Sequence[str], label_names: Sequence[str]) -> np.ndarray:
    """log p(label | input) for every input and label, [n_inputs, n_labels]: one ``score`` call
    (the options of `t2t.decoding.scoring.rank_classify`, the same for every input). The most
    likely label of each input is its row's argmax (T5's rank classification)."""
    return np.stack(option_scores(predictor, inputs, [label_names] * len(inputs)))


def target_nll(scores: np.ndarray, targets: Sequence[Any], labels: Sequence[Any]) -> float:
    """Mean -log p(reference label | input) in nats, over examples whose reference is one of
    ``labels`` (the columns of ``scores``, in the form the targets take: names, or ids).

    A graded companion to accuracy: it moves when a model puts more probability on the right
    label even while the argmax stays on the majority class, as small models' often does.
    """
    rows = [(i, labels.index(t)) for i, t in enumerate(targets) if t in labels]
    if not rows:
        return float("nan")
    return float(-np.mean([scores[i, j] for i, j in rows]))


def reference_nll(predictor: Predictor, inputs: Sequence[str], references: Sequence[str]) -> float:
    """Mean -log p(reference | input) in nats per example (the reference's EOS included): the
    text the task trains on, scored with teacher forcing."""
    scores = predictor.score(list(inputs), list(references))
    if len(scores) != len(inputs):
        raise ValueError(f"predictor.score returned {len(scores)} scores for {len(inputs)} inputs")
    return float(-np.mean(scores))


def evaluate(task: Task | str, predictor: Predictor, split: str | None = None, max_examples: int | None = None,
             *, rank_classification: bool = False, data_dir: str | None = None,
             generate_options: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Scores of ``predictor`` on the first ``max_examples`` examples of ``task``'s ``split``.

    Returns the task's metrics (T5's names, 0-100), ``target_nll`` (the reference's negative
    log-likelihood: of the reference label with rank classification, of the reference text
    otherwise) and ``num_examples``. ``data_dir`` is where the
    task's source lives (a TFDS data_dir, or the offline suite's directory).
    """
    task = get_task(task) if isinstance(task, str) else task
    examples = task.examples(split, max_examples, data_dir)
    if not examples:
        raise ValueError(f"task {task.name!r} split {split or task.eval_split!r} has no examples")
    inputs = [e["inputs"] for e in examples]
    if rank_classification:
        if not task.label_names:
            raise ValueError(f"rank classification needs a classification task; {task.name!r} has no "
                             "label names (drop --rank_classification to generate)")
        scores = label_scores(predictor, inputs, task.label_names)
        outputs = [task.label_names[i] for i in scores.argmax(axis=1)]
    else:
        outputs = list(predictor.generate(inputs, **dict(generate_options or {})))
        if len(outputs) != len(inputs):
            raise ValueError(f"predictor.generate returned {len(outputs)} outputs for {len(inputs)} inputs")
    targets = [task.target(e) for e in examples]
    predictions = [task.prediction(o, e) for o, e in zip(outputs, examples)]
    results: dict[str, float] = {}
    for metric in task.metrics:
        results.update(metric(targets, predictions))
    if rank_classification:
        # By label name: a metric's target may hold more than the label (MultiRC's question).
        reference_labels = [e["targets"] for e in examples]
        results["target_nll"] = target_nll(scores, reference_labels, task.label_names)
    else:
        # The reference's likelihood grades models whose generations all score near zero (BLEU and
        # ROUGE of small models), as rank classification's target_nll does for labels.
        results["target_nll"] = reference_nll(predictor, inputs, [e["targets"] for e in examples])
    results["num_examples"] = len(examples)
    return results


def write_eval_metrics(run_dir: str | Path, step: int, task_name: str, results: Mapping[str, float]) -> Path:
    """Append ``{"step", "split": "eval:<task>", **results}`` as one line to ``<run_dir>/eval_metrics.jsonl``."""
    path = Path(run_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({"step": int(step), "split": f"eval:{task_name}", **results}) + "\n")
    return path


def _option(text: str) -> tuple[str, Any]:
    """"max_length=64" -> ("max_length", 64); values are Python literals, else strings ("method=beam")."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--decode takes KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv: Sequence[str] | None = None) -> int:
    """``t2t eval``: evaluate a run directory's checkpoint on one or more tasks."""
    parser = argparse.ArgumentParser(prog="t2t eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True, help="a training run directory (its checkpoints)")
    parser.add_argument("--task", action="append", required=True, help=f"repeatable; one of {', '.join(sorted(TASKS))}")
    parser.add_argument("--split", default=None, help="default: each task's evaluation split")
    parser.add_argument("--max_examples", type=int, default=None)
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--rank_classification", action="store_true",
                        help="score every label instead of generating (classification tasks)")
    parser.add_argument("--data_dir", default=None,
                        help="TFDS data_dir for TFDS tasks, the built suite for offline tasks")
    parser.add_argument("--decode", type=_option, action="append", default=[],
                        help="a generate() option as KEY=VALUE, e.g. max_length=64 (repeatable)")
    parser.add_argument("--metrics_dir", default=None,
                        help=f"where to append {METRICS_FILE} (default: --run_dir); e.g. the "
                             "pretraining run a fine-tuned model came from, so a sweep stores the "
                             "downstream score with its pretraining run")
    args = parser.parse_args(argv)
    try:
        tasks = [get_task(name) for name in args.task]
    except ValueError as error:
        print(f"t2t eval: {error}", file=sys.stderr)
        return 2
    from t2t.decoding.predictor import Predictor as RunPredictor

    try:
        predictor = RunPredictor.from_run_dir(args.run_dir, step=args.step)
    except (ValueError, FileNotFoundError) as error:
        print(f"t2t eval: {error}", file=sys.stderr)
        return 2
    step = predictor.step
    for task in tasks:
        try:
            results = evaluate(task, predictor, args.split, args.max_examples,
                               rank_classification=args.rank_classification, data_dir=args.data_dir,
                               generate_options=dict(args.decode))
        except (ValueError, ImportError) as error:
            print(f"t2t eval: {task.name}: {error}", file=sys.stderr)
            return 2
        path = write_eval_metrics(args.metrics_dir or args.run_dir, step, task.name, results)
        print(f"{task.name} (step {step}): " + ", ".join(f"{k} {v:.4g}" for k, v in results.items()))
    print(f"Appended to {path}")
    return 0
