"""cross_entropy_with_z_loss: sums of the loss terms over real target tokens, against NumPy."""

import jax.numpy as jnp
import numpy as np
import pytest

from t2t.training.losses import cross_entropy_with_z_loss

B, L, V = 4, 6, 11


@pytest.fixture
def batch():
    """Random logits and targets, with the last two positions of each row as padding (weight 0)."""
    rng = np.random.default_rng(0)
    logits = (3.0 * rng.standard_normal((B, L, V))).astype(np.float32)
    targets = rng.integers(0, V, (B, L)).astype(np.int32)
    weights = np.ones((B, L), np.float32)
    weights[:, -2:] = 0.0
    return logits, targets, weights


def _numpy_terms(logits, targets, weights, z):
    """Reference: log Z by a max-shifted logsumexp, cross entropy = log Z − logit[target]."""
    logits = logits.astype(np.float64)
    m = logits.max(-1, keepdims=True)
    log_z = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    log_softmax = logits - log_z[..., None]
    nll = -np.take_along_axis(log_softmax, targets[..., None], -1)[..., 0]
    return {
        "cross_entropy": np.sum(nll * weights),
        "z_loss": z * np.sum(weights * log_z ** 2),
        "correct": np.sum((logits.argmax(-1) == targets) * weights),
        "weight": np.sum(weights),
    }


def _call(logits, targets, weights, z=1e-4):
    out = cross_entropy_with_z_loss(jnp.asarray(logits), jnp.asarray(targets),
                                    jnp.asarray(weights), z_loss=z)
    return {k: float(v) for k, v in out.items()}


@pytest.mark.parametrize("z", [0.0, 1e-4, 0.5])
def test_matches_numpy_reference(batch, z):
    """Every returned term equals a direct NumPy log-softmax/logsumexp computation."""
    got, want = _call(*batch, z=z), _numpy_terms(*batch, z)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_padding_positions_are_ignored(batch):
    """Changing logits or targets where the weight is 0 changes nothing."""
    logits, targets, weights = batch
    logits2, targets2 = logits.copy(), targets.copy()
    logits2[:, -2:] = 1e3 * np.random.default_rng(1).standard_normal((B, 2, V))
    targets2[:, -2:] = (targets2[:, -2:] + 1) % V
    assert _call(logits, targets, weights) == pytest.approx(_call(logits2, targets2, weights))
    assert _call(logits, targets, weights)["weight"] == B * (L - 2)


def test_z_loss_is_z_times_weighted_sum_of_squared_log_z(batch):
    """z_loss = z · Σ w · logZ², linear in z; logits shifted so log Z = 0 give zero z-loss."""
    logits, targets, weights = batch
    a, b = _call(logits, targets, weights, z=1e-4), _call(logits, targets, weights, z=2e-4)
    assert a["z_loss"] > 0
    assert b["z_loss"] == pytest.approx(2 * a["z_loss"], rel=1e-6)
    normalised = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # log Z = 0 everywhere
    assert _call(normalised, targets, weights, z=1.0)["z_loss"] == pytest.approx(0.0, abs=1e-8)
    # Cross entropy does not depend on the shift of the logits, unlike the z-loss.
    assert (_call(normalised, targets, weights)["cross_entropy"]
            == pytest.approx(a["cross_entropy"], rel=1e-5))


def test_correct_counts_weighted_argmax_hits(batch):
    """`correct` counts weighted positions whose argmax is the target: all when targets = argmax."""
    logits, _, weights = batch
    argmax = logits.argmax(-1).astype(np.int32)
    assert _call(logits, argmax, weights)["correct"] == weights.sum()
    wrong = (argmax + 1) % V
    assert _call(logits, wrong, weights)["correct"] == 0
    mixed = argmax.copy()
    mixed[0, 0] = wrong[0, 0]  # one real position now missed
    mixed[1, -1] = wrong[1, -1]  # a padding position: does not count either way
    assert _call(logits, mixed, weights)["correct"] == weights.sum() - 1


def test_sums_not_means_so_half_batches_add_up(batch):
    """The terms are sums: the two halves of a batch add up to the whole batch."""
    logits, targets, weights = batch
    whole = _call(logits, targets, weights)
    first = _call(logits[: B // 2], targets[: B // 2], weights[: B // 2])
    second = _call(logits[B // 2:], targets[B // 2:], weights[B // 2:])
    for key in whole:
        assert first[key] + second[key] == pytest.approx(whole[key], rel=1e-5), key


def test_bfloat16_logits_are_computed_in_float32(batch):
    """bf16 logits give the float32 result of the bf16-rounded values (no bf16 logsumexp)."""
    logits, targets, weights = batch
    rounded = np.asarray(jnp.asarray(logits, jnp.bfloat16).astype(jnp.float32))
    got = cross_entropy_with_z_loss(jnp.asarray(logits, jnp.bfloat16), jnp.asarray(targets),
                                    jnp.asarray(weights))
    assert got["cross_entropy"].dtype == jnp.float32
    np.testing.assert_allclose(float(got["cross_entropy"]),
                               _numpy_terms(rounded, targets, weights, 1e-4)["cross_entropy"],
                               rtol=1e-5)
