"""GAE against a hand-written NumPy loop over variable-length responses."""

import numpy as np
import pytest

from t2t.rlhf.advantages import gae


def numpy_gae(rewards, values, lengths, gamma, lam):
    advantages = np.zeros_like(rewards)
    for i, length in enumerate(lengths):
        running = 0.0
        for t in reversed(range(length)):
            next_value = values[i, t + 1] if t + 1 < length else 0.0
            delta = rewards[i, t] + gamma * next_value - values[i, t]
            running = delta + gamma * lam * running
            advantages[i, t] = running
    mask = np.arange(rewards.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return advantages, (advantages + values) * mask


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0)])
def test_gae_matches_a_numpy_loop(gamma, lam):
    rng = np.random.default_rng(0)
    lengths = [6, 1, 3, 0, 4]
    rewards, values = (rng.normal(size=(5, 6)).astype(np.float32) for _ in range(2))
    mask = (np.arange(6)[None, :] < np.array(lengths)[:, None]).astype(np.float32)
    advantages, returns = gae(rewards * mask, values * mask, mask, gamma, lam)
    expected_a, expected_r = numpy_gae(rewards * mask, values * mask, lengths, gamma, lam)
    np.testing.assert_allclose(advantages, expected_a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(returns, expected_r, rtol=1e-5, atol=1e-6)


def test_gae_with_gamma_and_lambda_one_credits_every_token_with_the_final_reward():
    # The module docstring's example: A_t = sum of future rewards - V_t.
    advantages, returns = gae(np.array([[0.0, 0.0, 1.0]], np.float32),
                              np.array([[0.5, 0.5, 0.5]], np.float32), np.ones((1, 3)), 1.0, 1.0)
    np.testing.assert_allclose(advantages, [[0.5, 0.5, 0.5]])
    np.testing.assert_allclose(returns, [[1.0, 1.0, 1.0]])
