"""Import and export of HF models: configs, state dicts and directories, for every family.

    our family        HF model type   HF architectures
    encoder_decoder   t5              T5ForConditionalGeneration (v1.0 tied, v1.1 untied)
                      bart            BartForConditionalGeneration (learned positions)
    decoder_only      gpt2            GPT2LMHeadModel
    encoder_only      bert            BertForPreTraining, BertForMaskedLM,
                                      BertFor{Sequence,Token}Classification

A config exports only if HF can express it: `config_to_hf` maps it there and back and names every
field that would change (say, the original Transformer's sinusoidal positions under HF T5).
Parameters may be scanned or unscanned on our side; HF's are per layer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

from t2t.interop import bart, bert, gpt2, t5
from t2t.interop.hf_files import read_hf_dir, write_hf_dir
from t2t.interop.layout import relayout, unscan
from t2t.interop.mapping import HfFamily, from_hf, to_hf
from t2t.models.config import TransformerConfig
from t2t.models.families import build_model, dummy_batch

FAMILIES: dict[str, HfFamily] = {f.model_type: f for f in (t5.FAMILY, bart.FAMILY, gpt2.FAMILY,
                                                            bert.FAMILY)}
# How a model runs or where its parameters put attention's 1/sqrt(head_dim), not what it
# computes: never part of an HF config (the links fold or unfold the scale).
_RUNTIME_FIELDS = frozenset({"dtype", "scan_layers", "remat_policy", "attention_kernel",
                             "kernel_gradient", "one_example_per_row", "runtime_attention_scale"})


def hf_family(config: TransformerConfig) -> HfFamily:
    """The HF model type that holds models of `config` (`HfFamily.holds`)."""
    return next(family for family in FAMILIES.values() if family.holds(config))


def model_differences(config: TransformerConfig, other: TransformerConfig) -> list[str]:
    """The fields in which two configs of one family describe different HF models, as
    "name=ours (other)"; runtime options and fields the family does not use are ignored."""
    ignored = _RUNTIME_FIELDS | hf_family(config).unused_fields
    return [f"{f.name}={getattr(config, f.name)!r} ({getattr(other, f.name)!r})"
            for f in dataclasses.fields(config)
            if f.name not in ignored and getattr(config, f.name) != getattr(other, f.name)]


def config_to_hf(config: TransformerConfig) -> dict:
    """HF config.json fields for `config`; fails naming the fields HF cannot express."""
    family = hf_family(config)
    if config.vocab_size is None:
        raise ValueError("model_config.vocab_size is None; set it to the vocabulary's size.")
    hf = family.config_to_hf(config)
    changed = model_differences(config, family.config_from_hf(hf))
    if changed:
        raise ValueError(f"HF {family.model_type} cannot express this {config.family} model; "
                         f"these fields would change (HF's value in parentheses): "
                         f"{'; '.join(changed)}.")
    return hf


def config_from_hf(hf_config: Mapping) -> TransformerConfig:
    """Our config for an HF config.json of a supported model type."""
    model_type = hf_config.get("model_type")
    if model_type not in FAMILIES:
        raise ValueError(f"HF model_type {model_type!r} is not supported; t2t converts "
                         f"{sorted(FAMILIES)}.")
    return FAMILIES[model_type].config_from_hf(hf_config)


def param_shapes(config: TransformerConfig) -> dict[str, tuple[int, ...]]:
    """{"/"-joined path: shape} of the unscanned parameters of `config`'s model."""
    config = config.replace(scan_layers=False)
    tree = jax.eval_shape(lambda: nn.unbox(build_model(config).init(
        jax.random.key(0), dummy_batch(config))["params"]))
    return {k: v.shape for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


def to_hf_state(params: Any, config: TransformerConfig) -> dict[str, np.ndarray]:
    """Our parameters (scanned or not) -> an HF state dict of float32 arrays."""
    flat = traverse_util.flatten_dict(unscan(params), sep="/")
    family = hf_family(config)
    return {**to_hf(family.links(config), flat), **family.constants(config)}


def from_hf_state(state: Mapping[str, np.ndarray], config: TransformerConfig) -> Any:
    """An HF state dict -> our float32 parameters, in the layout `config.scan_layers` names."""
    family = hf_family(config)
    flat = from_hf(family.links(config), state, param_shapes(config), family,
                   family.constants(config))
    return relayout(traverse_util.unflatten_dict(flat, sep="/"), config.scan_layers)


def export_hf(params: Any, config: TransformerConfig, directory: str | Path) -> None:
    """Write our model as an HF model directory (config.json + model.safetensors)."""
    write_hf_dir(directory, to_hf_state(params, config), config_to_hf(config))


def import_hf(directory: str | Path, scan_layers: bool = False
              ) -> tuple[Any, TransformerConfig]:
    """(params, config) of an HF model directory, in the layout `scan_layers` names."""
    state, hf_config = read_hf_dir(directory)
    config = config_from_hf(hf_config).replace(scan_layers=scan_layers)
    return from_hf_state(state, config), config
