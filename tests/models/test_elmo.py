"""ELMo: shapes, each direction's causality, no state across packed examples, ScalarMix, the LM
targets and the character table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sentencepiece as spm

from t2t.data.vocab import default_vocabulary
from t2t.models.elmo import (BOW, CHAR_VOCAB_SIZE, EOW, Elmo, ElmoConfig, ScalarMix,
                             bidirectional_lm_targets, character_table, elmo_config)

CONFIG = ElmoConfig(vocab_size=40, max_characters=6, char_embed_dim=4,
                    filters=((1, 4), (2, 4), (3, 8)), num_highway=1, d_model=8, dropout_rate=0.0)
LENGTH = 9


def _chars(rng: np.random.Generator) -> np.ndarray:
    """[2, LENGTH, max_characters]: every test uses two rows, so one compiled function serves all."""
    return rng.integers(1, CHAR_VOCAB_SIZE, (2, LENGTH, CONFIG.max_characters)).astype(np.int32)


@pytest.fixture(scope="module")
def run():
    model = Elmo(CONFIG)
    params = jax.jit(model.init)(jax.random.key(0), jnp.asarray(_chars(np.random.default_rng(0))),
                                 jnp.ones((2, LENGTH), jnp.int32))
    run = jax.jit(lambda chars, ids: (model.apply(params, chars, ids, method=Elmo.layers),
                                      model.apply(params, chars, ids)))
    return run


def _run(run, chars, segment_ids):
    layers, logits = run(jnp.asarray(chars), jnp.asarray(segment_ids))
    return np.asarray(layers), {k: np.asarray(v) for k, v in logits.items()}


def test_shapes(run):
    chars = _chars(np.random.default_rng(1))
    layers, logits = _run(run, chars, np.ones((2, LENGTH), np.int32))
    assert layers.shape == (CONFIG.num_layers + 1, 2, LENGTH, 2 * CONFIG.d_model)
    assert logits["forward_logits"].shape == logits["backward_logits"].shape == (2, LENGTH, 40)
    # The token layer is [x; x]: the same CharCNN vector feeds both directions.
    np.testing.assert_array_equal(layers[0, ..., :CONFIG.d_model], layers[0, ..., CONFIG.d_model:])


@pytest.mark.parametrize("t", [0, 4, LENGTH - 1])
def test_each_direction_sees_only_its_past(run, t):
    rng = np.random.default_rng(2)
    chars = _chars(rng)
    changed = chars.copy()
    changed[0, t] = rng.integers(1, CHAR_VOCAB_SIZE, CONFIG.max_characters)
    segment_ids = np.ones((2, LENGTH), np.int32)
    (layers, logits), (layers2, logits2) = (_run(run, c, segment_ids)
                                            for c in (chars, changed))
    differs = lambda a, b: np.abs(a - b).reshape(LENGTH, -1).max(-1) > 1e-6  # per position
    positions = np.arange(LENGTH)
    d = CONFIG.d_model
    np.testing.assert_array_equal(differs(layers[0, 0], layers2[0, 0]), positions == t)
    for j in range(1, CONFIG.num_layers + 1):
        np.testing.assert_array_equal(differs(layers[j, 0, :, :d], layers2[j, 0, :, :d]),
                                      positions >= t)
        np.testing.assert_array_equal(differs(layers[j, 0, :, d:], layers2[j, 0, :, d:]),
                                      positions <= t)
    np.testing.assert_array_equal(differs(logits["forward_logits"][0], logits2["forward_logits"][0]),
                                  positions >= t)
    np.testing.assert_array_equal(
        differs(logits["backward_logits"][0], logits2["backward_logits"][0]), positions <= t)
    np.testing.assert_array_equal(layers[:, 1], layers2[:, 1])  # the other row: untouched


def test_packed_examples_equal_the_examples_run_alone(run):
    """Two examples packed in one row give exactly what each gives in a row of its own."""
    rng = np.random.default_rng(3)
    chars = _chars(rng)
    packed_ids = np.array([[1, 1, 1, 1, 2, 2, 2, 0, 0]] * 2, np.int32)
    packed, _ = _run(run, chars, packed_ids)
    for segment, (start, stop) in ((1, (0, 4)), (2, (4, 7))):
        alone_chars = np.zeros_like(chars)
        alone_chars[0, : stop - start] = chars[0, start:stop]
        alone_ids = np.zeros_like(packed_ids)
        alone_ids[0, : stop - start] = 1
        alone, _ = _run(run, alone_chars, alone_ids)
        np.testing.assert_allclose(packed[:, 0, start:stop], alone[:, 0, : stop - start],
                                   atol=1e-5, err_msg=f"example {segment}")


def test_scalar_mix_is_a_softmax_weighted_sum():
    rng = np.random.default_rng(4)
    layers = rng.normal(size=(3, 2, 5, 6)).astype(np.float32)
    mix = ScalarMix(3)
    params = {"params": {"scalars": jnp.asarray(rng.normal(size=3), jnp.float32),
                         "gamma": jnp.asarray(1.7, jnp.float32)}}
    weights = np.asarray(mix.apply(params, method=ScalarMix.weights))
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-6)
    assert (weights > 0).all()
    scalars = np.asarray(params["params"]["scalars"], np.float64)
    reference = np.exp(scalars) / np.exp(scalars).sum()
    expected = 1.7 * np.einsum("j,j...->...", reference, layers)
    np.testing.assert_allclose(np.asarray(mix.apply(params, jnp.asarray(layers))), expected,
                               rtol=1e-5, atol=1e-6)
    fresh = mix.init(jax.random.key(0), jnp.asarray(layers))  # starts as an equal mix
    np.testing.assert_allclose(mix.apply(fresh, method=ScalarMix.weights), np.full(3, 1 / 3))


def test_lm_targets_stay_inside_each_packed_example():
    rng = np.random.default_rng(5)
    segment_ids = np.array([[1, 1, 1, 2, 2, 3, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]], np.int32)
    tokens = np.where(segment_ids > 0, rng.integers(3, 50, segment_ids.shape), 0).astype(np.int32)
    got = {k: np.asarray(v) for k, v in
           bidirectional_lm_targets(jnp.asarray(tokens), jnp.asarray(segment_ids)).items()}
    for name, step in (("forward", 1), ("backward", -1)):
        for b in range(2):
            for t in range(8):
                s = t + step
                inside = 0 <= s < 8 and segment_ids[b, t] > 0 and segment_ids[b, s] == segment_ids[b, t]
                assert got[f"{name}_weights"][b, t] == inside
                if inside:
                    assert got[f"{name}_targets"][b, t] == tokens[b, s]


def test_character_table_spells_every_piece():
    vocab = default_vocabulary()
    table = character_table(vocab, vocab.padded_vocab_size, max_characters=20)
    pieces = spm.SentencePieceProcessor(model_file=str(vocab.model_path))
    assert table.shape == (vocab.padded_vocab_size, 20)
    for token in np.random.default_rng(6).integers(3, vocab.num_pieces, 50):
        row = table[token]
        assert row[0] == BOW
        end = int(np.flatnonzero(row == EOW)[0])
        spelled = bytes(int(c) - 1 for c in row[1:end]).decode()
        assert spelled == pieces.id_to_piece(int(token)).replace("\u2581", " ")
        assert (row[end + 1:] == 0).all()
    assert (table[0] == 0).all() and (table[vocab.vocab_size:] == 0).all()
    assert len({tuple(table[i]) for i in (1, 2, vocab.sentinel_id(0))}) == 3  # EOS, UNK, a sentinel


def test_unknown_size_names_the_closest():
    with pytest.raises(ValueError, match="did you mean 'tiny'"):
        elmo_config("tiyn")
