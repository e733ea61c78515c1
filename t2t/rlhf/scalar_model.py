"""A decoder-only transformer with a scalar head: the reward model and the PPO value function.

The same `Embedder` and `TransformerStack` as `DecoderOnly`, under the same parameter names
("embedder", "decoder"), so a language model's parameters initialise it directly (InstructGPT
starts its reward model from the SFT model); the LM's output layer is replaced by `scalar_head`,
a dense map [e] -> [1] read at every position:

    reward model     the scalar at the response's last token (`QueryResponse.last`)
    value function   the scalar at each response slot (`QueryResponse.slots`): the value of the
                     state before that token
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from t2t.models.config import TransformerConfig
from t2t.models.families import Embedder, dummy_batch
from t2t.models.layers import dense
from t2t.models.transformer import TransformerStack

Array = jax.Array
BACKBONE = ("embedder", "decoder")  # the parameters shared with a DecoderOnly language model


class ScalarHeadModel(nn.Module):
    """decoder_* features -> one float32 scalar per position [b, l]."""

    config: TransformerConfig

    def setup(self) -> None:
        if self.config.family != "decoder_only":
            raise ValueError(f"A scalar-head model is decoder-only, but the config's family is "
                             f"{self.config.family!r}; start the reward model from a decoder-only "
                             f"SFT run (e.g. model_config.size = 'gpt2/tiny').")
        self.embedder = Embedder(self.config)
        self.decoder = TransformerStack(self.config, self.config.num_decoder_layers)
        self.scalar_head = dense(self.config, 1, ("embed", None), "scalar_head")

    def __call__(self, batch: Mapping[str, Array], deterministic: bool = True) -> Array:
        x = self.embedder(batch["decoder_input_tokens"], batch.get("decoder_positions"))
        prefix = batch["decoder_causal_attention"] if self.config.prefix_lm else None
        y = self.decoder(x, batch["decoder_segment_ids"], causal=True, bidirectional=prefix,
                         deterministic=deterministic)
        return self.scalar_head(y)[..., 0].astype(jnp.float32)


def init_from_language_model(config: TransformerConfig, lm_params: Mapping[str, Any],
                             rng: Array) -> dict[str, Any]:
    """ScalarHeadModel parameters: the LM's embedder and decoder, and a freshly initialised head.

    `lm_params` are a DecoderOnly model's parameters for `config` (an SFT run's); its output layer,
    if untied, is dropped.
    """
    missing = [name for name in BACKBONE if name not in lm_params]
    if missing:
        raise ValueError(f"The language model's parameters lack {missing} (they have "
                         f"{sorted(lm_params)}): give the parameters of a decoder-only run.")
    expected = nn.unbox(jax.eval_shape(ScalarHeadModel(config).init, rng,
                                       dummy_batch(config)))["params"]
    shapes = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype), tree)
    for name in BACKBONE:
        if shapes(expected[name]) != shapes(lm_params[name]):
            raise ValueError(f"The language model's {name!r} parameters do not fit the model "
                             f"config: use the model config the LM was trained with.")
    # The head alone: initialising the whole model would compile the transformer for nothing.
    head = dense(config, 1, ("embed", None), "scalar_head")
    head_params = nn.unbox(head.init(rng, jnp.zeros((1, 1, config.d_model), config.dtype)))
    return {**{name: lm_params[name] for name in BACKBONE}, "scalar_head": head_params["params"]}
