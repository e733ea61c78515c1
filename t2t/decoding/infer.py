"""`t2t infer`: decode texts with a trained run and write one JSON line per input.

    t2t infer RUN_DIR [--input=TEXT]... [--input_file=FILE] [--output=FILE]
              [--method=greedy|beam|sample] [--beam_size=4] [--alpha=0.6]
              [--temperature=1.0] [--top_k=0] [--top_p=1.0] [--max_length=N] [--seed=0]
              [--step=N] [--batch_size=16]

Inputs come from --input (repeatable) and --input_file (one input per line; '-' reads stdin). The
model, vocabulary and default --max_length (the run's target length) come from the run directory's
saved configuration (see `t2t.decoding.run_dir`). Each output line is

    {"input": "...", "output": "...", "score": -3.21}

where the score is the output's log-likelihood (greedy, sample) or its length-penalised
log-likelihood (beam).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from t2t.decoding.predictor import METHODS, Predictor


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t2t infer", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="the MODEL_DIR of a `t2t train` run")
    parser.add_argument("--input", action="append", default=[], help="an input text (repeatable)")
    parser.add_argument("--input_file", help="a file with one input per line; '-' for stdin")
    parser.add_argument("--output", help="write JSON lines here instead of stdout")
    parser.add_argument("--method", choices=METHODS, default="greedy")
    parser.add_argument("--beam_size", type=int, default=4)
    parser.add_argument("--alpha", type=float, default=0.6, help="beam search length penalty")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top_k", type=int, default=0, help="0: no top-k truncation")
    parser.add_argument("--top_p", type=float, default=1.0, help="1.0: no nucleus truncation")
    parser.add_argument("--max_length", type=int, help="most output tokens; default the run's "
                        "target length")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--step", type=int, help="checkpoint step; default the latest")
    parser.add_argument("--batch_size", type=int, default=16)
    return parser


def _read_inputs(args: argparse.Namespace) -> list[str]:
    texts = list(args.input)
    if args.input_file:
        stream = sys.stdin if args.input_file == "-" else open(args.input_file, encoding="utf-8")
        with stream:
            texts += [line.rstrip("\r\n") for line in stream]
    return texts


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        texts = _read_inputs(args)
        if not texts:
            raise ValueError("no inputs: give --input=TEXT or --input_file=FILE.")
        predictor = Predictor.from_run_dir(args.run_dir, step=args.step,
                                           batch_size=args.batch_size)
        results = predictor.generate_with_scores(
            texts, method=args.method, max_length=args.max_length, beam_size=args.beam_size,
            alpha=args.alpha, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
            seed=args.seed)
    except (FileNotFoundError, ValueError) as error:
        print(f"t2t infer: {error}", file=sys.stderr)
        return 2
    lines = [json.dumps({"input": text, "output": output, "score": score}, ensure_ascii=False)
             for text, (output, score) in zip(texts, results)]
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
