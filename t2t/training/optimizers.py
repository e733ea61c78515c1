"""Optimizers and learning-rate schedules, each gin-configurable.

In gin: `train.optimizer = @adafactor()` and `adafactor.learning_rate = @rsqrt_schedule()`.
"""

from __future__ import annotations

import gin
import jax.numpy as jnp
import optax


@gin.configurable
def rsqrt_schedule(base: float = 1.0, warmup_steps: int = 10_000,
                   linear_warmup: bool = False) -> optax.Schedule:
    """T5's schedule: lr(step) = base / sqrt(max(step, warmup_steps)).

    With T5's base 1.0 and 10k warmup this is a constant 0.01 for 10k steps, then inverse-square-root
    decay (T5 §3.1.2; t5x 'constant * rsqrt_decay'). `linear_warmup` ramps from 0 to that constant
    over the warmup instead, which is gentler for AdamW.
    """
    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        lr = base / jnp.sqrt(jnp.maximum(step, warmup_steps))
        if linear_warmup:
            lr = lr * jnp.minimum(1.0, (step + 1) / warmup_steps)
        return lr

    return schedule


@gin.configurable
def warmup_cosine_schedule(peak: float = 1e-3, warmup_steps: int = 1_000,
                           decay_steps: int = gin.REQUIRED, final_fraction: float = 0.1
                           ) -> optax.Schedule:
    """Linear warmup from 0 to `peak`, then cosine decay to `final_fraction * peak` at `decay_steps`."""
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, decay_steps,
                                              end_value=final_fraction * peak)


@gin.configurable
def adafactor(learning_rate: float | optax.Schedule = gin.REQUIRED, decay_rate: float = 0.8,
              clipping_threshold: float = 1.0, multiply_by_parameter_scale: bool = True,
              factored: bool = True, weight_decay_rate: float | None = None
              ) -> optax.GradientTransformation:
    """Adafactor with T5's settings: second-moment decay 0.8 (t5x `decay_rate`), update clipping at
    RMS 1.0, step size scaled by each parameter's RMS, factored second moments, no momentum."""
    return optax.adafactor(learning_rate, decay_rate=decay_rate,
                           clipping_threshold=clipping_threshold,
                           multiply_by_parameter_scale=multiply_by_parameter_scale,
                           factored=factored, weight_decay_rate=weight_decay_rate)


@gin.configurable
def adamw(learning_rate: float | optax.Schedule = gin.REQUIRED, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8, weight_decay: float = 0.0, clip_global_norm: float | None = 1.0
          ) -> optax.GradientTransformation:
    """AdamW, with optional clipping of the gradient's global norm first."""
    tx = optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    return optax.chain(optax.clip_by_global_norm(clip_global_norm), tx) if clip_global_norm else tx
