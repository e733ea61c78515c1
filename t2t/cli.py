"""The `t2t` command.

    t2t train [--gin_file=FILE]... [--gin.NAME=VALUE]...
        Pretrain. Without --gin_file: the embedded default (a tiny T5 v1.1 on the embedded corpus).
    t2t vocab train --input=SOURCE --output=PREFIX [--vocab_size=8000] [--model_type=unigram]
        Train a SentencePiece vocabulary (T5 conventions) on 'embedded' or a file glob.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

USAGE = __doc__


def _split_gin_flags(argv: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(gin files, gin bindings, other args) from T5X-style flags."""
    files, bindings, rest = [], [], []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg.startswith("--gin_file="):
            files.append(arg.split("=", 1)[1])
        elif arg == "--gin_file" and args:
            files.append(args.pop(0))
        elif arg.startswith("--gin."):
            bindings.append(arg[len("--gin."):])
        else:
            rest.append(arg)
    return files, bindings, rest


def _train(argv: Sequence[str]) -> int:
    from t2t.configuration import ConfigError, parse_gin

    files, bindings, rest = _split_gin_flags(argv)
    if rest:
        print(f"t2t train: unrecognised arguments {rest}. Use --gin_file=FILE and "
              f"--gin.NAME=VALUE.\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        parse_gin(files, bindings)
        from t2t.training.trainer import train

        result = train()
    except ConfigError as error:
        print(f"t2t train: configuration error: {error}", file=sys.stderr)
        return 2
    print(f"Run directory: {result.run_dir}\nFinal step: {result.step}\n"
          f"Validation loss: {result.validation_loss:.4f} nats/target token"
          + (f" (initial {result.initial_validation_loss:.4f})"
             if result.initial_validation_loss is not None else "")
          + f"\nUnigram entropy of the corpus: {result.unigram_entropy:.4f} nats/token")
    return 0


def _vocab(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="t2t vocab train",
                                     description="Train a SentencePiece vocabulary with T5's "
                                                 "conventions (PAD 0, EOS 1, UNK 2; sentinels are "
                                                 "added above the pieces at load time).")
    parser.add_argument("action", choices=["train"])
    parser.add_argument("--input", required=True,
                        help="'embedded', or a glob of .jsonl[.gz]/.json.gz/text files")
    parser.add_argument("--output", required=True, help="model prefix; writes PREFIX.model")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--model_type", default="unigram", choices=["unigram", "bpe"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from t2t.data.sources import get_source
    from t2t.data.vocab import Vocabulary, train_vocabulary

    path = train_vocabulary(get_source(args.input, "train"), args.output,
                            vocab_size=args.vocab_size, model_type=args.model_type, seed=args.seed)
    vocab = Vocabulary(path)
    print(f"Wrote {path}: {vocab.vocab_size - vocab.extra_ids} pieces + {vocab.extra_ids} "
          f"sentinels = {vocab.vocab_size} ids ({vocab.padded_vocab_size} embedding rows).")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": _train, "vocab": _vocab}
    if not argv or argv[0] not in commands:
        print(USAGE, file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
