"""The three model families, each a composition of one `Embedder`, `TransformerStack`s and heads.

Every family reads a dict of packed features (see `t2t.data.converters`) and returns a dict of
float32 logits, one entry per head; `t2t.training.losses` knows which features each head is scored
against.

    EncoderDecoder  (T5, BART)     encoder_* + decoder_* features  -> {"logits"}
    DecoderOnly     (GPT, prefix LM) decoder_* features            -> {"logits"}
    EncoderOnly     (BERT, RoBERTa)  encoder_* features            -> {"mlm_logits", "nsp_logits", ...}

The two generative families also decode incrementally (`decode=True`, see `t2t.decoding.adapter`):
the decoder reads one example per row whose `decoder_positions` are the cache slots of its tokens,
and keeps keys and values of earlier slots in the "cache" collection.
"""

from __future__ import annotations

import math
from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from t2t.models.config import TransformerConfig
from t2t.models.layers import Embed, constrain, dense, make_norm, sinusoidal_positions
from t2t.models.transformer import TransformerStack

Array = jax.Array
Batch = Mapping[str, Array]


def positions_per_stack(config: TransformerConfig) -> bool:
    """Whether the encoder and the decoder each learn a position table of their own (BART, whose
    two stacks share only the token embedding), rather than one shared table."""
    return (config.family == "encoder_decoder" and config.position_embedding == "learned"
            and not config.shared_encoder_decoder)


class Embedder(nn.Module):
    """Token embedding, plus absolute positions and token types where the config has them.

    Learned positions are one table `positions`, or `encoder_positions` and `decoder_positions`
    where `positions_per_stack` (the stack to embed for is then an argument of the call).
    """

    config: TransformerConfig

    def setup(self) -> None:
        cfg = self.config
        if cfg.vocab_size is None:
            raise ValueError("TransformerConfig.vocab_size is None: set it, or let the trainer take "
                             "it from the vocabulary.")
        std = 1.0 if cfg.init_std is None else cfg.init_std  # T5 embeddings have unit variance
        self.tokens = Embed(cfg.vocab_size, cfg.d_model, cfg.dtype, std)
        if cfg.position_embedding == "learned":
            table = lambda: Embed(cfg.max_length, cfg.d_model, cfg.dtype, std, axis_name="abspos")
            if positions_per_stack(cfg):
                self.encoder_positions, self.decoder_positions = table(), table()
            else:
                self.positions = table()
        if cfg.type_vocab_size:
            self.token_types = Embed(cfg.type_vocab_size, cfg.d_model, cfg.dtype, std,
                                     axis_name="token_types")

    def __call__(self, tokens: Array, positions: Array | None = None,
                 token_types: Array | None = None, stack: str | None = None) -> Array:
        """[b, l] ids (+ [b, l] positions within each packed example, [b, l] types) -> [b, l, e].

        `stack` ("encoder" or "decoder") picks the position table where each stack has one."""
        cfg = self.config
        x = self.tokens(tokens)
        if cfg.scale_embeddings:
            x = x * math.sqrt(cfg.d_model)
        if cfg.position_embedding == "learned":
            if not positions_per_stack(cfg):
                table = self.positions
            elif stack in ("encoder", "decoder"):
                table = getattr(self, f"{stack}_positions")
            else:
                raise ValueError(f"This encoder-decoder learns positions per stack; call the "
                                 f"Embedder with stack='encoder' or 'decoder', not {stack!r}.")
            x = x + table(positions)
        elif cfg.position_embedding == "sinusoidal":
            x = x + sinusoidal_positions(positions, cfg.d_model).astype(x.dtype)
        if cfg.type_vocab_size:
            x = x + self.token_types(token_types)
        return constrain(x, "batch", "length", "act_embed")

    def attend(self, y: Array) -> Array:
        """Tied output logits [b, l, v] for hidden states [b, l, e]."""
        logits = self.tokens.attend(y)
        # T5 v1.0 rescales: with unit-variance embeddings, y·E would grow like sqrt(e).
        return logits / math.sqrt(self.config.d_model) if self.config.rescale_tied_logits else logits


def _lm_head(config: TransformerConfig) -> nn.Module | None:
    """A separate output layer, or None when the logits are tied to the embedding."""
    if config.logits_via_embedding:
        return None
    return dense(config, config.vocab_size, ("embed", "vocab"), "lm_head")


def _logits(config: TransformerConfig, embedder: Embedder, lm_head: nn.Module | None,
            y: Array) -> Array:
    logits = embedder.attend(y) if lm_head is None else lm_head(y)
    return constrain(logits, "batch", "length", "act_vocab").astype(jnp.float32)


class EncoderDecoder(nn.Module):
    """T5: a bidirectional encoder over the inputs, a causal decoder with cross-attention over the
    targets, one token embedding shared by both, and a tied or separate output layer. Learned
    positions (BART) are a table per stack.

    With `shared_encoder_decoder`, the encoder is the decoder's stack run without causality or
    cross-attention, so the two share every layer (T5 Table 2's "Enc-dec, shared": P params, M FLOPs).
    """

    config: TransformerConfig

    def setup(self) -> None:
        cfg = self.config
        self.embedder = Embedder(cfg)
        self.decoder = TransformerStack(cfg, cfg.num_decoder_layers)
        if not cfg.shared_encoder_decoder:
            self.encoder = TransformerStack(cfg, cfg.num_encoder_layers)
        self.lm_head = _lm_head(cfg)

    def encode(self, batch: Batch, deterministic: bool = True) -> Array:
        """encoder_input_tokens [b, m] (+ segment ids, positions) -> [b, m, e]."""
        x = self.embedder(batch["encoder_input_tokens"], batch.get("encoder_positions"),
                          stack="encoder")
        stack = self.decoder if self.config.shared_encoder_decoder else self.encoder
        return stack(x, batch["encoder_segment_ids"], causal=False, deterministic=deterministic)

    def decode(self, encoded: Array, batch: Batch, deterministic: bool = True,
               decode: bool = False) -> Array:
        """Encoder output [b, m, e] and decoder_input_tokens [b, l] -> float32 logits [b, l, v].

        With `decode`, the tokens sit at cache slots `decoder_positions` [b, l] (see the module
        docstring)."""
        x = self.embedder(batch["decoder_input_tokens"], batch.get("decoder_positions"),
                          stack="decoder")
        y = self.decoder(x, batch["decoder_segment_ids"], causal=True, encoded=encoded,
                         encoded_segment_ids=batch["encoder_segment_ids"],
                         deterministic=deterministic, decode=decode,
                         cache_positions=batch["decoder_positions"] if decode else None)
        return _logits(self.config, self.embedder, self.lm_head, y)

    def __call__(self, batch: Batch, deterministic: bool = True) -> dict[str, Array]:
        return {"logits": self.decode(self.encode(batch, deterministic), batch, deterministic)}


class DecoderOnly(nn.Module):
    """A causal language model (GPT), or a prefix LM whose inputs part is fully visible.

    A prefix LM reads `decoder_causal_attention` (1 on the inputs plus the first target position,
    as seqio's PrefixLMFeatureConverter makes it) and lets those positions see each other.
    """

    config: TransformerConfig

    def setup(self) -> None:
        self.embedder = Embedder(self.config)
        self.decoder = TransformerStack(self.config, self.config.num_decoder_layers)
        self.lm_head = _lm_head(self.config)

    def __call__(self, batch: Batch, deterministic: bool = True,
                 decode: bool = False) -> dict[str, Array]:
        """With `decode`, the tokens sit at cache slots `decoder_positions` [b, l] (see the module
        docstring); a prefix LM's prompt is one call, its positions marked in
        `decoder_causal_attention`."""
        x = self.embedder(batch["decoder_input_tokens"], batch.get("decoder_positions"))
        prefix = batch["decoder_causal_attention"] if self.config.prefix_lm else None
        y = self.decoder(x, batch["decoder_segment_ids"], causal=True, bidirectional=prefix,
                         deterministic=deterministic, decode=decode,
                         cache_positions=batch["decoder_positions"] if decode else None)
        return {"logits": _logits(self.config, self.embedder, self.lm_head, y)}


class Pooler(nn.Module):
    """BERT's pooler: dense + tanh, applied at every position (the loss reads each example's first)."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, y: Array) -> Array:  # [b, l, e] -> [b, l, e]
        return jnp.tanh(dense(self.config, self.config.d_model, ("embed", "mlp"), "dense")(y))


class MlmHead(nn.Module):
    """BERT's MLM head: dense + activation + norm, then logits tied to the embedding, plus a bias."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, y: Array, embedder: Embedder) -> Array:  # [b, l, e] -> [b, l, v]
        cfg = self.config
        h = dense(cfg, cfg.d_model, ("embed", "mlp"), "transform")(y)
        h = make_norm(cfg, "norm")(nn.gelu(h, approximate=cfg.mlp_activations[0] != "gelu_exact"))
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ("vocab",)),
                          (cfg.vocab_size,), jnp.float32)
        return embedder.tokens.attend(h) + bias.astype(cfg.dtype)


class EncoderOnly(nn.Module):
    """BERT / RoBERTa: a bidirectional encoder with the heads named in `config.encoder_heads`.

    Classification heads read every position; their losses weight only the first position of each
    packed example (its [CLS]) through the converter's `*_loss_weights`. The span-QA head scores
    every position as the answer's start and as its end ([b, l] each, as BERT's `qa_outputs`); the
    loss turns each packed example's scores into a distribution over its own positions
    (`t2t.training.losses.example_position_logits`).
    """

    config: TransformerConfig

    def setup(self) -> None:
        cfg = self.config
        heads = set(cfg.encoder_heads)
        self.embedder = Embedder(cfg)
        self.encoder = TransformerStack(cfg, cfg.num_encoder_layers)
        if "mlm" in heads:
            self.mlm_head = MlmHead(cfg)
        if heads & {"nsp", "sequence_classification"}:
            self.pooler = Pooler(cfg)
        if "nsp" in heads:
            self.nsp_head = dense(cfg, 2, ("embed", None), "nsp_head")
        if "sequence_classification" in heads:
            self.classifier = dense(cfg, cfg.num_labels, ("embed", None), "classifier")
        if "token_classification" in heads:
            self.token_classifier = dense(cfg, cfg.num_labels, ("embed", None), "token_classifier")
        if "span_qa" in heads:
            self.span_head = dense(cfg, 2, ("embed", None), "span_head")

    def __call__(self, batch: Batch, deterministic: bool = True) -> dict[str, Array]:
        cfg = self.config
        x = self.embedder(batch["encoder_input_tokens"], batch.get("encoder_positions"),
                          batch.get("encoder_token_type_ids"))
        y = self.encoder(x, batch["encoder_segment_ids"], causal=False, deterministic=deterministic)
        out = {}
        if "mlm" in cfg.encoder_heads:
            out["mlm_logits"] = constrain(self.mlm_head(y, self.embedder),
                                          "batch", "length", "act_vocab")
        if "nsp" in cfg.encoder_heads:
            out["nsp_logits"] = self.nsp_head(self.pooler(y))
        if "sequence_classification" in cfg.encoder_heads:
            out["classification_logits"] = self.classifier(self.pooler(y))
        if "token_classification" in cfg.encoder_heads:
            out["token_logits"] = self.token_classifier(y)
        if "span_qa" in cfg.encoder_heads:
            span = self.span_head(y)  # [b, l, 2]: start and end scores of every position
            out["span_start_logits"], out["span_end_logits"] = span[..., 0], span[..., 1]
        return {k: v.astype(jnp.float32) for k, v in out.items()}


MODELS: dict[str, type[nn.Module]] = {
    "encoder_decoder": EncoderDecoder,
    "decoder_only": DecoderOnly,
    "encoder_only": EncoderOnly,
}


def build_model(config: TransformerConfig) -> nn.Module:
    """The family's model for `config`."""
    return MODELS[config.family](config)


def dummy_batch(config: TransformerConfig, batch_size: int = 1, length: int = 8
                ) -> dict[str, Array]:
    """A batch with every feature the family reads, for shapes and parameter counts."""
    prefix = {"encoder_decoder": ("encoder", "decoder"), "decoder_only": ("decoder",),
              "encoder_only": ("encoder",)}[config.family]
    names = ["input_tokens", "segment_ids", "positions", "token_type_ids", "causal_attention"]
    return {f"{p}_{n}": jnp.ones((batch_size, length), jnp.int32) for p in prefix for n in names}
