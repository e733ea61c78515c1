"""EncoderDecoder: shapes, packing isolation, causality, and the FLOP count against XLA's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t2t.models.families import EncoderDecoder
from t2t.models.flops import encoder_decoder_flops
from t2t.models.sizes import get_size

CFG = get_size("t5_1_1/tiny").replace(vocab_size=256, d_model=32, d_ff=64, num_heads=4, head_dim=8)


def _batch(rng, b=2, m=12, t=6, vocab=256):
    keys = jax.random.split(jax.random.key(rng), 2)
    return {
        "encoder_input_tokens": jax.random.randint(keys[0], (b, m), 3, vocab),
        "encoder_segment_ids": jnp.array([[1] * 5 + [2] * 4 + [0] * (m - 9)] * b),
        "decoder_input_tokens": jax.random.randint(keys[1], (b, t), 3, vocab),
        "decoder_segment_ids": jnp.array([[1] * 3 + [2] * 2 + [0] * (t - 5)] * b),
    }


@pytest.fixture(scope="module", params=["t5_1_0", "t5_1_1"])
def model_and_params(request):
    cfg = get_size(f"{request.param}/tiny").replace(
        vocab_size=256, d_model=32, d_ff=64, num_heads=4, head_dim=8)
    model = EncoderDecoder(cfg)
    return model, model.init(jax.random.key(0), _batch(0))


def test_logit_shapes_and_dtype(model_and_params):
    model, params = model_and_params
    logits = model.apply(params, _batch(1))
    assert logits.shape == (2, 6, 256) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))


def test_packed_segments_do_not_see_each_other(model_and_params):
    model, params = model_and_params
    batch = _batch(1)
    base = model.apply(params, batch)
    # Change the second packed example's encoder and decoder tokens: the first example's logits
    # (decoder positions 0-2) must not move, the second's must.
    changed = dict(batch)
    changed["encoder_input_tokens"] = batch["encoder_input_tokens"].at[:, 5:9].set(7)
    changed["decoder_input_tokens"] = batch["decoder_input_tokens"].at[:, 3:5].set(7)
    out = model.apply(params, changed)
    np.testing.assert_allclose(out[:, :3], base[:, :3], atol=1e-5)
    assert not np.allclose(out[:, 3:5], base[:, 3:5], atol=1e-3)


def test_decoder_is_causal(model_and_params):
    model, params = model_and_params
    batch = _batch(1)
    base = model.apply(params, batch)
    changed = dict(batch, decoder_input_tokens=batch["decoder_input_tokens"].at[:, 2].set(9))
    out = model.apply(params, changed)
    np.testing.assert_allclose(out[:, :2], base[:, :2], atol=1e-5)
    assert not np.allclose(out[:, 2], base[:, 2], atol=1e-3)


def test_one_relative_position_table_per_stack(model_and_params):
    _, params = model_and_params
    p = params["params"]
    assert p["encoder"]["relpos_bias"]["rel_embedding"].value.shape == (4, 32)
    assert p["decoder"]["relpos_bias"]["rel_embedding"].value.shape == (4, 32)
    assert not any("relpos" in k for k in p["encoder"]["layers_0"])
    assert "cross_attention" in p["decoder"]["layers_0"]
    assert "cross_attention" not in p["encoder"]["layers_0"]


def test_dropout_is_active_only_when_asked():
    cfg = CFG.replace(dropout_rate=0.5)
    model = EncoderDecoder(cfg)
    batch = _batch(1)
    params = model.init(jax.random.key(0), batch)
    a = model.apply(params, batch, deterministic=False, rngs={"dropout": jax.random.key(1)})
    b = model.apply(params, batch, deterministic=False, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(model.apply(params, batch), model.apply(params, batch))


def test_flop_formula_matches_xla_cost_analysis():
    """Without causal halving the formula counts what XLA executes; matmuls dominate at this size."""
    cfg = get_size("t5_1_1/tiny").replace(vocab_size=512, d_model=128, d_ff=256, num_heads=4,
                                          head_dim=32)
    model = EncoderDecoder(cfg)
    b, m, t = 4, 64, 16
    batch = {"encoder_input_tokens": jnp.ones((b, m), jnp.int32),
             "encoder_segment_ids": jnp.ones((b, m), jnp.int32),
             "decoder_input_tokens": jnp.ones((b, t), jnp.int32),
             "decoder_segment_ids": jnp.ones((b, t), jnp.int32)}
    params = model.init(jax.random.key(0), batch)
    cost = jax.jit(model.apply).lower(params, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    predicted = b * encoder_decoder_flops(cfg, m, t, causal_halving=False).forward
    assert cost["flops"] == pytest.approx(predicted, rel=0.05)
    halved = encoder_decoder_flops(cfg, m, t)
    assert halved.dec_attn < encoder_decoder_flops(cfg, m, t, causal_halving=False).dec_attn
