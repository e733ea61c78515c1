"""Checkpointer: (train state, data state) round trips, retention, save interval, resharding."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

from t2t.training.checkpointing import Checkpointer

DATA_STATE = {"epoch": 2, "position": 12345, "source": "embedded", "shards": [0, 3, 7],
              "rng": {"seed": 0, "offset": 9}}


@pytest.fixture
def make_checkpointer(tmp_path):
    """Checkpointers under tmp_path/ckpt, closed at teardown."""
    opened = []

    def make(**kwargs):
        kwargs = {"save_every": 1, "keep": 3, **kwargs}
        ckpt = Checkpointer(tmp_path / "ckpt", **kwargs)
        opened.append(ckpt)
        return ckpt

    yield make
    for ckpt in opened:
        ckpt.close()


def _state(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "params": {"kernel": jnp.asarray(rng.standard_normal((8, 16)), jnp.float32),
                   "scale": jnp.asarray(rng.standard_normal((16,)), jnp.bfloat16)},
        "step": jnp.asarray(seed * 10 + 7, jnp.int32),
    }


def _abstract(tree, sharding=None):
    """Restore targets: shapes and dtypes of `tree`, on `sharding` (default 1 device)."""
    sharding = sharding or SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def _mesh(shape, names):
    n = int(np.prod(shape))
    return Mesh(np.array(jax.devices()[:n]).reshape(shape), names)


def _saved_steps(ckpt):
    return sorted(int(p.name) for p in ckpt.directory.iterdir() if p.name.isdigit())


def _assert_bit_exact(restored, expected):
    assert jax.tree.structure(restored) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(expected)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("async_save", [True, False])
def test_round_trip_is_bit_exact(make_checkpointer, async_save):
    """The restored train state equals the saved one bit for bit (dtypes included), and the JSON
    data state comes back as saved."""
    ckpt = make_checkpointer(async_save=async_save)
    state = _state()
    assert ckpt.save(5, state, DATA_STATE)
    ckpt.wait()
    restored, data, step = ckpt.restore(_abstract(state))
    assert step == 5
    _assert_bit_exact(restored, state)
    assert data == DATA_STATE


def test_restore_a_given_step(make_checkpointer):
    """restore(step=s) returns step s's state and data state, not the latest."""
    ckpt = make_checkpointer()
    for step in (1, 2, 3):
        ckpt.save(step, _state(step), {**DATA_STATE, "position": step})
    ckpt.wait()
    restored, data, step = ckpt.restore(_abstract(_state()), step=2)
    assert step == 2 and data["position"] == 2
    _assert_bit_exact(restored, _state(2))


def test_keeps_the_newest_n(make_checkpointer):
    """keep=2 after four saves leaves only the two newest steps on disk; the latest restores."""
    ckpt = make_checkpointer(keep=2)
    for step in (1, 2, 3, 4):
        assert ckpt.save(step, _state(step), DATA_STATE)
    ckpt.wait()
    assert _saved_steps(ckpt) == [3, 4]
    assert ckpt.latest_step() == 4
    restored, _, _ = ckpt.restore(_abstract(_state()))
    _assert_bit_exact(restored, _state(4))


def test_save_interval_and_force(make_checkpointer):
    """With save_every=3 and a first checkpoint at step 3, later saves happen only at multiples of 3
    (save returns False otherwise); force saves an off-interval step anyway."""
    ckpt = make_checkpointer(save_every=3, keep=10)
    saved = [step for step in range(3, 11) if ckpt.save(step, _state(), DATA_STATE)]
    assert saved == [3, 6, 9]
    assert ckpt.save(10, _state(), DATA_STATE, force=True)
    ckpt.wait()
    assert _saved_steps(ckpt) == [3, 6, 9, 10]
    assert ckpt.latest_step() == 10


def test_first_off_interval_step_is_not_saved(make_checkpointer):
    """In a fresh directory too, a step off the save interval is not saved (as save() documents)."""
    ckpt = make_checkpointer(save_every=3)
    assert not ckpt.save(1, _state(), DATA_STATE)
    ckpt.wait()
    assert ckpt.latest_step() is None


def test_latest_step_survives_reopening(make_checkpointer):
    """latest_step is None for a fresh directory; a new Checkpointer on a used directory finds the
    newest step there (what resuming a run relies on)."""
    first = make_checkpointer()
    assert first.latest_step() is None
    first.save(1, _state(), DATA_STATE)
    first.save(2, _state(2), DATA_STATE)
    first.close()
    again = make_checkpointer()
    assert again.latest_step() == 2
    restored, data, step = again.restore(_abstract(_state()))
    assert step == 2 and data == DATA_STATE
    _assert_bit_exact(restored, _state(2))


def test_restore_onto_a_different_mesh(make_checkpointer):
    """Saved sharded over an (8,) mesh, restored with ShapeDtypeStructs carrying a (2, 4)-mesh
    sharding: the values are equal and every array has the new sharding."""
    old = NamedSharding(_mesh((8,), ("x",)), P("x"))
    new = NamedSharding(_mesh((2, 4), ("a", "b")), P("a", "b"))
    state = {"w": jnp.arange(8 * 16, dtype=jnp.float32).reshape(8, 16),
             "v": jnp.asarray(np.random.default_rng(0).standard_normal((8, 4)), jnp.float32)}
    sharded = jax.device_put(state, old)
    assert sharded["w"].sharding == old
    ckpt = make_checkpointer()
    ckpt.save(1, sharded, DATA_STATE)
    ckpt.wait()
    restored, _, _ = ckpt.restore(_abstract(state, new))
    _assert_bit_exact(restored, state)
    for leaf in jax.tree.leaves(restored):
        assert leaf.sharding == new
        assert len(leaf.addressable_shards) == 8
        assert leaf.addressable_shards[0].data.shape == (4, leaf.shape[1] // 4)


def test_restore_from_an_empty_directory_raises(make_checkpointer):
    """Restoring without any checkpoint raises FileNotFoundError naming the directory."""
    ckpt = make_checkpointer()
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        ckpt.restore(_abstract(_state()))


def test_falling_back_from_a_corrupt_checkpoint_prints_no_tracebacks(make_checkpointer,
                                                                      monkeypatch):
    """Orbax closes its event loop when a read fails; the reads still in flight then report
    RuntimeError('Event loop is closed') through sys.unraisablehook, dozens of tracebacks under
    the warning that says what happened. The restore drops exactly those, and only meanwhile."""
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    ckpt = make_checkpointer()
    state = {f"w{i}": jnp.full((64, 64), float(i)) for i in range(8)}
    for step in (1, 2):
        ckpt.save(step, state, DATA_STATE)
    ckpt.wait()
    for path in (ckpt.directory / "2" / "state").rglob("*"):
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(b"garbage")
    restored, _, step = ckpt.restore(_abstract(state))
    assert step == 1 and reported == []
    assert sys.unraisablehook == reported.append  # put back
    _assert_bit_exact(restored, state)


def test_saving_replicated_arrays_on_one_process_compiles_nothing(make_checkpointer):
    """One process holds every replica, so each array is copied to the host once. Orbax's default
    (replica-parallel writes) slices every array per replica: an eager op per slice, compiled per
    shape and device, seconds on a model's first save."""
    replicated = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P())
    # Shapes no other test uses: an op compiled elsewhere in this process would hide a slice.
    state = {f"w{i}": jax.device_put(jnp.ones((24, 40 + i)), replicated) for i in range(3)}
    lowered = []

    def on_event(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            lowered.append(event)

    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        ckpt = make_checkpointer()
        ckpt.save(1, state, DATA_STATE)
        ckpt.wait()
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    assert len(jax.devices()) == 8 and lowered == []
    restored, _, _ = ckpt.restore(_abstract(state, replicated))
    _assert_bit_exact(restored, state)
