"""Reading and writing HF model directories: `config.json` plus safetensors weights, with numpy.

    HF_DIR/
      config.json                      model_type, architectures and the model's hyper-parameters
      model.safetensors                {tensor name: array}, as `save_pretrained` writes it
      (or model.safetensors.index.json + shards, as the hub stores large models)

No torch is needed: `safetensors.numpy` reads and writes the same files (bfloat16 through
ml_dtypes, which jax installs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError as error:
        raise ImportError("HF conversion needs the `safetensors` package: pip install "
                          "safetensors") from error
    return safetensors.numpy


def read_hf_dir(directory: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """(state dict, config.json) of an HF model directory."""
    directory = Path(directory)
    if not (directory / CONFIG).is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG}; is it an HF model directory?")
    config = json.loads((directory / CONFIG).read_text())
    if (directory / WEIGHTS).is_file():
        files = [directory / WEIGHTS]
    elif (directory / INDEX).is_file():
        weight_map = json.loads((directory / INDEX).read_text())["weight_map"]
        files = [directory / name for name in sorted(set(weight_map.values()))]
    else:
        raise FileNotFoundError(
            f"{directory} has no {WEIGHTS} or {INDEX}. For a PyTorch-only checkpoint "
            f"(pytorch_model.bin), re-save it with transformers' "
            f"`model.save_pretrained(dir, safe_serialization=True)` first.")
    state = {}
    for path in files:
        state.update(_safetensors().load_file(str(path)))
    return state, config


def write_hf_dir(directory: str | Path, state: Mapping[str, np.ndarray], config: dict) -> None:
    """Write `state` as model.safetensors and `config` as config.json; never overwrites weights."""
    directory = Path(directory)
    if (directory / WEIGHTS).exists() or (directory / INDEX).exists():
        raise FileExistsError(f"{directory} already holds HF weights; choose a new directory.")
    directory.mkdir(parents=True, exist_ok=True)
    # transformers refuses safetensors files without a "format" entry in their metadata.
    _safetensors().save_file(dict(state), str(directory / WEIGHTS), metadata={"format": "pt"})
    (directory / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
