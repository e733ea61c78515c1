"""Device meshes and the one table that maps logical axis names to mesh axes.

The mesh always has the three axes `data`, `fsdp` and `tensor` (size 1 where unused):
- `data` splits the batch; parameters are replicated along it.
- `fsdp` splits the batch too, and shards every parameter's `embed` axis (ZeRO-3 style: weights are
  all-gathered per layer, gradients reduce-scattered).
- `tensor` shards the `mlp`, `heads` and `vocab` axes of weights and activations (Megatron style).

A preset picks which of the three axes the rules may use, so "data_parallel" on a mesh whose `fsdp`
axis is larger than 1 would still replicate weights; normally the preset's default mesh shape is used:

| preset            | default mesh                     | weights                  | batch          |
|-------------------|----------------------------------|--------------------------|----------------|
| data_parallel     | data = all devices               | replicated               | data           |
| fsdp              | fsdp = all devices               | `embed` over fsdp        | data x fsdp    |
| tensor_parallel   | tensor = all devices             | mlp/heads/vocab / tensor | data           |
| fsdp_tensor       | tensor = 2, fsdp = the rest      | both                     | data x fsdp    |
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import flax.linen as nn
import gin
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# Every logical axis the models use, and the mesh axes it may be split over.
_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("relpos_buckets", None),
    ("layers", None),
    ("abspos", None),
    ("token_types", None),
    ("act_embed", None),
    ("act_mlp", "tensor"),
    ("act_heads", "tensor"),
    ("act_kv", None),
    ("act_vocab", "tensor"),
)

PRESETS: dict[str, tuple[str, ...]] = {
    "data_parallel": ("data",),
    "fsdp": ("data", "fsdp"),
    "tensor_parallel": ("data", "tensor"),
    "fsdp_tensor": ("data", "fsdp", "tensor"),
}


def logical_axis_rules(preset: str) -> tuple[tuple[str, Any], ...]:
    """The rules table restricted to the mesh axes that `preset` uses."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown partitioning preset {preset!r}; choose from {sorted(PRESETS)}.")
    allowed = PRESETS[preset]
    rules = []
    for logical, mesh_axes in _RULES:
        kept = tuple(a for a in np.atleast_1d(mesh_axes or ()) if a in allowed)
        rules.append((logical, kept[0] if len(kept) == 1 else (kept or None)))
    return tuple(rules)


def _default_mesh_shape(preset: str, num_devices: int) -> dict[str, int]:
    if preset == "fsdp_tensor":
        return {"fsdp": -1, "tensor": 2 if num_devices % 2 == 0 else 1}
    return {{"data_parallel": "data", "fsdp": "fsdp", "tensor_parallel": "tensor"}[preset]: -1}


def resolve_mesh_shape(shape: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
    """Sizes of (data, fsdp, tensor) from a partial mapping; missing axes are 1, one axis may be -1."""
    unknown = set(shape) - set(MESH_AXES)
    if unknown:
        raise ValueError(f"Unknown mesh axes {sorted(unknown)}; the mesh axes are {MESH_AXES}.")
    sizes = [int(shape.get(a, 1)) for a in MESH_AXES]
    if sizes.count(-1) > 1:
        raise ValueError(f"Mesh shape {dict(shape)}: at most one axis may be -1 (fill).")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if known <= 0 or num_devices % known:
            raise ValueError(
                f"Mesh shape {dict(shape)} cannot be filled from {num_devices} devices: the fixed "
                f"axes multiply to {known}, which does not divide {num_devices}. Choose sizes whose "
                f"product divides the device count.")
        sizes[sizes.index(-1)] = num_devices // known
    if math.prod(sizes) != num_devices:
        raise ValueError(
            f"Mesh shape {dict(zip(MESH_AXES, sizes))} has {math.prod(sizes)} devices but "
            f"{num_devices} are available. Make data x fsdp x tensor = {num_devices}, or set one "
            f"axis to -1 to fill, e.g. --gin.MESH_SHAPE=\"{{'data': -1}}\".")
    return tuple(sizes)


def _slices_are_processes(devices: Sequence[jax.Device]) -> bool:
    """Without several TPU slices (GPU nodes, CPU hosts), each process is one "slice"."""
    return len({getattr(d, "slice_index", 0) for d in devices}) == 1


def _slice(device: jax.Device, by_process: bool) -> int:
    return device.process_index if by_process else device.slice_index


def make_mesh(shape: Mapping[str, int], devices: Sequence[jax.Device] | None = None,
              dcn_shape: Mapping[str, int] | None = None) -> Mesh:
    """A (data, fsdp, tensor) mesh with a topology-aware device order (mesh_utils).

    Without `dcn_shape`, `shape` covers all devices. With it, the mesh has two levels: `shape` is
    laid out within each slice (TPU slice over ICI, or GPU node over NVLink; on hosts without
    slices, each process counts as one) and `dcn_shape` across slices (the data-center network),
    each axis of the mesh being the product of the two. Put only `data` (or `fsdp`) on DCN: its
    collectives are the ones that tolerate the slower links.
    """
    devices = list(devices if devices is not None else jax.devices())
    if dcn_shape is None:
        sizes = resolve_mesh_shape(shape, len(devices))
        device_array = mesh_utils.create_device_mesh(sizes, devices=devices)
    else:
        by_process = _slices_are_processes(devices)
        granules = {_slice(d, by_process) for d in devices}
        dcn_sizes = resolve_mesh_shape(dcn_shape, len(granules))
        ici_sizes = resolve_mesh_shape(shape, len(devices) // len(granules))
        device_array = mesh_utils.create_hybrid_device_mesh(
            ici_sizes, dcn_sizes, devices, process_is_granule=by_process)
    # jax.sharding.Mesh defaults to Auto axis types, which GSPMD logical partitioning needs.
    return Mesh(device_array, MESH_AXES)


@dataclasses.dataclass(frozen=True)
class Partitioner:
    """A mesh plus the logical rules: turns logical axis names into NamedShardings."""

    mesh: Mesh
    rules: tuple[tuple[str, Any], ...]

    @property
    def data_shards(self) -> int:
        """How many ways the batch is split (the mesh axes that `batch` maps to)."""
        spec = nn.logical_to_mesh_axes(("batch",), self.rules)[0]
        axes = () if spec is None else (spec,) if isinstance(spec, str) else spec
        return math.prod(self.mesh.shape[a] for a in axes)

    def sharding(self, logical_axes: Sequence[str | None]) -> NamedSharding:
        return NamedSharding(self.mesh, nn.logical_to_mesh_axes(tuple(logical_axes), self.rules))

    def tree_shardings(self, boxed_tree: Any) -> Any:
        """NamedShardings for a tree whose leaves carry logical names (nn.LogicallyPartitioned)."""
        specs = nn.get_partition_spec(boxed_tree)
        return nn.logical_to_mesh_sharding(specs, self.mesh, self.rules)

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    def check_batch_size(self, batch_size: int, name: str = "BATCH_SIZE") -> None:
        """Refuse a global batch (the setting `name`) that the data shards cannot split evenly."""
        if batch_size % self.data_shards:
            raise ValueError(
                f"{name}={batch_size} does not divide into the {self.data_shards} data shards of "
                f"mesh {dict(self.mesh.shape)}. Use a multiple of {self.data_shards}, or shard the "
                f"batch over fewer devices.")

    def shard_batch(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """Host arrays [b, l] -> global jax.Arrays sharded over the batch axes.

        `batch` is this process's share; with one process that is the whole global batch.
        """
        sharding = self.sharding(("batch", "length"))
        return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


@gin.configurable
def make_partitioner(preset: str = "data_parallel", mesh_shape: Mapping[str, int] | None = None,
                     devices: Sequence[jax.Device] | None = None,
                     dcn_mesh_shape: Mapping[str, int] | None = None) -> Partitioner:
    """The partitioner for a preset; `mesh_shape` (e.g. {'data': 2, 'fsdp': -1}) overrides its mesh,
    and `dcn_mesh_shape` (e.g. {'data': -1}) adds the across-slices level (see `make_mesh`)."""
    rules = logical_axis_rules(preset)
    devices = list(devices if devices is not None else jax.devices())
    if mesh_shape is None:
        by_process = _slices_are_processes(devices)
        per_slice = len(devices) if dcn_mesh_shape is None else len(
            [d for d in devices if _slice(d, by_process) == _slice(devices[0], by_process)])
        mesh_shape = _default_mesh_shape(preset, per_slice)
    return Partitioner(make_mesh(mesh_shape, devices, dcn_mesh_shape), rules)
