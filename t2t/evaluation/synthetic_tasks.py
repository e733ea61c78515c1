"""Synthetic in-context tasks: GPT-3's word manipulations (Brown et al. 2020, §3.9.2), seeded.

Each rule turns a word into a puzzle; the answer is the word:

    symbol_removal   "s.u!c/c!e.s s" -> "success"   a symbol or space after each letter, at random
    cycled_letters   "cesssuc"       -> "success"   the letters rotated by 1..len-1 places
    reversed_words   "sseccus"       -> "success"
    copy             "success"       -> "success"

and each has a twin that capitalises the answer ("symbol_removal_capitalised": "s.u!c/c!e.s s" ->
"Success"). The puzzle shows which of GPT-3's rules applies, but not the answer's case: only the
task description or the demonstrations do, as an unknown task format does for GPT-3.

The words are the 100 most frequent lower-case words of 4-8 letters in the embedded corpus
(`word_list`): few enough that a small model sees each spelled out in many puzzles.
Two kinds of text come out, written with `in_context.PromptTemplate`'s conventions:

* evaluation episodes (`evaluation_examples`): queries with answer options for rank classification,
  and a pool of solved examples that `t2t eval-icl` draws demonstrations from;
* a meta-learning pretraining corpus (`meta_learning_corpus`): episodes of a random rule with 0 to
  `max_shots` demonstrations, a task description half of the time, mixed with plain text, so that a
  model can learn to infer the rule in context. E.g. a 2-shot episode without its description:

      "ecom = come\\nnderu = under\\ngaina = again"       (cycled_letters; one rule per episode)

Evaluation uses its own random stream (`_EVAL_STREAM`), so its puzzles are not the corpus's (the
words are shared: a model this small cannot spell words it never saw spelled out).

    python -m t2t.evaluation.synthetic_tasks --output ~/.cache/t2t/icl_corpus --episodes 40000

In gin, `DATA_SOURCE = @icl_corpus()` builds the corpus on first use (a few seconds, offline, from
the package's corpus) and gives its `{split}.jsonl` pattern (gin_configs/experiments/in_context/).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import json
import re
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import gin
import numpy as np

from t2t.evaluation.in_context import Example, PromptTemplate

SYMBOLS = ".,!/?;:* "  # GPT-3's random insertions: punctuation or a space; never the "=" marker
_EVAL_STREAM = 1_000_003  # seeds evaluation apart from any corpus seed
NUM_WORDS = 100
Rng = np.random.Generator


def insert_symbols(word: str, rng: Rng, rate: float = 0.5) -> str:
    """A random symbol after each letter but the last with probability `rate` (at least one):
    'success' -> 's.u!c/c!e.s s'. Removing SYMBOLS gives the word back."""
    gaps = rng.random(len(word) - 1) < rate
    gaps[rng.integers(len(word) - 1)] = True  # the puzzle must differ from the word
    symbols = rng.choice(list(SYMBOLS), size=len(word) - 1)
    return "".join(c + (s if g else "") for c, g, s in zip(word, gaps, symbols)) + word[-1]


def cycle_letters(word: str, rng: Rng) -> str:
    """The letters rotated left by 1..len-1 places: 'success' -> 'cesssuc' (by 3)."""
    shift = int(rng.integers(1, len(word)))
    return word[shift:] + word[:shift]


def reverse_letters(word: str, rng: Rng) -> str:
    """'success' -> 'sseccus' (`rng` unused: every rule takes one)."""
    return word[::-1]


def copy_word(word: str, rng: Rng) -> str:
    """The word itself: the rule that only needs copying."""
    return word


def same_case(word: str) -> str:
    """The answer as the word list writes it (lower case)."""
    return word


@dataclasses.dataclass(frozen=True)
class Rule:
    """A named word -> puzzle transformation, the case its answer is written in, and the
    description that states both."""

    name: str
    description: str
    puzzle: Callable[[str, Rng], str]
    answer: Callable[[str], str] = same_case

    def example(self, word: str, rng: Rng, options: tuple[str, ...] = ()) -> Example:
        return Example(self.puzzle(word, rng), self.answer(word), options)


def capitalised(rule: Rule) -> Rule:
    """`rule`'s twin that capitalises its answer ("s.u!c/c!e.s s" -> "Success"). Its puzzles look
    the same as the twin's, so without a description only demonstrations tell which answer case
    is wanted: what makes the number of demonstrations matter."""
    return Rule(f"{rule.name}_capitalised", f"{rule.description[:-1]} and capitalise it.",
                rule.puzzle, str.capitalize)


_GPT3_RULES = (
    Rule("symbol_removal", "Remove the symbols from the word.", insert_symbols),
    Rule("cycled_letters", "Unscramble the cycled letters into a word.", cycle_letters),
    Rule("reversed_words", "Reverse the letters into a word.", reverse_letters),
    Rule("copy", "Repeat the word.", copy_word),
)
RULES = {rule.name: rule for base in _GPT3_RULES for rule in (base, capitalised(base))}
ANSWER_CASES = (same_case, str.capitalize)  # every rule answers in one of these


@functools.lru_cache(maxsize=4)
def word_list(size: int = NUM_WORDS, min_letters: int = 4, max_letters: int = 8) -> tuple[str, ...]:
    """The `size` most frequent lower-case words of the embedded corpus with `min_letters` to
    `max_letters` letters, most frequent first (ties alphabetically), e.g. ('that', 'with', ...)."""
    from t2t.data.sources import embedded_corpus

    counts = collections.Counter(
        w for doc in embedded_corpus("train")
        for w in re.findall(rf"\b[a-z]{{{min_letters},{max_letters}}}\b", doc))
    return tuple(w for w, _ in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:size])


def _rng(*seed: int | str) -> Rng:
    """A generator seeded by integers and names (names through a stable CRC32, not hash())."""
    return np.random.default_rng([zlib.crc32(s.encode()) if isinstance(s, str) else s
                                  for s in seed])


def evaluation_examples(rule: Rule, num_examples: int, seed: int = 0,
                        words: Sequence[str] | None = None, num_options: int = 4,
                        pool_size: int = 64) -> tuple[list[Example], list[Example]]:
    """(queries, pool) for `rule`: `num_examples` queries of distinct words (as far as the list
    allows), and `pool_size` solved examples to draw demonstrations from. Seeded by (seed, rule),
    apart from the corpus.

    A query's options are its word and `num_options` / 2 - 1 other words, each in both answer
    cases, e.g. ("that", "That", "river", "River") for "t.h!at": chance is 1 / `num_options`, and
    a model that finds the word but not the case gets half.
    """
    words = list(words or word_list())
    if num_options % len(ANSWER_CASES) or num_options // 2 > len(words):
        raise ValueError(f"num_options must be even and at most twice the {len(words)} words; "
                         f"got {num_options}.")
    rng = _rng(_EVAL_STREAM, seed, rule.name)
    queries = []
    # Whole permutations of the list, so that no word repeats before every word has been asked.
    order = np.concatenate([rng.permutation(len(words))
                            for _ in range(-(-num_examples // len(words)))])[:num_examples]
    for word in (words[i] for i in order):
        others = rng.choice([w for w in words if w != word], num_options // 2 - 1, replace=False)
        options = [case(str(w)) for w in [word, *others] for case in ANSWER_CASES]
        rng.shuffle(options)
        queries.append(rule.example(str(word), rng, tuple(options)))
    pool = [rule.example(str(w), rng) for w in rng.choice(words, pool_size)]
    return queries, pool


def episode(rule: Rule, words: Sequence[str], shots: int, rng: Rng, described: bool) -> str:
    """One training document: `shots` solved examples of `rule` and a solved query."""
    examples = [rule.example(str(w), rng) for w in rng.choice(words, shots + 1)]
    template = PromptTemplate(description=rule.description if described else None)
    return template.episode(examples[:-1], examples[-1])


def plain_chunks(documents: Sequence[str], chars: int = 400) -> list[str]:
    """Documents cut at spaces into pieces of about `chars` characters (episode-sized text)."""
    chunks = []
    for doc in documents:
        words, piece = doc.split(), []
        for word in words:
            piece.append(word)
            if sum(map(len, piece)) + len(piece) >= chars:
                chunks.append(" ".join(piece))
                piece = []
        if piece:
            chunks.append(" ".join(piece))
    return chunks


def meta_learning_corpus(num_episodes: int, seed: int = 0, rules: Sequence[Rule] | None = None,
                         words: Sequence[str] | None = None, max_shots: int = 8,
                         description_rate: float = 0.5, plain_text: Sequence[str] = (),
                         plain_fraction: float = 0.1) -> list[str]:
    """`num_episodes` episodes (rule uniform, shots uniform in 0..max_shots, a description with
    probability `description_rate`) shuffled with plain-text chunks, which make up `plain_fraction`
    of the documents (drawn from `plain_text`, cycled if too few). A chunk is about three episodes
    long, so the default 0.1 of the documents is about a third of the text."""
    if not 0 <= plain_fraction < 1:
        raise ValueError(f"plain_fraction must be in [0, 1), got {plain_fraction}.")
    rules, words = list(rules or RULES.values()), list(words or word_list())
    rng = _rng(seed, "meta_learning_corpus")
    docs = [episode(rules[rng.integers(len(rules))], words, int(rng.integers(max_shots + 1)), rng,
                    bool(rng.random() < description_rate)) for _ in range(num_episodes)]
    num_plain = round(num_episodes * plain_fraction / (1 - plain_fraction)) if plain_text else 0
    docs += [plain_text[i % len(plain_text)] for i in range(num_plain)]
    return [docs[i] for i in rng.permutation(len(docs))]


def write_jsonl(path: Path, texts: Sequence[str]) -> None:
    """One {"text": ...} line per document (what `--gin.DATA_SOURCE=.../{split}.jsonl` reads),
    written to a temporary file first, so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as f:
        for text in texts:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    partial.replace(path)


def built_source(directory: str | Path, recipe: dict, write: Callable[[Path], None]) -> str:
    """The '<directory>/{split}.jsonl' pattern of a generated data set, running `write(directory)`
    first unless `directory` already holds one built from the same `recipe` (a JSON-able dict of
    the generator's arguments, kept in <directory>/recipe.json)."""
    directory = Path(directory).expanduser()
    stamp = directory / "recipe.json"
    if not stamp.is_file() or json.loads(stamp.read_text()) != recipe:
        write(directory)
        stamp.write_text(json.dumps(recipe))
    return str(directory / "{split}.jsonl")


@gin.configurable
def icl_corpus(directory: str = "~/.cache/t2t/icl_corpus", episodes: int = 40_000, seed: int = 0,
               max_shots: int = 8, plain_fraction: float = 0.1, num_words: int = NUM_WORDS) -> str:
    """The meta-learning corpus's DATA_SOURCE pattern, built if missing: `episodes` training
    episodes over `word_list(num_words)` (validation: a twentieth as many, another seed), plain
    text from the embedded corpus's matching split."""
    from t2t.data.sources import embedded_corpus

    def write(output: Path) -> None:
        for split, count, split_seed in (("train", episodes, seed),
                                         ("validation", max(episodes // 20, 1), seed + 1)):
            write_jsonl(output / f"{split}.jsonl", meta_learning_corpus(
                count, split_seed, words=word_list(num_words), max_shots=max_shots,
                plain_text=plain_chunks(embedded_corpus(split)), plain_fraction=plain_fraction))

    recipe = dict(episodes=episodes, seed=seed, max_shots=max_shots, plain_fraction=plain_fraction,
                  num_words=num_words, rules=list(RULES))
    return built_source(directory, recipe, write)


def main(argv: Sequence[str] | None = None) -> int:
    """Write a meta-learning corpus as <output>/train.jsonl and <output>/validation.jsonl."""
    parser = argparse.ArgumentParser(prog="t2t data build-icl", description=main.__doc__)
    parser.add_argument("--output", default="~/.cache/t2t/icl_corpus")
    parser.add_argument("--episodes", type=int, default=40_000, help="training episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_shots", type=int, default=8)
    parser.add_argument("--plain_fraction", type=float, default=0.1,
                        help="share of documents that are plain text from the embedded corpus")
    args = parser.parse_args(argv)
    print(icl_corpus(args.output, args.episodes, args.seed, args.max_shots, args.plain_fraction))
    return 0


if __name__ == "__main__":
    sys.exit(main())
