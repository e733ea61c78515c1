"""A trained run directory, read back for inference: model, vocabulary, lengths and parameters.

The trainer leaves in its run directory (see `t2t.training.trainer.train`):

    model_config.json   the TransformerConfig it trained (vocabulary size resolved)
    config.gin          its gin configuration: vocabulary, task feature lengths, objective
    checkpoints/<step>/state   orbax checkpoints of {step, params, opt_state}

Only the parameters are restored (orbax partial restore), so inference needs neither the optimizer
nor the data pipeline. The gin file is read with gin's own parser into plain values, without
touching the global gin configuration (a caller may be in the middle of a run with its own).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any, Mapping

import flax.linen as nn
import gin
import jax
from gin import config_parser

from t2t.configuration import register_configurables
from t2t.data.vocab import Vocabulary, default_vocabulary
from t2t.models.config import TransformerConfig
from t2t.interop.checkpoint import config_from_json
from t2t.models.families import build_model, dummy_batch
from t2t.training.checkpointing import restore_params


@dataclasses.dataclass(frozen=True)
class _Reference:
    """A gin `@name` or `@name()` in a saved config: only its name is needed here."""

    name: str


class _Delegate(config_parser.ParserDelegate):
    def configurable_reference(self, scoped_name: str, evaluate: bool) -> _Reference:
        return _Reference(scoped_name.split("/")[-1])

    def macro(self, name: str) -> tuple[str, str]:
        return ("%", name)


def read_gin_bindings(path: Path, configurable: str) -> dict[str, Any]:
    """The bindings of `configurable` in the gin file `path`, macros resolved, references as names.

    E.g. `train.vocabulary = %VOCABULARY` with `VOCABULARY = None` gives {'vocabulary': None, ...}.
    """
    macros, bindings = {}, {}
    with open(path) as f:
        for statement in config_parser.ConfigParser(f, _Delegate()):
            if not isinstance(statement, config_parser.BindingStatement) or statement.scope:
                continue
            if not statement.arg_name:
                macros[statement.selector] = statement.value
            elif statement.selector == configurable:
                bindings[statement.arg_name] = statement.value
    resolve = lambda v: resolve(macros[v[1]]) if isinstance(v, tuple) and v[:1] == ("%",) else v
    return {k: resolve(v) for k, v in bindings.items()}


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """What inference needs from a run directory (see the module docstring)."""

    directory: Path
    config: TransformerConfig
    vocabulary: Vocabulary
    feature_lengths: Mapping[str, int]  # the training task's {'inputs': I, 'targets': T}
    inputs_end_with_eos: bool  # False when the objective trains without inputs (plain LM)

    @classmethod
    def load(cls, run_dir: str | Path) -> "TrainedRun":
        directory = Path(run_dir)
        config_json, config_gin = directory / "model_config.json", directory / "config.gin"
        for path in (config_json, config_gin):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found: {directory} is not a t2t run directory. Give the MODEL_DIR "
                    f"of a `t2t train` run (it holds model_config.json, config.gin, checkpoints/).")
        config = config_from_json(config_json.read_text())
        from t2t.training.trainer import train

        defaults = {name: p.default for name, p in inspect.signature(train).parameters.items()}
        bindings = {**defaults, **read_gin_bindings(config_gin, "train")}
        vocab_path, extra_ids = bindings["vocabulary"], bindings["vocabulary_extra_ids"]
        vocabulary = (Vocabulary(vocab_path, extra_ids=extra_ids) if vocab_path
                      else default_vocabulary(extra_ids=extra_ids))
        return cls(directory, config, vocabulary, dict(bindings["task_feature_lengths"]),
                   _objective_has_inputs(bindings["objective"]))

    def load_params(self, step: int | None = None) -> tuple[Any, int]:
        """The parameters at `step` (default: the latest checkpoint) on the default device, and
        the step."""
        model = build_model(self.config)
        abstract = nn.unbox(jax.eval_shape(
            lambda: model.init(jax.random.key(0), dummy_batch(self.config))["params"]))
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                              abstract)
        return restore_params(self.directory, target, step)


def _objective_has_inputs(objective: Any) -> bool:
    """Whether the training objective's examples have inputs (ending with EOS, as in T5)."""
    if not isinstance(objective, _Reference):
        return True
    register_configurables()
    cls = gin.config.get_configurable(objective.name)
    return "inputs" in getattr(cls, "length_features", ("inputs",))
