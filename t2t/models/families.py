"""Model families as compositions of `TransformerStack`s, an embedding and an output layer."""

from __future__ import annotations

import math
from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from t2t.models.config import TransformerConfig
from t2t.models.layers import DenseGeneral, Embed, constrain
from t2t.models.transformer import TransformerStack

Array = jax.Array


class EncoderDecoder(nn.Module):
    """T5: a bidirectional encoder over the inputs, a causal decoder with cross-attention over the
    targets, one token embedding shared by both, and a tied or separate output layer.

    Reads the features of `t2t.data.converters.EncDecFeatureConverter`: `encoder_input_tokens`,
    `encoder_segment_ids`, `decoder_input_tokens`, `decoder_segment_ids`, all [b, l] int32.
    """

    config: TransformerConfig

    def setup(self) -> None:
        cfg = self.config
        if cfg.vocab_size is None:
            raise ValueError("TransformerConfig.vocab_size is None: set it, or let the trainer take "
                             "it from the vocabulary.")
        self.token_embedder = Embed(cfg.vocab_size, cfg.d_model, cfg.dtype)
        self.encoder = TransformerStack(cfg, cfg.num_encoder_layers, causal=False)
        self.decoder = TransformerStack(cfg, cfg.num_decoder_layers, causal=True,
                                        cross_attention=True)
        if not cfg.logits_via_embedding:
            self.lm_head = DenseGeneral(cfg.vocab_size, kernel_axes=("embed", "vocab"),
                                        dtype=cfg.dtype)

    def encode(self, tokens: Array, segment_ids: Array, deterministic: bool = True) -> Array:
        """[b, m] tokens and segment ids -> [b, m, e]."""
        x = constrain(self.token_embedder(tokens), "batch", "length", "act_embed")
        return self.encoder(x, segment_ids, deterministic=deterministic)

    def decode(self, encoded: Array, encoded_segment_ids: Array, decoder_input_tokens: Array,
               decoder_segment_ids: Array, deterministic: bool = True) -> Array:
        """Encoder output [b, m, e] and decoder inputs [b, l] -> float32 logits [b, l, v]."""
        x = constrain(self.token_embedder(decoder_input_tokens), "batch", "length", "act_embed")
        y = self.decoder(x, decoder_segment_ids, encoded, encoded_segment_ids,
                         deterministic=deterministic)
        if self.config.logits_via_embedding:
            # Tied logits are rescaled: with unit-variance embeddings, y·E would grow like sqrt(e).
            logits = self.token_embedder.attend(y) / math.sqrt(self.config.d_model)
        else:
            logits = self.lm_head(y)
        return constrain(logits, "batch", "length", "act_vocab").astype(jnp.float32)

    def __call__(self, batch: Mapping[str, Array], deterministic: bool = True) -> Array:
        """A packed batch -> float32 logits [b, targets_length, v]."""
        encoded = self.encode(batch["encoder_input_tokens"], batch["encoder_segment_ids"],
                              deterministic)
        return self.decode(encoded, batch["encoder_segment_ids"], batch["decoder_input_tokens"],
                           batch["decoder_segment_ids"], deterministic)
