"""Reading scaling points from a sweep's results store (t2t.sweeps.spec's schema) and from CSV."""

import json
import sqlite3

import pytest

from t2t.scaling.points import load_points
from t2t.sweeps.spec import RESULTS_FILE, SCHEMA

TAGS = {"family": "decoder_only", "knob": 1, "params": 5e4, "tokens": 3e5, "flops": 1e12}


def _store(sweep_dir, runs, results):
    with sqlite3.connect(sweep_dir / RESULTS_FILE) as db:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO runs (trial, seed, status, tags) VALUES (?, ?, ?, ?)",
                       [(t, s, status, json.dumps(tags)) for t, s, status, tags in runs])
        db.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?)", results)


def test_a_trial_is_its_final_validation_loss_averaged_over_finished_seeds(tmp_path):
    big = {**TAGS, "knob": 2, "params": 4e5, "tokens": 1e5}
    _store(tmp_path,
           runs=[("small", 0, "done", TAGS), ("small", 1, "done", TAGS),
                 ("small", 2, "failed", TAGS), ("big", 0, "done", big)],
           results=[("small", 0, "validation", "loss", 0, 9.0),  # not the last step
                    ("small", 0, "validation", "loss", 100, 5.0),
                    ("small", 0, "train", "loss", 100, 1.0),  # not validation
                    ("small", 0, "validation", "accuracy", 100, 0.3),  # not a loss
                    ("small", 1, "validation", "loss", 100, 6.0),
                    ("small", 2, "validation", "loss", 100, 0.5),  # a failed run's
                    ("big", 0, "validation", "loss", 50, 4.5)])
    points = {p.trial: p for p in load_points(tmp_path)}  # the sweep directory works too
    assert points["small"].loss == pytest.approx(5.5)
    assert (points["small"].params, points["small"].tokens, points["small"].flops) == (5e4, 3e5,
                                                                                      1e12)
    assert points["big"].loss == 4.5 and points["big"].params == 4e5


def test_missing_tags_and_columns_are_named(tmp_path):
    _store(tmp_path, runs=[("t", 0, "done", {"family": "decoder_only"})],
           results=[("t", 0, "validation", "loss", 10, 5.0)])
    with pytest.raises(ValueError, match=r"trial 't' has no \['params', 'tokens', 'flops'\]"):
        load_points(tmp_path / RESULTS_FILE)
    csv = tmp_path / "points.csv"
    csv.write_text("family,params,tokens,loss\ndecoder_only,1,2,3\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['flops'\]"):
        load_points(csv)
    with pytest.raises(FileNotFoundError, match="sweep directory"):
        load_points(tmp_path / "nowhere.csv")
