"""Every experiment in gin_configs/experiments/ trains: a few steps on the embedded corpus, with the
model narrowed (its width, and its depth past 2 layers) so that the whole set runs in minutes, give
a finite loss that falls.

This covers every (architecture, objective) cell of T5 Table 2, every objective of Tables 4-7 and
the BERT, RoBERTa, BART and GPT-2 experiments, each through its real gin file.
"""

import json
import math
from pathlib import Path

import gin
import pytest

from t2t.configuration import REPO_GIN_DIR, parse_gin
from t2t.models.config import model_config
from t2t.training.trainer import train


def _trained_elsewhere(path: Path) -> bool:
    """Experiments that their own tests train: those of the other entry points, `t2t train-elmo`
    (tests/training/test_train_elmo.py) and `t2t distill` (tests/training/test_distillation.py),
    and the encoder fine-tuning tasks, which need built data (tests/evaluation/test_encoder_eval.py
    trains bert_tasks/topic.gin on a fixture; tests/data/test_objectives_encoder_tasks.py parses
    them all)."""
    text = path.read_text()
    return ("bert_tasks" in path.parts or "train_elmo." in text
            or "include 'runs/distill.gin'" in text)


EXPERIMENTS = sorted(str(p.relative_to(REPO_GIN_DIR))
                     for p in (REPO_GIN_DIR / "experiments").rglob("*.gin")
                     if not _trained_elsewhere(p))
NARROW = [
    "TRAIN_STEPS=8", "BATCH_SIZE=8",  # 8 fake devices: one row each
    "model_config.d_model=32", "model_config.num_heads=2", "model_config.head_dim=16",
    "model_config.d_ff=64",
    "train.log_every=1", "train.eval_every=8", "train.eval_batches=1",
    "train.checkpoint_every=8",
]
# Deeper stacks (the 12-layer distillation teachers) are cut to this many layers: a layer is the
# same block again, and each one adds about 2 s of compile.
MAX_LAYERS = 2


def _parse(experiment: str, bindings: list[str]) -> None:
    """Parse `experiment` with `bindings`, narrowed (NARROW, at most MAX_LAYERS per stack)."""
    parse_gin([experiment], NARROW + bindings, finalize=False)
    config = model_config()
    gin.clear_config()
    shallower = [f"model_config.{field}={MAX_LAYERS}"
                 for field in ("num_encoder_layers", "num_decoder_layers")
                 if getattr(config, field) > MAX_LAYERS]
    parse_gin([experiment], NARROW + shallower + bindings)


def test_the_tables_are_covered():
    names = {Path(e).stem for e in EXPERIMENTS}
    assert {f"{arch}-{objective}" for arch in ("encoder_decoder", "shared", "encoder_decoder_half",
                                              "language_model", "prefix_lm")
            for objective in ("denoising", "lm")} <= names
    assert {"prefix_lm", "iid_15_r10s90_f", "all_permute", "iid_15_m_f", "iid_15_u_u",
            "iid_15_d_d", "iid_10_u_u", "iid_25_u_u", "iid_50_u_u", "span_2_15_u_u",
            "span_3_15_u_u", "span_5_15_u_u", "span_10_15_u_u"} <= names


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains(experiment, tmp_path):
    _parse(experiment, [f"MODEL_DIR='{tmp_path}'"])
    try:
        result = train()
    finally:
        gin.clear_config()
    losses = [m["loss"] for m in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
              if m["split"] == "train"]
    assert len(losses) == 8 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    assert math.isfinite(result.validation_loss)
    assert result.validation_loss < result.initial_validation_loss
