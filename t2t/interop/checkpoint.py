"""Params-only checkpoints, and the parameters of a run directory.

`t2t convert import` writes a params-only checkpoint, the starting point for fine-tuning:

    DIR/
      model_config.json   the TransformerConfig as JSON, the same file a run directory holds
      params/             an orbax checkpoint (StandardSave) of the parameter tree: float32, keyed
                          like `TrainState.params`, scanned iff model_config.json says scan_layers

A run directory (what `t2t train` writes) holds model_config.json and `checkpoints/<step>/state`,
whose `params` entry is the same tree; `load_run_params` reads just that entry.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from t2t.interop.layout import relayout
from t2t.models.config import TransformerConfig, check_field_names
from t2t.training.checkpointing import restore_params

CONFIG_FILE = "model_config.json"
PARAMS_DIR = "params"


def config_to_json(config: TransformerConfig) -> str:
    """The JSON the trainer writes to a run's model_config.json."""
    return json.dumps(dataclasses.asdict(config), indent=2)


def config_from_json(text: str) -> TransformerConfig:
    """The TransformerConfig of a model_config.json (lists back to tuples)."""
    fields = json.loads(text)
    check_field_names(fields)
    return TransformerConfig(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in fields.items()})


def _read_config(directory: Path) -> TransformerConfig:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_FILE}: it is neither a t2t run "
                                f"directory nor a params-only checkpoint.")
    return config_from_json(path.read_text())


def save_params(directory: str | Path, params: Any, config: TransformerConfig) -> None:
    """Write a params-only checkpoint of `params`, in the layout `config.scan_layers` names."""
    directory = Path(directory).absolute()
    if (directory / PARAMS_DIR).exists() or (directory / CONFIG_FILE).exists():
        raise FileExistsError(f"{directory} already holds a checkpoint; choose a new directory.")
    directory.mkdir(parents=True, exist_ok=True)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(directory / PARAMS_DIR, relayout(params, config.scan_layers))
    checkpointer.wait_until_finished()
    (directory / CONFIG_FILE).write_text(config_to_json(config))


def load_params(directory: str | Path, scan_layers: bool | None = None
                ) -> tuple[Any, TransformerConfig]:
    """(params, config) of a params-only checkpoint, as numpy arrays.

    `scan_layers` asks for a layout (the returned config says it); None keeps the saved one.
    A trainer starting from it places the arrays with its own shardings (`jax.device_put`).
    """
    directory = Path(directory).absolute()
    config = _read_config(directory)
    params, _ = restore_params(directory)
    if scan_layers is not None:
        params, config = relayout(params, scan_layers), config.replace(scan_layers=scan_layers)
    return params, config


def load_run_params(run_dir: str | Path, step: int | None = None
                    ) -> tuple[Any, TransformerConfig, int]:
    """(params, config, step) of a run directory's checkpoint at `step` (default: the newest)."""
    config = _read_config(Path(run_dir).absolute())
    params, step = restore_params(run_dir, step=step)
    return params, config, step
