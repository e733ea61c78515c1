"""Collect the runs of run.sh into a Markdown table (and results.json next to this file), with a
majority-class row computed from the same validation examples (truncation included)."""

import json
import sys
from collections import Counter
from pathlib import Path

from t2t.evaluation import encoder_eval

runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/bert_finetune")
STARTS = {"bert": "BERT tiny (MLM + NSP), 200 steps", "roberta": "RoBERTa tiny (MLM), 200 steps",
          "scratch": "from scratch"}
TASKS = {"topic": ("accuracy", "mean_11class_f1"), "pairs": ("accuracy", "f1"),
         "tagging": ("accuracy", "mean_3class_f1")}


def last(path: Path, split: str) -> dict:
    lines = [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []
    return next((x for x in reversed(lines) if x["split"] == split), {})


def majority(task: str) -> dict:
    """Scores of always predicting the training set's most frequent label (tag, for tagging)."""
    run = runs / f"scratch_{task}"
    predictor = encoder_eval.EncoderPredictor.__new__(encoder_eval.EncoderPredictor)
    predictor.run, predictor.objective = encoder_eval.TrainedRun.load(run), encoder_eval.load_objective(run)
    predictor.info = encoder_eval.VocabInfo.from_vocabulary(predictor.run.vocabulary)
    data = encoder_eval.read_gin_bindings(run / "config.gin", "train")["data_source"]
    train, valid = (encoder_eval.read_records(data.replace("{split}", s)) for s in ("train", "validation"))
    key = "token_labels" if task == "tagging" else "classification_labels"
    labels = [predictor.examples(records)[key].values for records in (train, valid)]
    labels = [x[x >= 0] for x in labels]
    top = Counter(labels[0].tolist()).most_common(1)[0][0]
    n = len(predictor.objective.labels)
    return encoder_eval.classification_scores(labels[1], [top] * len(labels[1]), n)


results = {}
for start in STARTS:
    for task in TASKS:
        run = runs / f"{start}_{task}"
        results[f"{start}_{task}"] = {**last(run / "eval_metrics.jsonl", f"eval:{task}"),
                                      "validation_loss": last(run / "metrics.jsonl", "validation").get("loss")}
for task in TASKS:
    results[f"majority_{task}"] = majority(task)
for start in ("bert_pre", "roberta_pre"):
    results[start] = last(runs / start / "metrics.jsonl", "validation")
(Path(__file__).parent / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")

print("| start | " + " | ".join(f"{t} {m}" for t, ms in TASKS.items() for m in ms) + " |")
print("|" + "---|" * (1 + sum(len(ms) for ms in TASKS.values())))
for start, name in {**STARTS, "majority": "majority class (no model)"}.items():
    cells = [results[f"{start}_{t}"].get(m) for t, ms in TASKS.items() for m in ms]
    print(f"| {name} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
