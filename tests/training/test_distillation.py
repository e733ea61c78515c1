"""Knowledge distillation: the student's init from every other teacher layer, the three loss terms
against numpy references, and short end-to-end runs of an encoder and a decoder pair."""

from __future__ import annotations

import json
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t2t.configuration import parse_gin
from t2t.data.vocab import default_vocabulary
from t2t.interop.checkpoint import save_params
from t2t.models.families import build_model, dummy_batch
from t2t.models.sizes import get_size
from t2t.training import distillation
from t2t.training.losses import model_loss
from t2t.training.distillation import (apply_with_hidden, check_compatible, cosine_loss,
                                       soft_target_loss, student_from_teacher)

NARROW = dict(d_model=16, num_heads=2, head_dim=8, d_ff=32, vocab_size=40)


def _config(size: str, layers: int, scan: bool, **extra):
    return get_size(size).replace(num_encoder_layers=layers, num_decoder_layers=layers,
                                  scan_layers=scan, **{**NARROW, **extra})


def _init(config, seed: int, scale: float = 1.0):
    """A parameter tree of `config`'s model, filled with distinct random numbers of std `scale`
    (shapes come from tracing the init, which is much faster than running or compiling it)."""
    model = build_model(config)
    shapes = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0),
                                                        dummy_batch(config))["params"]))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: scale * rng.normal(size=s.shape).astype(np.float32), shapes)


def _layer(params, stack: str, i: int):
    """Layer i of a stack, read straight from either layout."""
    if "layers" in params[stack]:
        return jax.tree.map(lambda x: x[i], params[stack]["layers"]["block"])
    return params[stack][f"layers_{i}"]


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.parametrize("size", ["t5_1_1/tiny", "bert/tiny"])
@pytest.mark.parametrize("teacher_scan,student_scan", [(False, False), (True, True), (True, False)])
def test_student_takes_every_other_teacher_layer(size, teacher_scan, student_scan):
    teacher = _init(_config(size, 4, teacher_scan), seed=0)
    fresh = _init(_config(size, 2, student_scan), seed=1)
    student, copied, kept = student_from_teacher(teacher, fresh, student_scan)

    assert kept == []
    assert jax.tree.structure(student) == jax.tree.structure(fresh)  # the student's own layout
    stacks = [s for s in ("encoder", "decoder") if s in fresh]
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), teacher)
    assert distillation.stack_depths(shapes) == {(s,): 4 for s in stacks}
    for stack in stacks:
        for i, source in enumerate([0, 2]):
            _assert_trees_equal(_layer(student, stack, i), _layer(teacher, stack, source))
        for name in student[stack]:  # norms, relative position tables
            if not name.startswith("layers"):
                _assert_trees_equal(student[stack][name], teacher[stack][name])
    for name in student:  # embeddings and heads
        if name not in stacks:
            _assert_trees_equal(student[name], teacher[name])


def test_chosen_teacher_layers_and_heads_the_teacher_lacks():
    teacher = _init(_config("bert/tiny", 3, False, encoder_heads=("mlm",)), seed=0)
    fresh = _init(_config("bert/tiny", 2, False), seed=1)  # also has NSP: pooler + nsp_head
    student, _, kept = student_from_teacher(teacher, fresh, False, teacher_layers=[2, 1])
    _assert_trees_equal(student["encoder"]["layers_0"], teacher["encoder"]["layers_2"])
    _assert_trees_equal(student["encoder"]["layers_1"], teacher["encoder"]["layers_1"])
    assert sorted(kept) == ["nsp_head/bias", "nsp_head/kernel", "pooler/dense/bias",
                            "pooler/dense/kernel"]
    _assert_trees_equal(student["nsp_head"], fresh["nsp_head"])
    with pytest.raises(ValueError, match=r"teacher_layers=\[0, 3\].*0\.\.2"):
        student_from_teacher(teacher, fresh, False, teacher_layers=[0, 3])


def test_a_student_of_another_width_is_refused_with_the_fields_to_fix():
    teacher = _config("bert/tiny", 4, False)
    with pytest.raises(ValueError, match=r"d_model: teacher 16, student 32.*d_ff"):
        check_compatible(teacher, teacher.replace(d_model=32, d_ff=64, num_encoder_layers=2))
    with pytest.raises(ValueError, match="vocab_size"):  # logits must be comparable regardless
        check_compatible(teacher, teacher.replace(d_model=32, vocab_size=80), same_width=False)
    check_compatible(teacher, teacher.replace(d_model=32), same_width=False)
    # A shape difference no width field names (here: learned positions) names the tensor.
    with pytest.raises(ValueError, match="embedder/positions/embedding"):
        student_from_teacher(_init(teacher, 0), _init(teacher.replace(max_length=64), 1), False)


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_soft_target_loss_matches_numpy_and_vanishes_at_the_teacher():
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(2, 2, 5, 7)) * 3
    weights = (rng.random((2, 5)) > 0.3).astype(np.float32)
    for temperature in (1.0, 2.0, 4.0):
        t_logp = _np_log_softmax(teacher / temperature)
        s_logp = _np_log_softmax(student / temperature)
        expected = temperature**2 * np.sum(
            weights * np.sum(np.exp(t_logp) * (t_logp - s_logp), -1))
        got = soft_target_loss(jnp.asarray(student), jnp.asarray(teacher), jnp.asarray(weights),
                               temperature)
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        value, grad = jax.value_and_grad(soft_target_loss)(
            jnp.asarray(teacher), jnp.asarray(teacher), jnp.asarray(weights), temperature)
        assert abs(value) < 1e-5 and np.abs(grad).max() < 1e-6
    # Padding (weight 0) contributes nothing, however wrong the student is there.
    pad = np.zeros((2, 5), np.float32)
    assert soft_target_loss(jnp.asarray(student), jnp.asarray(teacher), jnp.asarray(pad), 2.0) == 0


def test_cosine_loss_matches_numpy_and_ignores_scale_and_padding():
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(2, 3, 4, 8))
    weights = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]], np.float32)
    cos = np.sum(s * t, -1) / (np.linalg.norm(s, axis=-1) * np.linalg.norm(t, axis=-1))
    np.testing.assert_allclose(cosine_loss(s, t, weights), np.sum(weights * (1 - cos)), rtol=1e-5)
    np.testing.assert_allclose(cosine_loss(3.0 * t, t, weights), 0.0, atol=1e-5)
    np.testing.assert_allclose(cosine_loss(-t, t, weights), 2 * weights.sum(), rtol=1e-5)


def test_distillation_loss_combines_per_token_terms_and_is_the_usual_loss_at_the_teacher():
    rng = np.random.default_rng(2)
    batch = {"decoder_target_tokens": rng.integers(0, 7, (2, 5)),
             "decoder_loss_weights": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32),
             "decoder_segment_ids": np.array([[1, 1, 2, 2, 0], [1, 1, 1, 1, 1]])}
    student = ({"logits": jnp.asarray(rng.normal(size=(2, 5, 7)))}, rng.normal(size=(2, 5, 4)))
    teacher = ({"logits": jnp.asarray(rng.normal(size=(2, 5, 7)))}, rng.normal(size=(2, 5, 4)))
    loss = distillation.DistillationLoss(temperature=2.0, alpha_soft=5.0, alpha_hard=2.0,
                                         alpha_cos=1.0, z_loss=0.0)
    hard, _ = model_loss(student[0], batch, z_loss=0.0)
    at_teacher, terms = loss(student, student, batch, "decoder_segment_ids")
    np.testing.assert_allclose(at_teacher, 2.0 * hard, rtol=1e-6)
    assert abs(terms["soft_loss"]) < 1e-6 and abs(terms["cosine_loss"]) < 1e-6
    value, terms = loss(student, teacher, batch, "decoder_segment_ids")
    real = (batch["decoder_segment_ids"] > 0).astype(np.float32)
    soft = soft_target_loss(student[0]["logits"], teacher[0]["logits"],
                            batch["decoder_loss_weights"], 2.0) / 8  # 8 target tokens
    cos = cosine_loss(student[1], teacher[1], real) / 9  # 9 real tokens
    np.testing.assert_allclose(value, 5.0 * soft + 2.0 * hard + 1.0 * cos, rtol=1e-5)


def test_captured_hidden_states_are_what_the_tied_output_layer_reads():
    config = _config("gpt2/tiny", 1, False)  # logits tied to the embedding, without rescaling
    params = _init(config, 0)
    outputs, hidden = jax.jit(lambda p, b: apply_with_hidden(build_model(config), p, b))(
        params, dummy_batch(config, 2, 8))
    embedding = params["embedder"]["tokens"]["embedding"]
    np.testing.assert_allclose(outputs["logits"], hidden @ embedding.T, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# End to end: a teacher checkpoint, then `t2t distill` on a tiny corpus.

WORDS = "the a river town hill north south old new boat bridge market runs sleeps sees".split()
TINY_MODEL = ["model_config.d_model=32", "model_config.num_heads=2", "model_config.head_dim=16",
              "model_config.d_ff=64"]


def _corpus(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    for split, docs in (("train", 200), ("validation", 20)):
        with open(tmp_path / f"{split}.jsonl", "w") as f:
            for _ in range(docs):
                # Repeated phrases, so that a few steps visibly lower the loss.
                phrase = " ".join(rng.choice(WORDS, 4))
                f.write(json.dumps({"text": ". ".join([phrase] * 6)}) + "\n")
    return str(tmp_path / "{split}.jsonl")


@pytest.mark.parametrize("student_file,stack", [("bert_6l_distilled.gin", "encoder"),
                                                 ("gpt_6l_distilled.gin", "decoder")])
def test_distill_end_to_end_lowers_the_loss(tmp_path, student_file, stack):
    num_layers = f"model_config.num_{stack}_layers"
    common = [*TINY_MODEL, f"DATA_SOURCE='{_corpus(tmp_path)}'", f"train.cache_dir='{tmp_path}'",
              "BATCH_SIZE=8", "TASK_FEATURE_LENGTHS={'%s': 32}" % (
                  "inputs" if stack == "encoder" else "targets"),
              "train.log_every=5", "train.eval_batches=1", "train.eval_every=15",
              "rsqrt_schedule.warmup_steps=100"]
    gin_file = f"gin_configs/experiments/distillation/{student_file}"
    # The teacher: the student's model at twice the depth, with small random weights, saved.
    teacher_dir = tmp_path / "teacher"
    parse_gin([gin_file], common + [f"{num_layers}=2", "TEACHER='unused'"])
    teacher_cfg = distillation.train_settings()["model"].replace(
        vocab_size=default_vocabulary().padded_vocab_size)
    save_params(teacher_dir, _init(teacher_cfg, 0, scale=0.05), teacher_cfg)

    run = tmp_path / "student"
    argv = [f"--gin_file={gin_file}"] + [f"--gin.{b}" for b in common + [
        f"{num_layers}=1", "TRAIN_STEPS=15", f"TEACHER='{teacher_dir}'", f"MODEL_DIR='{run}'"]]
    assert distillation.main(argv) == 0

    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    train = [l for l in lines if l["split"] == "train"]
    valid = [l for l in lines if l["split"] == "validation"]
    assert [l["step"] for l in train] == [5, 10, 15]
    assert train[-1]["distill_loss"] < train[0]["distill_loss"]
    assert valid[-1]["loss"] < valid[0]["loss"]
    assert json.loads((run / "model_config.json").read_text())[num_layers.split(".")[1]] == 1


def test_main_reports_a_missing_teacher(tmp_path, capsys):
    argv = ["--gin_file=gin_configs/experiments/distillation/gpt_6l_distilled.gin",
            f"--gin.TEACHER='{tmp_path / 'nowhere'}'", f"--gin.MODEL_DIR='{tmp_path / 'run'}'"]
    assert distillation.main(argv) == 2
    assert "model_config.json" in capsys.readouterr().err
