"""How an HF state dict and our parameter tree correspond: codecs, links and the two conversions.

A `Link` says that one HF tensor holds one of our parameters (or several, concatenated on the last
axis: GPT-2's fused `c_attn` is [query | key | value]); its `Codec`s say how each is laid out there.
A family (`t2t.interop.t5`, `bart`, `gpt2`, `bert`) is a list of links for a config plus its config
mapping; `to_hf` and `from_hf` below run any such list in either direction, so each family states
its mapping once and both directions follow from it.

Our paths are "/"-joined keys of the *unscanned* parameter tree (`encoder/layers_0/mlp/wi/kernel`);
`t2t.interop.layout` converts scanned trees first. Example, GPT-2's first MLP projection:

    Link("transformer.h.0.mlp.c_fc.weight", ("decoder/layers_0/mlp/wi/kernel",), (conv1d(1),))
    ours [e, f]  <->  HF Conv1D weight [e, f] (stored [in, out], unlike torch.nn.Linear's [out, in])
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from typing import Callable, Mapping

import numpy as np

from t2t.models.config import TransformerConfig

log = logging.getLogger(__name__)

Shape = tuple[int, ...]

# HF's activation names (transformers' ACT2FN) and ours. HF's "gelu" is the exact erf form;
# "gelu_new" and "gelu_pytorch_tanh" are the tanh approximation our "gelu" computes.
_ACTIVATIONS_FROM_HF = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu": "gelu_exact",
                        "relu": "relu", "silu": "silu", "swish": "silu"}
_ACTIVATIONS_TO_HF = {"gelu": "gelu_new", "gelu_exact": "gelu", "relu": "relu", "silu": "silu"}


def required(hf_config: Mapping, key: str):
    """hf_config[key], or an error that names the missing field."""
    if key not in hf_config:
        raise ValueError(f"HF config.json lacks {key!r} (model_type "
                         f"{hf_config.get('model_type')!r}).")
    return hf_config[key]


def split_heads(d_model: int, num_heads: int) -> int:
    """head_dim of an HF model whose heads split its hidden size (GPT-2, BERT)."""
    if d_model % num_heads:
        raise ValueError(f"HF splits the hidden size {d_model} into {num_heads} heads, which "
                         f"needs it divisible; set head_dim * num_heads = d_model.")
    return d_model // num_heads


def activation_from_hf(name: str) -> str:
    """Our activation for an HF `hidden_act` / `activation_function`."""
    if name not in _ACTIVATIONS_FROM_HF:
        raise ValueError(f"HF activation {name!r} has no t2t equivalent; supported: "
                         f"{sorted(_ACTIVATIONS_FROM_HF)}.")
    return _ACTIVATIONS_FROM_HF[name]


def activation_to_hf(activations: tuple[str, ...]) -> str:
    """HF's name for a single, ungated activation of ours."""
    if len(activations) != 1 or activations[0] not in _ACTIVATIONS_TO_HF:
        raise ValueError(f"mlp_activations={activations} has no HF equivalent here; use one of "
                         f"{sorted(_ACTIVATIONS_TO_HF)} (ungated).")
    return _ACTIVATIONS_TO_HF[activations[0]]


@dataclasses.dataclass(frozen=True)
class Codec:
    """How one parameter of ours is laid out in HF: `to_hf(ours) -> hf` and
    `from_hf(hf, our_shape) -> ours`, exact inverses of each other."""

    to_hf: Callable[[np.ndarray], np.ndarray]
    from_hf: Callable[[np.ndarray, Shape], np.ndarray]


# Embeddings: [v, e] on both sides.
SAME = Codec(lambda x: x, lambda y, shape: y.reshape(shape))
# Norm scales, biases: HF flattens e.g. a query bias [h, d] to [h * d].
VECTOR = Codec(lambda x: x.reshape(-1), lambda y, shape: y.reshape(shape))


def linear(n_in: int) -> Codec:
    """torch.nn.Linear's weight [out, in] for our kernel [*in, *out] whose first `n_in` axes are
    inputs: e.g. a query kernel [e, h, d] (n_in=1) is HF [h * d, e]; an output kernel [h, d, e]
    (n_in=2) is HF [e, h * d]. T5's relative-position table [h, buckets] is HF [buckets, h]."""
    return Codec(lambda x: x.reshape(math.prod(x.shape[:n_in]), -1).T,
                 lambda y, shape: y.T.reshape(shape))


def conv1d(n_in: int) -> Codec:
    """GPT-2's Conv1D weight, stored [in, out]: our kernel [*in, *out] flattened to two axes."""
    return Codec(lambda x: x.reshape(math.prod(x.shape[:n_in]), -1),
                 lambda y, shape: y.reshape(shape))


def scaled(codec: Codec, factor: float) -> Codec:
    """Ours = `factor` x HF's (`codec` itself for a factor of 1). Used where HF and our config put
    attention's 1/sqrt(head_dim) in different places (`query_scale`), so that it is folded into
    the query's kernel and bias, or out of them. The product is taken in float64 and rounded once,
    so the round trip is exact when `factor` is a power of two (head_dim 4, 16, 64, 256: all
    published sizes); otherwise it may move a value by one float32 ulp."""
    if factor == 1.0:
        return codec
    return Codec(lambda x: codec.to_hf((x.astype(np.float64) / factor).astype(x.dtype)),
                 lambda y, shape: (codec.from_hf(y, shape).astype(np.float64) * factor
                                   ).astype(np.float32))


def query_scale(config: TransformerConfig, hf_divides_at_run_time: bool) -> float:
    """Ours = factor x HF's for a query kernel and bias. GPT-2, BERT and BART divide attention
    logits by sqrt(head_dim) at run time; T5 folds that into the query. The factor is 1 where HF
    and `config` (`runtime_attention_scale`) do the same, head_dim^-1/2 to fold HF's division into
    our query, head_dim^1/2 to take ours out of it."""
    if config.runtime_attention_scale == hf_divides_at_run_time:
        return 1.0
    return config.head_dim ** (-0.5 if hf_divides_at_run_time else 0.5)


@dataclasses.dataclass(frozen=True)
class Link:
    """HF tensor `hf` holds our parameters `ours`, each laid out by its codec and concatenated on
    the last axis (one parameter: no concatenation)."""

    hf: str
    ours: tuple[str, ...]
    codecs: tuple[Codec, ...]


def link(hf: str, ours: str, codec: Codec) -> Link:
    """A one-to-one link."""
    return Link(hf, (ours,), (codec,))


def dense(hf: str, ours: str, codec: Codec, use_bias: bool, bias_scale: float = 1.0
          ) -> list[Link]:
    """A dense layer: HF `{hf}.weight` (and `.bias`) <-> our `{ours}/kernel` (and `/bias`)."""
    links = [link(f"{hf}.weight", f"{ours}/kernel", codec)]
    if use_bias:
        bias = VECTOR if bias_scale == 1.0 else scaled(VECTOR, bias_scale)
        links.append(link(f"{hf}.bias", f"{ours}/bias", bias))
    return links


def norm(hf: str, ours: str, config: TransformerConfig) -> list[Link]:
    """A norm: `{hf}.weight` <-> `{ours}/scale`, plus the bias of a LayerNorm."""
    links = [link(f"{hf}.weight", f"{ours}/scale", VECTOR)]
    if config.norm == "layer_norm":
        links.append(link(f"{hf}.bias", f"{ours}/bias", VECTOR))
    return links


@dataclasses.dataclass(frozen=True)
class HfFamily:
    """One HF model type: its config mapping both ways and its tensor links.

    Attributes:
      model_type: HF's `model_type` ("t5", "bart", "gpt2", "bert").
      holds: whether our models of a config are this HF type's to export (one type per config).
      config_to_hf: our config -> HF config.json dict (raises where HF lacks an option).
      config_from_hf: HF config.json dict -> our config (raises where we lack an option).
      links: the tensor links of a config; they must cover every parameter of ours.
      unused_fields: TransformerConfig fields this family's models neither read nor store, so a
        difference in them does not stop an export (e.g. `max_length` with relative positions).
      ignored_keys: regexes of HF tensors that hold nothing of ours: tied copies, buffers.
      constants: config -> HF tensors that hold nothing of ours but must have these values
        (BART's zero `final_logits_bias`): export writes them; import checks them where present.
      aliases: other names under which checkpoints store an HF tensor (a tied copy that is
        the only one stored), tried after its own name.
      base_prefix: the prefix that checkpoints saved from HF's bare model lack ("transformer."
        for GPT-2: the hub's gpt2 stores "h.0.attn.c_attn.weight").
    """

    model_type: str
    holds: Callable[[TransformerConfig], bool]
    config_to_hf: Callable[[TransformerConfig], dict]
    config_from_hf: Callable[[Mapping], TransformerConfig]
    links: Callable[[TransformerConfig], list[Link]]
    unused_fields: frozenset[str] = frozenset()
    ignored_keys: tuple[str, ...] = ()
    constants: Callable[[TransformerConfig], dict[str, np.ndarray]] = lambda config: {}
    aliases: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    base_prefix: str = ""

    def lookup_names(self, name: str) -> list[str]:
        """Names under which a checkpoint may store HF tensor `name`, preferred first: as saved
        from the bare model (without `base_prefix`), under its `aliases`, and with TF-era
        LayerNorm names (gamma/beta) that transformers still renames on load."""
        names = []
        for alias in (name, *self.aliases.get(name, ())):
            names.append(alias)
            if self.base_prefix and alias.startswith(self.base_prefix):
                names.append(alias[len(self.base_prefix):])
        if "LayerNorm." in name:
            names += [n.replace("LayerNorm.weight", "LayerNorm.gamma")
                      .replace("LayerNorm.bias", "LayerNorm.beta") for n in names]
        return names


def to_hf(links: list[Link], params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Our flat unscanned params {path: array} -> HF state dict {name: float32 array}."""
    _check_same_paths({path for entry in links for path in entry.ours}, set(params),
                      "The parameter tree does not match the model config")

    def encode(entry: Link) -> np.ndarray:
        parts = [codec.to_hf(np.asarray(params[path], np.float32))
                 for path, codec in zip(entry.ours, entry.codecs)]
        return np.ascontiguousarray(np.concatenate(parts, axis=-1))

    return {entry.hf: encode(entry) for entry in links}


def from_hf(links: list[Link], state: Mapping[str, np.ndarray], shapes: Mapping[str, Shape],
            family: HfFamily, constants: Mapping[str, np.ndarray] | None = None
            ) -> dict[str, np.ndarray]:
    """HF state dict -> our flat unscanned params {path: float32 array} with the given `shapes`.

    Fails naming every missing tensor, any tensor of the wrong shape and any of `constants` (the
    family's, for this config) stored with other values; tensors that no link reads (other than
    `family.ignored_keys`) are logged, as transformers does.
    """
    _check_same_paths({path for entry in links for path in entry.ours}, set(shapes),
                      f"t2t bug: the {family.model_type} links do not cover the model")
    params, used, missing = {}, set(), []
    for name, value in (constants or {}).items():
        if name in state:
            used.add(name)
            if not np.array_equal(np.asarray(state[name], np.float32), value):
                raise ValueError(f"HF tensor {name} differs from {value.ravel()[:4]}..., the "
                                 f"only value t2t's {family.model_type} model can express.")
    for entry in links:
        name = next((n for n in family.lookup_names(entry.hf) if n in state), None)
        if name is None:
            missing.append(entry.hf)
            continue
        used.add(name)
        hf = np.asarray(state[name]).astype(np.float32)
        parts = np.split(hf, len(entry.ours), axis=-1) if len(entry.ours) > 1 else [hf]
        for path, codec, part in zip(entry.ours, entry.codecs, parts):
            params[path] = _decode(codec, part, shapes[path], name, path)
    if missing:
        raise ValueError(f"The HF checkpoint lacks {len(missing)} tensor(s) that a "
                         f"{family.model_type} model with this config.json needs: "
                         f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}.")
    unused = sorted(n for n in state if n not in used
                    and not any(re.search(p, n) for p in family.ignored_keys))
    if unused:
        log.warning("Ignored %d HF tensor(s) that the t2t model has no place for: %s%s",
                    len(unused), ", ".join(unused[:8]), " ..." if len(unused) > 8 else "")
    return params


def _decode(codec: Codec, hf: np.ndarray, shape: Shape, name: str, path: str) -> np.ndarray:
    """codec.from_hf with a shape check: the result must encode back to HF's exact shape, which
    also catches a transposed layout wherever the two axes differ."""
    try:
        ours = codec.from_hf(hf, tuple(shape))
    except ValueError:
        ours = None
    if ours is None or codec.to_hf(ours).shape != hf.shape:
        raise ValueError(f"HF tensor {name} has shape {hf.shape}, which does not fit t2t's "
                         f"{path} of shape {tuple(shape)}; does config.json match the weights?")
    return ours


def _check_same_paths(expected: set[str], actual: set[str], problem: str) -> None:
    if expected != actual:
        raise ValueError(f"{problem}: missing {sorted(expected - actual)[:8]}, unexpected "
                         f"{sorted(actual - expected)[:8]}.")
