"""In-context (zero-, one-, few-shot) evaluation of decoder-only and prefix-LM models, as GPT-3.

    t2t eval-icl --run_dir runs/icl_knob2 --task symbol_removal --shots 0,1,2,4,8 \
                 [--description both|with|without] [--num_examples 100] [--seed 0]
                 [--mode both|rank|generate] [--max_length 16] [--step N] [--data_dir DIR]

Tasks are the synthetic rules of `t2t.evaluation.synthetic_tasks.RULES` (queries and a pool of
demonstrations made on the fly) or any `t2t eval` task (queries from its evaluation split,
demonstrations from its train split, its label names as options when it has them).

A prompt is an optional task description, then k demonstrations, then the query, joined by the
template's separator; each demonstration and the query put the answer marker after their input:

    >>> template = PromptTemplate(description="Remove the symbols from the word.")
    >>> demos = [Example("h.a!p/py", "happy"), Example("w:a.t;er", "water")]
    >>> template.prompt(demos, Example("s.u!c/c!e.s s", "success"))
    'Remove the symbols from the word.\\nh.a!p/py = happy\\nw:a.t;er = water\\ns.u!c/c!e.s s ='

The completion is the answer *without* its leading space ("success"): SentencePiece vocabularies
start every text with a word boundary, and never merge a piece across whitespace, so the prompt and
the completion tokenised apart give the same pieces as the whole line "... s.u!c/c!e.s s = success"
tokenised at once (which is how `PromptTemplate.episode` writes one for pretraining). The embedded
vocabularies normalise "\\n" to a space; the answer marker still delimits each demonstration. A
causal LM continues the prompt; a prefix LM reads it as its fully visible inputs (the Predictor
appends EOS to them, as the prefix-LM objective does in training).

Two scores per (task, k, description) cell, as the GPT-3 paper reports them:

* rank classification ("rank_accuracy"): every candidate completion is scored by log p(candidate +
  EOS | prompt) and the most likely one is the prediction, so the model is never off-format;
* generation ("exact_match"): greedy decoding from the prompt; the output's first words, as many
  as the answer has, must be the answer (`exact_match`).

Candidates are scored with EOS appended, as `Predictor.score` does for every target; the LM
objective concatenates documents, so in training an answer is followed by the next document (or a
segment's EOS), and that last term is about the same for every candidate.

Demonstrations are drawn per query from a pool (never the query itself) by a random permutation
seeded with (seed, query index): the same seed gives the same prompts, and the k-shot prompt's
demonstrations are the first k of the (k+1)-shot prompt's, so curves over k vary only k.

Each cell appends one JSON line to ``<run_dir>/eval_metrics.jsonl`` in ``t2t eval``'s format:

    {"step": 400, "split": "eval:icl/symbol_removal/4shot/described", "shots": 4, "described": 1,
     "rank_accuracy": 62.0, "exact_match": 41.0, "num_examples": 100}
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from t2t.decoding.scoring import rank_classify
from t2t.evaluation.evaluator import Predictor, write_eval_metrics

MODES = ("both", "rank", "generate")
DESCRIPTION_CHOICES = {"both": (False, True), "with": (True,), "without": (False,)}


@dataclasses.dataclass(frozen=True)
class Example:
    """One query (or demonstration): its input, its answer, and the candidate answers that rank
    classification chooses among (the answer must be one of them; none: no rank classification)."""

    input: str
    target: str
    options: tuple[str, ...] = ()

    def __post_init__(self):
        if self.options and self.target not in self.options:
            raise ValueError(f"Example {self.input!r}: its target {self.target!r} is not among its "
                             f"options {self.options!r}; include it.")


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
    """How a task description, demonstrations and a query become one prompt (module docstring).

    Attributes:
      description: the task description ("Remove the symbols from the word."), or None.
      answer_marker: written after each input; the answer follows it after one space.
      separator: between the description and each demonstration and the query.
    """

    description: str | None = None
    answer_marker: str = " ="
    separator: str = "\n"

    def query(self, example: Example) -> str:
        """'s.u!c/c!e.s s =': the input and the answer marker, awaiting the answer."""
        return f"{example.input}{self.answer_marker}"

    def demonstration(self, example: Example) -> str:
        """'h.a!p/py = happy': a solved query."""
        return f"{self.query(example)} {example.target}"

    def prompt(self, demonstrations: Sequence[Example], query: Example) -> str:
        """The description (if any), the demonstrations and the query, joined by the separator."""
        parts = [self.description] if self.description else []
        parts += [self.demonstration(d) for d in demonstrations] + [self.query(query)]
        return self.separator.join(parts)

    def episode(self, demonstrations: Sequence[Example], query: Example) -> str:
        """A training document: the prompt followed by the query's answer."""
        return f"{self.prompt(demonstrations, query)} {query.target}"


def demonstrations(pool: Sequence[Example], k: int, seed: int, query_index: int,
                   exclude: Example | None = None) -> list[Example]:
    """k demonstrations for query `query_index`: the first k of a permutation of `pool` seeded with
    (seed, query_index), skipping `exclude` (the query itself, when the pool holds it).

    Deterministic, and nested over k: the k-shot demonstrations start the (k+1)-shot ones.
    """
    order = np.random.default_rng([seed, query_index]).permutation(len(pool))
    chosen = [pool[i] for i in order if pool[i] != exclude][:k]
    if len(chosen) < k:
        raise ValueError(f"{k} demonstrations asked for, but the pool has only {len(chosen)} "
                         f"examples besides the query; lower --shots or give a larger pool.")
    return chosen


def first_words(text: str, count: int) -> str:
    """The first `count` whitespace-separated words of `text`, single-spaced."""
    return " ".join(text.split()[:count])


def exact_match(targets: Sequence[str], outputs: Sequence[str]) -> float:
    """Percentage of outputs that start with their target's words.

    Generation is cut after as many words as the target has, as GPT-3 cuts it at the first
    newline: a model trained on concatenated documents goes on after the answer (and the embedded
    vocabularies write newlines as spaces). E.g. target "success": output "success = when"
    matches, "successful" and "succ ess" do not.
    """
    if len(targets) != len(outputs):
        raise ValueError(f"{len(targets)} targets but {len(outputs)} outputs")
    hits = [first_words(o, len(t.split())) == first_words(t, len(t.split()))
            for t, o in zip(targets, outputs)]
    return 100.0 * float(np.mean(hits))


def evaluate_in_context(predictor: Predictor, queries: Sequence[Example], pool: Sequence[Example],
                        template: PromptTemplate, shots: int, seed: int = 0, mode: str = "both",
                        generate_options: dict[str, Any] | None = None) -> dict[str, float]:
    """Scores (0-100) of `predictor` on `queries` with `shots` demonstrations from `pool` each.

    Returns "rank_accuracy" (if `mode` includes rank and the queries have options), "exact_match"
    (if it includes generation) and "num_examples".
    """
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose from {MODES}.")
    prompts = [template.prompt(demonstrations(pool, shots, seed, i, exclude=q), q)
               for i, q in enumerate(queries)]
    results: dict[str, float] = {}
    if mode in ("both", "rank") and all(q.options for q in queries):
        best = rank_classify(predictor, prompts, [q.options for q in queries])
        results["rank_accuracy"] = 100.0 * float(np.mean(
            [q.options[b] == q.target for q, b in zip(queries, best)]))
    if mode in ("both", "generate"):
        outputs = predictor.generate(prompts, **(generate_options or {}))
        results["exact_match"] = exact_match([q.target for q in queries], outputs)
    results["num_examples"] = len(queries)
    return results


# ----- tasks: synthetic (t2t.evaluation.synthetic_tasks) or a text-to-text task of t2t eval -----

@dataclasses.dataclass(frozen=True)
class InContextTask:
    """Queries, the pool their demonstrations come from, and the task description."""

    name: str
    queries: list[Example]
    pool: list[Example]
    description: str | None


def load_task(name: str, num_examples: int, seed: int = 0,
              data_dir: str | None = None) -> InContextTask:
    """A synthetic task by rule name (queries and pool from `synthetic_tasks.evaluation_examples`),
    or a task of `t2t.evaluation.tasks` (queries from its evaluation split, demonstrations from its
    train split, options = its label names when it is a classification task)."""
    from t2t.evaluation import synthetic_tasks
    from t2t.evaluation.tasks import get_task

    if name in synthetic_tasks.RULES:
        rule = synthetic_tasks.RULES[name]
        queries, pool = synthetic_tasks.evaluation_examples(rule, num_examples, seed)
        return InContextTask(name, queries, pool, rule.description)
    task = get_task(name)  # raises a ValueError naming the known tasks
    labels = tuple(task.label_names or ())
    to_example = lambda e: Example(e["inputs"], e["targets"], labels)
    queries = [to_example(e) for e in task.examples(None, num_examples, data_dir)]
    pool = [to_example(e) for e in task.examples("train", 1000, data_dir)]
    return InContextTask(name, queries, pool, None)


def _shots(text: str) -> list[int]:
    """'0,1,4' -> [0, 1, 4]."""
    try:
        shots = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shots takes comma-separated integers, got {text!r}")
    if any(k < 0 for k in shots):
        raise argparse.ArgumentTypeError(f"--shots must be >= 0, got {text!r}")
    return shots


def main(argv: Sequence[str] | None = None) -> int:
    """``t2t eval-icl``: k-shot evaluation of a run directory's checkpoint (module docstring)."""
    parser = argparse.ArgumentParser(prog="t2t eval-icl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True, help="a training run directory")
    parser.add_argument("--task", action="append", required=True,
                        help="repeatable; a rule of t2t.evaluation.synthetic_tasks.RULES (e.g. "
                             "symbol_removal) or a `t2t eval` task")
    parser.add_argument("--shots", type=_shots, default=[0, 1, 4], help="e.g. 0,1,2,4,8")
    parser.add_argument("--description", choices=sorted(DESCRIPTION_CHOICES), default="both",
                        help="prompts with the task description, without it, or both")
    parser.add_argument("--num_examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="queries and demonstrations")
    parser.add_argument("--mode", choices=MODES, default="both")
    parser.add_argument("--max_length", type=int, default=16, help="most generated tokens")
    parser.add_argument("--step", type=int, default=None, help="checkpoint (default: the latest)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--data_dir", default=None, help="for `t2t eval` tasks")
    args = parser.parse_args(argv)
    try:
        tasks = [load_task(name, args.num_examples, args.seed, args.data_dir) for name in args.task]
        from t2t.decoding.predictor import Predictor as RunPredictor

        predictor = RunPredictor.from_run_dir(args.run_dir, step=args.step,
                                              batch_size=args.batch_size)
    except (ValueError, FileNotFoundError) as error:
        print(f"t2t eval-icl: {error}", file=sys.stderr)
        return 2
    path = None
    for task in tasks:
        for described in DESCRIPTION_CHOICES[args.description]:
            if described and not task.description:
                continue
            template = PromptTemplate(description=task.description if described else None)
            for k in args.shots:
                try:
                    results = evaluate_in_context(predictor, task.queries, task.pool, template, k,
                                                  args.seed, args.mode,
                                                  {"max_length": args.max_length})
                except ValueError as error:
                    print(f"t2t eval-icl: {task.name}: {error}", file=sys.stderr)
                    return 2
                name = f"icl/{task.name}/{k}shot/{'described' if described else 'bare'}"
                path = write_eval_metrics(args.run_dir, predictor.step, name,
                                          {"shots": k, "described": int(described), **results})
                print(f"{name} (step {predictor.step}): "
                      + ", ".join(f"{key} {v:.4g}" for key, v in results.items()))
    print(f"Appended to {path}" if path else "Nothing evaluated: no (task, description) cell.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
