"""Named model sizes.

The published sizes use T5's vocabulary (32,128 embedding rows). Their parameter counts, checked in
tests/models/test_sizes.py, equal the released checkpoints': e.g. T5 base 222,903,552 and T5 v1.1 base
247,577,856 (T5 paper §3.7; t5x `t5_1_0/*.gin`, `t5_1_1/*.gin`; keras-hub presets).

The `tiny` sizes are for CPUs; they take their vocabulary size from the vocabulary in use.
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


def get_size(name: str) -> TransformerConfig:
    """The named size; an unknown name fails with the closest valid one."""
    if name not in SIZES:
        close = difflib.get_close_matches(name, SIZES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown model size {name!r}.{hint} Known sizes: {', '.join(SIZES)}.")
    return SIZES[name]
