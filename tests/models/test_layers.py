"""Layer-level behaviour: norms, relative-position buckets, masks, attention."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t2t.models.config import TransformerConfig
from t2t.models.layers import (CACHE_AXES, NEG_INF, DenseGeneral, Mlp, MultiHeadAttention, RMSNorm,
                               RelativePositionBias, attention_mask, contract, einsum_attention,
                               decoding_mask, kernel_gradient_inputs_first,
                               relative_position_bucket, rms_norm)

# T5_REFERENCE §9.3: buckets hand-derived from t5x's _relative_position_bucket (32 buckets, 128).
REL = [-1000, -200, -128, -127, -64, -32, -16, -12, -9, -8, -7, -1, 0, 1, 7, 8, 9, 12, 16, 32, 64,
       127, 128, 200, 1000]
ENC = [15, 15, 15, 15, 14, 12, 10, 9, 8, 8, 7, 1, 0, 17, 23, 24, 24, 25, 26, 28, 30, 31, 31, 31, 31]
DEC = [31, 31, 31, 31, 26, 21, 16, 12, 9, 8, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]


def test_relative_position_buckets_match_hand_worked_values():
    np.testing.assert_array_equal(relative_position_bucket(np.array(REL), True), ENC)
    np.testing.assert_array_equal(relative_position_bucket(np.array(REL), False), DEC)


def test_relative_position_bucket_properties():
    rel = np.arange(-300, 301)
    enc = relative_position_bucket(rel, True)
    assert 16 not in enc  # bucket 16 would be "future distance 0", which cannot occur
    assert enc[rel == -91][0] == 15 and enc[rel == -90][0] == 14  # the last bucket starts at 91
    dec = relative_position_bucket(rel, False)
    np.testing.assert_array_equal(dec[(rel >= -15) & (rel <= 0)], np.arange(15, -1, -1))
    assert np.all(dec[rel >= 0] == 0)
    assert dec[rel == -113][0] == 31 and dec[rel == -112][0] == 30


def test_rms_norm_has_no_mean_or_bias():
    x = jnp.array([[3.0, 4.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    norm = RMSNorm(epsilon=0.0)
    params = norm.init(jax.random.key(0), x)
    scale = params["params"]["scale"]
    assert scale.value.shape == (4,) and scale.names == ("embed",)
    y = norm.apply(params, x)
    np.testing.assert_allclose(y[0], x[0] / 2.5, rtol=1e-6)  # rms([3,4,0,0]) = 2.5
    np.testing.assert_allclose(y[1], x[1], rtol=1e-6)  # a constant row is not centred to zero


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_rms_norm_has_the_gradients_of_autodiff(dtype):
    """The hand-written backward (only x and 1/rms kept) equals autodiff of the plain formula,
    for x [b, l, e] with rows of very different scales, a zero row and a non-trivial scale."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 8)) * np.array([1e-3, 1.0, 30.0])[None, :, None]
    x[1, 2] = 0.0  # an all-zero row (padding): r = 1/sqrt(eps), gradients finite
    x = jnp.asarray(x, dtype)
    scale = jnp.asarray(1.0 + 0.5 * rng.normal(size=8), jnp.float32)
    g = jnp.asarray(rng.normal(size=x.shape), jnp.float32)

    def plain(x, scale, epsilon):
        x32 = x.astype(jnp.float32)
        return x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + epsilon) * scale

    def loss(norm):
        return lambda x, scale: jnp.sum(norm(x, scale, 1e-6) * g)

    ours = jax.value_and_grad(loss(rms_norm), argnums=(0, 1))(x, scale)
    reference = jax.value_and_grad(loss(plain), argnums=(0, 1))(x, scale)
    tol = 1e-5 if dtype == jnp.float32 else 1e-2
    np.testing.assert_allclose(ours[0], reference[0], rtol=tol)
    assert ours[1][0].dtype == dtype and ours[1][1].dtype == jnp.float32
    for mine, theirs in zip(ours[1], reference[1]):
        mine, theirs = np.asarray(mine, np.float32), np.asarray(theirs, np.float32)
        assert np.all(np.isfinite(mine))
        # per row: rows differ in scale by 3e4, and each must be right on its own
        row_scale = np.max(np.abs(theirs), axis=-1, keepdims=True) + 1e-30
        np.testing.assert_allclose(mine / row_scale, theirs / row_scale, atol=tol)


def test_dense_general_contracts_several_axes_without_bias():
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, 5))
    layer = DenseGeneral(7, axis=(-2, -1), kernel_axes=("heads", "kv", "embed"))
    params = layer.init(jax.random.key(1), x)
    kernel = params["params"]["kernel"].value
    assert kernel.shape == (4, 5, 7) and set(params["params"]) == {"kernel"}
    np.testing.assert_allclose(layer.apply(params, x), jnp.einsum("bqhd,hde->bqe", x, kernel),
                               rtol=1e-5, atol=1e-5)


def test_attention_mask_blocks_other_segments_padding_and_future():
    seg = jnp.array([[1, 1, 2, 2, 0]])
    full = attention_mask(seg, seg)[0, 0]
    expected = np.array([[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, 0],
                         [0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(full, expected)
    causal = attention_mask(seg, seg, causal=True)[0, 0]
    np.testing.assert_array_equal(causal, expected & np.tri(5, dtype=bool))


def test_attention_has_no_logit_scaling_and_respects_mask():
    cfg = TransformerConfig(d_model=8, num_heads=2, head_dim=4)
    x = jax.random.normal(jax.random.key(0), (1, 3, 8))
    attn = MultiHeadAttention(cfg)
    params = attn.init(jax.random.key(1), x, x, None)
    p = nn.unbox(params["params"])
    q = jnp.einsum("ble,ehd->blhd", x, p["query"]["kernel"])
    k = jnp.einsum("ble,ehd->blhd", x, p["key"]["kernel"])
    v = jnp.einsum("ble,ehd->blhd", x, p["value"]["kernel"])
    w = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k))  # no 1/sqrt(head_dim)
    expected = jnp.einsum("bhqk,bkhd,hde->bqe", w, v, p["out"]["kernel"])
    np.testing.assert_allclose(attn.apply(params, x, x, None), expected, rtol=1e-5, atol=1e-5)
    # The query init carries the 1/sqrt(d) instead: its variance is 1/head_dim of the key's.
    big = TransformerConfig(d_model=512, num_heads=8, head_dim=64)
    xb = jnp.ones((1, 1, 512))
    pb = MultiHeadAttention(big).init(jax.random.key(2), xb, xb, None)["params"]
    ratio = jnp.var(pb["query"]["kernel"].value) / jnp.var(pb["key"]["kernel"].value)
    assert ratio == pytest.approx(1 / 64, rel=0.1)


def test_cached_attention_one_token_at_a_time_equals_causal_attention():
    cfg = TransformerConfig(d_model=8, num_heads=2, head_dim=4)
    x = jax.random.normal(jax.random.key(0), (2, 5, 8))
    attn = MultiHeadAttention(cfg)
    params = attn.init(jax.random.key(1), x, x, None)["params"]
    causal = attention_mask(jnp.ones((2, 5)), jnp.ones((2, 5)), causal=True)
    expected = attn.apply({"params": params}, x, x, causal)
    # The sizing call creates an empty 5-slot cache, named like the keys it holds.
    positions = jnp.broadcast_to(jnp.arange(5), (2, 5))
    _, variables = attn.apply({"params": params}, x, x, causal, decode=True,
                              cache_positions=positions, mutable=["cache"])
    assert variables["cache"]["cached_key"].names == CACHE_AXES
    cache = nn.unbox(variables["cache"])
    assert not np.any(cache["cached_key"])
    outputs = []
    for i in range(5):
        pos = jnp.full((2, 1), i)
        out, variables = attn.apply(
            {"params": params, "cache": cache}, x[:, i:i + 1], x[:, i:i + 1],
            decoding_mask(pos, jnp.zeros((2, 5))), decode=True, cache_positions=pos,
            mutable=["cache"])
        cache = variables["cache"]
        outputs.append(out)
    np.testing.assert_allclose(jnp.concatenate(outputs, axis=1), expected, atol=1e-6)


def test_decoding_mask_is_causal_over_slots_and_opens_the_prefix():
    # Two rows at slots 1 and 3 of a 5-slot cache whose slots 0-2 hold row 0's prefix.
    mask = decoding_mask(jnp.array([[1], [3]]), jnp.array([[1, 1, 1, 0, 0], [0] * 5]),
                         jnp.array([[1], [0]]))[:, 0, 0]
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])


@pytest.mark.parametrize("bidirectional", [True, False])
def test_relative_bias_at_decoding_positions_is_the_training_bias_row(bidirectional):
    rpb = RelativePositionBias(num_heads=3, num_buckets=8, max_distance=16)
    params = rpb.init(jax.random.key(0), 20, 20, bidirectional)
    full = rpb.apply(params, 20, 20, bidirectional)[0]  # [h, q, k]
    positions = jnp.array([[0, 7], [19, 12]])
    rows = rpb.apply(params, 2, 20, bidirectional, query_positions=positions)  # [b, h, q, k]
    for b in range(2):
        for q in range(2):
            np.testing.assert_array_equal(rows[b, :, q], full[:, positions[b, q]])


@pytest.mark.parametrize("activations,kernels", [(("relu",), {"wi", "wo"}),
                                                 (("gelu", "linear"), {"wi_0", "wi_1", "wo"})])
def test_mlp_variants(activations, kernels):
    cfg = TransformerConfig(d_model=8, d_ff=16, mlp_activations=activations)
    x = jax.random.normal(jax.random.key(0), (2, 3, 8))
    params = Mlp(cfg).init(jax.random.key(1), x)
    assert set(params["params"]) == kernels
    p = {k: v["kernel"].value for k, v in params["params"].items()}
    if activations == ("relu",):
        expected = jax.nn.relu(x @ p["wi"]) @ p["wo"]
    else:
        expected = (jax.nn.gelu(x @ p["wi_0"], approximate=True) * (x @ p["wi_1"])) @ p["wo"]
    np.testing.assert_allclose(Mlp(cfg).apply(params, x), expected, rtol=1e-5, atol=1e-5)


def _plain_attention(q, k, v, mask, bias, keep):
    """Attention as autodiff would differentiate it: the reference for the hand-written gradient."""
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32)
    if bias is not None:
        logits = logits + bias.astype(jnp.float32)
    logits = jnp.where(mask, logits, NEG_INF)
    weights = jax.nn.softmax(logits).astype(q.dtype)
    if keep is not None:
        weights = weights * keep
    return jnp.einsum("bhqk,bkhd->bqhd", weights, v)


@pytest.mark.parametrize("bias_rows, dropout, dtype", [
    (1, False, jnp.float32),  # T5: one relative-position bias shared by the batch
    (3, False, jnp.float32),  # a bias per example (decoding's shape)
    (None, True, jnp.float32),  # no bias (BERT, GPT), dropout on the weights
    (1, True, jnp.bfloat16),  # mixed precision
])
def test_einsum_attention_has_the_gradients_of_autodiff(bias_rows, dropout, dtype):
    """The hand-written backward (row sums from g . out, a shared bias summed as a dot) equals
    autodiff of the plain formula, also in fully masked (padding) rows and with dropout."""
    rng = np.random.default_rng(0)
    b, q_len, k_len, h, d = 3, 5, 6, 2, 4
    q, g = (jnp.asarray(rng.normal(size=(b, q_len, h, d)), dtype) for _ in range(2))
    k, v = (jnp.asarray(rng.normal(size=(b, k_len, h, d)), dtype) for _ in range(2))
    bias = None if bias_rows is None else jnp.asarray(
        rng.normal(size=(bias_rows, h, q_len, k_len)), jnp.float32)
    # Example 0 packs two segments, example 1 has padding (fully masked query rows), 2 is causal.
    q_seg = jnp.asarray([[1, 1, 2, 2, 2], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    k_seg = jnp.asarray([[1, 1, 2, 2, 2, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    mask = attention_mask(q_seg, k_seg)
    mask = mask.at[2].set(mask[2] & jnp.tril(jnp.ones((q_len, k_len), bool)))
    keep = None
    if dropout:
        keep = jnp.asarray(rng.random((b, h, q_len, k_len)) > 0.3, dtype) / 0.7

    def loss(attend):
        return lambda q, k, v, bias: jnp.sum(
            attend(q, k, v, mask, bias, keep).astype(jnp.float32) * g.astype(jnp.float32))

    ours = jax.value_and_grad(loss(einsum_attention), argnums=(0, 1, 2, 3))(q, k, v, bias)
    plain = jax.value_and_grad(loss(_plain_attention), argnums=(0, 1, 2, 3))(q, k, v, bias)
    tol = 1e-5 if dtype == jnp.float32 else 3e-2
    np.testing.assert_allclose(ours[0], plain[0], rtol=tol)
    assert bias is None or ours[1][3].shape == bias.shape
    for ours_grad, plain_grad in zip(ours[1], plain[1]):
        if plain_grad is None:
            continue
        scale = float(jnp.max(jnp.abs(plain_grad.astype(jnp.float32))))
        np.testing.assert_allclose(np.asarray(ours_grad, np.float32) / scale,
                                   np.asarray(plain_grad, np.float32) / scale, atol=tol)


@pytest.mark.parametrize("axes, x_shape, kernel_shape", [
    ((2,), (3, 4, 5), (5, 6)),  # an input projection: [b, l, e] x [e, f]
    ((1, 2), (3, 4, 5), (4, 5, 6)),  # an output projection: [b, h, d] x [h, d, e]
    ((2,), (3, 4, 5), (5, 2, 3)),  # a query projection: [b, l, e] x [e, h, d]
    ((0, 2), (4, 3, 5), (4, 5, 2)),  # contracted axes that are not the trailing ones
    ((2, 0), (4, 3, 5), (5, 4, 2)),  # and not in x's order
])
def test_contract_has_the_gradients_of_dot_general(axes, x_shape, kernel_shape):
    """x^T g for the kernel (and g k^T, in x's axis order, for x) equals autodiff's gradients."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=kernel_shape), jnp.float32)
    plain = lambda x, k: jax.lax.dot_general(x, k, ((axes, tuple(range(len(axes)))), ((), ())))
    ours = lambda x, k: contract(x, k, axes)
    weights = jnp.asarray(rng.normal(size=plain(x, kernel).shape), jnp.float32)
    np.testing.assert_allclose(ours(x, kernel), plain(x, kernel), rtol=1e-6)
    grads = [jax.grad(lambda x, k: jnp.sum(jnp.tanh(f(x, k)) * weights), argnums=(0, 1))(x, kernel)
             for f in (ours, plain)]
    for a, b in zip(*grads):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_kernel_gradient_auto_is_inputs_first_on_cpu_only(monkeypatch):
    assert kernel_gradient_inputs_first("inputs_first")
    assert not kernel_gradient_inputs_first("autodiff")
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert kernel_gradient_inputs_first("auto")
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert not kernel_gradient_inputs_first("auto")
