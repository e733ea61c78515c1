"""HF BERT (`BertForPreTraining`, `BertForMaskedLM`, `BertFor{Sequence,Token}Classification`) <->
our encoder-only model with BERT's options.

    ours                                          HF (bert.encoder.layer.i.)
    self_attention/{query,key,value} [e, h, d]    attention.self.{query,key,value} [h*d, e]
    self_attention/out [h, d, e]                  attention.output.dense [e, h*d]
    post_self_attention_norm                      attention.output.LayerNorm
    mlp/wi [e, f], mlp/wo [f, e]                  intermediate.dense [f, e], output.dense [e, f]
    post_mlp_norm                                 output.LayerNorm
    encoder/embedding_norm                        bert.embeddings.LayerNorm
    mlm_head/transform, norm, bias                cls.predictions.transform.dense,
                                                    .transform.LayerNorm, .bias
    pooler/dense, nsp_head                        bert.pooler.dense, cls.seq_relationship
    classifier or token_classifier                classifier

The HF architecture decides our `encoder_heads`. HF divides attention logits by sqrt(head_dim) at
run time, as our BERT does (`runtime_attention_scale`); a config that folds it into the query
converts too (`query_scale`).
"""

from __future__ import annotations

from typing import Mapping

from t2t.interop.mapping import (SAME, HfFamily, Link, activation_from_hf, activation_to_hf,
                                 dense, link, linear, norm, query_scale, required, scaled,
                                 split_heads)
from t2t.models.config import TransformerConfig

ARCHITECTURES = {
    "BertForPreTraining": ("mlm", "nsp"),
    "BertForMaskedLM": ("mlm",),
    "BertForSequenceClassification": ("sequence_classification",),
    "BertForTokenClassification": ("token_classification",),
}
_HEADS = {heads: architecture for architecture, heads in ARCHITECTURES.items()}


def config_to_hf(config: TransformerConfig) -> dict:
    """HF BertConfig fields for `config`, under the architecture that has its heads."""
    heads = tuple(config.encoder_heads)
    if heads not in _HEADS:
        raise ValueError(f"No HF BERT architecture has the heads {heads}; supported: "
                         f"{sorted(_HEADS)}.")
    return {
        "architectures": [_HEADS[heads]], "model_type": "bert",
        "vocab_size": config.vocab_size, "hidden_size": config.d_model,
        "num_hidden_layers": config.num_encoder_layers,
        "num_attention_heads": config.num_heads, "intermediate_size": config.d_ff,
        "hidden_act": activation_to_hf(config.mlp_activations),
        "hidden_dropout_prob": config.dropout_rate,
        "attention_probs_dropout_prob": config.dropout_rate,
        "max_position_embeddings": config.max_length, "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.init_std, "layer_norm_eps": config.layer_norm_epsilon,
        "position_embedding_type": "absolute", "pad_token_id": 0,
        "id2label": {str(i): f"LABEL_{i}" for i in range(config.num_labels)},
        "label2id": {f"LABEL_{i}": i for i in range(config.num_labels)},
    }


def config_from_hf(hf: Mapping) -> TransformerConfig:
    """Our config for an HF BERT config.json."""
    architecture = (hf.get("architectures") or ["BertForPreTraining"])[0]
    if architecture not in ARCHITECTURES:
        raise ValueError(f"HF BERT architecture {architecture!r} is not supported; supported: "
                         f"{sorted(ARCHITECTURES)}.")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"HF BERT position_embedding_type="
                         f"{hf['position_embedding_type']!r} is not supported; only 'absolute'.")
    heads = ARCHITECTURES[architecture]
    activation = activation_from_hf(hf.get("hidden_act", "gelu"))
    if "mlm" in heads and activation not in ("gelu", "gelu_exact"):
        raise ValueError(f"t2t's MLM head uses GeLU where HF's uses hidden_act="
                         f"{hf['hidden_act']!r}; only GeLU BERTs convert with an MLM head.")
    if "mlm" in heads and not hf.get("tie_word_embeddings", True):
        raise ValueError("t2t's MLM head is tied to the word embeddings; this HF config unties "
                         "them (tie_word_embeddings=false).")
    d_model, num_heads = required(hf, "hidden_size"), required(hf, "num_attention_heads")
    return TransformerConfig(
        family="encoder_only", vocab_size=required(hf, "vocab_size"), d_model=d_model,
        num_heads=num_heads, head_dim=split_heads(d_model, num_heads),
        d_ff=required(hf, "intermediate_size"),
        num_encoder_layers=required(hf, "num_hidden_layers"), num_decoder_layers=0,
        mlp_activations=(activation,), dropout_rate=hf.get("hidden_dropout_prob", 0.1),
        position_embedding="learned", max_length=hf.get("max_position_embeddings", 512),
        type_vocab_size=hf.get("type_vocab_size", 2), norm="layer_norm",
        layer_norm_epsilon=hf.get("layer_norm_eps", 1e-12), norm_position="post",
        embedding_norm=True, use_bias=True, init_std=hf.get("initializer_range", 0.02),
        runtime_attention_scale=True, encoder_heads=heads,
        num_labels=len(hf.get("id2label") or {}) or hf.get("num_labels", 2))


def links(config: TransformerConfig) -> list[Link]:
    """The tensor links of `config`'s model (the table above)."""
    out = [link("bert.embeddings.word_embeddings.weight", "embedder/tokens/embedding", SAME),
           link("bert.embeddings.position_embeddings.weight", "embedder/positions/embedding",
                SAME),
           *norm("bert.embeddings.LayerNorm", "encoder/embedding_norm", config)]
    if config.type_vocab_size:
        out.append(link("bert.embeddings.token_type_embeddings.weight",
                        "embedder/token_types/embedding", SAME))
    scale = query_scale(config, hf_divides_at_run_time=True)
    for i in range(config.num_encoder_layers):
        hf, ours = f"bert.encoder.layer.{i}", f"encoder/layers_{i}"
        out += [*dense(f"{hf}.attention.self.query", f"{ours}/self_attention/query",
                       scaled(linear(1), scale), use_bias=True, bias_scale=scale),
                *dense(f"{hf}.attention.self.key", f"{ours}/self_attention/key", linear(1), True),
                *dense(f"{hf}.attention.self.value", f"{ours}/self_attention/value", linear(1),
                       True),
                *dense(f"{hf}.attention.output.dense", f"{ours}/self_attention/out", linear(2),
                       True),
                *norm(f"{hf}.attention.output.LayerNorm", f"{ours}/post_self_attention_norm",
                      config),
                *dense(f"{hf}.intermediate.dense", f"{ours}/mlp/wi", linear(1), True),
                *dense(f"{hf}.output.dense", f"{ours}/mlp/wo", linear(1), True),
                *norm(f"{hf}.output.LayerNorm", f"{ours}/post_mlp_norm", config)]
    heads = set(config.encoder_heads)
    if "mlm" in heads:
        out += [*dense("cls.predictions.transform.dense", "mlm_head/transform", linear(1), True),
                *norm("cls.predictions.transform.LayerNorm", "mlm_head/norm", config),
                link("cls.predictions.bias", "mlm_head/bias", SAME)]
    if heads & {"nsp", "sequence_classification"}:
        out += dense("bert.pooler.dense", "pooler/dense", linear(1), True)
    if "nsp" in heads:
        out += dense("cls.seq_relationship", "nsp_head", linear(1), True)
    if "sequence_classification" in heads:
        out += dense("classifier", "classifier", linear(1), True)
    if "token_classification" in heads:
        out += dense("classifier", "token_classifier", linear(1), True)
    return out


FAMILY = HfFamily(
    model_type="bert", holds=lambda c: c.family == "encoder_only",
    config_to_hf=config_to_hf, config_from_hf=config_from_hf, links=links,
    # An encoder-only model has no decoder, output layer or relative positions.
    unused_fields=frozenset({"num_decoder_layers", "logits_via_embedding", "rescale_tied_logits",
                             "relative_attention_num_buckets",
                             "relative_attention_max_distance"}),
    # The MLM decoder is tied to the word embeddings and its bias to cls.predictions.bias;
    # position_ids is a buffer.
    ignored_keys=(r"^cls\.predictions\.decoder\.(weight|bias)$", r"embeddings\.position_ids$"),
    base_prefix="bert.",
)
