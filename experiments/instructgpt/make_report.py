"""The InstructGPT experiment's plot and tables from its run directories.

    python experiments/instructgpt/make_report.py --reward_model RM_DIR --ppo PPO_DIR \
        --out experiments/instructgpt

writes ppo.png (reward-model score, KL to the SFT model and the true rule-satisfaction rate per PPO
step), results.md (the PPO table every `--every` steps, the reward model's held-out accuracy and
sample responses before and after PPO) and results.json (every PPO step's metrics).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = ("score", "kl", "true_metric", "response_length", "value_loss", "clip_fraction",
           "approx_kl")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in open(path) if line.strip()]


def plot(steps: list[dict], path: Path) -> None:
    x = [s["step"] for s in steps]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = (("score", "reward-model score (mean)"),
              ("kl", "KL(policy || SFT) per response, nats"),
              ("true_metric", "true rule-satisfaction rate"))
    for ax, (key, title) in zip(axes, panels):
        ax.plot(x, [s[key] for s in steps], marker=".", lw=1)
        ax.set_title(title)
        ax.set_xlabel("PPO step (rollout batch)")
        ax.grid(alpha=0.3)
    axes[2].set_ylim(0, 1.02)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(steps: list[dict], every: int) -> str:
    rows = [s for s in steps if s["step"] % every == 0 or s is steps[-1]]
    lines = ["| step | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for s in rows:
        cells = [f"{s[c]:.3f}" if c in s else "" for c in COLUMNS]
        lines.append(f"| {s['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reward_model", type=Path, required=True)
    parser.add_argument("--ppo", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    steps = [r for r in read_jsonl(args.ppo / "metrics.jsonl") if r["split"] == "train"]
    accuracy = [r for r in read_jsonl(args.reward_model / "metrics.jsonl")
                if r["split"] == "validation"]
    samples = read_jsonl(args.ppo / "samples.jsonl")
    first, last = steps[0]["step"], steps[-1]["step"]
    show = lambda step: "\n".join(f"- `{s['prompt']}` → `{s['response']}`"
                                  for s in samples if s["step"] == step)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(steps, args.out / "ppo.png")
    (args.out / "results.json").write_text(json.dumps(steps, indent=1))
    (args.out / "results.md").write_text(
        "# InstructGPT pipeline on gpt2/tiny: results\n\n"
        "## Reward model: held-out pairwise accuracy\n\n"
        "| step | " + " | ".join(str(r["step"]) for r in accuracy) + " |\n"
        + "|---" * (len(accuracy) + 1) + "|\n"
        "| accuracy | " + " | ".join(f"{r['pairwise_accuracy']:.3f}" for r in accuracy) + " |\n\n"
        f"## PPO (every {args.every} steps; step 0 is the SFT policy)\n\n"
        + table(steps, args.every) + "\n\n"
        f"## Samples at step {first} (SFT)\n\n{show(first)}\n\n"
        f"## Samples at step {last} (after PPO)\n\n{show(last)}\n")


if __name__ == "__main__":
    main()
