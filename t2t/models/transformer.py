"""Transformer blocks and stacks: the encoder, the decoder and the decoder-only LM are all a `TransformerStack`.

A stack differs only in whether its self-attention is causal and whether its blocks attend to an
encoder's output; the families in `t2t.models.families` compose stacks with embeddings and heads.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from t2t.models.config import TransformerConfig
from t2t.models.layers import (Mlp, MultiHeadAttention, RelativePositionBias, RMSNorm,
                               attention_mask, constrain)

Array = jax.Array


class TransformerBlock(nn.Module):
    """One pre-norm block: x += dropout(sublayer(norm(x))) for self-attention, cross-attention
    (if `cross_attention`) and the MLP, in that order (T5 §2.1)."""

    config: TransformerConfig
    cross_attention: bool = False

    @nn.compact
    def __call__(self, x: Array, self_mask: Array, self_bias: Array | None,
                 encoded: Array | None = None, cross_mask: Array | None = None,
                 deterministic: bool = True) -> Array:
        """x [b, l, e]; self_mask [b, 1, l, l]; self_bias [1, h, l, l]; encoded [b, m, e];
        cross_mask [b, 1, l, m] -> [b, l, e]."""
        cfg = self.config
        norm = lambda name: RMSNorm(cfg.layer_norm_epsilon, cfg.dtype, name=name)
        dropout = lambda y: nn.Dropout(cfg.dropout_rate)(y, deterministic=deterministic)

        h = norm("pre_self_attention_norm")(x)
        x = x + dropout(MultiHeadAttention(cfg, name="self_attention")(
            h, h, self_mask, self_bias, deterministic))
        if self.cross_attention:
            h = norm("pre_cross_attention_norm")(x)
            # T5 puts no position bias on cross-attention.
            x = x + dropout(MultiHeadAttention(cfg, name="cross_attention")(
                h, encoded, cross_mask, None, deterministic))
        h = norm("pre_mlp_norm")(x)
        x = x + dropout(Mlp(cfg, name="mlp")(h, deterministic))
        return constrain(x, "batch", "length", "act_embed")


class TransformerStack(nn.Module):
    """Embedded tokens -> dropout -> `num_layers` blocks -> final norm -> dropout.

    One relative-position table serves all the stack's layers (T5's "bias_shared"): bidirectional
    buckets for a non-causal stack, causal buckets otherwise.
    """

    config: TransformerConfig
    num_layers: int
    causal: bool
    cross_attention: bool = False

    @nn.compact
    def __call__(self, x: Array, segment_ids: Array, encoded: Array | None = None,
                 encoded_segment_ids: Array | None = None, deterministic: bool = True) -> Array:
        """x [b, l, e] embedded tokens; segment_ids [b, l] (0 = padding, 1.. = packed example);
        encoded [b, m, e] and its segment ids [b, m] for cross-attention -> [b, l, e]."""
        cfg = self.config
        length = x.shape[1]
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        bias = RelativePositionBias(
            cfg.num_heads, bidirectional=not self.causal,
            num_buckets=cfg.relative_attention_num_buckets,
            max_distance=cfg.relative_attention_max_distance, dtype=cfg.dtype,
            name="relpos_bias")(length, length)
        self_mask = attention_mask(segment_ids, segment_ids, causal=self.causal)
        cross_mask = (attention_mask(segment_ids, encoded_segment_ids)
                      if self.cross_attention else None)
        for i in range(self.num_layers):
            x = TransformerBlock(cfg, self.cross_attention, name=f"layers_{i}")(
                x, self_mask, bias, encoded, cross_mask, deterministic)
        x = RMSNorm(cfg.layer_norm_epsilon, cfg.dtype, name="final_norm")(x)
        return nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
