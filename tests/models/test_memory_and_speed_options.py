"""Scan over layers, remat policies, bf16 compute, the dot-product attention kernel and the kernel
gradient's form change nothing numerically beyond float tolerance."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t2t.models.families import build_model, dummy_batch
from t2t.models.sizes import get_size

NAMES = ["t5_1_1/tiny", "t5_table2_tiny/shared", "gpt2/tiny", "bert/tiny"]


def _config(name, **changes):
    return get_size(name).replace(vocab_size=256, d_model=32, d_ff=64, num_heads=4, head_dim=8,
                                  max_length=64, dropout_rate=0.0, **changes)


def _batch(config):
    batch = dummy_batch(config, batch_size=2, length=8)
    tokens = jax.random.randint(jax.random.key(1), (2, 8), 3, 250)
    return {k: tokens if k.endswith("input_tokens") else v for k, v in batch.items()}


def _stack_layers(params):
    """Unscanned params (layers_0, layers_1, ...) -> the scanned layout (layers/block, stacked)."""
    if not isinstance(params, dict):
        return params
    layer_keys = sorted((k for k in params if k.startswith("layers_")), key=lambda k: int(k[7:]))
    out = {k: _stack_layers(v) for k, v in params.items() if not k.startswith("layers_")}
    if layer_keys:
        out["layers"] = {"block": jax.tree.map(lambda *xs: jnp.stack(xs),
                                               *[params[k] for k in layer_keys])}
    return out


def _loss_and_grads(model, params, batch):
    loss = lambda p: sum(jnp.mean(jnp.square(v)) for v in model.apply({"params": p}, batch).values())
    return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize("name", NAMES)
def test_scanned_layers_compute_the_same_function(name):
    plain_cfg = _config(name)
    batch = _batch(plain_cfg)
    plain = build_model(plain_cfg)
    params = nn.unbox(plain.init(jax.random.key(0), batch)["params"])
    scanned = build_model(plain_cfg.replace(scan_layers=True))
    scanned_params = _stack_layers(params)
    # The scanned model's own init has exactly this structure, with a leading `layers` axis.
    assert (jax.tree.structure(scanned_params)
            == jax.tree.structure(nn.unbox(scanned.init(jax.random.key(0), batch)["params"])))
    loss, grads = _loss_and_grads(plain, params, batch)
    scanned_loss, scanned_grads = _loss_and_grads(scanned, scanned_params, batch)
    assert scanned_loss == pytest.approx(loss, rel=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 scanned_grads, _stack_layers(grads))


@pytest.mark.parametrize("name", NAMES)
def test_kernel_gradient_forms_give_the_same_loss_and_gradients(name):
    cfg = _config(name)
    batch = _batch(cfg)
    params = nn.unbox(build_model(cfg).init(jax.random.key(0), batch)["params"])
    loss, grads = _loss_and_grads(build_model(cfg.replace(kernel_gradient="autodiff")), params,
                                  batch)
    ours, our_grads = _loss_and_grads(build_model(cfg.replace(kernel_gradient="inputs_first")),
                                      params, batch)
    assert ours == loss  # the forward pass is the same dot
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 our_grads, grads)


@pytest.mark.parametrize("policy", ["minimal", "full"])
@pytest.mark.parametrize("scan", [False, True])
def test_remat_policies_keep_loss_and_gradients(policy, scan):
    cfg = _config("t5_1_1/tiny", scan_layers=scan)
    batch = _batch(cfg)
    params = nn.unbox(build_model(cfg).init(jax.random.key(0), batch)["params"])
    loss, grads = _loss_and_grads(build_model(cfg), params, batch)
    remat_loss, remat_grads = _loss_and_grads(build_model(cfg.replace(remat_policy=policy)),
                                              params, batch)
    assert remat_loss == pytest.approx(loss, rel=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 remat_grads, grads)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_compute_stays_close_to_fp32_with_fp32_params(name):
    cfg = _config(name)
    batch = _batch(cfg)
    params = build_model(cfg).init(jax.random.key(0), batch)
    bf16 = build_model(cfg.replace(dtype="bfloat16"))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nn.unbox(
        bf16.init(jax.random.key(0), batch))))  # parameters stay float32
    full = build_model(cfg).apply(params, batch)
    half = bf16.apply(params, batch)
    for key in full:
        assert half[key].dtype == jnp.float32  # logits (and so the loss) in float32
        scale = float(jnp.std(full[key]))
        np.testing.assert_allclose(half[key], full[key], atol=0.05 * scale + 0.02)


@pytest.mark.parametrize("name", ["gpt2/tiny", "bert/tiny", "t5_1_1/tiny"])
def test_dot_product_attention_kernel_matches_einsum(name):
    """Causal (in-kernel), bidirectional and T5's relative bias, on packed rows with padding."""
    cfg = _config(name)
    batch = _batch(cfg)
    # Two packed examples and a padded tail in each row: the segment mask must survive the
    # in-kernel causal mask.
    segments = jnp.array([[1, 1, 1, 2, 2, 2, 0, 0], [1, 1, 1, 1, 1, 2, 2, 0]])
    positions = jnp.array([[0, 1, 2, 0, 1, 2, 0, 0], [0, 1, 2, 3, 4, 0, 1, 0]])
    batch = {k: segments if k.endswith("segment_ids") else positions if k.endswith("positions")
             else v for k, v in batch.items()}
    params = build_model(cfg).init(jax.random.key(0), batch)
    einsum = build_model(cfg).apply(params, batch)
    fused = build_model(cfg.replace(attention_kernel="dot_product")).apply(params, batch)
    for key in einsum:
        np.testing.assert_allclose(fused[key], einsum[key], rtol=1e-4, atol=1e-5)


def test_dot_product_kernel_refuses_attention_dropout():
    with pytest.raises(ValueError, match="attention_kernel='dot_product' has no attention dropout"):
        get_size("t5_1_1/tiny").replace(attention_kernel="dot_product", dropout_rate=0.1)
