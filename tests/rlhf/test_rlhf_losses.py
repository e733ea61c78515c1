"""The RLHF losses against NumPy written from the papers' formulas, and the KL controller."""

import numpy as np
import pytest

from t2t.rlhf.kl_controller import KLController
from t2t.rlhf.losses import (clipped_policy_loss, clipped_value_loss, pairwise_ranking_loss,
                             per_token_kl, whiten)

RNG = np.random.default_rng(0)
N, T = 5, 7
MASK = (np.arange(T)[None, :] < np.array([7, 3, 1, 5, 6])[:, None]).astype(np.int32)


def test_pairwise_ranking_loss_is_minus_log_sigmoid_of_the_reward_gap():
    chosen, rejected = RNG.normal(size=9).astype(np.float32), RNG.normal(size=9).astype(np.float32)
    expected = np.mean(np.log1p(np.exp(-(chosen - rejected))))
    assert float(pairwise_ranking_loss(chosen, rejected)) == pytest.approx(expected, rel=1e-5)
    # Preferring the chosen response more strongly always lowers the loss.
    assert pairwise_ranking_loss(chosen + 1.0, rejected) < pairwise_ranking_loss(chosen, rejected)


def test_clipped_policy_loss_matches_the_ppo_surrogate_token_by_token():
    log_probs = RNG.normal(scale=0.3, size=(N, T)).astype(np.float32)
    old = RNG.normal(scale=0.3, size=(N, T)).astype(np.float32)
    advantages = RNG.normal(size=(N, T)).astype(np.float32)
    clip = 0.2
    objective, clipped, count = 0.0, 0, 0
    for i in range(N):
        for t in range(T):
            if not MASK[i, t]:
                continue
            ratio = np.exp(log_probs[i, t] - old[i, t])
            objective += min(ratio * advantages[i, t],
                             np.clip(ratio, 1 - clip, 1 + clip) * advantages[i, t])
            clipped += abs(ratio - 1) > clip
            count += 1
    out = clipped_policy_loss(log_probs, old, advantages, MASK, clip)
    assert float(out.loss) == pytest.approx(-objective / count, rel=1e-5)
    assert float(out.clip_fraction) == pytest.approx(clipped / count)


def test_clipped_value_loss_matches_numpy():
    values, old, returns = (RNG.normal(size=(N, T)).astype(np.float32) for _ in range(3))
    clipped = old + np.clip(values - old, -0.2, 0.2)
    per_token = 0.5 * np.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    expected = per_token[MASK == 1].mean()
    assert float(clipped_value_loss(values, old, returns, MASK, 0.2)) == pytest.approx(expected,
                                                                                       rel=1e-5)


def test_whiten_gives_zero_mean_unit_variance_on_the_mask_and_zero_off_it():
    x = np.asarray(whiten(RNG.normal(3.0, 2.0, size=(N, T)).astype(np.float32), MASK))
    assert x[MASK == 1].mean() == pytest.approx(0.0, abs=1e-5)
    assert x[MASK == 1].std() == pytest.approx(1.0, rel=1e-4)
    assert np.all(x[MASK == 0] == 0)


def test_per_token_kl_is_zero_when_the_policy_is_the_reference():
    log_probs = RNG.normal(size=(N, T)).astype(np.float32)
    assert np.all(np.asarray(per_token_kl(log_probs, log_probs, MASK)) == 0)


def test_kl_controller_fixed_stays_and_adaptive_moves_towards_the_target():
    fixed = KLController(0.1)
    assert fixed.update(50.0, 64) == 0.1
    adaptive = KLController(0.1, target=6.0, horizon=1000)
    assert adaptive.update(12.0, 64) == pytest.approx(0.1 * (1 + 0.2 * 64 / 1000))  # clipped error
    before = adaptive.value
    assert adaptive.update(3.0, 64) < before  # below target: β shrinks
    with pytest.raises(ValueError, match="kl_target > 0"):
        KLController(0.1, target=0.0)
