"""Generalised advantage estimation (Schulman et al. 2016) over variable-length responses.

Token t of a response is an action taken in state s_t (the query and tokens < t); the episode ends
after the response's last token. With per-token rewards r_t and values V_t = V(s_t):

    δ_t = r_t + γ V_{t+1} - V_t              (V after the last token is 0: the episode is over)
    A_t = δ_t + γ λ A_{t+1}                  (A after the last token is 0)
    R_t = A_t + V_t                          (the value function's regression target)

E.g. γ = λ = 1, rewards [0, 0, 1], values [0.5, 0.5, 0.5]: δ = [0, 0, 0.5], A = [0.5, 0.5, 0.5],
R = [1, 1, 1].
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Advantages(NamedTuple):
    advantages: Array  # [n, t], 0 outside the response
    returns: Array  # [n, t], 0 outside the response


def gae(rewards: Array, values: Array, mask: Array, gamma: float, lam: float) -> Advantages:
    """Advantages and returns of rewards [n, t] and values [n, t] on the responses that `mask`
    [n, t] marks (1 on a prefix of each row: its tokens)."""
    mask = mask.astype(rewards.dtype)
    # Whether token t + 1 is still in the response: the bootstrap and the recursion stop otherwise.
    continues = jnp.pad(mask[:, 1:], ((0, 0), (0, 1)))
    next_values = jnp.pad(values[:, 1:], ((0, 0), (0, 1))) * continues
    deltas = rewards + gamma * next_values - values

    def backwards(next_advantage: Array, xs: tuple[Array, Array]) -> tuple[Array, Array]:
        delta, cont = xs
        advantage = delta + gamma * lam * cont * next_advantage
        return advantage, advantage

    # Scan over time (axis 0 after the transpose), from the last token to the first.
    _, advantages = jax.lax.scan(backwards, jnp.zeros(rewards.shape[0], rewards.dtype),
                                 (deltas.T, continues.T), reverse=True)
    advantages = advantages.T * mask
    return Advantages(advantages, (advantages + values) * mask)
