"""isoFLOP plans: every trial, as the trainer reads its gin bindings, spends its budget."""

import dataclasses
import json
import math
from pathlib import Path

import gin
import pytest

from t2t.configuration import parse_gin
from t2t.models.config import model_config
from t2t.models.flops import flops_per_example
from t2t.scaling.isoflop import LadderSetup, isoflop_sweep, plan_isoflop
from t2t.scaling.ladder import ladder_point
from t2t.sweeps.commands import train_flags
from t2t.training.trainer import train

LADDER_DIR = Path(__file__).resolve().parents[2] / "experiments" / "scaling_ladder"
RUN_GIN = str(LADDER_DIR / "ladder_run.gin")
SETUPS = [
    LadderSetup("decoder_only", (str(LADDER_DIR / "decoder_only.gin"), RUN_GIN), {"targets": 64},
                8, 1024),
    LadderSetup("encoder_decoder", (str(LADDER_DIR / "encoder_decoder.gin"), RUN_GIN),
                {"inputs": 64, "targets": 14}, 8, 1024, width=32),
]
BUDGETS = [1e11, 3e11, 1e12]
KNOBS = [1, 2, 3]
MIN_STEPS = 12  # longer than ladder_run.gin's warmup


def _parse_trial(sweep, trial, model_dir="unused"):
    flags = train_flags(sweep, trial, seed=0, model_dir=model_dir)
    parse_gin([f.split("=", 1)[1] for f in flags if f.startswith("--gin_file=")],
              [f[len("--gin."):] for f in flags if f.startswith("--gin.")])


def _macro(name):
    return gin.query_parameter(f"{name}/gin.macro.value")


def test_every_trial_as_the_trainer_reads_it_is_on_its_budget():
    sweep = isoflop_sweep("ladder", SETUPS, BUDGETS, KNOBS, min_steps=MIN_STEPS)
    planned = {t.name for t in sweep.trials}
    try:
        for trial in sweep.trials:
            _parse_trial(sweep, trial)
            config, steps, batch = model_config(), _macro("TRAIN_STEPS"), _macro("BATCH_SIZE")
            lengths = _macro("TASK_FEATURE_LENGTHS")
            per_step = batch * flops_per_example(config, lengths).training
            tags = trial.tags
            assert abs(steps * per_step - tags["budget"]) <= per_step / 2, trial.name
            assert tags["flops"] == pytest.approx(steps * per_step, rel=1e-12)
            assert tags["tokens"] == steps * batch * sum(lengths.values())
            assert steps >= MIN_STEPS
            point = ladder_point(tags["family"], tags["knob"], 1024, lengths,
                                 width=tags["width"])
            assert config == point.config and tags["params"] == point.non_embedding_params
    finally:
        gin.clear_config()
    # What was left out really had too few steps.
    for setup in SETUPS:
        for budget in BUDGETS:
            for knob in KNOBS:
                point = ladder_point(setup.family, knob, 1024, setup.feature_lengths,
                                     width=setup.width)
                steps = round(budget / (setup.batch_size * point.training_flops_per_example))
                name = f"{setup.family}-{budget:.3g}-k{knob}".replace("e+", "e")
                assert (name in planned) == (steps >= MIN_STEPS), name


def test_a_planned_trial_trains(tmp_path):
    # The embedded vocabulary's 8,192 rows: the trainer refuses fewer rows than it has ids.
    setup = dataclasses.replace(SETUPS[0], vocab_size=8192)
    point = ladder_point(setup.family, 1, setup.vocab_size, setup.feature_lengths)
    budget = 12 * setup.batch_size * point.training_flops_per_example  # twelve steps
    sweep = isoflop_sweep("tiny", [setup], [budget], [1], bindings={"train.eval_batches": 1})
    (trial,) = sweep.trials
    try:
        _parse_trial(sweep, trial, str(tmp_path / "run"))
        result = train()
    finally:
        gin.clear_config()
    assert result.step == 12 and result.validation_loss < result.initial_validation_loss
    assert "model_config.d_model = 64" in (tmp_path / "run" / "config.gin").read_text()
    # ladder_run.gin's schedule spans this run: 10 warmup steps, then a cosine from the peak to
    # 10% of it over the remaining 2, which is halfway down at the last step (step 11).
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    (last,) = [r for r in records if r["split"] == "train" and r["step"] == 12]
    peak, floor = 0.0316, 0.00316
    halfway = floor + (peak - floor) * (1 + math.cos(math.pi * (11 - 10) / (12 - 10))) / 2
    assert last["learning_rate"] == pytest.approx(halfway, rel=1e-5)


def test_a_plan_with_nothing_to_run_says_how_to_fix_it():
    with pytest.raises(ValueError, match="raise the budgets"):
        isoflop_sweep("empty", SETUPS[:1], [1e6], [1], min_steps=10)
