"""Scaling-law data points: a finished run's size, data, compute and loss, from a sweep or a CSV.

A sweep directory's ``results.sqlite`` (schema in `t2t.sweeps.spec`) gives one point per trial:
its tags ``family``, ``params`` (N), ``tokens`` (D) and ``flops`` (C), as `t2t.scaling.isoflop`
writes them, and the validation loss at the last evaluated step, averaged over the trial's seeds
that are ``done``. A CSV needs the columns ``family,params,tokens,flops,loss`` (others are ignored).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sqlite3
from collections import defaultdict
from pathlib import Path

from t2t.sweeps.spec import RESULTS_FILE

REQUIRED_FIELDS = ("family", "params", "tokens", "flops", "loss")


@dataclasses.dataclass(frozen=True)
class ScalingPoint:
    """One run: N non-embedding parameters trained on D tokens with C FLOPs, reaching `loss`."""

    family: str
    params: float
    tokens: float
    flops: float
    loss: float
    trial: str = ""

    def __post_init__(self) -> None:
        for name in ("params", "tokens", "flops", "loss"):
            if not getattr(self, name) > 0:
                raise ValueError(f"point {self.trial or self}: {name} must be positive (the fits "
                                 f"work in log space), got {getattr(self, name)!r}")


def read_csv(path: str | Path) -> list[ScalingPoint]:
    """Points from a CSV with a header row naming at least family,params,tokens,flops,loss."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_FIELDS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; a scaling CSV needs "
                             f"{','.join(REQUIRED_FIELDS)} (header row first)")
        return [ScalingPoint(row["family"], float(row["params"]), float(row["tokens"]),
                             float(row["flops"]), float(row["loss"]), row.get("trial", ""))
                for row in reader]


_FINAL_VALIDATION_LOSS = """
SELECT runs.trial, runs.seed, runs.tags, results.value
FROM runs JOIN results ON results.trial = runs.trial AND results.seed = runs.seed
WHERE runs.status = 'done' AND results.split = 'validation' AND results.metric = 'loss'
  AND results.value IS NOT NULL
  AND results.step = (SELECT MAX(r.step) FROM results r WHERE r.trial = runs.trial
                      AND r.seed = runs.seed AND r.split = 'validation' AND r.metric = 'loss')
"""


def read_sweep_results(path: str | Path) -> list[ScalingPoint]:
    """One point per trial of a sweep's results.sqlite (final validation loss, mean over seeds)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(_FINAL_VALIDATION_LOSS).fetchall()
    losses: dict[str, list[float]] = defaultdict(list)
    tags: dict[str, dict] = {}
    for trial, _, tag_json, loss in rows:
        losses[trial].append(loss)
        tags[trial] = json.loads(tag_json or "{}")
    points = []
    for trial in sorted(losses):
        missing = [k for k in REQUIRED_FIELDS[:-1] if k not in tags[trial]]
        if missing:
            raise ValueError(f"{path}: trial {trial!r} has no {missing} tag(s); scaling fits need "
                             f"the tags that t2t.scaling.isoflop writes (family, params, tokens, "
                             f"flops)")
        t = tags[trial]
        points.append(ScalingPoint(t["family"], float(t["params"]), float(t["tokens"]),
                                   float(t["flops"]), sum(losses[trial]) / len(losses[trial]),
                                   trial))
    return points


def load_points(path: str | Path) -> list[ScalingPoint]:
    """Points from a results.sqlite, a sweep directory holding one, or a .csv file."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass a sweep directory, its results.sqlite, "
                                f"or a CSV with columns {','.join(REQUIRED_FIELDS)}")
    points = read_csv(path) if path.suffix == ".csv" else read_sweep_results(path)
    if not points:
        raise ValueError(f"{path} holds no finished runs with a validation loss to fit")
    return points


def by_family(points: list[ScalingPoint]) -> dict[str, list[ScalingPoint]]:
    """Points grouped by family, in first-seen order."""
    groups: dict[str, list[ScalingPoint]] = {}
    for p in points:
        groups.setdefault(p.family, []).append(p)
    return groups
