"""Cross-entropy with z-loss, summed over real target tokens."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def cross_entropy_with_z_loss(logits: Array, targets: Array, weights: Array,
                              z_loss: float = 1e-4) -> dict[str, Array]:
    """Sums of the loss terms over the weighted (real, non-padding) target tokens.

    logits [b, l, v] float32, targets [b, l] int, weights [b, l] (0 on padding) -> scalars:
      cross_entropy: Σ w·(logsumexp(logits) − logit[target])
      z_loss:        Σ w·z_loss·logsumexp(logits)²   (PaLM's z-loss: keeps the softmax normaliser near 1,
                     which keeps bf16 logits well-conditioned; T5X uses 1e-4)
      correct:       Σ w·[argmax == target]
      weight:        Σ w
    Sums, not means, so that microbatches, devices and evaluation batches combine exactly; divide by
    `weight` to get per-token values.
    """
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)  # [b, l]
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    weights = weights.astype(jnp.float32)
    return {
        "cross_entropy": jnp.sum((log_z - target_logit) * weights),
        "z_loss": jnp.sum(z_loss * jnp.square(log_z) * weights),
        "correct": jnp.sum((jnp.argmax(logits, axis=-1) == targets) * weights),
        "weight": jnp.sum(weights),
    }
