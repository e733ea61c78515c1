"""HF GPT-2 (`GPT2LMHeadModel`) <-> our decoder-only model with GPT-2's options.

GPT-2's projections are `Conv1D`s, whose weights are stored [in, out] (not transposed like
torch.nn.Linear), and its query, key and value live in one fused `c_attn`:

    ours                                              HF (transformer.h.i.)
    self_attention/{query,key,value}/kernel [e,h,d]   attn.c_attn.weight [e, 3*h*d] = [q | k | v]
    self_attention/{query,key,value}/bias [h, d]      attn.c_attn.bias [3*h*d]
    self_attention/out/kernel [h, d, e]               attn.c_proj.weight [h*d, e]
    mlp/wi/kernel [e, f]                              mlp.c_fc.weight [e, f]
    mlp/wo/kernel [f, e]                              mlp.c_proj.weight [f, e]
    pre_self_attention_norm, pre_mlp_norm             ln_1, ln_2
    decoder/final_norm                                transformer.ln_f

HF divides attention logits by sqrt(head_dim) at run time, as our GPT-2 does
(`runtime_attention_scale`); a config that folds it into the query converts too (`query_scale`).
The output layer is tied to `wte` without rescaling (`rescale_tied_logits=False`).
"""

from __future__ import annotations

from typing import Mapping

from t2t.interop.mapping import (SAME, VECTOR, HfFamily, Link, activation_from_hf,
                                 activation_to_hf, conv1d, dense, link, norm, query_scale, required,
                                 scaled, split_heads)
from t2t.models.config import TransformerConfig


def config_to_hf(config: TransformerConfig) -> dict:
    """HF GPT2Config fields for `config`; BOS = EOS = 1 (t2t's vocabularies' EOS)."""
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": config.vocab_size, "n_positions": config.max_length,
        "n_embd": config.d_model, "n_layer": config.num_decoder_layers,
        "n_head": config.num_heads, "n_inner": config.d_ff,
        "activation_function": activation_to_hf(config.mlp_activations),
        "resid_pdrop": config.dropout_rate, "embd_pdrop": config.dropout_rate,
        "attn_pdrop": config.dropout_rate, "layer_norm_epsilon": config.layer_norm_epsilon,
        "initializer_range": config.init_std, "tie_word_embeddings": config.logits_via_embedding,
        "scale_attn_weights": True, "bos_token_id": 1, "eos_token_id": 1,
    }


def config_from_hf(hf: Mapping) -> TransformerConfig:
    """Our config for an HF GPT-2 config.json."""
    if not hf.get("tie_word_embeddings", True):
        raise ValueError("HF GPT-2 with tie_word_embeddings=false has a bias-free lm_head, which "
                         "t2t's GPT-2 options (use_bias=True) cannot express; only tied GPT-2 "
                         "converts.")
    for option, default in (("scale_attn_weights", True),
                            ("scale_attn_by_inverse_layer_idx", False)):
        if hf.get(option, default) != default:
            raise ValueError(f"HF GPT-2 with {option}={hf[option]} is not supported; t2t "
                             f"converts the default ({default}).")
    d_model, num_heads = required(hf, "n_embd"), required(hf, "n_head")
    return TransformerConfig(
        family="decoder_only", vocab_size=required(hf, "vocab_size"), d_model=d_model,
        num_heads=num_heads, head_dim=split_heads(d_model, num_heads),
        d_ff=hf.get("n_inner") or 4 * d_model, num_encoder_layers=0,
        num_decoder_layers=required(hf, "n_layer"),
        mlp_activations=(activation_from_hf(hf.get("activation_function", "gelu_new")),),
        dropout_rate=hf.get("resid_pdrop", 0.1), logits_via_embedding=True,
        rescale_tied_logits=False, position_embedding="learned",
        max_length=required(hf, "n_positions"), norm="layer_norm",
        layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-5), use_bias=True,
        init_std=hf.get("initializer_range", 0.02), runtime_attention_scale=True)


def links(config: TransformerConfig) -> list[Link]:
    """The tensor links of `config`'s model (the table above)."""
    out = [link("transformer.wte.weight", "embedder/tokens/embedding", SAME),
           link("transformer.wpe.weight", "embedder/positions/embedding", SAME)]
    scale = query_scale(config, hf_divides_at_run_time=True)
    for i in range(config.num_decoder_layers):
        hf, ours = f"transformer.h.{i}", f"decoder/layers_{i}"
        qkv = tuple(f"{ours}/self_attention/{name}" for name in ("query", "key", "value"))
        out += [
            Link(f"{hf}.attn.c_attn.weight", tuple(f"{p}/kernel" for p in qkv),
                 (scaled(conv1d(1), scale), conv1d(1), conv1d(1))),
            Link(f"{hf}.attn.c_attn.bias", tuple(f"{p}/bias" for p in qkv),
                 (scaled(VECTOR, scale), VECTOR, VECTOR)),
            *dense(f"{hf}.attn.c_proj", f"{ours}/self_attention/out", conv1d(2), use_bias=True),
            *dense(f"{hf}.mlp.c_fc", f"{ours}/mlp/wi", conv1d(1), use_bias=True),
            *dense(f"{hf}.mlp.c_proj", f"{ours}/mlp/wo", conv1d(1), use_bias=True),
            *norm(f"{hf}.ln_1", f"{ours}/pre_self_attention_norm", config),
            *norm(f"{hf}.ln_2", f"{ours}/pre_mlp_norm", config),
        ]
    return out + norm("transformer.ln_f", "decoder/final_norm", config)


FAMILY = HfFamily(
    model_type="gpt2", holds=lambda c: c.family == "decoder_only",
    config_to_hf=config_to_hf, config_from_hf=config_from_hf, links=links,
    # A decoder-only model has no encoder, heads, or relative positions.
    unused_fields=frozenset({"num_encoder_layers", "encoder_heads", "num_labels",
                             "relative_attention_num_buckets",
                             "relative_attention_max_distance"}),
    # The tied output layer, and the causal-mask buffers older checkpoints saved.
    ignored_keys=(r"^lm_head\.weight$", r"\.attn\.(masked_)?bias$"),
    base_prefix="transformer.",
)
