"""A one-knob size ladder for each model family, with its parameter and FLOP counts.

One integer `knob` sets every shape, so a scaling sweep varies one number (Kaplan et al. 2020 found
loss depends on size, not shape, over a wide range of aspect ratios). With `width` w (default 64,
the head width of T5 and GPT-2):

    d_model   = w · knob
    num_heads = knob, head_dim = w             (heads = d_model / w)
    d_ff      = 4 · d_model                    (ReLU/GeLU MLP: two matrices)
              = 2.5 · d_model                  (gated MLP: three matrices, about the same
                                                parameters; T5 v1.1's ratio)
    layers    = knob per stack                 (an encoder-decoder has knob + knob)
    dropout   = 0                              (scaling laws are measured without dropout, as T5
                                                v1.1 and Chinchilla pretrain)

so the width-to-depth ratio stays w and the non-embedding parameters grow as knob³: a decoder-only
ladder has N ≈ 12 · layers · d_model² = 12 w² · knob³ (w = 64: knob 1 50k, 4 3.2M, 8 25M). A
smaller w gives smaller models and finer steps at the bottom, for CPU-sized budgets.

Everything else (norms, positions, biases, tied logits) comes from the family's base size:
`t5_1_1/tiny` (T5 v1.1) for encoder_decoder, `gpt2/tiny` for decoder_only, `bert/tiny` for
encoder_only; pass `base=` to climb another architecture (e.g. 't5_table2_tiny/language_model').

N, as in Kaplan et al., counts the non-embedding parameters: all but the vocabulary- and
position-sized tables (token embedding, an untied output layer, learned positions, token types, the
MLM head's output bias). Compute comes from `t2t.models.flops`, the one FLOP count: training FLOPs
per token = 3 x forward FLOPs of one packed row / its tokens (inputs + targets), which at these
sizes is far above Kaplan's 6N because the logits (2 · d_model · vocab per token) dominate.

    >>> point = ladder_point("decoder_only", 2, vocab_size=8192, feature_lengths={"targets": 128})
    >>> point.config.d_model, point.config.num_decoder_layers, point.non_embedding_params
    (128, 2, 396800)
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from t2t.models.config import FAMILIES, TransformerConfig
from t2t.models.flops import count_params, flops_per_example
from t2t.models.sizes import get_size

LADDER_BASES = {
    "encoder_decoder": "t5_1_1/tiny",
    "decoder_only": "gpt2/tiny",
    "encoder_only": "bert/tiny",
}
WIDTH = 64  # d_model per knob, and the head width


def ladder_config(family: str, knob: int, base: str | None = None,
                  vocab_size: int | None = None, width: int = WIDTH) -> TransformerConfig:
    """The `knob`-th rung of `family`'s ladder (see the module docstring for the rule).

    `base` is a named size whose architecture the ladder keeps (default `LADDER_BASES[family]`);
    `vocab_size` None leaves the rows to the trainer's vocabulary, as the tiny sizes do; `width` is
    d_model per knob.
    """
    if family not in FAMILIES:
        raise ValueError(f"Unknown family {family!r}; choose from {FAMILIES}.")
    if not isinstance(knob, int) or knob < 1:
        raise ValueError(f"The ladder knob must be an integer >= 1, got {knob!r}.")
    config = get_size(base or LADDER_BASES[family])
    if config.family != family:
        raise ValueError(f"Base size {base!r} is a {config.family} model, not {family}.")
    d_model = width * knob
    gated = len(config.mlp_activations) > 1
    return config.replace(
        d_model=d_model, num_heads=knob, head_dim=width,
        d_ff=5 * d_model // 2 if gated else 4 * d_model,
        num_encoder_layers=knob if family != "decoder_only" else 0,
        num_decoder_layers=knob if family != "encoder_only" else 0, dropout_rate=0.0,
        vocab_size=vocab_size if vocab_size is not None else config.vocab_size)


def embedding_params(config: TransformerConfig) -> int:
    """Parameters of the vocabulary- and position-sized tables, which Kaplan's N leaves out."""
    e, v = config.d_model, config.vocab_size
    if v is None:
        raise ValueError("embedding_params needs TransformerConfig.vocab_size; pass vocab_size.")
    total = v * e + config.type_vocab_size * e
    if config.position_embedding == "learned":
        total += config.max_length * e
    if config.family == "encoder_only":
        total += v if "mlm" in config.encoder_heads else 0  # the MLM head's output bias
    elif not config.logits_via_embedding:
        total += e * v + (v if config.use_bias else 0)  # the untied output layer
    return total


@dataclasses.dataclass(frozen=True)
class LadderPoint:
    """One rung: its config, N (non-embedding parameters) and its cost per token."""

    family: str
    knob: int
    config: TransformerConfig
    params: int  # every parameter, as `count_params`
    non_embedding_params: int  # N
    feature_lengths: Mapping[str, int]
    training_flops_per_example: float  # one packed row, from t2t.models.flops

    @property
    def tokens_per_example(self) -> int:
        return sum(self.feature_lengths.values())

    @property
    def training_flops_per_token(self) -> float:
        return self.training_flops_per_example / self.tokens_per_example


def ladder_point(family: str, knob: int, vocab_size: int, feature_lengths: Mapping[str, int],
                 base: str | None = None, width: int = WIDTH) -> LadderPoint:
    """The rung with its counts, for rows of `feature_lengths` ({'inputs': I, 'targets': T})."""
    config = ladder_config(family, knob, base, vocab_size, width)
    params = count_params(config)
    return LadderPoint(
        family=family, knob=knob, config=config, params=params,
        non_embedding_params=params - embedding_params(config),
        feature_lengths=dict(feature_lengths),
        training_flops_per_example=flops_per_example(config, feature_lengths).training)
