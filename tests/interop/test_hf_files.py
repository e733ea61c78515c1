"""HF model directories: sharded and bfloat16 checkpoints read, nothing is overwritten."""

import json

import ml_dtypes
import numpy as np
import pytest

safetensors_numpy = pytest.importorskip("safetensors.numpy")

from t2t.interop.hf_files import read_hf_dir, write_hf_dir  # noqa: E402


def test_sharded_bfloat16_checkpoint_reads_as_one_state_dict(tmp_path):
    # The hub stores big models as shards listed in model.safetensors.index.json, often in bf16.
    rng = np.random.default_rng(0)
    state = {f"w{i}": rng.standard_normal((3, 2)).astype(ml_dtypes.bfloat16) for i in range(3)}
    shards = {"model-00001-of-00002.safetensors": ["w0", "w1"],
              "model-00002-of-00002.safetensors": ["w2"]}
    for shard, names in shards.items():
        safetensors_numpy.save_file({n: state[n] for n in names}, str(tmp_path / shard))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {n: shard for shard, names in shards.items() for n in names}}))
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    read, config = read_hf_dir(tmp_path)
    assert config == {"model_type": "gpt2"}
    assert sorted(read) == sorted(state)
    assert all(read[n].dtype == ml_dtypes.bfloat16 and np.array_equal(read[n], state[n])
               for n in state)


def test_written_directory_reads_back_and_is_never_overwritten(tmp_path):
    state = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}
    write_hf_dir(tmp_path / "hf", state, {"model_type": "t5"})
    read, config = read_hf_dir(tmp_path / "hf")
    np.testing.assert_array_equal(read["a.weight"], state["a.weight"])
    assert config == {"model_type": "t5"}
    with pytest.raises(FileExistsError, match="already holds HF weights"):
        write_hf_dir(tmp_path / "hf", state, {"model_type": "t5"})


def test_directories_without_config_or_safetensors_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        read_hf_dir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="safe_serialization=True"):
        read_hf_dir(tmp_path)
