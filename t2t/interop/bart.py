"""HF BART (`BartForConditionalGeneration`) <-> our encoder-decoder with BART's options.

BART is BERT's post-LN layer in both stacks, with exact GeLU, biased projections, a normed
embedding per stack, a learned position table per stack, and logits tied to the one token
embedding without rescaling:

    ours                                          HF (model.{stack}.layers.i.)
    embedder/tokens/embedding [v, e]              model.shared.weight [v, e]
    embedder/{stack}_positions/embedding [p, e]   model.{stack}.embed_positions.weight [p + 2, e]
    {stack}/embedding_norm                        model.{stack}.layernorm_embedding
    self_attention/{query,key,value} [e, h, d]    self_attn.{q,k,v}_proj [h*d, e]
    self_attention/out [h, d, e]                  self_attn.out_proj [e, h*d]
    post_self_attention_norm                      self_attn_layer_norm
    cross_attention/..., post_cross_attention_norm  encoder_attn.*, encoder_attn_layer_norm
    mlp/wi [e, f], mlp/wo [f, e]                  fc1 [f, e], fc2 [e, f]
    post_mlp_norm                                 final_layer_norm

HF's position tables have two more rows than positions: it looks up position + 2 (fairseq's
legacy: its positions started after the padding index, 1), so rows 0 and 1 are never read. Import drops
them; export writes zeros there. HF's `final_logits_bias` is a buffer, not a parameter: HF
creates it as zeros and no optimizer moves it. Export writes zeros, and import refuses a
checkpoint where it is not zero. HF scales the query by 1/sqrt(head_dim) at run time, as our
BART does (`runtime_attention_scale`; a config that folds it into the query converts too). HF's
three dropout rates (`dropout`, `attention_dropout`, `activation_dropout`) become our one, its
`dropout`.
"""

from __future__ import annotations

import logging
from typing import Mapping

import numpy as np

from t2t.interop.mapping import (SAME, Codec, HfFamily, Link, activation_from_hf, activation_to_hf,
                                 dense, link, linear, norm, query_scale, required, scaled,
                                 split_heads)
from t2t.models.config import TransformerConfig

log = logging.getLogger(__name__)

# HF reads position p at row p + 2 of its tables.
POSITION_OFFSET = 2
# HF's LayerNorm, whose epsilon no BART config field sets.
LAYER_NORM_EPSILON = 1e-5

# Our [p, e] table <-> HF's [p + 2, e], whose first two rows are never read.
_POSITIONS = Codec(
    lambda x: np.concatenate([np.zeros((POSITION_OFFSET, x.shape[1]), x.dtype), x]),
    lambda y, shape: y[POSITION_OFFSET:].reshape(shape))


def config_to_hf(config: TransformerConfig) -> dict:
    """HF BartConfig fields for `config`; PAD 0, EOS 1 and decoder start 0 are t2t's
    vocabularies' (HF's BART defaults, 1, 2 and 2, are its BPE vocabulary's)."""
    rate = config.dropout_rate
    return {
        "architectures": ["BartForConditionalGeneration"], "model_type": "bart",
        "vocab_size": config.vocab_size, "d_model": config.d_model,
        "encoder_layers": config.num_encoder_layers, "decoder_layers": config.num_decoder_layers,
        "encoder_attention_heads": config.num_heads, "decoder_attention_heads": config.num_heads,
        "encoder_ffn_dim": config.d_ff, "decoder_ffn_dim": config.d_ff,
        "activation_function": activation_to_hf(config.mlp_activations),
        "dropout": rate, "attention_dropout": rate, "activation_dropout": rate,
        "max_position_embeddings": config.max_length, "init_std": config.init_std,
        "scale_embedding": config.scale_embeddings, "tie_word_embeddings": True,
        "is_encoder_decoder": True, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 1,
        "decoder_start_token_id": 0, "forced_eos_token_id": 1,
    }


# BartConfig's defaults (BART large), for config.json files that omit a field.
_HF_DEFAULTS = {"d_model": 1024, "encoder_layers": 12, "decoder_layers": 12,
                "encoder_attention_heads": 16, "decoder_attention_heads": 16,
                "encoder_ffn_dim": 4096, "decoder_ffn_dim": 4096, "activation_function": "gelu",
                "dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0,
                "max_position_embeddings": 1024, "init_std": 0.02, "scale_embedding": False,
                "tie_word_embeddings": True}


def config_from_hf(hf: Mapping) -> TransformerConfig:
    """Our config for an HF BART config.json."""
    get = lambda key: hf.get(key, _HF_DEFAULTS[key])
    for ours, stack_fields in (("num_heads", "attention_heads"), ("d_ff", "ffn_dim")):
        encoder, decoder = get(f"encoder_{stack_fields}"), get(f"decoder_{stack_fields}")
        if encoder != decoder:
            raise ValueError(f"HF BART with encoder_{stack_fields}={encoder} and decoder_"
                             f"{stack_fields}={decoder} is not supported: t2t's encoder and "
                             f"decoder share one {ours}.")
    if not get("tie_word_embeddings"):
        raise ValueError("HF BART with tie_word_embeddings=false is not supported; t2t's BART "
                         "ties its logits to the token embedding.")
    rate = get("dropout")
    if get("attention_dropout") != rate or get("activation_dropout") != rate:
        log.warning("HF BART has dropout=%s, attention_dropout=%s and activation_dropout=%s; "
                    "t2t applies one rate everywhere: %s.", rate, get("attention_dropout"),
                    get("activation_dropout"), rate)
    d_model, num_heads = get("d_model"), get("encoder_attention_heads")
    return TransformerConfig(
        family="encoder_decoder", vocab_size=required(hf, "vocab_size"), d_model=d_model,
        num_heads=num_heads, head_dim=split_heads(d_model, num_heads),
        d_ff=get("encoder_ffn_dim"), num_encoder_layers=get("encoder_layers"),
        num_decoder_layers=get("decoder_layers"),
        mlp_activations=(activation_from_hf(get("activation_function")),),
        dropout_rate=rate, logits_via_embedding=True, rescale_tied_logits=False,
        position_embedding="learned", max_length=get("max_position_embeddings"),
        norm="layer_norm", layer_norm_epsilon=LAYER_NORM_EPSILON, norm_position="post",
        embedding_norm=True, use_bias=True, init_std=get("init_std"),
        scale_embeddings=get("scale_embedding"), runtime_attention_scale=True)


def links(config: TransformerConfig) -> list[Link]:
    """The tensor links of `config`'s model (the table above)."""
    out = [link("model.shared.weight", "embedder/tokens/embedding", SAME)]
    scale = query_scale(config, hf_divides_at_run_time=True)
    for stack, num_layers in (("encoder", config.num_encoder_layers),
                              ("decoder", config.num_decoder_layers)):
        out += [link(f"model.{stack}.embed_positions.weight",
                     f"embedder/{stack}_positions/embedding", _POSITIONS),
                *norm(f"model.{stack}.layernorm_embedding", f"{stack}/embedding_norm", config)]
        attentions = {"self_attn": "self_attention"}
        if stack == "decoder":
            attentions["encoder_attn"] = "cross_attention"
        for i in range(num_layers):
            hf, ours = f"model.{stack}.layers.{i}", f"{stack}/layers_{i}"
            for their_name, our_name in attentions.items():
                a, b = f"{hf}.{their_name}", f"{ours}/{our_name}"
                out += [*dense(f"{a}.q_proj", f"{b}/query", scaled(linear(1), scale),
                               use_bias=True, bias_scale=scale),
                        *dense(f"{a}.k_proj", f"{b}/key", linear(1), True),
                        *dense(f"{a}.v_proj", f"{b}/value", linear(1), True),
                        *dense(f"{a}.out_proj", f"{b}/out", linear(2), True),
                        *norm(f"{a}_layer_norm", f"{ours}/post_{our_name}_norm", config)]
            out += [*dense(f"{hf}.fc1", f"{ours}/mlp/wi", linear(1), True),
                    *dense(f"{hf}.fc2", f"{ours}/mlp/wo", linear(1), True),
                    *norm(f"{hf}.final_layer_norm", f"{ours}/post_mlp_norm", config)]
    return out


def constants(config: TransformerConfig) -> dict[str, np.ndarray]:
    """HF tensors that hold none of our parameters but must have these values."""
    return {"final_logits_bias": np.zeros((1, config.vocab_size), np.float32)}


FAMILY = HfFamily(
    model_type="bart",
    holds=lambda c: c.family == "encoder_decoder" and c.position_embedding == "learned",
    config_to_hf=config_to_hf, config_from_hf=config_from_hf, links=links,
    constants=constants,
    # Relative positions and encoder-only heads do not apply.
    unused_fields=frozenset({"relative_attention_num_buckets", "relative_attention_max_distance",
                             "encoder_heads", "num_labels"}),
    # Tied copies of model.shared.weight; some checkpoints (bart-large-cnn) store the embedding
    # only under one of them, so they are also where it is looked for.
    ignored_keys=(r"^model\.(encoder|decoder)\.embed_tokens\.weight$", r"^lm_head\.weight$"),
    aliases={"model.shared.weight": ("model.decoder.embed_tokens.weight",
                                     "model.encoder.embed_tokens.weight")},
    base_prefix="model.",
)
