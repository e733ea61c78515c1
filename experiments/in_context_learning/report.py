"""In-context learning curves (GPT-3 Fig. 1.2 style) and tables from the sweep's results store.

    python experiments/in_context_learning/report.py runs/sweeps/in_context_learning [--out DIR]

Writes results.md, results.json and in_context_curves.png: accuracy against the number of
demonstrations k for each model size, with (solid) and without (dashed) the task description; one
column per task, exact match of greedy generation on top, rank accuracy below (options: the word
and another in both cases; chance 25%, the right word in an unknown case 50%, dotted).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from t2t.evaluation.synthetic_tasks import RULES
from t2t.sweeps.spec import run_subdir
from t2t.sweeps.store import ResultsStore, run_metrics

METRICS = {"exact_match": "exact match (greedy), %", "rank_accuracy": "rank accuracy (4 options), %"}
CHANCE = {"rank_accuracy": 25.0}


def read(sweep_dir: Path) -> list[dict]:
    """One row per (trial, task, shots, described) with the trial's size tags and its scores (one
    seed), from the runs' eval_metrics.jsonl (a re-evaluation's lines win)."""
    with ResultsStore(sweep_dir) as store:
        runs = [r for r in store.runs() if r["status"] == "done"]
    cells = defaultdict(dict)
    for run in runs:
        for split, metric, _, value in run_metrics(sweep_dir / run_subdir(run["trial"], run["seed"])):
            if split.startswith("eval:icl/"):
                cells[run["trial"], split][metric] = value
    tags = {r["trial"]: r["tags"] for r in runs}
    rows = [{"trial": trial, "knob": tags[trial]["knob"], "params": tags[trial]["params"],
             "task": split.split("/")[1], **metrics,
             "shots": int(metrics["shots"]), "described": int(metrics["described"])}
            for (trial, split), metrics in cells.items()]
    return sorted(rows, key=lambda r: (r["task"], r["knob"], r["described"], r["shots"]))


def markdown(rows: list[dict]) -> str:
    shots = sorted({r["shots"] for r in rows})
    out = []
    for task in [t for t in RULES if any(r["task"] == t for r in rows)]:
        out += [f"### {task}", "",
                "| size (knob, N) | description | " + " | ".join(f"k={k}" for k in shots) + " |",
                "|---|---|" + "---|" * len(shots)]
        for knob in sorted({r["knob"] for r in rows}):
            for described in (0, 1):
                cell = {r["shots"]: r for r in rows
                        if (r["task"], r["knob"], r["described"]) == (task, knob, described)}
                params = next(iter(cell.values()))["params"]
                out.append(f"| knob {knob} ({params:,}) | {'yes' if described else 'no'} | "
                           + " | ".join(f"{cell[k]['exact_match']:.0f} / {cell[k]['rank_accuracy']:.0f}"
                                        for k in shots) + " |")
        out.append("")
    return ("Cells: exact match / rank accuracy (%), 100 queries each. Rank accuracy's options are the\n"
            "word and another word, each in both cases: chance 25, the word in an unknown case 50.\n\n"
            + "\n".join(out))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in RULES if any(r["task"] == t for r in rows)]
    knobs = sorted({r["knob"] for r in rows})
    colors = plt.cm.viridis([0.15 + 0.7 * i / max(len(knobs) - 1, 1) for i in range(len(knobs))])
    fig, axes = plt.subplots(len(METRICS), len(tasks), figsize=(3.6 * len(tasks), 6.5),
                             sharex=True, sharey="row", squeeze=False)
    for row, (metric, label) in enumerate(METRICS.items()):
        for col, task in enumerate(tasks):
            ax = axes[row, col]
            for knob, color in zip(knobs, colors):
                for described, style in ((1, "-o"), (0, "--s")):
                    cell = sorted((r["shots"], r[metric]) for r in rows
                                  if (r["task"], r["knob"], r["described"]) == (task, knob, described))
                    params = next(r["params"] for r in rows if r["knob"] == knob)
                    ax.plot([k for k, _ in cell], [v for _, v in cell], style, color=color, ms=4,
                            label=f"{params:,} params, {'with' if described else 'no'} description")
            if metric in CHANCE:
                ax.axhline(CHANCE[metric], color="gray", lw=0.8)
                # Options are two words in both cases: finding the word but not the case gives 50.
                ax.axhline(2 * CHANCE[metric], color="gray", lw=0.8, ls=":")
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xticks([0, 1, 2, 4, 8], ["0", "1", "2", "4", "8"])
            ax.set_ylim(-2, 102)
            if row == 0:
                ax.set_title(task.replace("_", " "))
            if row == len(METRICS) - 1:
                ax.set_xlabel("demonstrations in context (k)")
            if col == 0:
                ax.set_ylabel(label)
    axes[0, 0].legend(fontsize=6, loc="upper left")
    fig.suptitle("In-context learning curves of three small decoder-only LMs (CPU scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir")
    parser.add_argument("--out", default=str(Path(__file__).parent))
    args = parser.parse_args(argv)
    rows, out = read(Path(args.sweep_dir)), Path(args.out)
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "results.md").write_text(markdown(rows))
    plot(rows, out / "in_context_curves.png")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
