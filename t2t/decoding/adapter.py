"""A model + parameters as the three functions every search algorithm needs.

    start(inputs [n, m]) -> (logits [n, v] of the first output token, state)
    step(tokens [n], state) -> (logits [n, v] of the token after `tokens`, state)
    gather(state, rows [n']) -> the state of those rows (beam search repeats and reorders rows)

`inputs` are the token ids of each row's input (EOS included where the task appends one), padded
on the right with PAD = 0, the same for both families:

    EncoderDecoder  the encoder reads `inputs`; the decoder starts from BOS = 0 at cache slot 0.
    DecoderOnly     the prompt is BOS ⧺ inputs, laid out as the feature converter lays out a
                    training example, and runs in one "prefill" call (fully visible for a prefix
                    LM); row i's first output token goes to slot 1 + len(inputs_i).

E.g. a prefix LM with inputs [[7, 8, 1], [5, 1, 0]]: the prefill reads [[0, 7, 8, 1], [0, 5, 1, 0]]
at slots 0..3, and its logits at slots 3 and 2 predict each row's first output token; the next step
writes row 0's token at slot 4 and row 1's at slot 3, over the prompt's padding.

The state is a dict of arrays: the cache, each row's next slot ("position") and, for
encoder-decoders, the encoder output. All are batch-first except the caches of scanned layers, whose
batch axis `gather` finds by its logical name. An encoder-decoder's cache also holds each layer's
cross-attention keys and values of the encoder output, computed once in `start`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from t2t.data.vocab import PAD_ID
from t2t.models.config import TransformerConfig

Array = jax.Array
State = dict[str, Any]
BOS_ID = PAD_ID  # T5 and the feature converters start the decoder input with PAD


@dataclasses.dataclass(frozen=True)
class Decoder:
    """A model's incremental decoding functions for the rows of a batch (see the module docstring)."""

    start: Callable[[Array], tuple[Array, State]]
    step: Callable[[Array, State], tuple[Array, State]]
    gather: Callable[[State, Array], State]


def make_decoder(model: nn.Module, params: Any, max_length: int) -> Decoder:
    """The `Decoder` of an EncoderDecoder or DecoderOnly `model`, emitting up to `max_length`
    tokens per row.

    Meant to be called inside `jax.jit`, with `params` a traced argument.
    """
    family = model.config.family
    if family == "encoder_decoder":
        return _EncoderDecoderAdapter(model, params, max_length).decoder()
    if family == "decoder_only":
        return _DecoderOnlyAdapter(model, params, max_length).decoder()
    raise ValueError(f"Cannot decode with a {family} model: decoding needs a decoder. Use an "
                     f"encoder_decoder or decoder_only model (an encoder_only model's outputs are "
                     f"its heads' logits).")


def _check_positions(config: TransformerConfig, slots: int) -> None:
    if config.position_embedding == "learned" and slots > config.max_length:
        raise ValueError(
            f"Decoding needs {slots} decoder positions, but the model's learned position "
            f"embedding has model_config.max_length={config.max_length} rows. Shorten the inputs "
            f"(decoder-only models read them in the decoder) or lower the maximum output length.")


class _Adapter(abc.ABC):
    """What both families share: the cache's creation, its batch axes, stepping and gathering.

    A family says how to run its decoder on tokens at given cache slots (`_apply`) and how a batch
    starts (`start`).
    """

    def __init__(self, model: nn.Module, params: Any, max_length: int):
        self.model, self.params, self.max_length = model, params, max_length
        # Each cache leaf's batch axis: the same for any shape, so read off a tiny cache.
        boxed = self._cache_shapes(self._tiny_state(), 1)
        self.cache_axes = jax.tree.map(lambda box: box.names.index("batch"), boxed,
                                       is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))

    def decoder(self) -> Decoder:
        return Decoder(self.start, self.step, self.gather)

    @abc.abstractmethod
    def _apply(self, variables: dict, state: State, batch: dict[str, Array]) -> tuple[Array, Any]:
        """The family's decoder on `batch` (decoder_* features) with a mutable cache: logits
        [n, l, v] and the new cache."""

    @abc.abstractmethod
    def _tiny_state(self) -> State:
        """A one-row state without a cache, for reading the cache's structure."""

    @abc.abstractmethod
    def start(self, inputs: Array) -> tuple[Array, State]:
        """The logits of each row's first output token, and the state after it."""

    def _created_cache(self, state: State, length: int) -> Any:
        """The cache (boxed with its logical axis names) as the call that creates it leaves it,
        for the rows of `state`: empty self-attention caches of `length` slots and, for an
        encoder-decoder, the cross-attention keys and values of `state`'s encoder output. That
        call also runs the decoder over `length` placeholder tokens, whose outputs nothing reads:
        under `jit`, XLA removes that work."""
        n = state["position"].shape[0]
        tokens = jnp.zeros((n, length), jnp.int32)
        batch = _decoder_features(tokens, jnp.broadcast_to(jnp.arange(length), (n, length)))
        return self._apply({"params": self.params}, state, batch)[1]

    def _cache_shapes(self, state: State, length: int) -> Any:
        """The boxed shapes of a cache of `length` slots for the rows of `state`."""
        return jax.eval_shape(lambda: self._created_cache(state, length))

    def _empty_cache(self, state: State, length: int) -> Any:
        return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype),
                            nn.unbox(self._cache_shapes(state, length)))

    def _run(self, state: State, batch: dict[str, Array]) -> tuple[Array, Any]:
        return self._apply({"params": self.params, "cache": state["cache"]}, state, batch)

    def step(self, tokens: Array, state: State) -> tuple[Array, State]:
        batch = _decoder_features(tokens[:, None], state["position"][:, None])
        logits, cache = self._run(state, batch)
        return logits[:, 0], {**state, "cache": cache, "position": state["position"] + 1}

    def gather(self, state: State, rows: Array) -> State:
        take = lambda x, axis=0: jnp.take(x, rows, axis=axis)
        return {k: jax.tree.map(take, v, self.cache_axes) if k == "cache" else take(v)
                for k, v in state.items()}


def _decoder_features(tokens: Array, positions: Array,
                      prefix: Array | None = None) -> dict[str, Array]:
    """Decoder features of one example per row: `tokens` [n, l] at cache slots `positions`."""
    return {"decoder_input_tokens": tokens, "decoder_positions": positions,
            "decoder_segment_ids": jnp.ones(tokens.shape, jnp.int32),
            "decoder_causal_attention": (jnp.zeros(tokens.shape, jnp.int32) if prefix is None
                                         else prefix)}


class _EncoderDecoderAdapter(_Adapter):

    def _apply(self, variables, state, batch):
        batch = {**batch, "encoder_segment_ids": state["encoder_segment_ids"]}
        logits, variables = self.model.apply(variables, state["encoded"], batch, decode=True,
                                             method=self.model.decode, mutable=["cache"])
        return logits, variables["cache"]

    def _tiny_state(self) -> State:
        return {"encoded": jnp.zeros((1, 1, self.model.config.d_model), self.model.config.dtype),
                "encoder_segment_ids": jnp.ones((1, 1), jnp.int32),
                "position": jnp.zeros(1, jnp.int32)}

    def start(self, inputs: Array) -> tuple[Array, State]:
        """Encode `inputs` [n, m]; the logits after BOS."""
        _check_positions(self.model.config, self.max_length)
        n, m = inputs.shape
        segment_ids = (inputs != PAD_ID).astype(jnp.int32)
        encoded = self.model.apply(
            {"params": self.params},
            {"encoder_input_tokens": inputs, "encoder_segment_ids": segment_ids,
             "encoder_positions": jnp.broadcast_to(jnp.arange(m), (n, m))},
            method=self.model.encode)
        state = {"encoded": encoded, "encoder_segment_ids": segment_ids,
                 "position": jnp.zeros(n, jnp.int32)}
        state["cache"] = nn.unbox(self._created_cache(state, self.max_length))
        return self.step(jnp.full(n, BOS_ID, jnp.int32), state)


class _DecoderOnlyAdapter(_Adapter):

    def _apply(self, variables, state, batch):
        out, variables = self.model.apply(variables, batch, decode=True, mutable=["cache"])
        return out["logits"], variables["cache"]

    def _tiny_state(self) -> State:
        return {"position": jnp.zeros(1, jnp.int32)}

    def start(self, inputs: Array) -> tuple[Array, State]:
        """Prefill BOS ⧺ `inputs` [n, m]; the logits after each row's last input token."""
        n, m = inputs.shape
        slots = 1 + m + self.max_length
        _check_positions(self.model.config, slots)
        prompt = jnp.concatenate([jnp.full((n, 1), BOS_ID, inputs.dtype), inputs], axis=1)
        lengths = 1 + jnp.sum(inputs != PAD_ID, axis=1)  # BOS + inputs
        positions = jnp.broadcast_to(jnp.arange(m + 1), (n, m + 1))
        # The whole prompt is a prefix LM's visible prefix (seqio's inputs + 1 position).
        prefix = (positions < lengths[:, None]).astype(jnp.int32)
        state = {"position": lengths}
        state["cache"] = self._empty_cache(state, slots)
        logits, state["cache"] = self._run(state, _decoder_features(prompt, positions, prefix))
        last = jnp.take_along_axis(logits, (lengths - 1)[:, None, None], axis=1)
        return last[:, 0], state
