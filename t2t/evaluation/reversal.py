"""The reversal curse (Berglund et al. 2023): trained on "A is B", does a model know "B is A"?

Fictitious facts pair a made-up name with a made-up description, both from word lists shipped here,
so that no pretraining text can already hold either direction:

    Fact("Dravo Kelin", "the keeper of the silver lantern")

Facts come in three groups, of equal size, which differ only in the training documents they get:

    name_to_description  "Dravo Kelin is the keeper of the silver lantern."
    description_to_name  "The keeper of the silver lantern is Dravo Kelin."
    both                 both documents (the control: each direction is seen)

Every fact is then asked in both directions, with a zero-shot prompt that stops before the answer:

    forward  "Dravo Kelin is"                    -> "the keeper of the silver lantern."
    reverse  "The keeper of the silver lantern is" -> "Dravo Kelin."

scored by exact match of greedy generation and by rank classification of the true answer among the
answers of `num_options - 1` other facts of the same group (chance = 100 / num_options). The curse
is there if a group's untrained direction is at chance while its trained direction is memorised and
the control group answers both.

    python -m t2t.evaluation.reversal build [--output ~/.cache/t2t/reversal --facts_per_group 30]
    python -m t2t.evaluation.reversal eval --run_dir RUN [--facts ~/.cache/t2t/reversal]

In gin, `DATA_SOURCE = @reversal_facts()` builds the facts on first use and gives their pattern
(gin_configs/experiments/reversal_curse/facts.gin).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import gin
import numpy as np

from t2t.evaluation.evaluator import Predictor, write_eval_metrics
from t2t.evaluation.in_context import Example, PromptTemplate, evaluate_in_context
from t2t.evaluation.synthetic_tasks import built_source, write_jsonl

GROUPS = ("name_to_description", "description_to_name", "both")
DIRECTIONS = ("forward", "reverse")
FACTS_FILE = "facts.json"
DEFAULT_DIR = "~/.cache/t2t/reversal"
TRAINED_DIRECTIONS = {"name_to_description": ("forward",), "description_to_name": ("reverse",),
                      "both": DIRECTIONS}

# Name parts: pronounceable, capitalised syllables that form no common English word.
_FIRST = ("Dra", "Kel", "Mor", "Ves", "Tal", "Quen", "Bri", "Zor", "Hal", "Fen", "Lys", "Cor",
          "Nim", "Oth", "Pel", "Ril", "Sav", "Ulm", "Wyn", "Yar")
_SECOND = ("vo", "in", "ana", "eth", "ric", "ora", "ius", "wen", "dan", "ix")
_SURNAME = ("Kelin", "Marsh", "Thorne", "Vale", "Ashby", "Crane", "Dunmore", "Fairweather",
            "Greaves", "Holloway", "Ingram", "Lockhart", "Merrow", "Norcott", "Pryce", "Quill",
            "Redfern", "Stroud", "Tamsin", "Wexley")
# Description parts: "the <role> of the <adjective> <thing>".
_ROLES = ("keeper", "inventor", "founder", "author", "builder", "guardian", "painter", "finder",
          "owner", "captain", "composer", "maker")
_ADJECTIVES = ("silver", "hidden", "northern", "broken", "golden", "silent", "ancient", "crimson",
               "wandering", "frozen", "hollow", "burning")
_THINGS = ("lantern", "harbour", "garden", "bridge", "clock", "tower", "river", "compass",
           "library", "mountain", "orchard", "engine")


@dataclasses.dataclass(frozen=True)
class Fact:
    """A made-up name and its description ('the keeper of the silver lantern'), and its group."""

    name: str
    description: str
    group: str

    def document(self, direction: str) -> str:
        """The training sentence in `direction`: 'A is B.' (forward) or 'B is A.' (reverse)."""
        prompt, answer = self.question(direction)
        return f"{prompt} {answer}"

    def question(self, direction: str) -> tuple[str, str]:
        """(prompt, answer): ('Dravo Kelin is', 'the keeper of the silver lantern.') forward,
        ('The keeper of the silver lantern is', 'Dravo Kelin.') reverse."""
        if direction == "forward":
            return f"{self.name} is", f"{self.description}."
        if direction == "reverse":
            return f"{self.description[0].upper()}{self.description[1:]} is", f"{self.name}."
        raise ValueError(f"Unknown direction {direction!r}; choose from {DIRECTIONS}.")

    @property
    def trained_directions(self) -> tuple[str, ...]:
        return TRAINED_DIRECTIONS[self.group]


def make_facts(facts_per_group: int, seed: int = 0) -> list[Fact]:
    """`facts_per_group` facts per group, with distinct names and distinct descriptions; seeded."""
    rng = np.random.default_rng([seed, 0xFAC7])
    names = [f"{a}{b} {c}" for a, b, c in itertools.product(_FIRST, _SECOND, _SURNAME)]
    descriptions = [f"the {r} of the {a} {t}"
                    for r, a, t in itertools.product(_ROLES, _ADJECTIVES, _THINGS)]
    count = facts_per_group * len(GROUPS)
    if count > min(len(names), len(descriptions)):
        raise ValueError(f"{count} facts asked for; the word lists make at most "
                         f"{min(len(names), len(descriptions))}.")
    names = [names[i] for i in rng.choice(len(names), count, replace=False)]
    descriptions = [descriptions[i] for i in rng.choice(len(descriptions), count, replace=False)]
    return [Fact(n, d, GROUPS[i // facts_per_group])
            for i, (n, d) in enumerate(zip(names, descriptions))]


def training_documents(facts: Sequence[Fact]) -> list[str]:
    """One document per fact and trained direction."""
    return [f.document(d) for f in facts for d in f.trained_directions]


def questions(facts: Sequence[Fact], direction: str, num_options: int = 4,
              seed: int = 0) -> list[Example]:
    """One Example per fact asked in `direction`, its options the answers of `num_options` - 1
    other facts (of the same list) in random order."""
    if num_options > len(facts):
        raise ValueError(f"{num_options} options need at least as many facts; got {len(facts)}.")
    rng = np.random.default_rng([seed, DIRECTIONS.index(direction)])
    answers = [f.question(direction)[1] for f in facts]
    examples = []
    for i, fact in enumerate(facts):
        others = rng.choice([j for j in range(len(facts)) if j != i], num_options - 1,
                            replace=False)
        options = [answers[j] for j in others] + [answers[i]]
        rng.shuffle(options)
        examples.append(Example(fact.question(direction)[0], answers[i], tuple(options)))
    return examples


# The prompt already ends before the answer's space: no demonstrations, no marker.
ZERO_SHOT = PromptTemplate(answer_marker="")


def evaluate_reversal(predictor: Predictor, facts: Sequence[Fact], num_options: int = 4,
                      seed: int = 0, max_length: int = 24
                      ) -> dict[tuple[str, str], dict[str, float]]:
    """{(group, direction): {"rank_accuracy", "exact_match", "num_examples"}} (0-100)."""
    results = {}
    for group in GROUPS:
        members = [f for f in facts if f.group == group]
        for direction in DIRECTIONS:
            results[group, direction] = evaluate_in_context(
                predictor, questions(members, direction, num_options, seed), [], ZERO_SHOT,
                shots=0, generate_options={"max_length": max_length})
    return results


def save_facts(directory: Path, facts: Sequence[Fact]) -> None:
    """facts.json, and train.jsonl / validation.jsonl (the same documents: memorisation is the
    point) for `--gin.DATA_SOURCE='<directory>/{split}.jsonl'`."""
    directory.mkdir(parents=True, exist_ok=True)
    records = [dataclasses.asdict(f) for f in facts]
    (directory / FACTS_FILE).write_text(json.dumps(records, indent=1))
    for split in ("train", "validation"):
        write_jsonl(directory / f"{split}.jsonl", training_documents(facts))


@gin.configurable
def reversal_facts(directory: str = DEFAULT_DIR, facts_per_group: int = 30, seed: int = 0) -> str:
    """The facts' DATA_SOURCE pattern, '<directory>/{split}.jsonl', built if missing."""
    return built_source(directory, dict(facts_per_group=facts_per_group, seed=seed),
                        lambda output: save_facts(output, make_facts(facts_per_group, seed)))


def load_facts(directory: str | Path) -> list[Fact]:
    path = Path(directory).expanduser() / FACTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the facts first with "
                                f"`python -m t2t.evaluation.reversal build --output {directory}`.")
    return [Fact(**f) for f in json.loads(path.read_text())]


def main(argv: Sequence[str] | None = None) -> int:
    """`build` the facts and training documents, or `eval` a run on them (eval_metrics.jsonl)."""
    parser = argparse.ArgumentParser(prog="t2t reversal", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write facts.json, train.jsonl, validation.jsonl")
    build.add_argument("--output", default=DEFAULT_DIR)
    build.add_argument("--facts_per_group", type=int, default=30)
    build.add_argument("--seed", type=int, default=0)
    evaluate = commands.add_parser("eval", help="score a run in both directions")
    evaluate.add_argument("--run_dir", required=True)
    evaluate.add_argument("--facts", default=DEFAULT_DIR, help="the directory `build` wrote")
    evaluate.add_argument("--num_options", type=int, default=4)
    evaluate.add_argument("--step", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "build":
        print(reversal_facts(args.output, args.facts_per_group, args.seed))
        return 0
    from t2t.decoding.predictor import Predictor as RunPredictor

    try:
        facts = load_facts(args.facts)
        predictor = RunPredictor.from_run_dir(args.run_dir, step=args.step)
    except (ValueError, FileNotFoundError) as error:
        print(f"t2t reversal: {error}", file=sys.stderr)
        return 2
    for (group, direction), scores in evaluate_reversal(predictor, facts, args.num_options).items():
        trained = int(direction in TRAINED_DIRECTIONS[group])
        write_eval_metrics(args.run_dir, predictor.step, f"reversal/{group}/{direction}",
                           {"trained_direction": trained, **scores})
        print(f"{group:20s} {direction:8s} trained={trained} "
              + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
