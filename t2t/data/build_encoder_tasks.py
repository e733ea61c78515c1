"""`t2t data build-encoder-tasks`: offline fine-tuning tasks for encoder-only models (BERT, RoBERTa).

Built from the offline evaluation suite (`t2t data build-eval`), keeping its splits (sha256 of the
article title: train 80% / validation 10% / test 10%), so nothing needs the network:

    wiki_topic        ──► topic/    {"text": extract, "label": one of 11 topics}
                                    sequence classification (t2t/data/objectives/encoder_tasks.py)
    wiki_description  ──► pairs/    {"text_a": a short description, "text_b": extract, "label"}
                                    sentence-pair classification: "match" when the description is the
                                    article's own, "mismatch" when it is another article's of the same
                                    split (drawn with a seeded generator, never an equal description),
                                    each with probability 1/2
    wiki_topic        ──► tagging/  {"words": extract, "tags": one tag per whitespace word}
                                    token tagging: "punct" (no letter or digit), "repeat" (its lowercased
                                    letters and digits appeared earlier in the extract) or "new"
    TFDS squad/v1.1   ──► squad/    {"question", "context", "answer", "answer_start", "answers"}
                                    span QA, only with ``--tasks squad`` (needs tensorflow-datasets and
                                    the prepared dataset; its train / validation splits)

Sizes of the wiki tasks (suite build version 1): train 7172 / validation 935 / test 926 for topic and
tagging, 7816 / 1037 / 1009 for pairs. Records keep the suite's order (sha256 order), so the first N of
a split are a fixed random sample. ``<out>/MANIFEST.json`` lists files, sizes, label counts and sha256.
The texts are Wikipedia (CC BY-SA 4.0): keep the tasks local, never commit them.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from t2t.data.fetch import sha256_file
from t2t.evaluation.tasks import DEFAULT_SUITE_DIR

DEFAULT_OUTPUT = "~/.cache/t2t/encoder_tasks"
SPLITS = ("train", "validation", "test")
WIKI_TASKS = ("topic", "pairs", "tagging")
TAGS = ("punct", "new", "repeat")
PAIR_LABELS = ("mismatch", "match")


def repeat_tags(words: Sequence[str]) -> list[str]:
    """The tagging task's tag of each word: its letters and digits, lowercased, decide.

    >>> repeat_tags("The cat saw the Cat , then 2 cats .".split())
    ['new', 'new', 'new', 'repeat', 'repeat', 'punct', 'new', 'new', 'new', 'punct']
    """
    seen, tags = set(), []
    for word in words:
        key = re.sub(r"\W|_", "", word).lower()
        tags.append("punct" if not key else "repeat" if key in seen else "new")
        seen.add(key)
    return tags


def topic_records(suite: Iterable[dict]) -> list[dict]:
    return [{"text": r["extract"], "label": r["topic"], "title": r["title"]} for r in suite]


def tagging_records(suite: Iterable[dict]) -> list[dict]:
    records = []
    for r in suite:
        words = r["extract"].split()
        records.append({"words": " ".join(words), "tags": " ".join(repeat_tags(words)), "title": r["title"]})
    return records


def pair_records(suite: Sequence[dict], rng: np.random.Generator) -> list[dict]:
    """Each article with its own description ("match") or, with probability 1/2, another article's
    ("mismatch"; redrawn until the description differs, ignoring case)."""
    descriptions = [r["description"] for r in suite]
    if len({d.lower() for d in descriptions}) < 2:
        raise ValueError(f"the {len(suite)} articles have fewer than two distinct descriptions: "
                         "no mismatching pair exists.")
    records = []
    for r in suite:
        description, label = r["description"], "match"
        if rng.random() < 0.5:
            label = "mismatch"
            while description.lower() == r["description"].lower():
                description = descriptions[int(rng.integers(len(suite)))]
        records.append({"text_a": description, "text_b": r["extract"], "label": label, "title": r["title"]})
    return records


def squad_records(raw: Iterable[dict]) -> list[dict]:
    """TFDS squad/v1.1 records -> the span_qa fields: the first answer and its character offset
    (a string: sources hand over string fields only), plus every reference for the metric."""
    records = []
    for r in raw:
        answers = r["answers"]
        texts = [_text(a) for a in answers["text"]]
        records.append({"question": _text(r["question"]), "context": _text(r["context"]),
                        "answer": texts[0], "answer_start": str(int(answers["answer_start"][0])),
                        "answers": texts, "id": _text(r.get("id", ""))})
    return records


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_suite(suite_dir: Path, task: str, split: str) -> list[dict]:
    path = suite_dir / task / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: build the offline evaluation suite first with "
                                f"`t2t data build-eval --output {suite_dir}` (or pass --suite_dir).")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _write(directory: Path, split: str, records: Sequence[dict], label_key: str | None) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{split}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    entry = {"file": f"{directory.name}/{path.name}", "examples": len(records), "sha256": sha256_file(path)}
    if label_key == "tags":
        entry["tag_counts"] = dict(collections.Counter(t for r in records for t in r["tags"].split()))
    elif label_key:
        entry["label_counts"] = dict(collections.Counter(r[label_key] for r in records))
    return entry


def build_encoder_tasks(output: str = DEFAULT_OUTPUT, suite_dir: str = DEFAULT_SUITE_DIR,
                        tasks: Sequence[str] = WIKI_TASKS, seed: int = 0, tfds_data_dir: str | None = None,
                        log=print) -> dict:
    """Write ``<output>/<task>/<split>.jsonl`` for ``tasks`` and ``<output>/MANIFEST.json``; return it."""
    unknown = sorted(set(tasks) - set(WIKI_TASKS) - {"squad"})
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; choose from {list(WIKI_TASKS) + ['squad']}.")
    out, suite = Path(output).expanduser(), Path(suite_dir).expanduser()
    manifest_path = out / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest.update(seed=seed, suite_dir=str(suite))
    for task in tasks:
        entries = {}
        for index, split in enumerate(SPLITS if task != "squad" else ("train", "validation")):
            if task == "topic":
                records, key = topic_records(_read_suite(suite, "wiki_topic", split)), "label"
            elif task == "tagging":
                records, key = tagging_records(_read_suite(suite, "wiki_topic", split)), "tags"
            elif task == "pairs":
                rng = np.random.default_rng([seed, index])
                records, key = pair_records(_read_suite(suite, "wiki_description", split), rng), "label"
            else:
                from t2t.evaluation.tasks import get_task
                raw = get_task("squad").source.records(split, data_dir=tfds_data_dir)
                records, key = squad_records(raw), None
            entries[split] = _write(out / task, split, records, key)
            log(f"{task}/{split}: {len(records)} examples")
        manifest.setdefault("tasks", {})[task] = entries
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    """``t2t data build-encoder-tasks [--output DIR] [--suite_dir DIR] [--tasks topic pairs ...]``."""
    parser = argparse.ArgumentParser(prog="t2t data build-encoder-tasks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help=f"output directory (default {DEFAULT_OUTPUT})")
    parser.add_argument("--suite_dir", default=DEFAULT_SUITE_DIR,
                        help="the offline evaluation suite (`t2t data build-eval`)")
    parser.add_argument("--tasks", nargs="+", default=list(WIKI_TASKS),
                        help="topic, pairs, tagging (default: these three) and/or squad (TFDS)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pairs task's negatives")
    parser.add_argument("--tfds_data_dir", default=None, help="TFDS data dir holding squad/v1.1 (squad only)")
    args = parser.parse_args(argv)
    try:
        build_encoder_tasks(args.output, args.suite_dir, args.tasks, args.seed, args.tfds_data_dir)
    except (ValueError, FileNotFoundError) as error:
        print(f"t2t data build-encoder-tasks: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
