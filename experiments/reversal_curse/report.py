"""Table and plot of the reversal-curse sweep (sweep.py), from its results store.

    python experiments/reversal_curse/report.py runs/sweeps/reversal_curse [--out experiments/reversal_curse]

Writes results.md, results.json and reversal_curse.png: for each model size, each fact group's
rank accuracy (true answer among 4, chance 25%) and exact match, in the trained and the untrained
direction.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from t2t.evaluation.reversal import DIRECTIONS, GROUPS, TRAINED_DIRECTIONS
from t2t.sweeps.spec import run_subdir
from t2t.sweeps.store import ResultsStore, run_metrics

CHANCE = 25.0  # 4 options


def read(sweep_dir: Path) -> list[dict]:
    """One row per (trial, group, direction) with its size tags and scores (mean over seeds),
    from the runs' eval_metrics.jsonl (a re-evaluation's lines win)."""
    with ResultsStore(sweep_dir) as store:
        runs = [r for r in store.runs() if r["status"] == "done"]
    cells = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for split, metric, _, value in run_metrics(sweep_dir / run_subdir(run["trial"], run["seed"])):
            if split.startswith("eval:reversal/"):
                group, direction = split.split("/")[1:]
                cells[run["trial"], group, direction][metric].append(value)
    tags = {r["trial"]: r["tags"] for r in runs}
    rows = [{"trial": trial, "knob": tags[trial]["knob"], "params": tags[trial]["params"],
             "group": group, "direction": direction,
             "trained": direction in TRAINED_DIRECTIONS[group],
             **{m: sum(v) / len(v) for m, v in metrics.items()}}
            for (trial, group, direction), metrics in cells.items()]
    return sorted(rows, key=lambda r: (r["knob"], GROUPS.index(r["group"]),
                                       DIRECTIONS.index(r["direction"])))


def markdown(rows: list[dict]) -> str:
    lines = ["| size (knob, N) | facts trained as | asked | direction trained? | rank accuracy (chance 25) | exact match |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| knob {r['knob']} ({r['params']:,}) | {r['group'].replace('_', ' ')} | "
                     f"{r['direction']} | {'yes' if r['trained'] else '**no**'} | "
                     f"{r['rank_accuracy']:.1f} | {r['exact_match']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    knobs = sorted({r["knob"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, metric, title in zip(axes, ("rank_accuracy", "exact_match"),
                                 ("Rank accuracy (true answer among 4)", "Exact match (greedy)")):
        for trained, style, label in ((True, "o-", "trained direction"),
                                      (False, "s--", "untrained direction")):
            for group, color in zip(GROUPS[:2], ("tab:blue", "tab:orange")):
                ys = [next(r[metric] for r in rows if r["knob"] == k and r["group"] == group
                           and r["trained"] == trained) for k in knobs]
                ax.plot(knobs, ys, style, color=color,
                        label=f"{group.replace('_', ' ')}: {label}")
            if trained:
                ys = [sum(r[metric] for r in rows if r["knob"] == k and r["group"] == "both") / 2
                      for k in knobs]
                ax.plot(knobs, ys, "^:", color="tab:green", label="both (control), both directions")
        if metric == "rank_accuracy":
            ax.axhline(CHANCE, color="gray", lw=0.8)
            ax.text(knobs[0], CHANCE + 1, "chance", color="gray", fontsize=8)
        ax.set_xticks(knobs, [f"knob {k}\n{next(r['params'] for r in rows if r['knob'] == k):,}"
                              for k in knobs])
        ax.set_title(title)
        ax.set_xlabel("model size (non-embedding parameters)")
        ax.set_ylim(-2, 102)
    axes[0].set_ylabel("% of facts")
    axes[0].legend(fontsize=7, loc="center right")
    fig.suptitle("Reversal curse: trained on 'A is B', asked 'B is ?'")
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
    plot(rows, out / "reversal_curse.png")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
