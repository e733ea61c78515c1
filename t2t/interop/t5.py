"""HF T5 (`T5ForConditionalGeneration`, v1.0 and v1.1) <-> our encoder-decoder.

The two compute the same function: RMSNorm without bias, no dense biases, no 1/sqrt(d) on the
attention logits (both fold it into the query's init), one relative-position table per stack
(HF keeps it in block 0 and passes its bias on), and tied logits scaled by d_model^-1/2. So every
tensor maps by layout alone:

    ours                                         HF
    embedder/tokens/embedding [v, e]             shared.weight [v, e]
    encoder/relpos_bias/rel_embedding [h, 32]    encoder.block.0.layer.0.SelfAttention
                                                   .relative_attention_bias.weight [32, h]
    encoder/layers_i/self_attention/query        encoder.block.i.layer.0.SelfAttention.q.weight
      [e, h, d]                                    [h*d, e]
    decoder/layers_i/cross_attention/...         decoder.block.i.layer.1.EncDecAttention...
    decoder/layers_i/mlp/wi_0/kernel [e, f]      decoder.block.i.layer.2.DenseReluDense.wi_0
                                                   .weight [f, e]
    lm_head/kernel [e, v] (v1.1, untied)         lm_head.weight [v, e]
"""

from __future__ import annotations

from typing import Mapping

from t2t.interop.mapping import (SAME, HfFamily, Link, link, linear, norm, query_scale, required,
                                 scaled)
from t2t.models.config import TransformerConfig

# mlp_activations <-> HF feed_forward_proj. HF's "gated-gelu" is the tanh GeLU (gelu_new), its
# ungated "gelu" the exact one.
_FEED_FORWARD = {("relu",): "relu", ("gelu_exact",): "gelu", ("silu",): "silu",
                 ("gelu", "linear"): "gated-gelu", ("relu", "linear"): "gated-relu",
                 ("silu", "linear"): "gated-silu"}


def config_to_hf(config: TransformerConfig) -> dict:
    """HF T5Config fields for `config`; PAD 0, EOS 1 and decoder start 0 are T5's."""
    if config.mlp_activations not in _FEED_FORWARD:
        raise ValueError(f"HF T5 has no feed_forward_proj for mlp_activations="
                         f"{config.mlp_activations}; supported: {sorted(_FEED_FORWARD)}.")
    return {
        "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
        "vocab_size": config.vocab_size, "d_model": config.d_model, "d_kv": config.head_dim,
        "d_ff": config.d_ff, "num_heads": config.num_heads,
        "num_layers": config.num_encoder_layers, "num_decoder_layers": config.num_decoder_layers,
        "feed_forward_proj": _FEED_FORWARD[config.mlp_activations],
        "relative_attention_num_buckets": config.relative_attention_num_buckets,
        "relative_attention_max_distance": config.relative_attention_max_distance,
        "dropout_rate": config.dropout_rate, "layer_norm_epsilon": config.layer_norm_epsilon,
        "tie_word_embeddings": config.logits_via_embedding, "is_encoder_decoder": True,
        "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
    }


def config_from_hf(hf: Mapping) -> TransformerConfig:
    """Our config for an HF T5 config.json (HF's defaults where old configs omit a field)."""
    proj = hf.get("feed_forward_proj", "relu")
    activations = {v: k for k, v in _FEED_FORWARD.items()}
    if proj not in activations:
        raise ValueError(f"HF T5 feed_forward_proj={proj!r} has no t2t equivalent; supported: "
                         f"{sorted(activations)}.")
    num_layers = required(hf, "num_layers")
    return TransformerConfig(
        family="encoder_decoder", vocab_size=required(hf, "vocab_size"),
        d_model=required(hf, "d_model"), num_heads=required(hf, "num_heads"),
        head_dim=required(hf, "d_kv"), d_ff=required(hf, "d_ff"),
        num_encoder_layers=num_layers,
        num_decoder_layers=hf.get("num_decoder_layers") or num_layers,
        mlp_activations=activations[proj], dropout_rate=hf.get("dropout_rate", 0.1),
        logits_via_embedding=hf.get("tie_word_embeddings", True),
        relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_attention_max_distance=hf.get("relative_attention_max_distance", 128),
        layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-6))


def links(config: TransformerConfig) -> list[Link]:
    """The tensor links of `config`'s model (the table above)."""
    out = [link("shared.weight", "embedder/tokens/embedding", SAME)]
    for stack, num_layers in (("encoder", config.num_encoder_layers),
                              ("decoder", config.num_decoder_layers)):
        out.append(link(f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                        f"{stack}/relpos_bias/rel_embedding", linear(1)))
        out += norm(f"{stack}.final_layer_norm", f"{stack}/final_norm", config)
        sublayers = (["self_attention", "cross_attention"] if stack == "decoder"
                     else ["self_attention"]) + ["mlp"]
        for i in range(num_layers):
            for j, sublayer in enumerate(sublayers):
                hf, ours = f"{stack}.block.{i}.layer.{j}", f"{stack}/layers_{i}"
                out += norm(f"{hf}.layer_norm", f"{ours}/pre_{sublayer}_norm", config)
                if sublayer == "mlp":
                    out += _mlp(f"{hf}.DenseReluDense", f"{ours}/mlp", config)
                else:
                    module = "SelfAttention" if sublayer == "self_attention" else "EncDecAttention"
                    out += _attention(f"{hf}.{module}", f"{ours}/{sublayer}", config)
    if not config.logits_via_embedding:
        out.append(link("lm_head.weight", "lm_head/kernel", linear(1)))
    return out


def _attention(hf: str, ours: str, config: TransformerConfig) -> list[Link]:
    # HF T5 folds attention's 1/sqrt(head_dim) into the query; so do we unless the config divides
    # at run time (`query_scale`).
    scale = query_scale(config, hf_divides_at_run_time=False)
    return [link(f"{hf}.{h}.weight", f"{ours}/{o}/kernel",
                 scaled(linear(1), scale) if o == "query" else linear(2 if o == "out" else 1))
            for h, o in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "out"))]


def _mlp(hf: str, ours: str, config: TransformerConfig) -> list[Link]:
    names = ["wi"] if len(config.mlp_activations) == 1 else ["wi_0", "wi_1"]
    return [link(f"{hf}.{name}.weight", f"{ours}/{name}/kernel", linear(1))
            for name in names + ["wo"]]


FAMILY = HfFamily(
    model_type="t5",
    # T5's relative position bias; learned positions are BART's.
    holds=lambda c: c.family == "encoder_decoder" and c.position_embedding != "learned",
    config_to_hf=config_to_hf, config_from_hf=config_from_hf, links=links,
    # Relative positions need no table length; T5's init is variance scaling, not a std.
    unused_fields=frozenset({"max_length", "init_std", "encoder_heads", "num_labels"}),
    # Tied copies of shared.weight that some checkpoints also store.
    ignored_keys=(r"^(encoder|decoder)\.embed_tokens\.weight$", r"^lm_head\.weight$"),
)
