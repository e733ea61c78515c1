"""Parameter and FLOP counts: the one place MFU, benchmarks and scaling laws take them from.

FLOPs count the matrix multiplications (2 FLOPs per multiply-add), which is what MFU is defined over
(PaLM, App. B); norms, softmax and the embedding gather are negligible and left out. For an
encoder-decoder processing one example with `I` encoder and `T` decoder tokens (k = 2 for a plain MLP,
3 for a gated one; hd = heads x head_dim; V = vocabulary rows; Le, Ld layers):

    encoder      2·Le·(4·e·hd + k·e·f)·I          q, k, v, o projections and the MLP, per input token
    enc_attn     4·Le·hd·I²                       QKᵀ and AV over the full (bidirectional) square
    decoder      2·Ld·(6·e·hd + k·e·f)·T          self q, k, v, o + cross q, o + MLP, per target token
    cross_kv     2·Ld·(2·e·hd)·I                  cross-attention keys/values act on encoder tokens
    dec_attn     4·Ld·hd·(T(T+1)/2 + T·I)         causal self-attention counts only the lower triangle
    logits       2·e·V·T

    training = 3 × forward (the backward pass costs twice the forward)

This is T5_REFERENCE §10.4 (derived there, not from a paper) with causal halving in the decoder's
self-attention. For T5 base at 512/114 and no halving it gives 142.0 GFLOP per example forward.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from t2t.models.config import TransformerConfig


def count_params(config: TransformerConfig) -> int:
    """Exact parameter count of the encoder-decoder, from shapes only (`jax.eval_shape`, no memory)."""
    from t2t.models.families import EncoderDecoder

    batch = {k: jnp.ones((1, 8), jnp.int32) for k in
             ("encoder_input_tokens", "encoder_segment_ids", "decoder_input_tokens",
              "decoder_segment_ids")}
    shapes = jax.eval_shape(EncoderDecoder(config).init, jax.random.key(0), batch)
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """Forward matmul FLOPs of one example, by part (see the module docstring)."""

    encoder: float
    enc_attn: float
    decoder: float
    cross_kv: float
    dec_attn: float
    logits: float

    @property
    def forward(self) -> float:
        return sum(dataclasses.astuple(self))

    @property
    def training(self) -> float:
        return 3.0 * self.forward


def encoder_decoder_flops(config: TransformerConfig, inputs_length: int, targets_length: int,
                          causal_halving: bool = True) -> FlopCount:
    """Forward FLOPs of one example with `inputs_length` encoder and `targets_length` decoder tokens."""
    e, f, hd = config.d_model, config.d_ff, config.num_heads * config.head_dim
    k = len(config.mlp_activations) + 1  # input projections + output projection
    le, ld, i, t = config.num_encoder_layers, config.num_decoder_layers, inputs_length, targets_length
    self_pairs = t * (t + 1) / 2 if causal_halving else t * t
    return FlopCount(
        encoder=2.0 * le * (4 * e * hd + k * e * f) * i,
        enc_attn=4.0 * le * hd * i * i,
        decoder=2.0 * ld * (6 * e * hd + k * e * f) * t,
        cross_kv=2.0 * ld * 2 * e * hd * i,
        dec_attn=4.0 * ld * hd * (self_pairs + t * i),
        logits=2.0 * e * config.vocab_size * t,
    )
