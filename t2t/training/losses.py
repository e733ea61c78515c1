"""Cross-entropy with z-loss, summed over real target tokens, for every head of every family."""

from __future__ import annotations

from typing import Mapping

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
    # One max over the vocabulary serves the stable log-sum-exp and the accuracy (a target whose
    # logit is the max is a hit), instead of a second, argmax reduction over [b, l, v].
    top = jax.lax.stop_gradient(jnp.max(logits, axis=-1))  # [b, l]
    log_z = top + jnp.log(jnp.sum(jnp.exp(logits - top[..., None]), axis=-1))  # [b, l]
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    weights = weights.astype(jnp.float32)
    return {
        "cross_entropy": jnp.sum((log_z - target_logit) * weights),
        "z_loss": jnp.sum(z_loss * jnp.square(log_z) * weights),
        "correct": jnp.sum((target_logit >= top) * weights),
        "weight": jnp.sum(weights),
    }


# Each model output (see t2t.models.families) and the features it is scored against.
HEAD_TARGETS: dict[str, tuple[str, str]] = {
    "logits": ("decoder_target_tokens", "decoder_loss_weights"),
    "mlm_logits": ("mlm_target_tokens", "mlm_loss_weights"),
    "classification_logits": ("classification_labels", "classification_loss_weights"),
    "token_logits": ("token_labels", "token_loss_weights"),
    "nsp_logits": ("nsp_labels", "nsp_loss_weights"),
    "span_start_logits": ("span_start_positions", "span_loss_weights"),
    "span_end_logits": ("span_end_positions", "span_loss_weights"),
}

# Heads that score positions rather than classes: [b, l] logits, one per token, and labels that are
# positions within a packed example, held at its first position (see `example_position_logits`).
POSITION_HEADS = frozenset({"span_start_logits", "span_end_logits"})

# Logit of positions outside an example: finite, so that log Z, the z-loss and their gradients stay
# finite (times weight 0) on padding rows, and far enough below any real logit to add exp(...) = 0.
_OUTSIDE = -1e9


def example_position_logits(scores: Array, segment_ids: Array, labels: Array
                            ) -> tuple[Array, Array]:
    """Per-position scores -> for each position i, logits over the positions of i's packed example.

    scores [b, l] float (e.g. answer-start scores), segment_ids [b, l] (0 on padding), labels [b, l]
    (a position within the example, read where the loss weight is 1: each example's first position)
    -> (logits [b, l, l], targets [b, l]): logits[r, i, j] = scores[r, j] if j is in i's example,
    else -1e9; targets[r, i] = i + labels[r, i], the label's column in the row. With these,
    `cross_entropy_with_z_loss` is the cross-entropy of a softmax over the example's own positions.

    Example: one row packing examples of 3 and 2 tokens, scores [a, b, c, d, e], segment ids
    [1, 1, 1, 2, 2], label 1 at column 3 (the second example's second token, e):
      logits[0, 3] = [-1e9, -1e9, -1e9, d, e],   targets[0, 3] = 4,
      cross-entropy = log(exp(d) + exp(e)) - e.
    """
    same = (segment_ids[:, :, None] == segment_ids[:, None, :]) & (segment_ids[:, None, :] > 0)
    logits = jnp.where(same, scores.astype(jnp.float32)[:, None, :], _OUTSIDE)
    length = scores.shape[1]
    targets = jnp.clip(jnp.arange(length)[None, :] + labels, 0, length - 1)
    return logits, targets


def _prefix(head: str, primary: str) -> str:
    """Metric-name prefix of a head: none for the primary one, e.g. "nsp_" for the others."""
    return "" if head == primary else head.removesuffix("_logits") + "_"


def primary_head(outputs: Mapping[str, Array]) -> str:
    """The head whose loss is reported as plain `loss` (the first in HEAD_TARGETS' order)."""
    return next(h for h in HEAD_TARGETS if h in outputs)


def loss_normalizers(batch: Mapping[str, Array]) -> dict[str, Array]:
    """Real tokens per head's target feature in `batch`: what each head's summed loss is divided by."""
    return {head: jnp.maximum(jnp.sum(batch[weights].astype(jnp.float32)), 1.0)
            for head, (_, weights) in HEAD_TARGETS.items() if weights in batch}


def model_loss(outputs: Mapping[str, Array], batch: Mapping[str, Array], z_loss: float = 1e-4,
               normalizers: Mapping[str, Array] | None = None) -> tuple[Array, dict[str, Array]]:
    """The training loss and summed metric terms of every head of a model's outputs.

    The loss adds, over heads, each head's per-token mean (cross-entropy + z-loss) — BERT's
    MLM + NSP sum; span QA's start and end heads add likewise (BERT averages the two: the same
    gradient direction at twice the scale). Position heads are scored over their example's
    positions (`example_position_logits`, which reads `encoder_segment_ids`). With gradient
    accumulation, `normalizers` are the whole batch's token counts (`loss_normalizers`), so the
    microbatches' losses add up to exactly the batch's. Terms are sums (see
    `cross_entropy_with_z_loss`), named plainly for the primary head and with the head's prefix for
    the others (e.g. `nsp_correct`, `span_end_correct`).
    """
    primary = primary_head(outputs)
    normalizers = normalizers if normalizers is not None else loss_normalizers(batch)
    loss, terms = 0.0, {}
    for head, logits in outputs.items():
        targets_name, weights = HEAD_TARGETS[head]
        targets = batch[targets_name]
        if head in POSITION_HEADS:
            logits, targets = example_position_logits(logits, batch["encoder_segment_ids"], targets)
        head_terms = cross_entropy_with_z_loss(logits, targets, batch[weights], z_loss)
        loss = loss + (head_terms["cross_entropy"] + head_terms["z_loss"]) / normalizers[head]
        terms.update({_prefix(head, primary) + k: v for k, v in head_terms.items()})
    return loss, terms


def per_token_metrics(terms: Mapping[str, float]) -> dict[str, float]:
    """Summed terms (possibly added over steps or batches) -> per-token loss, z-loss and accuracy
    for each head: `loss`, `accuracy`, ... for the primary head, `nsp_loss`, ... for the others."""
    out = {}
    for prefix in sorted({k[: -len("weight")] for k in terms if k.endswith("weight")}):
        weight = max(float(terms[prefix + "weight"]), 1.0)
        out[prefix + "loss"] = float(terms[prefix + "cross_entropy"]) / weight
        out[prefix + "z_loss"] = float(terms[prefix + "z_loss"]) / weight
        out[prefix + "accuracy"] = float(terms[prefix + "correct"]) / weight
    return out
