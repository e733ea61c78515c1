"""The span-QA head's loss: a softmax over each packed example's own positions (hand case and NumPy
reference), and the EncoderOnly head that feeds it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t2t.models.families import EncoderOnly
from t2t.models.sizes import get_size
from t2t.training.losses import model_loss, per_token_metrics


def test_hand_case_two_packed_examples():
    """Row [a b c | d e | pad]: the second example's answer is e, so its start loss is
    log(exp(d) + exp(e)) - e, whatever the other example's scores."""
    scores = np.array([[0.5, 2.0, -1.0, 1.0, 3.0, 9.0]], np.float32)
    batch = {
        "encoder_segment_ids": np.array([[1, 1, 1, 2, 2, 0]]),
        "span_start_positions": np.array([[1, 0, 0, 1, 0, 0]]),  # b, then e
        "span_end_positions": np.array([[2, 0, 0, 0, 0, 0]]),  # c, then d
        "span_loss_weights": np.array([[1, 0, 0, 1, 0, 0]]),
    }
    outputs = {"span_start_logits": jnp.asarray(scores), "span_end_logits": jnp.asarray(scores)}
    loss, terms = model_loss(outputs, batch, z_loss=0.0)
    lse_abc, lse_de = np.log(np.exp([0.5, 2.0, -1.0]).sum()), np.log(np.exp([1.0, 3.0]).sum())
    start = (lse_abc - 2.0) + (lse_de - 3.0)
    end = (lse_abc + 1.0) + (lse_de - 1.0)
    assert float(terms["cross_entropy"]) == pytest.approx(start, rel=1e-6)  # start is the primary head
    assert float(terms["span_end_cross_entropy"]) == pytest.approx(end, rel=1e-6)
    assert float(loss) == pytest.approx((start + end) / 2, rel=1e-6)  # each head's mean over 2 examples
    metrics = per_token_metrics({k: float(v) for k, v in terms.items()})
    assert metrics["accuracy"] == 1.0 and metrics["span_end_accuracy"] == 0.0  # b and e are the maxima


def test_matches_a_per_example_numpy_softmax():
    rng = np.random.default_rng(0)
    b, l = 3, 16
    segments = np.zeros((b, l), np.int32)
    examples = []  # (row, first column, length)
    for row in range(b):
        column, seg = 0, 1
        while column < l - 2:
            n = int(rng.integers(1, 6))
            n = min(n, l - column)
            segments[row, column:column + n] = seg
            examples.append((row, column, n))
            column, seg = column + n, seg + 1
    scores = rng.normal(size=(2, b, l)).astype(np.float32) * 3
    batch = {k: np.zeros((b, l), np.int32) for k in ("span_start_positions", "span_end_positions", "span_loss_weights")}
    batch["encoder_segment_ids"] = segments
    want = [0.0, 0.0]
    for row, first, n in examples:
        batch["span_loss_weights"][row, first] = 1
        for k, name in enumerate(("span_start_positions", "span_end_positions")):
            label = int(rng.integers(n))
            batch[name][row, first] = label
            x = scores[k, row, first:first + n].astype(np.float64)
            want[k] += np.log(np.exp(x).sum()) - x[label]
    _, terms = model_loss({"span_start_logits": jnp.asarray(scores[0]),
                           "span_end_logits": jnp.asarray(scores[1])}, batch, z_loss=0.0)
    assert float(terms["cross_entropy"]) == pytest.approx(want[0], rel=1e-5)
    assert float(terms["span_end_cross_entropy"]) == pytest.approx(want[1], rel=1e-5)
    assert float(terms["weight"]) == len(examples)


def test_encoder_span_head_outputs_and_gradient_stays_in_the_example():
    """The head gives [b, l] start/end scores; the loss of example 2 has no gradient from example 1's
    positions (the mask really cuts the segments apart)."""
    config = get_size("bert/tiny").replace(vocab_size=64, d_model=32, num_heads=2, head_dim=16, d_ff=64,
                                            encoder_heads=("span_qa",))
    model = EncoderOnly(config)
    batch = {"encoder_input_tokens": jnp.array([[5, 7, 9, 5, 8, 0]]),
             "encoder_segment_ids": jnp.array([[1, 1, 1, 2, 2, 0]]),
             "encoder_positions": jnp.array([[0, 1, 2, 0, 1, 0]]),
             "encoder_token_type_ids": jnp.zeros((1, 6), jnp.int32),
             "span_start_positions": jnp.array([[0, 0, 0, 1, 0, 0]]),
             "span_end_positions": jnp.array([[0, 0, 0, 1, 0, 0]]),
             "span_loss_weights": jnp.array([[0, 0, 0, 1, 0, 0]])}
    params = jax.jit(model.init)(jax.random.key(0), batch)["params"]
    outputs = jax.jit(model.apply)({"params": params}, batch)
    assert set(outputs) == {"span_start_logits", "span_end_logits"}
    assert outputs["span_start_logits"].shape == (1, 6)
    assert "span_head" in params

    def loss_of(start_scores):
        return model_loss({"span_start_logits": start_scores, "span_end_logits": outputs["span_end_logits"]},
                          batch, z_loss=1e-4)[0]

    grad = jax.jit(jax.grad(loss_of))(outputs["span_start_logits"])
    assert np.all(np.asarray(grad[0, :3]) == 0) and np.all(np.asarray(grad[0, 5:]) == 0)
    assert np.all(np.asarray(grad[0, 3:5]) != 0)
