"""A synthetic preference task whose preferred behaviour is known and checkable.

Each prompt asks to describe a subject; a response is preferred when it obeys a three-clause rule
(the "labelers' instructions"), which code can check on the generated text:

    prompt    "describe: horse"
    rule      (1) it mentions the subject word ("horse"),
              (2) it has at most MAX_WORDS words,
              (3) it ends with a period.
    e.g.      "the old horse is fast."          all three clauses: satisfies the rule
              "a red tree near the river"       none of them

Demonstrations (the SFT data) imitate careless writers: a response is 2-10 words drawn uniformly
from a small lexicon, it mentions the subject with probability 1/2 and ends with a period with
probability 1/2, so only about 14% of them satisfy the rule. A model fine-tuned on them writes like them; the
reward model and PPO must then discover the rule from comparisons alone.

Comparisons (the reward model's data) are ranked as InstructGPT's labelers rank K samples per
prompt: K responses to one prompt are ordered by the number of clauses each satisfies, and every pair with
different counts becomes one {"prompt", "chosen", "rejected"} record (ties give no pair). The K
responses come from the demonstration distribution, which the SFT model imitates, so the reward
model sees the kind of text the policy starts from.

Every generator is seeded: the same seed writes the same files.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from pathlib import Path
from typing import Iterator, Sequence

import gin
import numpy as np

SUBJECTS = ("cat", "dog", "bird", "fish", "horse", "tree", "river", "house")
_OTHER_WORDS = ("the", "a", "is", "and", "very", "with", "near", "has", "red", "blue", "green",
                "small", "big", "old", "young", "fast", "slow", "happy", "little", "dark")
# Each word is one piece of the embedded 8k vocabulary, so clauses map to tokens simply.
LEXICON = _OTHER_WORDS + SUBJECTS
MAX_WORDS = 6
CLAUSES = ("mentions_subject", "short", "ends_with_period")
_WORD = re.compile(r"[a-z]+")


def prompt(subject: str) -> str:
    """The prompt text for `subject`, e.g. "describe: horse"."""
    return f"describe: {subject}"


def subject_of(prompt_text: str) -> str:
    """The subject a prompt asks about (the inverse of `prompt`)."""
    return prompt_text.rsplit(" ", 1)[-1]


def clauses(subject: str, response: str) -> tuple[bool, bool, bool]:
    """Which of the rule's clauses (`CLAUSES`) `response` satisfies for `subject`."""
    words = _WORD.findall(response.lower())
    return subject in words, len(words) <= MAX_WORDS, response.rstrip().endswith(".")


def satisfies_rule(subject: str, response: str) -> bool:
    """Whether `response` satisfies every clause: the true, checkable success metric."""
    return all(clauses(subject, response))


@gin.configurable
def describe_rule(prompt_text: str, response: str) -> bool:
    """`satisfies_rule` for a prompt's text: PPO's `true_metric` (gin: `@describe_rule`)."""
    return satisfies_rule(subject_of(prompt_text), response)


def demonstration(subject: str, rng: np.random.Generator) -> str:
    """One response from the careless writers' distribution (see the module docstring)."""
    words = list(rng.choice(_OTHER_WORDS, size=int(rng.integers(2, 11))))
    if rng.random() < 0.5:
        words[int(rng.integers(len(words)))] = subject
    return " ".join(words) + ("." if rng.random() < 0.5 else "")


def demonstrations(count: int, seed: int) -> Iterator[dict[str, str]]:
    """`count` {"inputs": prompt, "targets": response} records, the SFT data."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        subject = str(rng.choice(SUBJECTS))
        yield {"inputs": prompt(subject), "targets": demonstration(subject, rng)}


def comparisons(num_prompts: int, seed: int, responses_per_prompt: int = 4
                ) -> Iterator[dict[str, str]]:
    """{"prompt", "chosen", "rejected"} records, ranked by clause counts (see the module docstring).

    E.g. for "describe: cat", responses satisfying 3, 1, 1 and 0 clauses give the pairs
    (3 > 1), (3 > 1), (3 > 0), (1 > 0), (1 > 0): five records.
    """
    rng = np.random.default_rng(seed)
    for _ in range(num_prompts):
        subject = str(rng.choice(SUBJECTS))
        ranked = [(sum(clauses(subject, r)), r)
                  for r in (demonstration(subject, rng) for _ in range(responses_per_prompt))]
        for (score_a, a), (score_b, b) in itertools.combinations(ranked, 2):
            if score_a != score_b:
                chosen, rejected = (a, b) if score_a > score_b else (b, a)
                yield {"prompt": prompt(subject), "chosen": chosen, "rejected": rejected}


def _write_jsonl(path: Path, records: Iterator[dict[str, str]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
            count += 1
    return count


def write_task(output_dir: str | Path, seed: int = 0,
               demonstrations_per_split: Sequence[int] = (20_000, 1_000),
               comparison_prompts_per_split: Sequence[int] = (4_000, 300)) -> dict[str, int]:
    """Write `demonstrations/{train,validation}.jsonl` and `comparisons/{train,validation}.jsonl`
    under `output_dir`; returns the number of records of each file.

    The splits draw from different seeds, so validation comparisons are held out.
    """
    output_dir = Path(output_dir).expanduser()
    counts = {}
    for i, split in enumerate(("train", "validation")):
        counts[f"demonstrations/{split}"] = _write_jsonl(
            output_dir / "demonstrations" / f"{split}.jsonl",
            demonstrations(demonstrations_per_split[i], seed=2 * seed + i))
        counts[f"comparisons/{split}"] = _write_jsonl(
            output_dir / "comparisons" / f"{split}.jsonl",
            comparisons(comparison_prompts_per_split[i], seed=2 * seed + i + 1000))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """`t2t rlhf data --output DIR [--seed S]`: write the task's SFT and comparison files."""
    parser = argparse.ArgumentParser(prog="t2t rlhf data", description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True,
                        help="folder for demonstrations/ and comparisons/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--demonstrations", type=int, nargs=2, default=(20_000, 1_000),
                        metavar=("TRAIN", "VALIDATION"), help="demonstrations per split")
    parser.add_argument("--comparison_prompts", type=int, nargs=2, default=(4_000, 300),
                        metavar=("TRAIN", "VALIDATION"),
                        help="prompts per split, each giving up to 6 ranked pairs")
    args = parser.parse_args(argv)
    for name, count in write_task(args.output, args.seed, args.demonstrations,
                                  args.comparison_prompts).items():
        print(f"{count:7d} records  {Path(args.output) / name}.jsonl")
    return 0
