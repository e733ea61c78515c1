"""Feature converters of every family: seqio's worked examples (T5_REFERENCE §8.9), packing and errors."""

import doctest

import gin
import numpy as np
import pytest

from t2t.data import converters
from t2t.data.converters import (CONVERTERS, DecoderFeatureConverter, EncDecFeatureConverter,
                                 EncoderFeatureConverter)
from t2t.data.objectives import Ragged

SEQIO_EXAMPLES = [{"inputs": [7, 8, 5, 1], "targets": [3, 9, 1]}, {"inputs": [8, 4, 9, 3, 1], "targets": [4, 1]}]
LM_EXAMPLES = [{"targets": [3, 9, 1]}, {"targets": [4, 8, 1]}, {"targets": [5, 6, 7, 1]}]
# CLS 5, SEP 6, MASK 4 (the EncoderFeatureConverter docstring).
MLM_EXAMPLES = [
    {"inputs": [5, 11, 4, 13, 6], "targets": [0, 0, 12, 0, 0], "token_types": [0, 0, 0, 0, 0], "nsp_labels": [0]},
    {"inputs": [5, 21, 6, 4, 23, 6], "targets": [0, 0, 0, 22, 0, 0], "token_types": [0, 0, 0, 1, 1, 1],
     "nsp_labels": [1]},
]


def assert_batch(batch, expected, features):
    assert set(batch) == set(features)
    for key, value in expected.items():
        assert batch[key].dtype == np.int32, key
        assert batch[key].tolist() == value, key


def segments(batch, segment_key, *keys):
    """Per packed example, in packing order: the tokens of each of ``keys`` under its segment id."""
    examples = []
    segment_ids = batch[segment_key]
    for row in range(segment_ids.shape[0]):
        for segment in range(1, segment_ids[row].max() + 1):
            where = segment_ids[row] == segment
            examples.append(tuple(batch[k][row][where].tolist() for k in keys))
    return examples


def random_rows(rng, n, low, high):
    return Ragged.from_rows([rng.integers(2, 100, size=rng.integers(low, high)) for _ in range(n)])


def assert_shifted_within_segments(batch):
    """decoder_input_tokens = targets shifted right inside each packed example, BOS 0 at its start."""
    starts = (batch["decoder_positions"] == 0) & (batch["decoder_segment_ids"] > 0)
    assert (batch["decoder_input_tokens"][starts] == 0).all()
    inside = batch["decoder_positions"][:, 1:] > 0
    np.testing.assert_array_equal(batch["decoder_input_tokens"][:, 1:][inside],
                                  batch["decoder_target_tokens"][:, :-1][inside])


def assert_next_fit(segment_ids, width):
    """Rows are closed only by an example that does not fit in them, and padding is 0."""
    used = (segment_ids > 0).sum(axis=1)
    for row in range(1, segment_ids.shape[0]):
        assert used[row - 1] + (segment_ids[row] == 1).sum() > width


# --------------------------------------------------------------------------------------------------
# Encoder-decoder
# --------------------------------------------------------------------------------------------------


def test_encdec_seqio_packed_example():
    batch = EncDecFeatureConverter({"inputs": 10, "targets": 7})(SEQIO_EXAMPLES)
    expected = {
        "encoder_input_tokens": [[7, 8, 5, 1, 8, 4, 9, 3, 1, 0]],
        "encoder_segment_ids": [[1, 1, 1, 1, 2, 2, 2, 2, 2, 0]],
        "encoder_positions": [[0, 1, 2, 3, 0, 1, 2, 3, 4, 0]],
        "decoder_target_tokens": [[3, 9, 1, 4, 1, 0, 0]],
        "decoder_input_tokens": [[0, 3, 9, 0, 4, 0, 0]],
        "decoder_loss_weights": [[1, 1, 1, 1, 1, 0, 0]],
        "decoder_segment_ids": [[1, 1, 1, 2, 2, 0, 0]],
        "decoder_positions": [[0, 1, 2, 0, 1, 0, 0]],
    }
    assert set(expected) == set(EncDecFeatureConverter.FEATURES)
    assert_batch(batch, expected, EncDecFeatureConverter.FEATURES)


def test_encdec_unpacked():
    batch = EncDecFeatureConverter({"inputs": 6, "targets": 4}, pack=False)(SEQIO_EXAMPLES, num_rows=3)
    assert batch["encoder_input_tokens"].tolist() == [[7, 8, 5, 1, 0, 0], [8, 4, 9, 3, 1, 0], [0] * 6]
    assert batch["encoder_segment_ids"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [0] * 6]
    assert batch["encoder_positions"].tolist() == [[0, 1, 2, 3, 0, 0], [0, 1, 2, 3, 4, 0], [0] * 6]
    assert batch["decoder_target_tokens"].tolist() == [[3, 9, 1, 0], [4, 1, 0, 0], [0] * 4]
    assert batch["decoder_input_tokens"].tolist() == [[0, 3, 9, 0], [0, 4, 0, 0], [0] * 4]
    assert batch["decoder_loss_weights"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [0] * 4]
    assert batch["decoder_segment_ids"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [0] * 4]
    assert batch["decoder_positions"].tolist() == [[0, 1, 2, 0], [0, 1, 0, 0], [0] * 4]


def test_encdec_bos_id():
    batch = EncDecFeatureConverter({"inputs": 10, "targets": 7}, bos_id=5)(SEQIO_EXAMPLES)
    assert batch["decoder_input_tokens"].tolist() == [[5, 3, 9, 5, 4, 0, 0]]


def test_encdec_next_fit_assignment():
    converter = EncDecFeatureConverter({"inputs": 10, "targets": 7})
    # Example 2 does not fit row 0 (targets 3 + 2 + 3 > 7), so it starts row 1; example 3 would fit in
    # row 0 but next-fit never goes back.
    assert converter.assign_rows({"inputs": [4, 5, 3, 1], "targets": [3, 2, 3, 1]}).tolist() == [0, 0, 1, 1]
    assert converter.assign_rows({"inputs": [4, 5, 3, 9, 2], "targets": [3, 2, 3, 1, 1]},
                                 max_rows=2).tolist() == [0, 0, 1]
    assert EncDecFeatureConverter({"inputs": 10, "targets": 7}, pack=False).assign_rows(
        {"inputs": [4, 5, 3], "targets": [3, 2, 3]}, max_rows=2).tolist() == [0, 1]
    # Ragged features and their length arrays assign alike.
    examples = converters._to_ragged(SEQIO_EXAMPLES * 3, ("inputs", "targets"))
    lengths = {k: v.lengths for k, v in examples.items()}
    assert converter.assign_rows(examples).tolist() == converter.assign_rows(lengths).tolist() == [0, 0, 1, 1, 2, 2]


def test_encdec_no_cross_segment_leakage_and_round_trip():
    rng = np.random.default_rng(0)
    n = 200
    inputs, targets = random_rows(rng, n, 1, 30), random_rows(rng, n, 1, 12)
    batch = EncDecFeatureConverter({"inputs": 64, "targets": 24})({"inputs": inputs, "targets": targets})
    encoder = segments(batch, "encoder_segment_ids", "encoder_input_tokens")
    decoder = segments(batch, "decoder_segment_ids", "decoder_target_tokens")
    assert [e + d for e, d in zip(encoder, decoder)] == list(zip(inputs.to_list(), targets.to_list()))
    assert_shifted_within_segments(batch)
    # Packing packs, and each row is closed by an example that did not fit in it (in either stream).
    assert batch["encoder_input_tokens"].shape[0] < n / 2
    used_inputs = (batch["encoder_segment_ids"] > 0).sum(axis=1)
    used_targets = (batch["decoder_segment_ids"] > 0).sum(axis=1)
    for row in range(1, batch["encoder_input_tokens"].shape[0]):
        first_inputs = (batch["encoder_segment_ids"][row] == 1).sum()
        first_targets = (batch["decoder_segment_ids"][row] == 1).sum()
        assert used_inputs[row - 1] + first_inputs > 64 or used_targets[row - 1] + first_targets > 24
    for feature in ("encoder", "decoder"):
        positions, segment_ids = batch[f"{feature}_positions"], batch[f"{feature}_segment_ids"]
        assert (positions[segment_ids == 0] == 0).all()
    np.testing.assert_array_equal(batch["decoder_loss_weights"], batch["decoder_segment_ids"] > 0)


def test_encdec_empty_targets_keep_segments_aligned():
    # Example 1 has no targets: example 2 is still segment 3 in both the encoder and the decoder.
    examples = [{"inputs": [7, 1], "targets": [3, 1]}, {"inputs": [8, 1], "targets": []},
                {"inputs": [9, 1], "targets": [4, 1]}]
    batch = EncDecFeatureConverter({"inputs": 6, "targets": 4})(examples)
    assert batch["encoder_segment_ids"].tolist() == [[1, 1, 2, 2, 3, 3]]
    assert batch["decoder_segment_ids"].tolist() == [[1, 1, 3, 3]]
    assert batch["decoder_positions"].tolist() == [[0, 1, 0, 1]]
    assert batch["decoder_input_tokens"].tolist() == [[0, 3, 0, 4]]


def test_encdec_over_long_example_is_an_error():
    converter = EncDecFeatureConverter({"inputs": 4, "targets": 7})
    with pytest.raises(ValueError, match="example 1 has inputs of length 5 > feature length 4"):
        converter(SEQIO_EXAMPLES)
    converter = EncDecFeatureConverter({"inputs": 10, "targets": 2}, pack=False)
    with pytest.raises(ValueError, match="example 0 has targets of length 3 > feature length 2"):
        converter(SEQIO_EXAMPLES)


def test_too_few_rows_is_an_error():
    with pytest.raises(ValueError, match="need 2 rows but the batch has 1"):
        EncDecFeatureConverter({"inputs": 10, "targets": 7}, pack=False)(SEQIO_EXAMPLES, num_rows=1)


# --------------------------------------------------------------------------------------------------
# Decoder-only
# --------------------------------------------------------------------------------------------------


def test_decoder_seqio_packed_prefix_lm_example():
    converter = DecoderFeatureConverter({"inputs": 7, "targets": 8}, prefix_lm=True)
    batch = converter(SEQIO_EXAMPLES)
    expected = {
        "decoder_target_tokens": [[7, 8, 5, 1, 3, 9, 1, 8, 4, 9, 3, 1, 4, 1, 0]],
        "decoder_input_tokens": [[0, 7, 8, 5, 1, 3, 9, 0, 8, 4, 9, 3, 1, 4, 0]],
        "decoder_loss_weights": [[0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0]],
        "decoder_segment_ids": [[1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 0]],
        "decoder_positions": [[0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0]],
        "decoder_causal_attention": [[1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0]],
    }
    assert set(expected) == set(DecoderFeatureConverter.FEATURES)
    assert_batch(batch, expected, DecoderFeatureConverter.FEATURES)
    assert converter.output_lengths() == dict.fromkeys(DecoderFeatureConverter.FEATURES, 15)


def test_decoder_packed_lm_example():
    batch = DecoderFeatureConverter({"targets": 8})(LM_EXAMPLES)
    expected = {
        "decoder_target_tokens": [[3, 9, 1, 4, 8, 1, 0, 0], [5, 6, 7, 1, 0, 0, 0, 0]],
        "decoder_input_tokens": [[0, 3, 9, 0, 4, 8, 0, 0], [0, 5, 6, 7, 0, 0, 0, 0]],
        "decoder_loss_weights": [[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0]],
        "decoder_segment_ids": [[1, 1, 1, 2, 2, 2, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0]],
        "decoder_positions": [[0, 1, 2, 0, 1, 2, 0, 0], [0, 1, 2, 3, 0, 0, 0, 0]],
        "decoder_causal_attention": [[0] * 8, [0] * 8],
    }
    assert_batch(batch, expected, DecoderFeatureConverter.FEATURES)
    # Empty inputs (the lm objective's examples as Ragged) give the same batch.
    ragged = {"inputs": Ragged.from_rows([[], [], []]),
              "targets": Ragged.from_rows([e["targets"] for e in LM_EXAMPLES])}
    for key, value in DecoderFeatureConverter({"inputs": 0, "targets": 8})(ragged).items():
        np.testing.assert_array_equal(value, batch[key])


def test_decoder_loss_weights_and_causal_attention():
    ex = [SEQIO_EXAMPLES[0]]
    batch = DecoderFeatureConverter({"inputs": 4, "targets": 4}, loss_on_targets_only=False)(ex)
    assert batch["decoder_loss_weights"].tolist() == [[1, 1, 1, 1, 1, 1, 1, 0]]
    assert batch["decoder_causal_attention"].tolist() == [[0] * 8]  # prefix_lm=False: fully causal
    batch = DecoderFeatureConverter({"inputs": 4, "targets": 4}, prefix_lm=True)(ex)
    assert batch["decoder_loss_weights"].tolist() == [[0, 0, 0, 0, 1, 1, 1, 0]]
    # Inputs (4 tokens) plus one extra position: the position fed the last input predicts the first target.
    assert batch["decoder_causal_attention"].tolist() == [[1, 1, 1, 1, 1, 0, 0, 0]]
    # Empty prefixes (packed with a non-empty one): just the first position, as seqio's inputs width + 1.
    batch = DecoderFeatureConverter({"targets": 9}, prefix_lm=True)(
        {"inputs": Ragged.from_rows([[], [7, 8], []]), "targets": Ragged.from_rows([[3, 1], [4, 1], [5, 6, 1]])})
    assert batch["decoder_target_tokens"].tolist() == [[3, 1, 7, 8, 4, 1, 5, 6, 1]]
    assert batch["decoder_causal_attention"].tolist() == [[1, 0, 1, 1, 1, 0, 1, 0, 0]]
    assert batch["decoder_loss_weights"].tolist() == [[1, 1, 0, 0, 1, 1, 1, 1, 1]]
    batch = DecoderFeatureConverter({"targets": 9}, prefix_lm=True)(LM_EXAMPLES[:2])
    assert batch["decoder_causal_attention"].tolist() == [[1, 0, 0, 1, 0, 0, 0, 0, 0]]


def test_decoder_no_cross_segment_leakage_and_round_trip():
    rng = np.random.default_rng(1)
    n = 300
    inputs, targets = random_rows(rng, n, 0, 16), random_rows(rng, n, 1, 12)
    converter = DecoderFeatureConverter({"inputs": 24, "targets": 24}, prefix_lm=True)
    batch = converter({"inputs": inputs, "targets": targets})
    recovered = segments(batch, "decoder_segment_ids", "decoder_target_tokens", "decoder_loss_weights",
                         "decoder_causal_attention", "decoder_positions")
    assert len(recovered) == n
    for (tokens, weights, causal, positions), a, b in zip(recovered, inputs.to_list(), targets.to_list()):
        assert tokens == a + b
        assert weights == [0] * len(a) + [1] * len(b)
        assert causal == [1] * (len(a) + 1) + [0] * (len(b) - 1)
        assert positions == list(range(len(a) + len(b)))
    assert_shifted_within_segments(batch)
    assert_next_fit(batch["decoder_segment_ids"], 48)
    assert batch["decoder_target_tokens"].shape[0] < n / 2
    assert (batch["decoder_positions"][batch["decoder_segment_ids"] == 0] == 0).all()


def test_decoder_unpacked():
    batch = DecoderFeatureConverter({"inputs": 5, "targets": 3}, pack=False, prefix_lm=True)(SEQIO_EXAMPLES)
    assert batch["decoder_target_tokens"].tolist() == [[7, 8, 5, 1, 3, 9, 1, 0], [8, 4, 9, 3, 1, 4, 1, 0]]
    assert batch["decoder_input_tokens"].tolist() == [[0, 7, 8, 5, 1, 3, 9, 0], [0, 8, 4, 9, 3, 1, 4, 0]]
    assert batch["decoder_segment_ids"].tolist() == [[1] * 7 + [0], [1] * 7 + [0]]
    assert batch["decoder_positions"].tolist() == [[0, 1, 2, 3, 4, 5, 6, 0]] * 2
    assert batch["decoder_loss_weights"].tolist() == [[0, 0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 1, 1, 0]]
    assert batch["decoder_causal_attention"].tolist() == [[1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0, 0]]


def test_decoder_packs_on_the_concatenated_length():
    # inputs 6 > feature length 5 is fine: only inputs + targets must fit the row of 5 + 3.
    converter = DecoderFeatureConverter({"inputs": 5, "targets": 3})
    batch = converter([{"inputs": [7, 8, 5, 4, 3, 1], "targets": [9, 1]}])
    assert batch["decoder_target_tokens"].tolist() == [[7, 8, 5, 4, 3, 1, 9, 1]]
    with pytest.raises(ValueError, match=r"example 1 has inputs \+ targets of length 9 > feature length 8 "
                                         r"\(inputs 5 \+ targets 3\)"):
        converter([{"inputs": [1], "targets": [1]}, {"inputs": [7, 8, 5, 4, 3, 1], "targets": [9, 9, 1]}])
    with pytest.raises(ValueError, match="example 3 has targets of length 5 > feature length 4;"):
        DecoderFeatureConverter({"targets": 4}, pack=False)(LM_EXAMPLES + [{"targets": [1] * 5}])


# --------------------------------------------------------------------------------------------------
# Encoder-only
# --------------------------------------------------------------------------------------------------


def test_encoder_packed_mlm_nsp_example():
    converter = EncoderFeatureConverter({"inputs": 12})
    batch = converter(MLM_EXAMPLES)
    expected = {
        "encoder_input_tokens": [[5, 11, 4, 13, 6, 5, 21, 6, 4, 23, 6, 0]],
        "encoder_segment_ids": [[1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0]],
        "encoder_positions": [[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 0]],
        "encoder_token_type_ids": [[0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0]],
        "mlm_target_tokens": [[0, 0, 12, 0, 0, 0, 0, 0, 22, 0, 0, 0]],
        "mlm_loss_weights": [[0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]],
        "nsp_labels": [[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]],
        "nsp_loss_weights": [[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]],
    }
    assert set(expected) == set(EncoderFeatureConverter.FEATURES)
    assert_batch(batch, expected, EncoderFeatureConverter.FEATURES)
    assert converter.output_lengths() == dict.fromkeys(EncoderFeatureConverter.FEATURES, 12)


def test_encoder_without_nsp_and_unpacked():
    examples = [{k: v for k, v in ex.items() if k != "nsp_labels"} for ex in MLM_EXAMPLES]
    batch = EncoderFeatureConverter({"inputs": 6, "targets": 6}, pack=False)(examples, num_rows=3)
    assert batch["encoder_input_tokens"].tolist() == [[5, 11, 4, 13, 6, 0], [5, 21, 6, 4, 23, 6], [0] * 6]
    assert batch["encoder_segment_ids"].tolist() == [[1, 1, 1, 1, 1, 0], [1] * 6, [0] * 6]
    assert batch["encoder_positions"].tolist() == [[0, 1, 2, 3, 4, 0], [0, 1, 2, 3, 4, 5], [0] * 6]
    assert batch["encoder_token_type_ids"].tolist() == [[0] * 6, [0, 0, 0, 1, 1, 1], [0] * 6]
    assert batch["mlm_loss_weights"].tolist() == [[0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0], [0] * 6]
    assert batch["nsp_labels"].tolist() == batch["nsp_loss_weights"].tolist() == [[0] * 6] * 3


def test_encoder_no_cross_segment_leakage_and_round_trip():
    rng = np.random.default_rng(2)
    n = 200
    inputs = random_rows(rng, n, 2, 40)
    targets = Ragged(np.where(rng.random(inputs.values.size) < 0.15, inputs.values, 0).astype(np.int32),
                     inputs.lengths)
    token_types = Ragged((rng.random(inputs.values.size) < 0.5).astype(np.int32), inputs.lengths)
    nsp = Ragged(rng.integers(0, 2, n).astype(np.int32), np.ones(n, dtype=np.int64))
    batch = EncoderFeatureConverter({"inputs": 64})(
        {"inputs": inputs, "targets": targets, "token_types": token_types, "nsp_labels": nsp})
    recovered = segments(batch, "encoder_segment_ids", "encoder_input_tokens", "mlm_target_tokens",
                         "encoder_token_type_ids", "nsp_labels", "nsp_loss_weights", "encoder_positions")
    assert len(recovered) == n
    for i, (tokens, mlm, types, labels, nsp_weights, positions) in enumerate(recovered):
        assert tokens == inputs[i].tolist() and mlm == targets[i].tolist() and types == token_types[i].tolist()
        assert labels == [nsp.values[i]] + [0] * (len(tokens) - 1)
        assert nsp_weights == [1] + [0] * (len(tokens) - 1)
        assert positions == list(range(len(tokens)))
    np.testing.assert_array_equal(batch["mlm_loss_weights"], batch["mlm_target_tokens"] > 0)
    assert_next_fit(batch["encoder_segment_ids"], 64)
    assert batch["encoder_input_tokens"].shape[0] < n / 2


def test_encoder_errors():
    with pytest.raises(ValueError, match="example 1 has inputs of length 6 > feature length 5"):
        EncoderFeatureConverter({"inputs": 5})(MLM_EXAMPLES)
    bad = [dict(MLM_EXAMPLES[0], targets=[0, 0, 12])]
    with pytest.raises(ValueError, match="'targets' must have the same length as 'inputs'"):
        EncoderFeatureConverter({"inputs": 12})(bad)
    bad = [dict(MLM_EXAMPLES[0], nsp_labels=[0, 1])]
    with pytest.raises(ValueError, match="one label per example"):
        EncoderFeatureConverter({"inputs": 12})(bad)


# --------------------------------------------------------------------------------------------------
# All families
# --------------------------------------------------------------------------------------------------


def random_examples(family, rng, n):
    inputs, targets = random_rows(rng, n, 1, 25), random_rows(rng, n, 1, 10)
    if family == "encoder_only":
        return {"inputs": inputs, "targets": Ragged(np.zeros_like(inputs.values), inputs.lengths)}
    return {"inputs": inputs, "targets": targets}


LENGTHS = {"inputs": 32, "targets": 12}


@pytest.mark.parametrize("family", sorted(CONVERTERS))
def test_max_rows_takes_the_longest_fitting_prefix(family):
    rng = np.random.default_rng(3)
    examples = random_examples(family, rng, 100)
    for pack in (True, False):
        converter = CONVERTERS[family](LENGTHS, pack=pack)
        all_rows = converter.assign_rows(examples)
        for max_rows in (0, 1, 3, 7, int(all_rows[-1]) + 1, 1000):
            rows = converter.assign_rows(examples, max_rows=max_rows)
            # The prefix of the unlimited assignment that stays below max_rows, and nothing after it.
            assert rows.tolist() == all_rows[all_rows < max_rows].tolist()
            batch = converter.scatter(examples, rows, num_rows=max_rows)
            for key, width in converter.output_lengths().items():
                assert batch[key].shape == (max_rows, width) and batch[key].dtype == np.int32, key
        # A batch is a pure function of where it starts: packing a suffix repacks it identically.
        start = int(np.flatnonzero(all_rows == 2)[0])
        rest = converter.assign_rows({k: v.slice(start, len(v)) for k, v in examples.items()})
        np.testing.assert_array_equal(rest, all_rows[start:] - 2)


@pytest.mark.parametrize("family", sorted(CONVERTERS))
def test_empty_and_padding_rows(family):
    converter = CONVERTERS[family](LENGTHS)
    empty = {"inputs": Ragged.from_rows([]), "targets": Ragged.from_rows([])}
    batch = converter(empty, num_rows=2)
    assert set(batch) == set(converter.FEATURES)
    for key, width in converter.output_lengths().items():
        assert batch[key].tolist() == [[0] * width] * 2


def test_converters_are_gin_configurable():
    try:
        gin.parse_config("DecoderFeatureConverter.prefix_lm = True\nEncoderFeatureConverter.pack = False")
        assert DecoderFeatureConverter({"targets": 8}).prefix_lm
        assert not EncoderFeatureConverter({"inputs": 8}).pack
        assert EncDecFeatureConverter(LENGTHS).pack
    finally:
        gin.clear_config()
    assert CONVERTERS == {"encoder_decoder": EncDecFeatureConverter, "decoder_only": DecoderFeatureConverter,
                          "encoder_only": EncoderFeatureConverter}


def test_docstring_examples():
    assert doctest.testmod(converters).failed == 0
