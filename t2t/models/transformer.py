"""Transformer blocks and stacks: an encoder, a decoder and a decoder-only LM are each a `TransformerStack`.

A stack's calls differ only in whether self-attention is causal (or causal with a fully visible
prefix) and whether the blocks attend to an encoder's output; `t2t.models.families` composes stacks
with embeddings and heads. One stack can serve as both encoder and decoder (T5 Table 2's shared
variant), which is why causality is an argument of the call rather than of the module.

Decoding (`decode=True`) runs a stack on a chunk of new positions at a time (a whole prompt in one
"prefill" call, then one token per step), each block's self-attention reading and extending a
key/value cache (see `MultiHeadAttention`); `t2t.decoding` drives it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from t2t.models.config import TransformerConfig
from t2t.models.layers import (Mlp, MultiHeadAttention, RelativePositionBias, RowLengths,
                               attention_mask, constrain, decoding_mask, make_norm, row_lengths)

Array = jax.Array


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention (when given an encoder output) and an MLP, each wrapped as

        pre-norm  (T5, GPT-2):                 x = x + dropout(sublayer(norm(x)))
        post-norm (BERT, original Transformer): x = norm(x + dropout(sublayer(x)))
    """

    config: TransformerConfig
    deterministic: bool = True  # an attribute, not an argument, so remat and scan see only arrays
    decode: bool = False  # attention reads (and self-attention extends) its key/value cache
    fused_causal: bool = False  # self-attention is causal inside the fused kernel, not in self_mask

    @nn.compact
    def __call__(self, x: Array, self_mask: Array | RowLengths, self_bias: Array | None,
                 encoded: Array | None = None, cross_mask: Array | RowLengths | None = None,
                 cache_positions: Array | None = None) -> Array:
        """x [b, l, e]; self_mask [b, 1, l, l]; self_bias [1, h, l, l]; encoded [b, m, e];
        cross_mask [b, 1, l, m] (either mask may be `RowLengths`) -> [b, l, e]. While decoding,
        `cache_positions` [b, l] are the cache slots of x, and the self-attention mask and bias
        cover the cache's K slots."""
        cfg, deterministic = self.config, self.deterministic
        dropout = lambda y: nn.Dropout(cfg.dropout_rate)(y, deterministic=deterministic)

        def sublayer(x: Array, name: str, fn) -> Array:
            norm = make_norm(cfg, f"{'pre' if cfg.norm_position == 'pre' else 'post'}_{name}_norm")
            if cfg.norm_position == "pre":
                return x + dropout(fn(norm(x)))
            return norm(x + dropout(fn(x)))

        x = sublayer(x, "self_attention", lambda h: MultiHeadAttention(cfg, name="self_attention")(
            h, h, self_mask, self_bias, deterministic, self.decode, cache_positions,
            self.fused_causal))
        if encoded is not None:
            # T5 puts no position bias on cross-attention.
            # While decoding, the encoder output's keys and values are projected once.
            x = sublayer(x, "cross_attention", lambda h: MultiHeadAttention(
                cfg, name="cross_attention")(h, encoded, cross_mask, None, deterministic,
                                             self.decode, static_kv=True))
        x = sublayer(x, "mlp", lambda h: Mlp(cfg, name="mlp")(h, deterministic))
        return constrain(x, "batch", "length", "act_embed")


_REMAT_POLICIES = {
    # Keep the projections' outputs (matmuls without batch dimensions), recompute the rest.
    "minimal": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "full": jax.checkpoint_policies.nothing_saveable,
}


class _CarryBlock(nn.Module):
    """A block in nn.scan's (carry, output) form."""

    block: type[nn.Module]
    config: TransformerConfig
    deterministic: bool
    decode: bool
    fused_causal: bool

    @nn.compact
    def __call__(self, x: Array, *args) -> tuple[Array, None]:
        block = self.block(self.config, self.deterministic, self.decode, self.fused_causal,
                           name="block")
        return block(x, *args), None


class TransformerStack(nn.Module):
    """Embedded tokens -> [norm] -> dropout -> `num_layers` blocks -> [final norm] -> dropout.

    Pre-norm stacks end with a final norm; post-norm stacks (whose blocks end normed) do not, and
    BERT norms the embeddings first (`embedding_norm`). With relative positions, one table serves
    all the stack's layers (T5's "bias_shared"): bidirectional buckets unless causal (a prefix LM
    keeps bidirectional buckets, since its prefix looks ahead).

    Decoding keeps, next to the blocks' key/value caches, `prefix` [b, K]: which cache slots hold a
    prefix LM's fully visible prefix (all 0 for other models); its length K is the cache's.
    """

    config: TransformerConfig
    num_layers: int

    @nn.compact
    def __call__(self, x: Array, segment_ids: Array, *, causal: bool,
                 bidirectional: Array | None = None, encoded: Array | None = None,
                 encoded_segment_ids: Array | None = None, deterministic: bool = True,
                 decode: bool = False, cache_positions: Array | None = None) -> Array:
        """x [b, l, e] embedded tokens; segment_ids [b, l] (0 = padding, 1.. = packed example);
        bidirectional [b, l] a prefix LM's fully visible positions; encoded [b, m, e] and its
        segment ids [b, m] for cross-attention -> [b, l, e].

        With `decode`, x holds one example per row at cache slots `cache_positions` [b, l] (a
        prompt at 0..l-1, or one new token per row), self-attention is causal over the cache, and
        `bidirectional` marks the prefix LM positions among x.
        """
        cfg = self.config
        length = x.shape[1]
        if cfg.embedding_norm:
            x = make_norm(cfg, "embedding_norm")(x)
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        fused_causal = False
        # Unpacked rows: the dot_product kernel masks by lengths (`RowLengths`), not by a mask.
        by_lengths = (cfg.one_example_per_row and cfg.attention_kernel == "dot_product"
                      and not decode)
        lengths = row_lengths(segment_ids) if by_lengths else None
        if decode:
            prefix = self._cached_prefix(bidirectional, cache_positions, segment_ids.shape)
            self_mask = decoding_mask(cache_positions, prefix, bidirectional)
            keys, query_positions = prefix.shape[1], cache_positions
        else:
            # The fused kernel applies a plain causal mask itself and skips the masked blocks; a
            # prefix LM's mask (causal but for its prefix) stays explicit.
            fused_causal = (causal and bidirectional is None
                            and cfg.attention_kernel == "dot_product")
            if by_lengths:
                self_mask = RowLengths(lengths, lengths)
            else:
                self_mask = attention_mask(segment_ids, segment_ids,
                                           causal=causal and not fused_causal,
                                           bidirectional=bidirectional)
            keys, query_positions = length, None
        bias = None
        if cfg.position_embedding == "relative":
            bias = RelativePositionBias(
                cfg.num_heads, num_buckets=cfg.relative_attention_num_buckets,
                max_distance=cfg.relative_attention_max_distance, dtype=cfg.dtype,
                name="relpos_bias")(length, keys, bidirectional=not causal or cfg.prefix_lm,
                                    query_positions=query_positions)
        cross_mask = None
        if encoded is not None:
            cross_mask = (RowLengths(lengths, row_lengths(encoded_segment_ids))
                          if by_lengths else attention_mask(segment_ids, encoded_segment_ids))
        block = TransformerBlock
        if cfg.remat_policy != "none":
            block = nn.remat(block, policy=_REMAT_POLICIES[cfg.remat_policy])
        if cfg.scan_layers:
            # One block traced once, its parameters stacked along a leading `layers` axis.
            layers = nn.scan(_CarryBlock, variable_axes={"params": 0, "cache": 0},
                             split_rngs={"params": True, "dropout": True},
                             in_axes=(nn.broadcast,) * 5, length=self.num_layers,
                             metadata_params={nn.PARTITION_NAME: "layers"})
            x, _ = layers(block, cfg, deterministic, decode, fused_causal, name="layers")(
                x, self_mask, bias, encoded, cross_mask, cache_positions)
        else:
            for i in range(self.num_layers):
                x = block(cfg, deterministic, decode, fused_causal, name=f"layers_{i}")(
                    x, self_mask, bias, encoded, cross_mask, cache_positions)
        if cfg.norm_position == "pre":
            x = make_norm(cfg, "final_norm")(x)
        return nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)

    def _cached_prefix(self, bidirectional: Array | None, positions: Array,
                       shape: tuple[int, int]) -> Array:
        """The cache's prefix flags [b, K], with this call's `bidirectional` [b, l] written at
        `positions` [b, l]; the call that creates the cache sizes it by `shape` [b, K]."""
        created = not self.has_variable("cache", "prefix")
        prefix = self.variable("cache", "prefix", nn.with_logical_partitioning(
            jnp.zeros, ("batch", "length")), shape, jnp.int32)
        if not created:
            flags = jnp.zeros(positions.shape, jnp.int32) if bidirectional is None else (
                bidirectional.astype(jnp.int32))
            rows = jnp.arange(positions.shape[0])[:, None]
            prefix.value = prefix.value.at[rows, positions].set(flags)
        return prefix.value
