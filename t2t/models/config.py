"""The one configuration object every model family is built from."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import gin

ACTIVATIONS = ("relu", "gelu", "silu", "linear")


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

    def __post_init__(self) -> None:
        for act in self.mlp_activations:
            if act not in ACTIVATIONS:
                raise ValueError(f"Unknown MLP activation {act!r}; choose from {ACTIVATIONS}.")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}.")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}.")

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
