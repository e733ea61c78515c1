"""Named model sizes.

The published sizes use T5's vocabulary (32,128 embedding rows). Their parameter counts, checked in
tests/models/test_sizes.py, equal the released checkpoints': e.g. T5 base 222,903,552 and T5 v1.1 base
247,577,856 (T5 paper §3.7; t5x `t5_1_0/*.gin`, `t5_1_1/*.gin`; keras-hub presets).

The `tiny` sizes are for CPUs; they take their vocabulary size from the vocabulary in use.
GPT-1/2/3, BERT, RoBERTa, BART and the original Transformer are built from the same layers with
their own norms, positions, biases and heads (see TransformerConfig).
"""

from __future__ import annotations

import difflib

from t2t.models.config import TransformerConfig

T5_VOCAB_ROWS = 32_128

# T5 v1.0: ReLU MLP, logits tied to the embedding, dropout 0.1.
_T5_1_0 = TransformerConfig(
    vocab_size=T5_VOCAB_ROWS,
    mlp_activations=("relu",),
    dropout_rate=0.1,
    logits_via_embedding=True,
)
# T5 v1.1: gated-GeLU MLP, untied logits, no dropout in pretraining.
_T5_1_1 = TransformerConfig(
    vocab_size=T5_VOCAB_ROWS,
    mlp_activations=("gelu", "linear"),
    dropout_rate=0.0,
    logits_via_embedding=False,
)


def _shape(base: TransformerConfig, d_model: int, d_ff: int, head_dim: int, num_heads: int,
           layers: int, **extra) -> TransformerConfig:
    return base.replace(d_model=d_model, d_ff=d_ff, head_dim=head_dim, num_heads=num_heads,
                        num_encoder_layers=layers, num_decoder_layers=layers, **extra)


SIZES: dict[str, TransformerConfig] = {
    #                               d_model  d_ff  head_dim heads layers
    "t5_1_0/tiny": _shape(_T5_1_0, 256, 1024, 32, 8, 2, vocab_size=None),
    "t5_1_0/small": _shape(_T5_1_0, 512, 2048, 64, 8, 6),
    "t5_1_0/base": _shape(_T5_1_0, 768, 3072, 64, 12, 12),
    "t5_1_0/large": _shape(_T5_1_0, 1024, 4096, 64, 16, 24),
    "t5_1_0/3B": _shape(_T5_1_0, 1024, 16384, 128, 32, 24),
    "t5_1_0/11B": _shape(_T5_1_0, 1024, 65536, 128, 128, 24),
    "t5_1_1/tiny": _shape(_T5_1_1, 256, 640, 32, 8, 2, vocab_size=None),
    "t5_1_1/small": _shape(_T5_1_1, 512, 1024, 64, 6, 8),
    "t5_1_1/base": _shape(_T5_1_1, 768, 2048, 64, 12, 12),
    "t5_1_1/large": _shape(_T5_1_1, 1024, 2816, 64, 16, 24),
    "t5_1_1/xl": _shape(_T5_1_1, 2048, 5120, 64, 32, 24),
    "t5_1_1/xxl": _shape(_T5_1_1, 4096, 10240, 64, 64, 24),
}


# GPT-2 (Radford et al. 2019; nanoGPT's configs): learned positions, pre-LN, tied, biased layers.
_GPT2 = TransformerConfig(
    family="decoder_only", vocab_size=50_257, mlp_activations=("gelu",), dropout_rate=0.1,
    logits_via_embedding=True, rescale_tied_logits=False, position_embedding="learned",
    max_length=1024, norm="layer_norm", layer_norm_epsilon=1e-5, use_bias=True, init_std=0.02,
    runtime_attention_scale=True, num_encoder_layers=0)
# GPT-1 (Radford et al. 2018) was post-LN with a 512 context; GPT-3 (Brown et al. 2020, Table 2.1)
# is GPT-2's architecture at a 2048 context (its sparse attention layers are not modelled).
_GPT1 = _GPT2.replace(norm_position="post", max_length=512, vocab_size=40_478)
_GPT3 = _GPT2.replace(max_length=2048)
# BERT (Devlin et al. 2019): post-LN, normed embeddings, token types, exact GeLU, MLM + NSP heads.
_BERT = TransformerConfig(
    family="encoder_only", vocab_size=30_522, mlp_activations=("gelu_exact",), dropout_rate=0.1,
    position_embedding="learned", max_length=512, type_vocab_size=2, norm="layer_norm",
    layer_norm_epsilon=1e-12, norm_position="post", embedding_norm=True, use_bias=True,
    init_std=0.02, runtime_attention_scale=True, encoder_heads=("mlm", "nsp"),
    num_decoder_layers=0)
# RoBERTa (Liu et al. 2019): BERT's architecture, a 50k BPE vocabulary, no NSP, one token type.
_ROBERTA = _BERT.replace(vocab_size=50_265, type_vocab_size=1, encoder_heads=("mlm",),
                         layer_norm_epsilon=1e-5)
# BART (Lewis et al. 2020): an encoder-decoder with BERT-style post-LN layers and a learned position
# table per stack.
_BART = _BERT.replace(family="encoder_decoder", vocab_size=50_265, type_vocab_size=0,
                      layer_norm_epsilon=1e-5, logits_via_embedding=True,
                      rescale_tied_logits=False, max_length=1024, encoder_heads=("mlm",))
# The original Transformer (Vaswani et al. 2017, "base"): sinusoidal positions, post-LN, embeddings
# scaled by sqrt(d_model) and initialised with std d_model^-1/2, tied output layer.
_TRANSFORMER = TransformerConfig(
    vocab_size=37_000, mlp_activations=("relu",), dropout_rate=0.1, logits_via_embedding=True,
    rescale_tied_logits=False, position_embedding="sinusoidal", norm="layer_norm",
    norm_position="post", use_bias=True, scale_embeddings=True, init_std=512**-0.5,
    runtime_attention_scale=True, max_length=4096)


def _decoder(base: TransformerConfig, layers: int, d_model: int, heads: int,
             head_dim: int | None = None) -> TransformerConfig:
    head_dim = head_dim or d_model // heads
    return base.replace(d_model=d_model, num_heads=heads, head_dim=head_dim, d_ff=4 * d_model,
                        num_decoder_layers=layers)


def _encoder(base: TransformerConfig, layers: int, d_model: int, heads: int) -> TransformerConfig:
    return base.replace(d_model=d_model, num_heads=heads, head_dim=d_model // heads,
                        d_ff=4 * d_model, num_encoder_layers=layers)


SIZES.update({
    "gpt1/base": _decoder(_GPT1, 12, 768, 12),
    "gpt2/small": _decoder(_GPT2, 12, 768, 12),
    "gpt2/medium": _decoder(_GPT2, 24, 1024, 16),
    "gpt2/large": _decoder(_GPT2, 36, 1280, 20),
    "gpt2/xl": _decoder(_GPT2, 48, 1600, 25),
    "gpt2/tiny": _decoder(_GPT2, 2, 256, 8).replace(vocab_size=None),
    "gpt3/small": _decoder(_GPT3, 12, 768, 12),
    "gpt3/medium": _decoder(_GPT3, 24, 1024, 16),
    "gpt3/large": _decoder(_GPT3, 24, 1536, 16, 96),
    "gpt3/xl": _decoder(_GPT3, 24, 2048, 24, 128),
    "gpt3/2.7B": _decoder(_GPT3, 32, 2560, 32, 80),
    "gpt3/6.7B": _decoder(_GPT3, 32, 4096, 32, 128),
    "gpt3/13B": _decoder(_GPT3, 40, 5140, 40, 128),
    "gpt3/175B": _decoder(_GPT3, 96, 12288, 96, 128),
    "bert/base": _encoder(_BERT, 12, 768, 12),
    "bert/large": _encoder(_BERT, 24, 1024, 16),
    "bert/tiny": _encoder(_BERT, 2, 256, 8).replace(vocab_size=None),
    "roberta/base": _encoder(_ROBERTA, 12, 768, 12),
    "roberta/large": _encoder(_ROBERTA, 24, 1024, 16),
    "bart/base": _encoder(_BART, 6, 768, 12).replace(num_decoder_layers=6),
    "bart/large": _encoder(_BART, 12, 1024, 16).replace(num_decoder_layers=12),
    "bart/tiny": _encoder(_BART, 2, 256, 8).replace(num_decoder_layers=2, vocab_size=None),
    "transformer/base": _encoder(_TRANSFORMER, 6, 512, 8).replace(num_decoder_layers=6),
})


def table2_architectures(base: TransformerConfig) -> dict[str, TransformerConfig]:
    """T5 Table 2's architectures built from an L + L encoder-decoder `base` (T5 §3.2.2).

    encoder_decoder: L + L layers, 2P parameters, M FLOPs per example;
    shared:          L + L layers sharing one stack, P params, M FLOPs;
    encoder_decoder_half: L/2 + L/2, P params, M/2 FLOPs;
    language_model:  an L-layer decoder-only LM over inputs + targets, P params, M FLOPs;
    prefix_lm:       the same with fully visible attention over the inputs.
    """
    layers = base.num_decoder_layers
    lm = base.replace(family="decoder_only", num_encoder_layers=0)
    return {
        "encoder_decoder": base,
        "shared": base.replace(shared_encoder_decoder=True),
        "encoder_decoder_half": base.replace(num_encoder_layers=layers // 2,
                                             num_decoder_layers=layers // 2),
        "language_model": lm,
        "prefix_lm": lm.replace(prefix_lm=True),
    }


# Table 2 at the paper's BERT-base size (12 + 12 layers of T5 v1.0 base) and at a CPU size.
for _scale, _base in (("t5_table2", SIZES["t5_1_0/base"]), ("t5_table2_tiny", SIZES["t5_1_0/tiny"])):
    SIZES.update({f"{_scale}/{name}": config
                  for name, config in table2_architectures(_base).items()})


def get_size(name: str) -> TransformerConfig:
    """The named size; an unknown name fails with the closest valid one."""
    if name not in SIZES:
        close = difflib.get_close_matches(name, SIZES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown model size {name!r}.{hint} Known sizes: {', '.join(SIZES)}.")
    return SIZES[name]
