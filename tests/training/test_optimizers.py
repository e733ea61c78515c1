"""Schedules and optimizers: T5's rsqrt schedule and Adafactor settings, AdamW clipping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from t2t.training.optimizers import adafactor, adamw, rsqrt_schedule, warmup_cosine_schedule


def _lr(schedule, step):
    return float(schedule(step))


def _rms(tree):
    leaves = jax.tree.leaves(tree)
    return float(np.sqrt(sum(np.sum(np.square(x)) for x in leaves) / sum(x.size for x in leaves)))


def _states_of_type(state, cls):
    return [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, cls))
            if isinstance(s, cls)]


# ---------------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("step", [0, 1, 100, 5000, 9999, 10000])
def test_rsqrt_is_constant_during_warmup(step):
    """T5's defaults (base 1.0, 10k warmup): exactly 1/sqrt(10000) = 0.01 for steps 0..10000."""
    assert _lr(rsqrt_schedule(), step) == pytest.approx(0.01, rel=1e-6)


@pytest.mark.parametrize("step, lr", [(10001, 1 / np.sqrt(10001)), (40000, 0.005),
                                      (90000, 1 / 300), (1_000_000, 0.001)])
def test_rsqrt_decays_as_inverse_sqrt_after_warmup(step, lr):
    """After the warmup, lr = base/sqrt(step), e.g. 0.005 at step 40k."""
    assert _lr(rsqrt_schedule(), step) == pytest.approx(lr, rel=1e-6)
    assert _lr(rsqrt_schedule(base=2.0), step) == pytest.approx(2 * lr, rel=1e-6)


def test_rsqrt_linear_warmup_ramps_to_the_constant():
    """linear_warmup starts near 0, grows linearly to 0.01 at the end of the warmup, then decays
    exactly like the plain schedule."""
    ramp, plain = rsqrt_schedule(linear_warmup=True), rsqrt_schedule()
    assert _lr(ramp, 0) < 1e-5
    steps = [0, 1000, 2500, 5000, 9999]
    values = [_lr(ramp, s) for s in steps]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert _lr(ramp, 4999) == pytest.approx(0.005, rel=1e-4)
    assert _lr(ramp, 9999) == pytest.approx(0.01, rel=1e-6)
    for step in (10000, 20000, 40000):
        assert _lr(ramp, step) == pytest.approx(_lr(plain, step), rel=1e-6)


def test_rsqrt_accepts_traced_steps():
    """The schedule works inside jit (optax evaluates it on a traced step count)."""
    values = jax.jit(jax.vmap(rsqrt_schedule()))(jnp.array([0, 10000, 40000]))
    np.testing.assert_allclose(values, [0.01, 0.01, 0.005], rtol=1e-6)


def test_warmup_cosine_endpoints_and_midpoint():
    """0 at step 0, the peak at the end of warmup, final_fraction·peak at decay_steps (and after),
    and halfway between peak and final at the middle of the cosine."""
    sched = warmup_cosine_schedule(peak=1e-3, warmup_steps=100, decay_steps=1100,
                                   final_fraction=0.1)
    assert _lr(sched, 0) == 0.0
    assert _lr(sched, 50) == pytest.approx(5e-4, rel=1e-5)
    assert _lr(sched, 100) == pytest.approx(1e-3, rel=1e-6)
    assert _lr(sched, 600) == pytest.approx((1e-3 + 1e-4) / 2, rel=1e-5)
    assert _lr(sched, 1100) == pytest.approx(1e-4, rel=1e-5)
    assert _lr(sched, 5000) == pytest.approx(1e-4, rel=1e-5)


# ---------------------------------------------------------------------------------- Adafactor


def _quadratic_descent(tx, params, steps):
    """Minimise 0.5·Σ p² with `tx`; returns (initial loss, final loss)."""
    loss = lambda p: 0.5 * sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(p))

    @jax.jit
    def step(p, s):
        updates, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, updates), s

    state = tx.init(params)
    initial = float(loss(params))
    for _ in range(steps):
        params, state = step(params, state)
    return initial, float(loss(params))


@pytest.fixture
def params():
    rng = np.random.default_rng(0)
    return {"kernel": jnp.asarray(rng.standard_normal((128, 256)), jnp.float32),
            "bias": jnp.asarray(rng.standard_normal((16,)), jnp.float32)}


def test_adafactor_reduces_a_quadratic(params):
    """Adafactor with the rsqrt schedule (here lr 0.1) steadily shrinks 0.5·Σp²."""
    initial, final = _quadratic_descent(adafactor(rsqrt_schedule(base=1.0, warmup_steps=100)),
                                        params, 30)
    assert final < 0.3 * initial


def test_adafactor_factors_large_2d_second_moments(params):
    """A 2D parameter with both dims ≥ 128 keeps row and column statistics (128 + 256 numbers)
    instead of a full second moment; small or 1D parameters keep the full one."""
    params = {**params, "narrow": jnp.ones((64, 256))}
    (state,) = _states_of_type(adafactor(0.01).init(params), optax.FactoredState)
    assert state.v_row["kernel"].shape == (128,) and state.v_col["kernel"].shape == (256,)
    assert state.v["kernel"].size == 1
    assert state.v["narrow"].shape == (64, 256) and state.v_row["narrow"].size == 1
    assert state.v["bias"].shape == (16,)
    unfactored = _states_of_type(adafactor(0.01, factored=False).init(params),
                                 optax.FactoredState)[0]
    assert unfactored.v["kernel"].shape == (128, 256)


def test_adafactor_defaults_are_t5s(params):
    """The defaults equal optax.adafactor with T5's settings: decay_rate 0.8, clipping 1.0,
    parameter scaling, factored (over two steps with different gradients)."""
    reference = optax.adafactor(0.01, decay_rate=0.8, clipping_threshold=1.0,
                                multiply_by_parameter_scale=True, factored=True)
    ours = adafactor(0.01)
    grads = [jax.tree.map(lambda x, k=k: jnp.sin(x * (k + 1)), params) for k in range(2)]
    s_ref, s_ours = reference.init(params), ours.init(params)
    for g in grads:
        u_ref, s_ref = reference.update(g, s_ref, params)
        u_ours, s_ours = ours.update(g, s_ours, params)
        jax.tree.map(np.testing.assert_array_equal, u_ours, u_ref)


def test_adafactor_second_moment_decays_as_1_minus_t_to_the_minus_0_8():
    """T5's decay_rate 0.8: at step t the second moment is β·v + (1−β)·g² with
    β = 1 − t^−0.8 (so step 1 takes g² as is)."""
    p = {"w": jnp.ones((4, 4))}
    g1, g2 = {"w": jnp.full((4, 4), 2.0)}, {"w": jnp.full((4, 4), 3.0)}
    tx = adafactor(0.01)
    state = tx.init(p)
    _, state = tx.update(g1, state, p)
    _, state = tx.update(g2, state, p)
    (fs,) = _states_of_type(state, optax.FactoredState)
    beta = 1 - 2.0 ** -0.8
    np.testing.assert_allclose(fs.v["w"], beta * 4.0 + (1 - beta) * 9.0, rtol=1e-5)


@pytest.mark.parametrize("threshold", [1.0, 0.5])
def test_adafactor_update_clipping_bounds_update_rms(threshold):
    """A gradient that jumps by 10^4 gives a raw normalised update of RMS > 1; clipping caps its
    RMS at `clipping_threshold` × lr × RMS(param); without clipping it passes."""
    p = {"w": jnp.full((8, 8), 2.0)}  # RMS 2
    small, large = {"w": jnp.full((8, 8), 1e-4)}, {"w": jnp.full((8, 8), 1.0)}
    lr = 0.01

    def second_update(tx):
        state = tx.init(p)
        _, state = tx.update(small, state, p)
        update, _ = tx.update(large, state, p)
        return _rms(update)

    bound = threshold * lr * 2.0
    assert second_update(adafactor(lr, clipping_threshold=threshold)) == pytest.approx(bound,
                                                                                      rel=1e-4)
    assert second_update(adafactor(lr, clipping_threshold=None)) > 1.2 * lr * 2.0


# ---------------------------------------------------------------------------------- AdamW


@pytest.mark.parametrize("clip, grad_scale, expected_norm", [
    (1.0, 100.0, 1.0),    # clipped to norm 1
    (1.0, 0.5, 0.5),      # below the threshold: untouched
    (None, 100.0, 100.0),  # clipping off
])
def test_adamw_clips_the_global_gradient_norm(clip, grad_scale, expected_norm):
    """AdamW sees the gradient clipped to global norm `clip_global_norm` (visible in its first
    moment, mu = (1−b1)·g after one step), across all leaves together."""
    params = {"a": jnp.zeros((3,)), "b": jnp.zeros((2, 2))}
    # Global norm 5 = sqrt(1 + 4 + 4 + 16).
    direction = {"a": jnp.array([1.0, 2.0, 2.0]), "b": jnp.array([[4.0, 0.0], [0.0, 0.0]])}
    grads = jax.tree.map(lambda x: x * grad_scale / 5.0, direction)
    tx = adamw(1e-3, b1=0.9, clip_global_norm=clip)
    _, state = tx.update(grads, tx.init(params), params)
    (adam,) = _states_of_type(state, optax.ScaleByAdamState)
    assert float(optax.tree.norm(adam.mu)) == pytest.approx(0.1 * expected_norm, rel=1e-5)
    # Clipping scales all leaves by one factor, so the direction is kept.
    np.testing.assert_allclose(adam.mu["a"] / adam.mu["a"][0], [1.0, 2.0, 2.0], rtol=1e-5)


def test_adamw_applies_decoupled_weight_decay():
    """With zero gradient, AdamW's update is −lr·weight_decay·param."""
    params = {"w": jnp.array([1.0, -2.0])}
    tx = adamw(0.1, weight_decay=0.5)
    update, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
    np.testing.assert_allclose(update["w"], [-0.05, 0.1], rtol=1e-6)
