"""`t2t eval-encoder`: score a fine-tuned encoder-only run (BERT, RoBERTa) on its task's labelled data.

    t2t eval-encoder --run_dir runs/bert_topic [--split validation] [--data FILE] [--max_examples N]
                     [--step N] [--name NAME] [--metrics_dir DIR]

The run's own configuration says everything: its objective (one of
t2t/data/objectives/encoder_tasks.py, with its labels and fields) turns each JSON line of its
``DATA_SOURCE`` (``{split}`` filled in, or ``--data``) into the example it trained on, truncation
included, and the model's heads give the predictions:

    sequence_classification,        argmax of the classification head at [CLS]
    sentence_pair_classification      -> accuracy, mean per-class F1 (+ F1 of the last label, e.g.
                                         "match", for two labels)
    token_tagging                   argmax of the token head at each word's first subword
                                      -> word accuracy, mean per-tag F1
    span_qa                         the context span (start <= end, at most ``--max_answer_tokens``)
                                    maximising start + end logits, widened to whole words
                                      -> SQuAD EM / F1 against every reference (``answers`` if the
                                         record has them, else ``answer``)

Scores (0-100) are appended, as `t2t eval` does, to ``<run_dir>/eval_metrics.jsonl``:

    {"step": 300, "split": "eval:topic", "accuracy": 61.2, "mean_11class_f1": 48.0, "num_examples": 935}
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from t2t.data.converters import EncoderFeatureConverter
from t2t.data.objectives.encoder_tasks import (SentencePairClassification, SequenceClassification, SpanQA,
                                               TokenTagging, encode_words)
from t2t.data.objectives.ragged import Ragged
from t2t.data.objectives.vocab_info import VocabInfo
from t2t.decoding.run_dir import TrainedRun, read_gin_bindings
from t2t.evaluation import metrics
from t2t.evaluation.evaluator import write_eval_metrics
from t2t.models.families import build_model

OBJECTIVES = {cls.name: cls for cls in (SequenceClassification, SentencePairClassification, TokenTagging, SpanQA)}


def load_objective(run_dir: str | Path) -> Any:
    """The encoder task a run fine-tuned on, rebuilt from its config.gin bindings."""
    config_gin = Path(run_dir) / "config.gin"
    objective = read_gin_bindings(config_gin, "train").get("objective")
    name = getattr(objective, "name", None)
    if name not in OBJECTIVES:
        raise ValueError(f"{run_dir} trained with objective {name!r}, not an encoder task "
                         f"({', '.join(OBJECTIVES)}); evaluate text-to-text runs with `t2t eval`.")
    return OBJECTIVES[name](**read_gin_bindings(config_gin, name))


def read_records(pattern: str, max_examples: int | None = None) -> list[dict]:
    """JSON lines of the files matching ``pattern`` (sorted), at most ``max_examples``."""
    files = sorted(glob.glob(os.path.expanduser(pattern)))
    if not files:
        raise FileNotFoundError(f"no file matches {pattern!r}: build the tasks with "
                                "`t2t data build-encoder-tasks`, or pass --data.")
    records = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            records += [json.loads(line) for line in f if line.strip()]
    return records[:max_examples]


class EncoderPredictor:
    """A fine-tuned run's model and the examples its objective makes, run one example per row."""

    def __init__(self, run: TrainedRun, params: Any, objective: Any, batch_size: int = 32):
        self.run, self.params, self.objective, self.batch_size = run, params, objective, batch_size
        self.info = VocabInfo.from_vocabulary(run.vocabulary)
        self.converter = EncoderFeatureConverter(run.feature_lengths, pack=False, heads=run.config.encoder_heads)
        model = build_model(run.config)
        self._apply = jax.jit(lambda p, batch: model.apply({"params": p}, batch))

    def examples(self, records: Sequence[Mapping]) -> dict[str, Ragged]:
        """The objective's examples of ``records`` (the training path: encode, then one per record)."""
        missing = [f for f in self.objective.fields if f not in records[0]]
        if missing:
            raise ValueError(f"the records have no field {missing[0]!r} (found {sorted(records[0])}); "
                             f"{self.objective.name} reads {list(self.objective.fields)}.")
        texts = [json.dumps([r[f] for f in self.objective.fields], ensure_ascii=False) for r in records]
        docs = self.objective.encode_documents(self.run.vocabulary, texts)
        return self.objective.from_documents(docs, None, self.info, self.run.feature_lengths)

    def predict(self, examples: Mapping[str, Ragged]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(features, model outputs) of all examples, one per row, as NumPy [n, length, ...]."""
        n = len(examples["inputs"])
        features, outputs = [], []
        for start in range(0, n, self.batch_size):
            rows = np.arange(min(self.batch_size, n - start))
            part = {k: v.slice(start, start + len(rows)) for k, v in examples.items()}
            batch = self.converter.scatter(part, rows, self.batch_size)
            out = jax.device_get(self._apply(self.params, batch))
            features.append({k: v[:len(rows)] for k, v in batch.items()})
            outputs.append({k: np.asarray(v[:len(rows)]) for k, v in out.items()})
        return ({k: np.concatenate([f[k] for f in features]) for k in features[0]},
                {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]})


def classification_scores(labels: Sequence[int], predictions: Sequence[int], num_labels: int) -> dict[str, float]:
    """Accuracy and mean per-class F1; for two labels also the F1 of label 1 (the positive one)."""
    scores = {**metrics.accuracy(labels, predictions), **metrics.mean_multiclass_f1(num_labels)(labels, predictions)}
    if num_labels == 2:
        scores.update(metrics.f1_with_invalid(labels, predictions))
    return scores


def best_span(start: np.ndarray, end: np.ndarray, lo: int, hi: int, max_tokens: int) -> tuple[int, int]:
    """(i, j) in [lo, hi) with i <= j < i + max_tokens maximising start[i] + end[j].

    >>> best_span(np.array([0., 5, 1, 0]), np.array([0., 0, 1, 4]), 1, 4, 2)
    (2, 3)
    """
    i, j = np.arange(lo, hi)[:, None], np.arange(lo, hi)[None, :]
    scores = np.where((j >= i) & (j < i + max_tokens), start[lo:hi, None] + end[None, lo:hi], -np.inf)
    best = int(np.argmax(scores))
    return lo + best // (hi - lo), lo + best % (hi - lo)


def span_answers(predictor: EncoderPredictor, records: Sequence[Mapping], features, outputs,
                 max_tokens: int) -> list[str]:
    """Each record's predicted answer text: its best context span, as whole words of the context."""
    context_field = predictor.objective.fields[1]
    words_of = encode_words(predictor.run.vocabulary, [r[context_field] for r in records])
    answers = []
    for k, record in enumerate(records):
        tokens = features["encoder_input_tokens"][k]
        length = int((features["encoder_segment_ids"][k] > 0).sum())
        lo = int(np.flatnonzero(tokens == predictor.info.sep_id)[0]) + 1  # after [CLS] question [SEP]
        if lo >= length - 1:  # the question took every position: no context
            answers.append("")
            continue
        i, j = best_span(outputs["span_start_logits"][k], outputs["span_end_logits"][k], lo, length - 1, max_tokens)
        starts = words_of[k][1]
        first, last = (int(np.searchsorted(starts, t - lo, side="right")) - 1 for t in (i, j))
        answers.append(" ".join(record[context_field].split()[first:last + 1]))
    return answers


def evaluate_encoder(predictor: EncoderPredictor, records: Sequence[Mapping],
                     max_answer_tokens: int = 30) -> dict[str, float]:
    """The task's scores (0-100) on ``records`` and ``num_examples``."""
    if not records:
        raise ValueError("no records to evaluate")
    objective = predictor.objective
    features, outputs = predictor.predict(predictor.examples(records))
    if isinstance(objective, SpanQA):
        answer_field = objective.fields[2]
        references = [list(r.get("answers") or [r[answer_field]]) for r in records]
        results = metrics.squad(references, span_answers(predictor, records, features, outputs, max_answer_tokens))
    elif isinstance(objective, TokenTagging):
        weights = features["token_loss_weights"] > 0
        predictions = outputs["token_logits"].argmax(-1)[weights]
        results = classification_scores(features["token_labels"][weights], predictions, len(objective.labels))
        results["num_words"] = int(weights.sum())
    else:
        predictions = outputs["classification_logits"][:, 0].argmax(-1)
        results = classification_scores(features["classification_labels"][:, 0], predictions, len(objective.labels))
    results["num_examples"] = len(records)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``t2t eval-encoder``: evaluate a fine-tuned encoder run on its task."""
    parser = argparse.ArgumentParser(prog="t2t eval-encoder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True, help="a fine-tuning run directory (its checkpoints)")
    parser.add_argument("--split", default="validation", help="fills {split} in the run's DATA_SOURCE")
    parser.add_argument("--data", default=None, help="JSON lines to evaluate instead of the run's DATA_SOURCE")
    parser.add_argument("--max_examples", type=int, default=None)
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--name", default=None, help="task name in the metrics (default: the data's folder)")
    parser.add_argument("--max_answer_tokens", type=int, default=30, help="longest span-QA answer (BERT: 30)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--metrics_dir", default=None, help="where to append eval_metrics.jsonl (default: --run_dir)")
    args = parser.parse_args(argv)
    try:
        objective = load_objective(args.run_dir)
        run = TrainedRun.load(args.run_dir)
        pattern = args.data or read_gin_bindings(Path(args.run_dir) / "config.gin", "train")["data_source"]
        pattern = pattern.replace("{split}", args.split)
        records = read_records(pattern, args.max_examples)
        params, step = run.load_params(args.step)
        predictor = EncoderPredictor(run, params, objective, args.batch_size)
        results = evaluate_encoder(predictor, records, args.max_answer_tokens)
    except (ValueError, FileNotFoundError) as error:
        print(f"t2t eval-encoder: {error}", file=sys.stderr)
        return 2
    name = args.name or Path(os.path.expanduser(pattern)).parent.name
    path = write_eval_metrics(args.metrics_dir or args.run_dir, step, name, results)
    print(json.dumps({"step": step, "split": f"eval:{name}", **results}))
    print(f"appended to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
