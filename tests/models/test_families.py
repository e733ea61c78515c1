"""EncoderDecoder: shapes, packing isolation, causality, positions, and FLOPs against XLA's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from t2t.models.families import EncoderDecoder, build_model, dummy_batch
from t2t.models.flops import flops_per_example
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
    logits = model.apply(params, _batch(1))["logits"]
    assert logits.shape == (2, 6, 256) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))


def test_packed_segments_do_not_see_each_other(model_and_params):
    model, params = model_and_params
    batch = _batch(1)
    base = model.apply(params, batch)["logits"]
    # Change the second packed example's encoder and decoder tokens: the first example's logits
    # (decoder positions 0-2) must not move, the second's must.
    changed = dict(batch)
    changed["encoder_input_tokens"] = batch["encoder_input_tokens"].at[:, 5:9].set(7)
    changed["decoder_input_tokens"] = batch["decoder_input_tokens"].at[:, 3:5].set(7)
    out = model.apply(params, changed)["logits"]
    np.testing.assert_allclose(out[:, :3], base[:, :3], atol=1e-5)
    assert not np.allclose(out[:, 3:5], base[:, 3:5], atol=1e-3)


def test_decoder_is_causal(model_and_params):
    model, params = model_and_params
    batch = _batch(1)
    base = model.apply(params, batch)["logits"]
    changed = dict(batch, decoder_input_tokens=batch["decoder_input_tokens"].at[:, 2].set(9))
    out = model.apply(params, changed)["logits"]
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
    assert not np.allclose(a["logits"], b["logits"])
    np.testing.assert_array_equal(model.apply(params, batch)["logits"],
                                  model.apply(params, batch)["logits"])


@pytest.mark.parametrize("name, width", [("t5_1_1/tiny", 128), ("bart/tiny", 256)])
def test_flop_formula_matches_xla_cost_analysis(name, width):
    """Without causal halving the formula counts what XLA executes; matmuls dominate at this size.
    BART's learned positions, biases and post-norms add lookups and elementwise work only (it is
    twice as wide, so that XLA's count of its erf-GeLU and norms is as small a share)."""
    cfg = get_size(name).replace(vocab_size=512, d_model=width, d_ff=2 * width, num_heads=4,
                                 head_dim=width // 4, max_length=64)
    model = EncoderDecoder(cfg)
    b, m, t = 4, 64, 16
    batch = {"encoder_input_tokens": jnp.ones((b, m), jnp.int32),
             "encoder_segment_ids": jnp.ones((b, m), jnp.int32),
             "encoder_positions": jnp.broadcast_to(jnp.arange(m), (b, m)),
             "decoder_input_tokens": jnp.ones((b, t), jnp.int32),
             "decoder_segment_ids": jnp.ones((b, t), jnp.int32),
             "decoder_positions": jnp.broadcast_to(jnp.arange(t), (b, t))}
    params = model.init(jax.random.key(0), batch)
    cost = jax.jit(model.apply).lower(params, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    lengths = {"inputs": m, "targets": t}
    predicted = b * flops_per_example(cfg, lengths, causal_halving=False).forward
    assert cost["flops"] == pytest.approx(predicted, rel=0.05)
    halved = flops_per_example(cfg, lengths).parts["dec_attn"]
    assert halved < flops_per_example(cfg, lengths, causal_halving=False).parts["dec_attn"]


def _tiny(name, **changes):
    return get_size(name).replace(vocab_size=256, d_model=32, d_ff=64, num_heads=4, head_dim=8,
                                  max_length=64, **changes)


def _decoder_batch(length=8, prefix=0):
    tokens = jax.random.randint(jax.random.key(3), (2, length), 3, 256)
    return {"decoder_input_tokens": tokens,
            "decoder_segment_ids": jnp.ones((2, length), jnp.int32),
            "decoder_positions": jnp.broadcast_to(jnp.arange(length), (2, length)),
            "decoder_causal_attention": jnp.broadcast_to(jnp.arange(length) < prefix, (2, length))}


def _changed_at(model, params, batch, key, position):
    """Logits before and after changing the token at `position` of feature `key`."""
    before = model.apply(params, batch)
    after = model.apply(params, dict(batch, **{key: batch[key].at[:, position].set(5)}))
    return before, after


@pytest.mark.parametrize("name", ["gpt2/tiny", "t5_table2_tiny/language_model"])
def test_decoder_only_is_causal(name):
    model = build_model(_tiny(name))
    batch = _decoder_batch()
    params = model.init(jax.random.key(0), batch)
    before, after = _changed_at(model, params, batch, "decoder_input_tokens", 4)
    np.testing.assert_allclose(after["logits"][:, :4], before["logits"][:, :4], atol=1e-5)
    assert not np.allclose(after["logits"][:, 4], before["logits"][:, 4], atol=1e-4)


def test_prefix_lm_sees_its_whole_prefix_and_nothing_after_it():
    model = build_model(_tiny("t5_table2_tiny/prefix_lm"))
    batch = _decoder_batch(prefix=4)  # positions 0-3 fully visible (inputs + first target)
    params = model.init(jax.random.key(0), batch)
    before, after = _changed_at(model, params, batch, "decoder_input_tokens", 3)
    assert not np.allclose(after["logits"][:, 0], before["logits"][:, 0], atol=1e-4)  # looks ahead
    before, after = _changed_at(model, params, batch, "decoder_input_tokens", 5)
    np.testing.assert_allclose(after["logits"][:, :5], before["logits"][:, :5], atol=1e-5)


def _encoder_batch(length=8):
    seg = jnp.array([[1] * 5 + [2] * 3] * 2)
    return {"encoder_input_tokens": jax.random.randint(jax.random.key(4), (2, length), 3, 256),
            "encoder_segment_ids": seg,
            "encoder_positions": jnp.array([[0, 1, 2, 3, 4, 0, 1, 2]] * 2),
            "encoder_token_type_ids": jnp.array([[0, 0, 0, 1, 1, 0, 0, 1]] * 2)}


def test_bert_heads_bidirectional_and_packed():
    cfg = _tiny("bert/tiny", encoder_heads=("mlm", "nsp", "sequence_classification",
                                            "token_classification"), num_labels=3)
    model = build_model(cfg)
    batch = _encoder_batch()
    params = model.init(jax.random.key(0), batch)
    out = model.apply(params, batch)
    assert out["mlm_logits"].shape == (2, 8, 256) and out["nsp_logits"].shape == (2, 8, 2)
    assert out["classification_logits"].shape == (2, 8, 3)
    assert out["token_logits"].shape == (2, 8, 3)
    before, after = _changed_at(model, params, batch, "encoder_input_tokens", 4)
    assert not np.allclose(after["mlm_logits"][:, 0], before["mlm_logits"][:, 0], atol=1e-4)
    np.testing.assert_allclose(after["mlm_logits"][:, 5:], before["mlm_logits"][:, 5:], atol=1e-5)
    before, after = _changed_at(model, params, batch, "encoder_token_type_ids", 0)
    assert not np.allclose(after["mlm_logits"][:, 0], before["mlm_logits"][:, 0], atol=1e-4)


def test_post_layer_norm_outputs_are_normalised():
    """BERT's post-LN blocks end with a LayerNorm (scale 1, bias 0 at init): each position's hidden
    state has zero mean and unit variance before the heads."""
    cfg = _tiny("bert/tiny", dropout_rate=0.0)
    model = build_model(cfg)
    batch = _encoder_batch()
    params = model.init(jax.random.key(0), batch)
    x = model.apply(params, batch["encoder_input_tokens"], batch["encoder_positions"],
                    batch["encoder_token_type_ids"], method=lambda m, *a: m.embedder(*a))
    _, state = model.apply(params, batch, capture_intermediates=True, mutable=["intermediates"])
    hidden = state["intermediates"]["encoder"]["__call__"][0]
    np.testing.assert_allclose(hidden.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(hidden.var(-1), 1.0, rtol=1e-3)
    assert x.shape == (2, 8, 32)


def test_shared_encoder_decoder_runs_one_stack_twice():
    model = build_model(_tiny("t5_table2_tiny/shared"))
    params = model.init(jax.random.key(0), _batch(0))["params"]
    assert "encoder" not in params and "decoder" in params
    assert "cross_attention" in params["decoder"]["layers_0"]
    unshared = build_model(_tiny("t5_table2_tiny/encoder_decoder")).init(
        jax.random.key(0), _batch(0))["params"]
    assert set(unshared) == {"embedder", "encoder", "decoder"}  # tied logits, no lm_head


def test_sinusoidal_positions_matter_and_have_the_known_values():
    from t2t.models.layers import sinusoidal_positions

    enc = sinusoidal_positions(jnp.array([[0, 1]]), 8)
    np.testing.assert_allclose(enc[0, 0], [0, 0, 0, 0, 1, 1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(enc[0, 1, 0], np.sin(1.0), rtol=1e-6)  # timescale 1 first
    cfg = _tiny("transformer/base", num_encoder_layers=1, num_decoder_layers=1)
    model = build_model(cfg)
    batch = dict(_batch(0), encoder_positions=jnp.zeros((2, 12), jnp.int32),
                 decoder_positions=jnp.zeros((2, 6), jnp.int32))
    params = model.init(jax.random.key(0), batch)
    moved = dict(batch, encoder_positions=batch["encoder_positions"] + 1)
    assert not np.allclose(model.apply(params, batch)["logits"],
                           model.apply(params, moved)["logits"], atol=1e-4)


def test_bart_learns_a_position_table_per_stack():
    # BART's encoder and decoder each learn their positions (HF BART: model.encoder and
    # model.decoder.embed_positions); the decoder's table moves only the decoder's embedding.
    cfg = _tiny("bart/tiny", num_encoder_layers=1, num_decoder_layers=1, dropout_rate=0.0)
    model = build_model(cfg)
    batch = dict(_batch(0), encoder_positions=jnp.zeros((2, 12), jnp.int32),
                 decoder_positions=jnp.zeros((2, 6), jnp.int32))
    params = model.init(jax.random.key(0), batch)
    embedder = params["params"]["embedder"]
    assert set(embedder) == {"tokens", "encoder_positions", "decoder_positions"}
    encoded = model.apply(params, batch, method=model.encode)
    # Noise, not a constant: the embedding norm would remove a constant.
    noise = lambda x: x + jax.random.normal(jax.random.key(1), x.shape)
    moved = jax.tree_util.tree_map_with_path(
        lambda path, x: noise(x) if "decoder_positions" in jax.tree_util.keystr(path) else x,
        params)
    np.testing.assert_array_equal(model.apply(moved, batch, method=model.encode), encoded)
    logits = [model.apply(p, batch)["logits"] for p in (params, moved)]
    assert not np.allclose(*logits, atol=1e-4)
    shared = build_model(cfg.replace(shared_encoder_decoder=True))
    assert set(shared.init(jax.random.key(0), batch)["params"]["embedder"]) == {
        "tokens", "positions"}  # T5 Table 2's shared variant shares every parameter


@pytest.mark.parametrize("name,lengths", [
    ("gpt2/tiny", {"inputs": 0, "targets": 48}),
    ("t5_table2_tiny/prefix_lm", {"inputs": 32, "targets": 16}),
    ("bert/tiny", {"inputs": 48}),
])
def test_flop_formula_matches_xla_for_other_families(name, lengths):
    # Wide enough that elementwise work (erf-GeLU, norms, softmax) is a small share of XLA's count.
    cfg = get_size(name).replace(vocab_size=512, d_model=256, d_ff=512, num_heads=4, head_dim=64,
                                 max_length=64, encoder_heads=("mlm",))
    model = build_model(cfg)
    n = sum(lengths.values())
    batch = {k: jnp.ones((2, n), jnp.int32) for k in dummy_batch(cfg)}
    params = model.init(jax.random.key(0), batch)
    cost = jax.jit(model.apply).lower(params, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    predicted = 2 * flops_per_example(cfg, lengths, causal_halving=False).forward
    assert cost["flops"] == pytest.approx(predicted, rel=0.06)
