"""The losses of the InstructGPT pipeline (Ouyang et al. 2022), over masked response tokens.

    reward model   pairwise ranking loss        -log sigmoid(r(x, y_chosen) - r(x, y_rejected))
    PPO policy     clipped surrogate            max(-A ρ, -A clip(ρ, 1 - ε, 1 + ε)),  ρ = π/π_old
    PPO value      clipped squared error        ½ max((V - R)², (V_old + clip(V - V_old, ±ε) - R)²)
    KL penalty     per-token KL estimate        log π(a_t | s_t) - log π_ref(a_t | s_t)

Token-level quantities are [n, t] arrays with a [n, t] mask of the response's tokens; means are over
the masked tokens of the whole batch (every token weighs the same, as in Ziegler et al.'s lm-human-
preferences).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


def masked_mean(x: Array, mask: Array) -> Array:
    """The mean of `x` over the entries where `mask` is 1 (0 if there are none)."""
    mask = mask.astype(x.dtype)
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def whiten(x: Array, mask: Array, eps: float = 1e-8) -> Array:
    """`x` shifted and scaled to mean 0 and variance 1 over the masked entries; 0 elsewhere."""
    mean = masked_mean(x, mask)
    var = masked_mean(jnp.square(x - mean), mask)
    return (x - mean) * jax.lax.rsqrt(var + eps) * mask


def pairwise_ranking_loss(chosen: Array, rejected: Array) -> Array:
    """Mean over pairs of -log sigmoid(r_chosen - r_rejected) for rewards [n] and [n].

    E.g. rewards 2.0 and 0.0 cost -log sigmoid(2) = 0.127; equal rewards cost log 2 = 0.693.
    """
    return -jnp.mean(jax.nn.log_sigmoid(chosen - rejected))


def per_token_kl(log_probs: Array, reference_log_probs: Array, mask: Array) -> Array:
    """[n, t]: log π(a_t) - log π_ref(a_t) of the sampled tokens, 0 outside the response.

    Its expectation under π is KL(π || π_ref) at that state; summed over a response it is an
    unbiased estimate of the sequence-level KL. It is exactly 0 where π = π_ref.
    """
    return (log_probs - reference_log_probs) * mask


class PolicyLoss(NamedTuple):
    loss: Array  # the clipped surrogate, to minimise
    clip_fraction: Array  # fraction of tokens whose ratio left [1 - ε, 1 + ε]
    approx_kl: Array  # mean of ½ (log ρ)²: how far the update moved from the rollout policy


def clipped_policy_loss(log_probs: Array, old_log_probs: Array, advantages: Array, mask: Array,
                        clip: float) -> PolicyLoss:
    """PPO's clipped surrogate objective (Schulman et al. 2017, eq. 7), negated, per token.

    E.g. with ε = 0.2 and advantage 1, a ratio of 1.5 is worth only 1.2: the policy gains nothing
    by moving further; with advantage -1 a ratio of 0.5 is worth -0.8.
    """
    log_ratio = log_probs - old_log_probs
    ratio = jnp.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * jnp.clip(ratio, 1.0 - clip, 1.0 + clip)
    return PolicyLoss(masked_mean(jnp.maximum(unclipped, clipped), mask),
                      masked_mean((jnp.abs(ratio - 1.0) > clip).astype(jnp.float32), mask),
                      masked_mean(0.5 * jnp.square(log_ratio), mask))


def clipped_value_loss(values: Array, old_values: Array, returns: Array, mask: Array,
                       clip: float) -> Array:
    """½ max((V - R)², (V_clipped - R)²) per token, V_clipped = V_old + clip(V - V_old, ±clip):
    the value function too moves at most `clip` from its rollout-time estimate per update."""
    clipped = old_values + jnp.clip(values - old_values, -clip, clip)
    return 0.5 * masked_mean(jnp.maximum(jnp.square(values - returns),
                                         jnp.square(clipped - returns)), mask)
