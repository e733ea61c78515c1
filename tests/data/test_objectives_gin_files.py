"""Every gin_configs/objectives/*.gin file builds its objective (with `train.objective` redirected)."""

from pathlib import Path

import gin
import pytest

import t2t.data.objectives as objectives

GIN_DIR = Path(__file__).resolve().parents[2] / "gin_configs" / "objectives"
FILES = sorted(p.stem for p in GIN_DIR.glob("*.gin"))


@gin.configurable("t2t_test_objective_probe")
def probe(objective=None):
    return objective


def test_one_file_per_named_objective():
    assert set(objectives.T5_OBJECTIVE_NAMES) | {"bert", "roberta", "bart"} == set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_gin_file_builds_the_objective(name):
    text = (GIN_DIR / f"{name}.gin").read_text()
    assert f"train.objective = @{name}()" in text
    gin.clear_config()
    try:
        gin.parse_config(text.replace("train.objective", "t2t_test_objective_probe.objective"))
        objective = probe()
    finally:
        gin.clear_config()
    assert objective.name == name
    lengths = objective.feature_lengths(512)
    assert objective.raw_length(lengths) > 0
    family = "mlm" if name in ("bert", "roberta") else "text_to_text"
    assert objective.family_features == family
