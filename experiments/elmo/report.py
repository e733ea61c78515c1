"""The ELMo vs BERT table and training-curve plot from `run.sh`'s run directories and feature results.

Usage: python experiments/elmo/report.py RUNS_DIR OUT_DIR
Reads RUNS_DIR/{elmo_tiny,bert_tiny}/metrics.jsonl and OUT_DIR/{elmo_tiny,bert_tiny}.json; writes
OUT_DIR/results.md and OUT_DIR/training_curves.png.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from t2t.decoding.run_dir import TrainedRun  # noqa: E402
from t2t.training.elmo import load_elmo  # noqa: E402

MODELS = {"elmo_tiny": "ELMo tiny (biLSTM LM)", "bert_tiny": "BERT tiny (MLM + NSP)"}
TOKENS_PER_STEP = 16 * 128  # both runs: 16 rows of 128 positions


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _parameters(name: str, run_dir: Path) -> tuple[int, int]:
    """(all parameters, those outside the vocabulary-sized softmax / embedding matrices)."""
    if name.startswith("elmo"):
        config, _, params = load_elmo(run_dir)
    else:
        run = TrainedRun.load(run_dir)
        config, (params, _) = run.config, run.load_params()
    leaves = jax.tree.leaves(params)
    vocab_sized = sum(x.size for x in leaves if config.vocab_size in x.shape)
    total = sum(x.size for x in leaves)
    return total, total - vocab_sized


def main(runs: Path, out: Path) -> None:
    lines = ["| model | parameters (without vocab-sized matrices) | pretraining steps x tokens | "
             "final validation loss (own objective) | wiki_topic test accuracy | validation "
             "accuracy | ScalarMix weights (layer 0 first) |", "|---|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    majority = None
    for name, label in MODELS.items():
        records = _records(runs / name)
        result = json.loads((out / f"{name}.json").read_text())
        majority = result["majority_baseline"]
        total, body = _parameters(name, runs / name)
        train = [r for r in records if r["split"] == "train"]
        valid = [r for r in records if r["split"] == "validation"]
        steps = train[-1]["step"]
        lines.append(f"| {label} | {total:,} ({body:,}) | {steps} x {TOKENS_PER_STEP:,} | "
                     f"{valid[-1]['loss']:.3f} | {result['test_accuracy']:.3f} | "
                     f"{result['valid_accuracy']:.3f} | "
                     f"{', '.join(f'{w:.2f}' for w in result['mix_weights'])} |")
        tokens = lambda rs: [r["step"] * TOKENS_PER_STEP / 1e6 for r in rs]
        if name.startswith("elmo"):
            for direction in ("forward", "backward"):
                axes[0].plot(tokens(train), [r[f"{direction}_loss"] for r in train],
                             label=f"ELMo {direction} LM (train)")
            axes[0].plot(tokens(valid), [r["loss"] for r in valid], "o--",
                         label="ELMo mean of both (validation)")
        else:
            axes[1].plot(tokens(train), [r["loss"] for r in train], label="BERT MLM (train)")
            axes[1].plot(tokens(train), [r["nsp_loss"] for r in train], label="BERT NSP (train)")
            axes[1].plot(tokens(valid), [r["loss"] for r in valid], "o--",
                         label="BERT MLM (validation)")
    lines.append(f"| majority class | | | | {majority:.3f} | | |")
    for ax, title in zip(axes, ("ELMo tiny: LM loss per direction", "BERT tiny: MLM and NSP")):
        ax.set(title=title, xlabel="pretraining tokens (millions)", ylabel="nats / token")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=120)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
