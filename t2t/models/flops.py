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

A decoder-only model over n = I + T tokens (L layers) is PaLM's 6N + 12·L·hd·n per token made
explicit, with causal halving (a prefix LM's first I + 1 positions see each other fully):

    decoder      2·L·(4·e·hd + k·e·f)·n
    dec_attn     4·L·hd·(n(n+1)/2)
    logits       2·e·V·n

An encoder-only model over n tokens: encoder and enc_attn as above, plus its heads (the MLM head's
e x e transform and e x V logits, the pooler's e x e).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import jax
import numpy as np

from t2t.models.config import TransformerConfig


def count_params(config: TransformerConfig) -> int:
    """Exact parameter count of the family's model, from shapes only (`jax.eval_shape`, no memory)."""
    from t2t.models.families import build_model, dummy_batch

    model = build_model(config)
    shapes = jax.eval_shape(model.init, jax.random.key(0), dummy_batch(config))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """Forward matmul FLOPs of one example, by part (see the module docstring)."""

    parts: dict[str, float]

    @property
    def forward(self) -> float:
        return float(sum(self.parts.values()))

    @property
    def training(self) -> float:
        return 3.0 * self.forward


def _layer_flops(config: TransformerConfig, cross_attention: bool = False) -> float:
    """Matmul FLOPs of one block's projections and MLP, per token."""
    e, f, hd = config.d_model, config.d_ff, config.num_heads * config.head_dim
    k = len(config.mlp_activations) + 1  # input projections + output projection
    return 2.0 * ((6 if cross_attention else 4) * e * hd + k * e * f)


def _causal_pairs(length: int, visible_prefix: int = 0) -> float:
    """Query-key pairs of causal attention over `length` tokens whose first `visible_prefix`
    positions see each other fully (a prefix LM)."""
    p = min(visible_prefix, length)
    return p * p + (length * (length + 1) - p * (p + 1)) / 2


def flops_per_example(config: TransformerConfig, feature_lengths: Mapping[str, int],
                      causal_halving: bool = True) -> FlopCount:
    """Forward FLOPs of one packed row of `feature_lengths` ({'inputs', 'targets'}) for the family.

    Encoder-decoder: inputs feed the encoder, targets the decoder. Decoder-only: one sequence of
    inputs + targets (a prefix LM's inputs part, plus the first target, is fully visible).
    Encoder-only: one sequence of `inputs` tokens, with the MLM head's transform and logits.
    """
    e, hd, v = config.d_model, config.num_heads * config.head_dim, config.vocab_size
    inputs, targets = feature_lengths.get("inputs", 0), feature_lengths.get("targets", 0)
    if config.family == "encoder_decoder":
        le = config.num_decoder_layers if config.shared_encoder_decoder else config.num_encoder_layers
        ld = config.num_decoder_layers
        self_pairs = _causal_pairs(targets) if causal_halving else targets * targets
        return FlopCount({
            "encoder": le * _layer_flops(config) * inputs,
            "enc_attn": 4.0 * le * hd * inputs * inputs,
            "decoder": ld * _layer_flops(config, cross_attention=True) * targets,
            "cross_kv": 2.0 * ld * 2 * e * hd * inputs,
            "dec_attn": 4.0 * ld * hd * (self_pairs + targets * inputs),
            "logits": 2.0 * e * v * targets,
        })
    if config.family == "decoder_only":
        n, layers = inputs + targets, config.num_decoder_layers
        prefix = inputs + 1 if config.prefix_lm else 0
        pairs = _causal_pairs(n, prefix) if causal_halving else n * n
        return FlopCount({
            "decoder": layers * _layer_flops(config) * n,
            "dec_attn": 4.0 * layers * hd * pairs,
            "logits": 2.0 * e * v * n,
        })
    n, layers = inputs, config.num_encoder_layers
    heads = set(config.encoder_heads)
    return FlopCount({
        "encoder": layers * _layer_flops(config) * n,
        "enc_attn": 4.0 * layers * hd * n * n,
        "heads": 2.0 * n * ((e * e + e * v) * ("mlm" in heads)
                            + e * e * bool(heads & {"nsp", "sequence_classification"})),
    })
