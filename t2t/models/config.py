"""The one configuration object every model family is built from."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import gin

ACTIVATIONS = ("relu", "gelu", "gelu_exact", "silu", "linear")
FAMILIES = ("encoder_decoder", "decoder_only", "encoder_only")
ENCODER_HEADS = ("mlm", "nsp", "sequence_classification", "token_classification", "span_qa")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Hyper-parameters of a transformer stack (or two, for encoder-decoders).

    Defaults are T5 v1.1's choices; named sizes live in `t2t.models.sizes`.

    Attributes:
      vocab_size: embedding rows. `None` means "take the vocabulary's padded size" (the trainer fills it);
        T5's checkpoints use 32,128 = 32,100 ids rounded up to a multiple of 128.
      d_model: width of the residual stream.
      num_heads, head_dim: attention heads and their width; `num_heads * head_dim` need not be `d_model`
        (T5 v1.0 3B/11B use 128-wide heads on a 1024-wide model).
      d_ff: width of the MLP's hidden layer.
      num_encoder_layers, num_decoder_layers: blocks per stack.
      mlp_activations: one activation per input projection; several are multiplied together, so
        `("gelu", "linear")` is T5 v1.1's gated-GeLU and `("relu",)` is T5 v1.0's MLP.
      dropout_rate: one rate everywhere (embeddings, attention weights, MLP, residual), as in T5.
      logits_via_embedding: tie the output layer to the input embedding (T5 v1.0). The tied logits
        are scaled by 1/sqrt(d_model) so that they stay O(1) with T5's unit-variance embedding init.
      relative_attention_num_buckets, relative_attention_max_distance: T5's relative position bias:
        one (heads x buckets) table per stack, shared by its layers.
      layer_norm_epsilon: RMSNorm's epsilon.
      dtype: compute dtype of activations ("float32" or "bfloat16"); parameters stay float32.
      family: "encoder_decoder" (T5, BART), "decoder_only" (GPT, causal or prefix LM) or
        "encoder_only" (BERT, RoBERTa).
      shared_encoder_decoder: the encoder runs the decoder's layers (without cross-attention), so
        the two share parameters (T5 Table 2's "Enc-dec, shared").
      prefix_lm: decoder-only with fully visible attention over the inputs part (T5's prefix LM);
        its relative positions are bidirectional.
      position_embedding: "relative" (T5's bias), "learned" (BERT, GPT-2) or "sinusoidal"
        (the original Transformer); the absolute kinds are added to the token embedding.
      max_length: positions an absolute position embedding covers.
      type_vocab_size: BERT's token-type (segment A/B) embedding rows; 0 for none.
      norm: "rms" (T5: no mean, no bias) or "layer_norm" (with mean and bias: BERT, GPT-2).
      norm_position: "pre" (T5, GPT-2: norm each sub-layer's input, final norm after the stack) or
        "post" (BERT, the original Transformer: norm after each residual addition).
      embedding_norm: norm the embeddings before the stack (BERT).
      use_bias: biases in dense layers (BERT, GPT-2; T5 has none).
      init_std: None for T5's variance-scaling initialisation; a float for BERT/GPT's
        normal(0, init_std) kernels and embeddings.
      rescale_tied_logits: divide tied logits by sqrt(d_model) (T5 v1.0, whose embeddings have unit
        variance); BERT and GPT-2 tie without rescaling.
      scale_embeddings: multiply token embeddings by sqrt(d_model) (the original Transformer).
      runtime_attention_scale: divide attention logits by sqrt(head_dim) at run time (BERT, GPT,
        BART, the original Transformer) rather than folding 1/sqrt(head_dim) into the query's
        initialisation (T5). The two compute the same function from the same initial one, but
        Adam's steps do not scale with a parameter: folded, the query learns sqrt(head_dim) times
        faster than in the models that divide at run time (Adafactor's parameter-scaled steps,
        T5's, keep the fold in proportion).
      encoder_heads: outputs of an encoder-only model: "mlm" (masked LM, tied to the embedding),
        "nsp" (next-sentence prediction from the pooled first token), "sequence_classification"
        (pooled first token), "token_classification" (every token) and "span_qa" (answer start
        and end scores at every token, for extractive question answering).
      num_labels: classes of the classification heads.
      scan_layers: run a stack's layers with `nn.scan` over one block whose parameters carry a
        leading `layers` axis, so compile time does not grow with depth.
      remat_policy: what the backward pass may keep instead of recomputing, per block: "none"
        (keep everything), "minimal" (keep matmul outputs without batch dimensions, i.e. the
        projections; recompute attention and elementwise work) or "full" (recompute the block).
      attention_kernel: "einsum" (explicit float32 softmax, any bias, attention dropout) or
        "dot_product" (`jax.nn.dot_product_attention`: cuDNN's fused flash-attention kernel on
        GPUs in bfloat16/float16, T5's relative bias included, with causality applied inside the
        kernel; XLA's implementation elsewhere; no attention dropout).
      one_example_per_row: train on unpacked rows, one example at the start of each, then
        padding (`make_converter` then builds the converter with pack=False), and with the
        dot_product kernel give attention the rows' lengths (`t2t.models.layers.RowLengths`)
        instead of [b, 1, q, k] masks: cuDNN masks inside the kernel, and T5's shared relative
        bias and its gradient stay [1, h, q, k] rather than becoming the [b, h, q, k] bias that a
        mask is folded into. The same numbers as the masks; T5's span corruption over
        concatenated documents fills its rows one example each anyway. Not for a prefix LM,
        whose mask is more than lengths.
      kernel_gradient: how the backward pass forms a dense layer's kernel gradient, the same
        numbers either way: "autodiff" (JAX's (g^T x)^T), "inputs_first" (x^T g,
        `t2t.models.layers.contract`: XLA:CPU then needs no transposed copy of the output
        gradient; a T5 v1.1 small step 1.32x faster on a 2-core CPU) or "auto" (inputs_first on
        CPUs, autodiff elsewhere).
    """

    vocab_size: int | None = None
    d_model: int = 512
    num_heads: int = 8
    head_dim: int = 64
    d_ff: int = 1024
    num_encoder_layers: int = 8
    num_decoder_layers: int = 8
    mlp_activations: tuple[str, ...] = ("gelu", "linear")
    dropout_rate: float = 0.0
    logits_via_embedding: bool = False
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    dtype: str = "float32"
    family: str = "encoder_decoder"
    shared_encoder_decoder: bool = False
    prefix_lm: bool = False
    position_embedding: str = "relative"
    max_length: int = 512
    type_vocab_size: int = 0
    norm: str = "rms"
    norm_position: str = "pre"
    embedding_norm: bool = False
    use_bias: bool = False
    init_std: float | None = None
    rescale_tied_logits: bool = True
    scale_embeddings: bool = False
    runtime_attention_scale: bool = False
    encoder_heads: tuple[str, ...] = ("mlm",)
    num_labels: int = 2
    scan_layers: bool = False
    remat_policy: str = "none"
    attention_kernel: str = "einsum"
    kernel_gradient: str = "auto"
    one_example_per_row: bool = False

    def __post_init__(self) -> None:
        for act in self.mlp_activations:
            if act not in ACTIVATIONS:
                raise ValueError(f"Unknown MLP activation {act!r}; choose from {ACTIVATIONS}.")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}.")
        choices = {"dtype": ("float32", "bfloat16"), "family": FAMILIES,
                   "position_embedding": ("relative", "learned", "sinusoidal"),
                   "norm": ("rms", "layer_norm"), "norm_position": ("pre", "post"),
                   "remat_policy": ("none", "minimal", "full"),
                   "attention_kernel": ("einsum", "dot_product"),
                   "kernel_gradient": ("auto", "autodiff", "inputs_first")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}.")
        for head in self.encoder_heads:
            if head not in ENCODER_HEADS:
                raise ValueError(f"Unknown encoder head {head!r}; choose from {ENCODER_HEADS}.")
        if self.attention_kernel == "dot_product" and self.dropout_rate > 0:
            raise ValueError(
                "attention_kernel='dot_product' has no attention dropout: set dropout_rate to 0 "
                "(T5 v1.1 pretrains without dropout), or keep attention_kernel='einsum'.")
        if self.prefix_lm and self.family != "decoder_only":
            raise ValueError("prefix_lm applies to the decoder_only family only.")
        if self.one_example_per_row and self.prefix_lm:
            raise ValueError("one_example_per_row does not apply to a prefix LM: its attention "
                             "mask (causal but for the prefix) is more than row lengths.")
        if self.shared_encoder_decoder and self.family != "encoder_decoder":
            raise ValueError("shared_encoder_decoder applies to the encoder_decoder family only.")

    def replace(self, **changes: Any) -> "TransformerConfig":
        """A copy with `changes`; unknown field names fail with the closest valid name."""
        check_field_names(changes)
        return dataclasses.replace(self, **changes)


def check_field_names(names) -> None:
    """Raise a ValueError naming any key of `names` that is not a TransformerConfig field."""
    fields = [f.name for f in dataclasses.fields(TransformerConfig)]
    for name in names:
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"model_config has no field {name!r}.{hint} Valid fields: {', '.join(fields)}."
            )


@gin.configurable
def model_config(size: str = gin.REQUIRED, **overrides: Any) -> TransformerConfig:
    """A named size (see `t2t.models.sizes.SIZES`) with any fields overridden.

    In gin: `model_config.size = 't5_1_1/base'` and e.g. `model_config.dropout_rate = 0.1`.
    """
    from t2t.models.sizes import get_size

    return get_size(size).replace(**overrides)
