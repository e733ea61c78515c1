"""`t2t train-elmo` end to end (the experiment's gin file, a narrowed model, a loss that falls, a run
directory that `load_elmo` reads back), then the frozen-feature protocol of
t2t/evaluation/features.py on that run and on synthetic features."""

import json
import math
import re

import jax
import numpy as np
import pytest

from t2t.evaluation.features import elmo_features, evaluate_features, train_classifier
from t2t.evaluation.tasks import TOPICS
from t2t.training.elmo import load_elmo, main

NARROW = [
    "--gin.TRAIN_STEPS=16", "--gin.BATCH_SIZE=8", "--gin.SEQUENCE_LENGTH=32",  # 8 fake devices
    "--gin.elmo_config.d_model=32", "--gin.elmo_config.filters=((1, 8), (2, 8), (3, 16))",
    "--gin.elmo_config.num_highway=1", "--gin.elmo_config.dropout_rate=0.0",
    "--gin.warmup_cosine_schedule.warmup_steps=4", "--gin.warmup_cosine_schedule.peak=1e-2",
    "--gin.train_elmo.log_every=4", "--gin.train_elmo.eval_every=16",
    "--gin.train_elmo.eval_batches=2", "--gin.train_elmo.checkpoint_every=16",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("elmo")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("T2T_CACHE_DIR", str(tmp_path / "cache"))
        assert main(["--gin_file=experiments/elmo_tiny_lm.gin", *NARROW,
                     f"--gin.MODEL_DIR='{tmp_path / 'run'}'"]) == 0
    return tmp_path / "run"


def test_tiny_run_learns_both_directions(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "validation"]
    assert [r["step"] for r in train] == [4, 8, 12, 16]
    for direction in ("forward", "backward"):
        losses = [r[f"{direction}_loss"] for r in train]
        assert all(math.isfinite(x) for x in losses)
        assert losses[-1] < losses[0] - 0.5, (direction, losses)
    # From about log(8192) = 9.0 at the start to well under it.
    assert [r["step"] for r in valid] == [0, 16]
    assert valid[-1]["loss"] < valid[0]["loss"] - 1.0
    assert np.isclose(valid[-1]["loss"], (valid[-1]["forward_loss"] + valid[-1]["backward_loss"]) / 2)

    config, vocab, params = load_elmo(run_dir)
    assert config.d_model == 32 and config.vocab_size == vocab.padded_vocab_size
    assert sum(x.size for x in jax.tree.leaves(params)) > 0


def test_resuming_with_another_model_is_refused(run_dir, capsys):
    """The run's elmo_run.json guards its checkpoints: a changed width is named, nothing runs."""
    before = (run_dir / "elmo_run.json").read_text()
    code = main(["--gin_file=experiments/elmo_tiny_lm.gin", *NARROW,
                 "--gin.elmo_config.d_model=48", f"--gin.MODEL_DIR='{run_dir}'"])
    assert code == 2
    assert "Cannot resume" in capsys.readouterr().err
    assert (run_dir / "elmo_run.json").read_text() == before


def test_features_of_a_text_do_not_depend_on_its_batch(run_dir):
    features = elmo_features(run_dir, length=16, batch_size=4)
    texts = ["The president spoke to Congress.", "A", "Rivers run to the sea " * 5,
             "Erbium is a chemical element.", "One more text."]
    together = features(texts)
    assert together.shape == (5, 3, 64)  # token layer + 2 LSTM layers, each [forward; backward]
    for i, text in enumerate(texts):
        np.testing.assert_allclose(features([text])[0], together[i], rtol=1e-4, atol=1e-5)


def test_classifier_learns_which_layer_carries_the_label():
    """Synthetic pooled features: only layer 2 encodes the label, so the classifier must find it
    and ScalarMix must weight that layer most."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 16))

    def split(n):
        y = rng.integers(0, 4, n)
        x = rng.normal(size=(n, 3, 16)).astype(np.float32)
        x[:, 2] = centers[y] + 0.3 * rng.normal(size=(n, 16))
        return x, y

    (x, y), valid, (test_x, test_y) = split(300), split(100), split(100)
    predict, info = train_classifier((x, y), valid, num_labels=4, steps=60, eval_every=10)
    assert np.mean(predict(test_x) == test_y) > 0.9
    assert int(np.argmax(info["mix_weights"])) == 2
    assert np.isclose(sum(info["mix_weights"]), 1.0)


def test_evaluate_features_on_a_tiny_topic_suite(tmp_path):
    """The task plumbing: splits, label ids, the majority baseline, with features that reveal the
    label (so a working protocol must score perfectly)."""
    suite = tmp_path / "wiki_topic"
    suite.mkdir()
    for split, n in (("train", 40), ("validation", 12), ("test", 12)):
        labels = [TOPICS[i % 3] for i in range(n)]
        (suite / f"{split}.jsonl").write_text("".join(
            json.dumps({"extract": f"text {i}", "topic": t}) + "\n" for i, t in enumerate(labels)))
    index = {name: i for i, name in enumerate(TOPICS)}
    reveal = lambda texts: np.stack([np.eye(len(TOPICS))[[index[TOPICS[int(t.split()[-1]) % 3]]]]
                                     for t in texts]).astype(np.float32)
    result = evaluate_features(reveal, "wiki_topic", data_dir=str(tmp_path), steps=40, eval_every=10)
    assert result["test_accuracy"] == 1.0
    assert result["train_examples"] == 40 and result["test_examples"] == 12
    assert np.isclose(result["majority_baseline"], 4 / 12)


def test_a_diverging_run_stops_naming_the_step(tmp_path, monkeypatch, capsys):
    """The shared loop's guard: an infinite peak learning rate makes the first update non-finite
    (0 x inf at the warmup's start); the run stops at the first logging step and says so."""
    monkeypatch.setenv("T2T_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["--gin_file=experiments/elmo_tiny_lm.gin", *NARROW,
                 "--gin.warmup_cosine_schedule.peak=1e999",
                 f"--gin.MODEL_DIR='{tmp_path / 'run'}'"])
    assert code == 1
    assert re.search(r"the update norm is (nan|inf) at step 1\b", capsys.readouterr().err)
