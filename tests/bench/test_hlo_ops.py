"""What `parse_hlo` says each operation of a compiled program is: kind, pass and module."""

import collections

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from t2t.bench.hlo_ops import module_of, parse_hlo, phase_of


class _Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(32, name="wi")(x))
        return x + nn.Dense(16, name="wo")(h)


class _Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        for i in range(2):
            x = _Block(name=f"layers_{i}")(x)
        return nn.Dense(8, name="head")(x)


@pytest.fixture(scope="module")
def train_step_ops():
    """The ops of a compiled two-layer training step with an SGD update (outside the grad)."""
    net = _Net()
    x = jnp.ones((4, 16))
    params = net.init(jax.random.key(0), x)

    def step(params, x):
        grads = jax.grad(lambda p: jnp.mean(jnp.square(net.apply(p, x))))(params)
        return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

    return parse_hlo(jax.jit(step).lower(params, x).compile().as_text())


def test_a_training_step_splits_into_forward_backward_and_update(train_step_ops):
    by = collections.defaultdict(set)
    for op in train_step_ops.values():
        by[(op.phase, op.category)].add(op.module)
    # Every layer's dots appear in the forward and the backward pass, as one module per kind of
    # layer (indices folded), and the head's too.
    for phase in ("forward", "backward"):
        modules = by[(phase, "matmul")]
        assert {"layers_*/wi", "layers_*/wo", "head"} <= modules, (phase, modules)
    assert ("update", "elementwise") in by  # p - 0.1 * g, outside the differentiated function


def test_shapes_and_opcodes_are_read(train_step_ops):
    dots = [op for op in train_step_ops.values() if op.category == "matmul"
            and op.module == "head" and op.phase == "forward"]
    assert dots and all(op.shape == "f32[4,8]" for op in dots)
    assert all(op.opcode in ("dot", "fusion") for op in dots)


def test_a_reduce_is_a_reduction_not_its_combiner():
    ops = parse_hlo(jax.jit(lambda x: jnp.sum(jnp.exp(x), axis=1)).lower(
        jnp.ones((64, 128))).compile().as_text())
    # What runs is the reduction (or a fusion of it with the exp); the combiner it applies (an add)
    # is elementwise, but a part of the reduction, not an operation of its own.
    runs = [op for op in ops.values() if op.opcode in ("fusion", "reduce")]
    assert runs and {op.category for op in runs} == {"reduce"}


def test_a_collective_is_a_collective():
    devices = np.array(jax.devices()[:2])
    mesh = Mesh(devices, ("data",))
    sharded = NamedSharding(mesh, PartitionSpec("data"))
    step = jax.jit(lambda x: jnp.sum(x * 2.0), in_shardings=sharded,
                   out_shardings=NamedSharding(mesh, PartitionSpec()))
    ops = parse_hlo(step.lower(jnp.ones((8, 4))).compile().as_text())
    assert "collective" in {op.category for op in ops.values()}


def test_fusions_are_named_by_what_they_hold():
    text = """
%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %sum = f32[] add(%a, %b)
}
%moves (p: f32[4,8]) -> f32[8,4] {
  %p = f32[4,8]{1,0} parameter(0)
  ROOT %t = f32[8,4]{1,0} transpose(%p), dimensions={1,0}
}
%softmax_like (p: f32[4,8]) -> f32[4] {
  %p = f32[4,8]{1,0} parameter(0)
  %e = f32[4,8]{1,0} exponential(%p)
  %zero = f32[] constant(0)
  ROOT %r = f32[4]{0} reduce(%e, %zero), dimensions={1}, to_apply=%add
}
ENTRY %main (x: f32[4,8]) -> (f32[8,4], f32[4], f32[4,8]) {
  %x = f32[4,8]{1,0} parameter(0)
  %copy_fusion = f32[8,4]{1,0} fusion(%x), kind=kLoop, calls=%moves
  %reduce_fusion = f32[4]{0} fusion(%x), kind=kInput, calls=%softmax_like
  %flash = f32[4,8]{1,0} custom-call(%x), custom_call_target="__cudnn$fmhaSoftmax"
  ROOT %out = (f32[8,4]{1,0}, f32[4]{0}, f32[4,8]{1,0}) tuple(%copy_fusion, %reduce_fusion, %flash)
}
"""
    ops = parse_hlo(text)
    assert ops["copy_fusion"].category == "copy"
    assert ops["reduce_fusion"].category == "reduce"  # the exp is folded into the reduction
    assert ops["flash"].category == "attention"
    assert ops["out"].shape == "(f32[8,4]{1,0}, f32[4]{0}, f32[4,8]{1,0})"
    assert ops["x"].phase == "update" and ops["x"].module == ""


@pytest.mark.parametrize("op_name,phase", [
    ("jit(step)/jvp(Model)/encoder/layers_0/mlp/wi/dot_general", "forward"),
    ("jit(step)/transpose(jvp(Model))/encoder/layers_0/mlp/wi/dot_general", "backward"),
    ("jit(step)/mul", "update"), ("", "update")])
def test_phase_of(op_name, phase):
    assert phase_of(op_name) == phase


def test_module_of_drops_wrappers_methods_and_einsum_specs():
    assert module_of("jit(step)/transpose(jvp(EncoderDecoder))/EncoderDecoder.decode/decoder/"
                     "layers_11/cross_attention/bqhd,bkhd->bhqk/dot_general") == \
        "decoder/layers_*/cross_attention"
    assert module_of("jit(step)/jvp(M)/a/b/c/d/e/f/add", depth=2) == "a/b"
