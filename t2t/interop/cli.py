"""`t2t convert`: HF weights in and out.

    t2t convert import --hf_dir DIR --out DIR [--scan_layers]
        An HF model directory (config.json + safetensors; T5 v1.0/v1.1, BART, GPT-2, BERT) -> a
        params-only t2t checkpoint (see t2t.interop.checkpoint), scanned with --scan_layers.
    t2t convert export (--run_dir DIR [--step N] | --params DIR) --out DIR
        A run directory's newest (or --step) checkpoint, or a params-only checkpoint -> an HF
        model directory that transformers' `from_pretrained(DIR)` loads.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Sequence

import jax


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t2t convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser("import", help="HF model directory -> params-only checkpoint")
    imp.add_argument("--hf_dir", required=True, help="config.json + model.safetensors")
    imp.add_argument("--out", required=True, help="new directory for the t2t checkpoint")
    imp.add_argument("--scan_layers", action="store_true",
                     help="store the layers stacked, for models with model_config.scan_layers")
    exp = commands.add_parser("export", help="t2t run or params checkpoint -> HF model directory")
    source = exp.add_mutually_exclusive_group(required=True)
    source.add_argument("--run_dir", help="a t2t run directory")
    source.add_argument("--params", help="a params-only checkpoint (what import writes)")
    exp.add_argument("--step", type=int, help="with --run_dir: this step, not the newest")
    exp.add_argument("--out", required=True, help="new directory for the HF model")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from t2t.interop.checkpoint import load_params, load_run_params, save_params
    from t2t.interop.convert import export_hf, hf_family, import_hf

    try:
        if args.command == "import":
            params, config = import_hf(args.hf_dir, scan_layers=args.scan_layers)
            save_params(args.out, params, config)
            what = f"HF {hf_family(config).model_type} from {args.hf_dir}"
        else:
            if args.step is not None and args.run_dir is None:
                raise ValueError("--step applies to --run_dir only.")
            if args.run_dir:
                params, config, step = load_run_params(args.run_dir, args.step)
                what = f"{args.run_dir} at step {step}"
            else:
                params, config = load_params(args.params)
                what = str(args.params)
            export_hf(params, config, args.out)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as error:
        print(f"t2t convert {args.command}: {error}", file=sys.stderr)
        return 2
    count = sum(math.prod(x.shape) for x in jax.tree.leaves(params))
    print(f"Converted {what} ({config.family}, {count:,} parameters) to {args.out}.")
    return 0
