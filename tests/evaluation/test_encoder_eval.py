"""Encoder fine-tuning end to end (the real topic.gin on a tiny synthetic file: the loss falls, and
`t2t eval-encoder` scores the run), and the evaluator's predictions from oracle logits."""

import json
import math
from pathlib import Path

import gin
import numpy as np
import pytest

from t2t.configuration import parse_gin
from t2t.data.objectives.encoder_tasks import SequenceClassification, SpanQA, TokenTagging
from t2t.data.vocab import default_vocabulary
from t2t.evaluation import encoder_eval
from t2t.training.trainer import train

TOPICS = ("Arts", "Mathematics")
KEYWORDS = {"Arts": "painting music theatre poem", "Mathematics": "theorem number proof algebra"}
FILLER = "the of and a in is was with for on".split()


def _topic_file(directory: Path) -> str:
    """Texts of filler words plus two keywords of their topic: learnable in a few steps."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("validation", 16)):
        with open(directory / f"{split}.jsonl", "w") as f:
            for i in range(n):
                topic = TOPICS[i % 2]
                words = list(rng.choice(FILLER, 8)) + list(rng.choice(KEYWORDS[topic].split(), 2))
                rng.shuffle(words)
                f.write(json.dumps({"text": " ".join(words), "label": topic}) + "\n")
    return str(directory / "{split}.jsonl")


def test_bert_finetunes_on_topic_gin_and_eval_encoder_scores_it(tmp_path, monkeypatch):
    monkeypatch.setenv("T2T_CACHE_DIR", str(tmp_path / "cache"))  # no token cache from other runs
    run = tmp_path / "run"
    parse_gin(["experiments/bert_tasks/topic.gin"],
              [f"DATA_SOURCE='{_topic_file(tmp_path)}'", "INITIAL_CHECKPOINT_PATH=None", f"MODEL_DIR='{run}'",
               "TRAIN_STEPS=24", "BATCH_SIZE=8", "TASK_FEATURE_LENGTHS={'inputs': 16}", "LEARNING_RATE=3e-3",
               "warmup_cosine_schedule.warmup_steps=2", "model_config.d_model=32", "model_config.num_heads=2",
               "model_config.head_dim=16", "model_config.d_ff=64", "train.log_every=4", "train.eval_every=24",
               "train.eval_batches=2", "train.checkpoint_every=24"])
    try:
        result = train()
    finally:
        gin.clear_config()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in lines if m["split"] == "train"]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert result.validation_loss < result.initial_validation_loss

    assert encoder_eval.main(["--run_dir", str(run)]) == 0
    scores = json.loads((run / "eval_metrics.jsonl").read_text().splitlines()[-1])
    assert scores["split"] == f"eval:{tmp_path.name}" and scores["step"] == 24
    assert scores["num_examples"] == 16 and 0 <= scores["accuracy"] <= 100 and "mean_11class_f1" in scores


class OraclePredictor(encoder_eval.EncoderPredictor):
    """The real example path, with logits that put all mass on the labels (no model)."""

    def __init__(self, objective, length):
        from t2t.decoding.run_dir import TrainedRun
        from t2t.models.config import TransformerConfig

        config = TransformerConfig(family="encoder_only", encoder_heads=(objective.head,))
        run = TrainedRun(Path("."), config, default_vocabulary(), {"inputs": length}, True)
        self.run, self.objective, self.batch_size = run, objective, 4
        self.info = encoder_eval.VocabInfo.from_vocabulary(run.vocabulary)
        self.converter = encoder_eval.EncoderFeatureConverter(run.feature_lengths, pack=False,
                                                              heads=(objective.head,))

    def predict(self, examples):
        features = self.converter(examples)
        onehot = lambda labels, n: np.eye(n)[labels] * 10.0
        outputs = {"classification_logits": onehot(features.get("classification_labels", 0 * features[
                       "encoder_input_tokens"]), max(2, len(self.objective.labels))),
                   "token_logits": onehot(features.get("token_labels", 0 * features["encoder_input_tokens"]), 3)}
        if "span_loss_weights" in features:
            length = features["encoder_input_tokens"].shape[1]
            outputs["span_start_logits"] = onehot(features["span_start_positions"][:, 0], length)
            outputs["span_end_logits"] = onehot(features["span_end_positions"][:, 0], length)
        return features, outputs


def test_oracle_logits_score_perfectly_and_truncated_answers_count_as_misses():
    records = [{"question": "Who sat?", "context": "the old cat sat down", "answer": "old cat", "answer_start": "4",
                "answers": ["the old cat", "cat"]},
               {"question": "Where?", "context": "in a box under the table", "answer": "the table",
                "answer_start": "15"}]
    assert encoder_eval.evaluate_encoder(OraclePredictor(SpanQA(), 64), records) == {
        "em": 100.0, "f1": 100.0, "num_examples": 2}
    # The second context is 6 tokens: with room for 5, "the table" is cut off, labelled [CLS], and missed.
    question = len(default_vocabulary().encode("Where?"))
    assert len(default_vocabulary().encode(records[1]["context"])) == 6
    for room, em in ((6, 100.0), (5, 0.0)):
        scores = encoder_eval.evaluate_encoder(OraclePredictor(SpanQA(), question + 3 + room), records[1:])
        assert scores["em"] == em

    tagging = [{"words": "a cat , a dog", "tags": "new new punct repeat new"}]
    scores = encoder_eval.evaluate_encoder(OraclePredictor(TokenTagging(labels=["punct", "new", "repeat"]), 32),
                                           tagging)
    assert scores["accuracy"] == 100.0 and scores["num_words"] == 5

    topics = [{"text": "a poem", "label": "Arts"}, {"text": "a proof", "label": "Mathematics"}]
    scores = encoder_eval.evaluate_encoder(OraclePredictor(SequenceClassification(labels=TOPICS), 16), topics)
    assert scores["accuracy"] == 100.0 and scores["f1"] == 100.0


def test_best_span_is_the_brute_force_argmax():
    rng = np.random.default_rng(0)
    for _ in range(20):
        start, end = rng.normal(size=12), rng.normal(size=12)
        lo, hi, longest = 2, 11, 3
        candidates = [(start[i] + end[j], (i, j)) for i in range(lo, hi) for j in range(i, min(hi, i + longest))]
        assert encoder_eval.best_span(start, end, lo, hi, longest) == max(candidates)[1]


def test_a_text_to_text_run_is_a_clear_error(tmp_path):
    (tmp_path / "config.gin").write_text("train.objective = @supervised()\n")
    with pytest.raises(ValueError, match="not an encoder task"):
        encoder_eval.load_objective(tmp_path)
