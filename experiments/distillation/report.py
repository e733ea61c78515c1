"""Table and plot of the distillation experiment: held-out loss of distilled vs from-scratch students.

    python experiments/distillation/report.py RUNS_DIR [--out experiments/distillation]

RUNS_DIR holds the runs that run.sh makes: `teacher/`, and `<kind>_seed<S>/` for each kind of
student (`scratch`, `distilled`, optionally `init_only`). Reads each run's metrics.jsonl and writes
results.json, results.md and loss_curves.png to --out.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

KINDS = {
    "scratch": "from scratch (t2t train)",
    "init_only": "teacher-initialised, usual loss only",
    "distilled": "distilled (DistilBERT recipe)",
}


def validation_curve(run: Path) -> dict[int, float]:
    """{step: held-out loss} of a run's metrics.jsonl (the last line per step wins)."""
    curve = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["split"] == "validation":
            curve[record["step"]] = record["loss"]
    return curve


def collect(runs: Path) -> dict:
    students: dict[str, dict[int, dict[int, float]]] = {}
    for run in sorted(runs.iterdir()):
        if m := re.fullmatch(r"(\w+?)_seed(\d+)", run.name):
            students.setdefault(m.group(1), {})[int(m.group(2))] = validation_curve(run)
    teacher = validation_curve(runs / "teacher")
    return {"teacher_final": teacher[max(teacher)], "teacher_steps": max(teacher),
            "students": students}


def table(results: dict) -> str:
    rows = ["| student (6 layers) | seeds | held-out loss at the last step (mean) | per seed |",
            "|---|---|---|---|"]
    for kind, label in KINDS.items():
        seeds = results["students"].get(kind)
        if not seeds:
            continue
        finals = {s: c[max(c)] for s, c in sorted(seeds.items())}
        step = max(next(iter(seeds.values())))
        rows.append(f"| {label}, step {step} | {len(finals)} | {np.mean(list(finals.values())):.4f} "
                    f"| {', '.join(f'{v:.4f}' for v in finals.values())} |")
    rows.append(f"| teacher (12 layers), step {results['teacher_steps']} | 1 | "
                f"{results['teacher_final']:.4f} | |")
    return "\n".join(rows) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for (kind, label), color in zip(KINDS.items(), ("tab:gray", "tab:orange", "tab:blue")):
        for i, (seed, curve) in enumerate(sorted(results["students"].get(kind, {}).items())):
            steps = sorted(curve)
            ax.plot(steps, [curve[s] for s in steps], color=color, marker="o", markersize=3,
                    linestyle="-" if i == 0 else "--", label=f"{label}, seed {seed}")
    ax.axhline(results["teacher_final"], color="black", linewidth=0.8, linestyle=":",
               label=f"teacher (12 layers) after {results['teacher_steps']} steps")
    ax.set_xlabel("student step")
    ax.set_ylabel("held-out LM loss (nats/token)")
    ax.set_ylim(top=min(ax.get_ylim()[1], 8.0))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args(argv)
    results = collect(args.runs)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(table(results))
    plot(results, args.out / "loss_curves.png")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
