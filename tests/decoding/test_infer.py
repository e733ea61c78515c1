"""`t2t infer` and the Predictor, end to end on a run directory made by a few training steps."""

import dataclasses
import json

import gin
import jax
import numpy as np
import pytest

from t2t.configuration import parse_gin
from t2t.decoding.infer import main
from t2t.decoding.predictor import Predictor
from t2t.decoding.run_dir import TrainedRun
from t2t.models.sizes import get_size
from t2t.training.partitioning import make_partitioner
from t2t.training.trainer import train

TINY_RUN = [
    "TRAIN_STEPS=2", "BATCH_SIZE=8", "TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 8}",
    "model_config.d_model=32", "model_config.num_heads=2", "model_config.head_dim=16",
    "model_config.d_ff=64", "model_config.num_encoder_layers=1",
    "model_config.num_decoder_layers=1", "train.eval_batches=1",
    "span_corruption.mean_noise_span_length=2.0",  # random_spans_helper(32) fits 8 targets
]
TEXTS = ["The <extra_id_0> of the Union", "We hold these truths", ""]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("run")
    parse_gin([], TINY_RUN + [f"MODEL_DIR='{directory}'"])
    try:  # on one device: compiling for the 8 test devices would only cost time
        train(partitioner=make_partitioner(devices=jax.devices()[:1]))
    finally:
        gin.clear_config()
    return directory


def test_infer_writes_one_json_line_per_input_and_the_predictor_scores(run_dir, tmp_path):
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("\n".join(TEXTS[1:]) + "\n")
    out = tmp_path / "out.jsonl"
    assert main([str(run_dir), f"--input={TEXTS[0]}", f"--input_file={inputs}", f"--output={out}",
                 "--max_length=6", "--batch_size=2"]) == 0  # two batches, the last padded
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["input"] for line in lines] == TEXTS
    assert all(isinstance(line["output"], str) and line["output"] for line in lines)
    assert all(np.isfinite(line["score"]) and line["score"] < 0 for line in lines)

    # Rank classification picks, per input, the option that `score` finds likeliest.
    predictor = Predictor.from_run_dir(run_dir, batch_size=4)
    options = [["the State", "a dog"], ["self-evident", "of", "war"]]
    scores = predictor.score([TEXTS[0]] * 2 + [TEXTS[1]] * 3, options[0] + options[1])
    assert all(np.isfinite(scores)) and max(scores) < 0 and len(set(scores)) == 5
    assert predictor.classify(TEXTS[:2], options) == [int(np.argmax(scores[:2])),
                                                       int(np.argmax(scores[2:]))]


def test_infer_explains_a_missing_run_or_step(run_dir, tmp_path, capsys):
    assert main([str(tmp_path), "--input=x"]) == 2
    assert "not a t2t run directory" in capsys.readouterr().err
    assert main([str(run_dir), "--input=x", "--step=999"]) == 2
    assert "no checkpoint at step 999" in capsys.readouterr().err


@pytest.mark.parametrize("objective,eos", [("span_corruption", True), ("lm", False)])
def test_trained_run_reads_the_saved_gin_config(tmp_path, objective, eos):
    config = get_size("t5_1_1/tiny").replace(vocab_size=8192)
    (tmp_path / "model_config.json").write_text(json.dumps(dataclasses.asdict(config)))
    (tmp_path / "config.gin").write_text(
        "LENGTHS = {'inputs': 24, 'targets': 16}\nVOCABULARY = None\n"
        f"train.task_feature_lengths = %LENGTHS\ntrain.vocabulary = %VOCABULARY\n"
        f"train.vocabulary_extra_ids = 10\ntrain.objective = @{objective}()\n")
    run = TrainedRun.load(tmp_path)
    assert run.config == config
    assert run.feature_lengths == {"inputs": 24, "targets": 16}
    assert run.vocabulary.extra_ids == 10 and run.inputs_end_with_eos == eos


def test_the_predictor_truncates_inputs_to_the_runs_input_length(run_dir):
    predictor = Predictor.from_run_dir(run_dir)
    assert predictor.max_input_length == 32  # the run's TASK_FEATURE_LENGTHS
    long_text = " ".join(["We hold these truths to be self-evident"] * 20)
    ids = predictor.vocabulary.encode(long_text)
    assert len(ids) > 40
    # The kept prefix (31 tokens + EOS) scores as the long input does: training never saw more.
    prefix = predictor.vocabulary.decode(ids[:31])
    assert list(predictor.vocabulary.encode(prefix)) == list(ids[:31])
    full, cut = predictor.score([long_text, prefix], ["truths", "truths"])
    assert full == pytest.approx(cut, abs=1e-5)
    predictor.max_input_length = None
    assert predictor.score([long_text], ["truths"])[0] != pytest.approx(full, abs=1e-5)
