"""Meshes, logical rules and sharded train steps on 8 fake CPU devices (see tests/conftest.py)."""

import functools

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from t2t.data.converters import EncDecFeatureConverter
from t2t.models.sizes import get_size
from t2t.training.optimizers import adafactor
from t2t.training.partitioning import (PRESETS, logical_axis_rules, make_partitioner,
                                       resolve_mesh_shape)
from t2t.training.trainer import ShardedModel

CFG = get_size("t5_1_1/tiny").replace(vocab_size=256, d_model=32, d_ff=64, num_heads=8,
                                      head_dim=4)
LENGTHS = {"inputs": 16, "targets": 8}
BATCH = 8


def _batch():
    rng = np.random.default_rng(0)
    batch = {}
    for stack, length in (("encoder", 16), ("decoder", 8)):
        seg = np.array([[1] * (length // 2) + [2] * (length // 4) + [0] * (length // 4)] * BATCH)
        batch[f"{stack}_segment_ids"] = seg.astype(np.int32)
        batch[f"{stack}_positions"] = np.zeros_like(seg, np.int32)
        batch[f"{stack}_input_tokens"] = (rng.integers(3, 256, seg.shape) * (seg > 0)).astype(np.int32)
    batch["decoder_target_tokens"] = (rng.integers(3, 256, (BATCH, 8)) *
                                      (batch["decoder_segment_ids"] > 0)).astype(np.int32)
    batch["decoder_loss_weights"] = (batch["decoder_segment_ids"] > 0).astype(np.int32)
    return batch


@functools.cache
def _one_step(preset, mesh_items=None, devices=None):
    """One Adafactor step with `preset` on a (data, fsdp, tensor) mesh given as a tuple of items."""
    partitioner = make_partitioner(preset, dict(mesh_items) if mesh_items else None, devices)
    sharded = ShardedModel(CFG, adafactor(learning_rate=0.01), partitioner,
                           EncDecFeatureConverter(LENGTHS), BATCH, z_loss=1e-4, seed=0)
    state = sharded.init_state()
    step, _ = sharded.compile_train_step()
    new_state, metrics = step(state, partitioner.shard_batch(_batch()))
    return sharded, new_state, jax.device_get(metrics)


@pytest.fixture(scope="module")
def reference():
    _, state, metrics = _one_step("data_parallel", devices=tuple(jax.devices()[:1]))
    return jax.device_get(state.params), metrics


def test_eight_fake_devices():
    assert jax.device_count() == 8


@pytest.mark.parametrize("preset,mesh_shape", [
    ("data_parallel", None), ("fsdp", None), ("tensor_parallel", None), ("fsdp_tensor", None),
    ("fsdp_tensor", {"data": 2, "fsdp": 2, "tensor": 2}),
])
def test_train_step_matches_one_device(reference, preset, mesh_shape):
    ref_params, ref_metrics = reference
    sharded, state, metrics = _one_step(preset, tuple(mesh_shape.items()) if mesh_shape else None)
    assert metrics["cross_entropy"] == pytest.approx(ref_metrics["cross_entropy"], rel=1e-5)
    assert metrics["grad_norm"] == pytest.approx(ref_metrics["grad_norm"], rel=1e-4)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                 jax.device_get(state.params), ref_params)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_parameters_are_sharded_as_the_rules_say(preset):
    sharded, state, _ = _one_step(preset)
    mesh = dict(sharded.partitioner.mesh.shape)
    params = state.params
    embedding = params["embedder"]["tokens"]["embedding"]  # (vocab, embed)
    wi = params["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"]  # (embed, mlp)
    query = params["encoder"]["layers_0"]["self_attention"]["query"]["kernel"]  # (embed, heads, kv)
    fsdp = "fsdp" if "fsdp" in PRESETS[preset] and mesh["fsdp"] > 1 else None
    tensor = "tensor" if "tensor" in PRESETS[preset] and mesh["tensor"] > 1 else None
    expected = {id(embedding): (tensor, fsdp), id(wi): (fsdp, tensor), id(query): (fsdp, tensor, None)}
    for array in (embedding, wi, query):
        spec = tuple(array.sharding.spec) + (None,) * (array.ndim - len(array.sharding.spec))
        assert spec == expected[id(array)], (preset, spec)
    # Each device holds exactly its shard.
    shards = {s.data.shape for s in wi.addressable_shards}
    assert shards == {(32 // (mesh["fsdp"] if fsdp else 1), 64 // (mesh["tensor"] if tensor else 1))}


def test_rules_drop_the_axes_a_preset_does_not_use():
    rules = dict(logical_axis_rules("data_parallel"))
    assert rules["batch"] == "data" and rules["embed"] is None and rules["mlp"] is None
    rules = dict(logical_axis_rules("fsdp_tensor"))
    assert rules["batch"] == ("data", "fsdp") and rules["embed"] == "fsdp"
    assert rules["mlp"] == "tensor" and rules["act_embed"] is None
    with pytest.raises(ValueError, match="Unknown partitioning preset"):
        logical_axis_rules("zero3")


def test_mesh_shapes_fill_and_fail_clearly():
    assert resolve_mesh_shape({"data": -1}, 8) == (8, 1, 1)
    assert resolve_mesh_shape({"data": 2, "tensor": -1}, 8) == (2, 1, 4)
    with pytest.raises(ValueError, match="does not divide 8"):
        resolve_mesh_shape({"data": 3, "fsdp": -1}, 8)
    with pytest.raises(ValueError, match="has 4 devices but 8 are available"):
        resolve_mesh_shape({"data": 2, "fsdp": 2}, 8)
    with pytest.raises(ValueError, match="Unknown mesh axes"):
        resolve_mesh_shape({"model": 8}, 8)
    with pytest.raises(ValueError, match="BATCH_SIZE=12 does not divide into the 8 data shards"):
        make_partitioner("data_parallel").check_batch_size(12)


def test_batches_are_split_over_the_data_axes():
    partitioner = make_partitioner("fsdp_tensor", {"data": 2, "fsdp": 2, "tensor": 2})
    assert partitioner.data_shards == 4
    arrays = partitioner.shard_batch({"x": np.arange(8 * 4, dtype=np.int32).reshape(8, 4)})
    assert arrays["x"].sharding.spec == P(("data", "fsdp"), None)
    assert {s.data.shape for s in arrays["x"].addressable_shards} == {(2, 4)}
