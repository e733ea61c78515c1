"""PPO end to end on a toy reward: the mean reward rises, and the KL starts at exactly 0."""

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import t2t.rlhf.preference_task  # noqa: F401  (registers @describe_rule, which ppo.gin names)
from rlhf_fakes import CONFIG, QUERIES, tiny_policy
from t2t.configuration import ConfigError, parse_gin
from t2t.rlhf.ppo import Models, PPOHyperparameters, make_rollout, make_update, per_network
from t2t.rlhf.scalar_model import ScalarHeadModel, init_from_language_model

TOKEN = 5


def count_of_token(params, batch, responses):
    """A toy reward: the fraction of a response's tokens that are TOKEN (the policy can raise it
    from about 1/16 to 1 by saying TOKEN until the length limit)."""
    del params
    mask = batch.response_mask
    return jnp.sum((responses == TOKEN) * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1)


def test_ppo_raises_a_toy_reward_and_starts_at_zero_kl():
    policy, reference = tiny_policy()
    hp = PPOHyperparameters(response_length=6, epochs=2, minibatches=2)
    models = Models(policy, ScalarHeadModel(CONFIG), count_of_token)
    params = {"policy": reference,
              "value": init_from_language_model(CONFIG, reference, jax.random.key(0))}
    tx = per_network(lambda: optax.adam(3e-3))
    opt_state = tx.init(params)
    rollout_fn, update_fn = make_rollout(models, hp), make_update(models, tx, hp)
    queries = jnp.tile(QUERIES, (4, 1))  # 16 prompts per rollout
    scores, kls = [], []
    for step in range(12):
        rollout, stats = rollout_fn(params, reference, None, queries, jax.random.key(step), 0.01)
        scores.append(float(stats["score"]))
        kls.append(float(stats["kl"]))
        params, opt_state, update_stats = update_fn(params, opt_state, rollout,
                                                    jax.random.key(100 + step))
        assert np.isfinite(float(update_stats["value_loss"]))
    assert kls[0] == 0.0  # the first rollout's policy is the reference itself
    assert np.mean(scores[-3:]) > np.mean(scores[:3]) + 0.2, scores
    assert 0.0 <= update_stats["clip_fraction"] <= 1.0


def test_ppo_gin_file_needs_exactly_its_documented_macros():
    required = ["SFT_RUN='s'", "REWARD_MODEL='r'", "PROMPTS='p'", "OUTPUT_DIR='o'"]
    try:
        parse_gin(["rlhf/ppo.gin"], required)
        with pytest.raises(ConfigError, match="PROMPTS is required"):
            parse_gin(["rlhf/ppo.gin"], [b for b in required if not b.startswith("PROMPTS")])
    finally:
        gin.clear_config()


def test_data_parallel_rollout_and_update_equal_one_device():
    """The rollout's prompts split over 8 (fake) devices, parameters replicated: the same
    responses, statistics and updated parameters as on one device."""
    from t2t.training.partitioning import make_partitioner

    policy, reference = tiny_policy()
    hp = PPOHyperparameters(response_length=6, epochs=2, minibatches=2)
    models = Models(policy, ScalarHeadModel(CONFIG), count_of_token)
    params = {"policy": reference,
              "value": init_from_language_model(CONFIG, reference, jax.random.key(0))}
    # SGD: the update is linear in the gradients, so it shows whether they are equal (Adam's
    # g / sqrt(v) would magnify the all-reduce's rounding on near-zero gradients).
    tx = per_network(lambda: optax.sgd(0.1))
    queries = jnp.tile(QUERIES, (4, 1))  # 16 prompts: 2 per device
    partitioner = make_partitioner(mesh_shape={"data": 8})
    results = []
    for p in (None, partitioner):
        rollout_fn, update_fn = make_rollout(models, hp, p), make_update(models, tx, hp, p)
        q = queries if p is None else p.shard_batch({"q": np.asarray(queries)})["q"]
        rollout, stats = rollout_fn(params, reference, None, q, jax.random.key(3), 0.01)
        new_params, _, update_stats = update_fn(params, tx.init(params), rollout,
                                                jax.random.key(4))
        results.append((rollout, stats, update_stats, new_params))
        if p is not None:  # the rollout really is split, one shard per device
            assert len(rollout.responses.sharding.device_set) == 8
            assert rollout.responses.sharding.shard_shape(rollout.responses.shape)[0] == 2
    (r1, s1, u1, p1), (r8, s8, u8, p8) = results
    np.testing.assert_array_equal(r1.responses, r8.responses)
    for a, b in ((r1.advantages, r8.advantages), (s1, s8), (u1, u8), (p1, p8)):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5), a, b)
