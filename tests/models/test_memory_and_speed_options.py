"""Scan over layers, remat policies, bf16 compute, the dot-product attention kernel and the kernel
gradient's form change nothing numerically beyond float tolerance."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t2t.models.families import build_model, dummy_batch
from t2t.models.sizes import get_size
from t2t.training.trainer import make_converter

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


@pytest.mark.parametrize("name,scan", [("gpt2/tiny", False), ("bert/tiny", False),
                                       ("t5_1_1/tiny", False), ("t5_1_1/tiny", True)])
def test_one_example_per_row_masks_by_lengths_with_the_same_loss_and_gradients(name, scan,
                                                                              monkeypatch):
    """Unpacked rows of 8, 5 and 0 real tokens (the last a padding row, which must stay finite):
    the dot_product kernel given row lengths equals it given the segment masks, on every real
    position, in value and gradient (causal, bidirectional, T5's relative bias, cross-attention)."""
    cfg = _config(name, attention_kernel="dot_product", scan_layers=scan)
    lengths = np.array([8, 5, 0])
    real = (np.arange(8)[None] < lengths[:, None]).astype(np.int32)
    tokens = jax.random.randint(jax.random.key(1), (3, 8), 3, 250) * real
    batch = dummy_batch(cfg, batch_size=3, length=8)
    batch.update({k: real for k in batch if k.endswith("segment_ids")})
    batch.update({k: np.arange(8)[None] * real for k in batch if k.endswith("positions")})
    batch.update({k: tokens for k in batch if k.endswith("input_tokens")})
    weights = jnp.asarray(real, jnp.float32)[..., None]

    def loss(model, params):  # every output is per position of the rows above
        outputs = model.apply({"params": params}, batch)
        return sum(jnp.sum(jnp.square(v) * weights) for v in outputs.values())

    masked = build_model(cfg)
    params = nn.unbox(masked.init(jax.random.key(0), batch)["params"])
    expected, expected_grads = jax.value_and_grad(functools.partial(loss, masked))(params)

    calls, attention = [], jax.nn.dot_product_attention
    def spy(*args, mask=None, **kwargs):  # what the kernel is given: a mask, or lengths
        calls.append((mask is None, kwargs.get("key_value_seq_lengths") is not None))
        return attention(*args, mask=mask, **kwargs)
    monkeypatch.setattr(jax.nn, "dot_product_attention", spy)
    by_lengths = build_model(cfg.replace(one_example_per_row=True))
    value, grads = jax.value_and_grad(functools.partial(loss, by_lengths))(params)
    assert calls and set(calls) == {(True, True)}
    assert np.isfinite(value) and value == pytest.approx(float(expected), rel=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads,
                 expected_grads)


@pytest.mark.parametrize("name", ["gpt2/tiny", "bert/tiny", "t5_1_1/tiny"])
def test_one_example_per_row_unpacks_the_training_rows(name):
    """Two short examples share the first of two rows, or take one row each."""
    example = {"inputs": [5, 6, 1]} if name == "bert/tiny" else {"inputs": [5, 6, 1], "targets": [7, 1]}
    examples = [example, example]
    for one_per_row, rows_used in [(False, [True, False]), (True, [True, True])]:
        converter = make_converter(_config(name, one_example_per_row=one_per_row),
                                   {"inputs": 8, "targets": 8})
        features = converter(examples, 2)
        segments = next(v for k, v in features.items() if k.endswith("segment_ids"))
        assert [bool(row.any()) for row in segments] == rows_used


def test_one_example_per_row_refuses_a_prefix_lm():
    with pytest.raises(ValueError, match="one_example_per_row does not apply to a prefix LM"):
        _config("gpt2/tiny", prefix_lm=True, one_example_per_row=True)


def test_dot_product_kernel_refuses_attention_dropout():
    with pytest.raises(ValueError, match="attention_kernel='dot_product' has no attention dropout"):
        get_size("t5_1_1/tiny").replace(attention_kernel="dot_product", dropout_rate=0.1)
