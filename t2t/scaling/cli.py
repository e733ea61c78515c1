"""`t2t scaling plan|fit|plot`: plan an isoFLOP ladder, fit scaling laws to its results, plot them.

    t2t scaling plan --family decoder_only --budgets 1e12,3e12 --knobs 1,2,3,4
                     [--batch_size 16] [--feature_lengths "{'targets': 128}"] [--gin_file FILE]...
                     [--vocab_size 8192] [--base SIZE] [--width 64] [--min_steps 50]
                     [--out sweep.py]
        Print every (budget, knob) run: N, steps, D, C. With --out, write a sweep file that
        builds the same plan with t2t.scaling.isoflop (run it with the sweep runner).
    t2t scaling fit RESULTS [--out DIR] [--bootstrap 100] [--seed 0] [--starts 32]
        Fit Kaplan's power laws and Chinchilla's approaches 2 and 3 per family; write
        scaling_fits.json and scaling_fits.md to DIR (default: next to RESULTS).
    t2t scaling plot RESULTS --out DIR [--starts 32]
        Write loss_vs_compute.png, isoflop.png and optimal_allocation.png to DIR/<family>/.

RESULTS is a sweep directory, its results.sqlite, or a CSV with the columns
family,params,tokens,flops,loss.
"""

from __future__ import annotations

import argparse
import ast
import shlex
import sys
from pathlib import Path
from typing import Sequence

from t2t.models.config import FAMILIES

# What `plan` uses for a family unless told otherwise: the repository's tiny experiment of that
# family (its objective and data) and the row lengths it trains on.
DEFAULT_EXPERIMENTS = {
    "encoder_decoder": ("experiments/t5_1_1_tiny_embedded.gin", {"inputs": 256, "targets": 58}),
    "decoder_only": ("experiments/gpt2_tiny_lm.gin", {"targets": 128}),
    "encoder_only": ("experiments/bert_tiny_mlm_nsp.gin", {"inputs": 128}),
}


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _lengths(text: str) -> dict[str, int]:
    try:
        lengths = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        lengths = None
    if not isinstance(lengths, dict):
        raise ValueError(f"--feature_lengths must be a dict literal like \"{{'targets': 128}}\" "
                         f"or \"{{'inputs': 128, 'targets': 29}}\", got {text!r}")
    return lengths


def _default_vocab_size() -> int:
    from t2t.data.vocab import default_vocabulary

    return default_vocabulary().padded_vocab_size


def _sweep_file(setup, budgets: list[float], knobs: list[int], min_steps: int, name: str,
                command: str) -> str:
    """A sweep file that rebuilds the plan with t2t.scaling.isoflop."""
    budget_list = ", ".join(f"{b:g}" for b in budgets)
    return (f'"""isoFLOP scaling ladder {name!r}, written by:\n\n    {command}\n\n'
            f'Edit freely; t2t.scaling.isoflop documents the trials it builds.\n"""\n\n'
            f"from t2t.scaling.isoflop import LadderSetup, isoflop_sweep\n\n"
            f"SETUPS = [{setup!r}]\n\n"
            f"SWEEP = isoflop_sweep({name!r}, SETUPS, budgets=[{budget_list}],\n"
            f"                      knobs={knobs!r}, min_steps={min_steps})\n")


def _plan(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from t2t.scaling.isoflop import LadderSetup, plan_isoflop

    gin_file, lengths = DEFAULT_EXPERIMENTS[args.family]
    setup = LadderSetup(
        family=args.family, gin_files=tuple(args.gin_file or [gin_file]),
        feature_lengths=_lengths(args.feature_lengths) if args.feature_lengths else lengths,
        batch_size=args.batch_size, vocab_size=args.vocab_size or _default_vocab_size(),
        base=args.base, width=args.width)
    budgets, knobs = _floats(args.budgets), _ints(args.knobs)
    runs = plan_isoflop(setup, budgets, knobs, args.min_steps)
    print(f"{'trial':<32} {'N':>11} {'params':>11} {'steps':>7} {'D':>10} {'C':>10} {'D/N':>7}")
    for r in runs:
        n = r.point.non_embedding_params
        print(f"{r.name:<32} {n:>11,} {r.point.params:>11,} {r.steps:>7} {r.tokens:>10.3g} "
              f"{r.flops:>10.3g} {r.tokens / n:>7.1f}")
    left_out = len(budgets) * len(knobs) - len(runs)
    print(f"{len(runs)} runs, {sum(r.flops for r in runs):.3g} FLOPs in all"
          + (f"; {left_out} (budget, knob) pairs left out for fewer than {args.min_steps} steps."
             if left_out else "."))
    if args.out:
        command = "t2t scaling " + shlex.join(argv)
        name = args.name or Path(args.out).parent.name or "scaling_ladder"
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(_sweep_file(setup, budgets, knobs, args.min_steps, name, command))
        print(f"Wrote {args.out}")
    return 0


def _fits(args: argparse.Namespace, bootstrap: int):
    from t2t.scaling.fit import fit_family
    from t2t.scaling.points import by_family, load_points

    groups = by_family(load_points(args.results))
    return groups, {family: fit_family(points, bootstrap=bootstrap, seed=args.seed,
                                       starts=args.starts or None)
                    for family, points in groups.items()}


def _default_out(results: str) -> Path:
    path = Path(results)
    return path if path.is_dir() else path.parent


def _fit(args: argparse.Namespace) -> int:
    from t2t.scaling.report import write_fits

    _, fits = _fits(args, args.bootstrap)
    json_path, md_path = write_fits(fits, args.out or _default_out(args.results), args.results)
    print(md_path.read_text())
    print(f"Wrote {json_path} and {md_path}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    try:
        from t2t.scaling.plot import plot_family
    except ImportError as error:
        raise ValueError(f"plotting needs matplotlib ({error}): pip install matplotlib") from None
    groups, fits = _fits(args, bootstrap=0)
    for family, points in groups.items():
        for path in plot_family(points, fits[family], args.out, family):
            print(f"Wrote {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t2t scaling", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="print (and write) an isoFLOP sweep")
    plan.add_argument("--family", required=True, choices=FAMILIES)
    plan.add_argument("--budgets", required=True, help="compute budgets in FLOPs, e.g. 1e12,3e12")
    plan.add_argument("--knobs", required=True, help="ladder knobs, e.g. 1,2,3,4")
    plan.add_argument("--batch_size", type=int, default=16)
    plan.add_argument("--feature_lengths", help="e.g. \"{'targets': 128}\" (default: the family's "
                                                "tiny experiment's)")
    plan.add_argument("--gin_file", action="append", help="the trials' gin files (repeatable)")
    plan.add_argument("--vocab_size", type=int, help="embedding rows (default: the embedded "
                                                     "vocabulary's padded size)")
    plan.add_argument("--base", help="the named size whose architecture the ladder keeps")
    plan.add_argument("--width", type=int, default=64, help="d_model per knob (and head width)")
    plan.add_argument("--min_steps", type=int, default=1, help="leave out shorter runs")
    plan.add_argument("--name", help="the sweep's name (default: the --out folder's name)")
    plan.add_argument("--out", help="write a sweep file here")
    for name, text in (("fit", "fit scaling laws"), ("plot", "plot the fits")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("results", help="sweep dir, results.sqlite, or CSV")
        sub.add_argument("--out", required=name == "plot", help="output directory")
        sub.add_argument("--starts", type=int, default=32,
                         help="approach 3: L-BFGS from this many of the 4,500 grid starts with "
                              "the lowest loss (0: from all of them)")
        sub.add_argument("--seed", type=int, default=0, help="the bootstrap's resampling seed")
        if name == "fit":
            sub.add_argument("--bootstrap", type=int, default=100,
                             help="resamples for approach 3's intervals (0: none)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        if args.command == "plan":
            return _plan(args, argv)
        return _fit(args) if args.command == "fit" else _plot(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"t2t scaling {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
