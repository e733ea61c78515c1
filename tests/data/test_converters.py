"""EncDecFeatureConverter against seqio's worked example (T5_REFERENCE §8.9), packing and errors."""

import numpy as np
import pytest

from t2t.data.converters import EncDecFeatureConverter
from t2t.data.objectives import Ragged

SEQIO_EXAMPLES = [{"inputs": [7, 8, 5, 1], "targets": [3, 9, 1]}, {"inputs": [8, 4, 9, 3, 1], "targets": [4, 1]}]


def unpack(batch):
    """Examples (inputs, targets) in packing order, read back from the segment ids."""
    examples = []
    for row in range(batch["encoder_input_tokens"].shape[0]):
        for segment in range(1, batch["encoder_segment_ids"][row].max() + 1):
            enc = batch["encoder_segment_ids"][row] == segment
            dec = batch["decoder_segment_ids"][row] == segment
            examples.append((batch["encoder_input_tokens"][row][enc].tolist(),
                             batch["decoder_target_tokens"][row][dec].tolist()))
    return examples


def test_seqio_packed_example():
    batch = EncDecFeatureConverter({"inputs": 10, "targets": 7})(SEQIO_EXAMPLES)
    expected = {
        "encoder_input_tokens": [7, 8, 5, 1, 8, 4, 9, 3, 1, 0],
        "encoder_segment_ids": [1, 1, 1, 1, 2, 2, 2, 2, 2, 0],
        "encoder_positions": [0, 1, 2, 3, 0, 1, 2, 3, 4, 0],
        "decoder_target_tokens": [3, 9, 1, 4, 1, 0, 0],
        "decoder_input_tokens": [0, 3, 9, 0, 4, 0, 0],
        "decoder_loss_weights": [1, 1, 1, 1, 1, 0, 0],
        "decoder_segment_ids": [1, 1, 1, 2, 2, 0, 0],
        "decoder_positions": [0, 1, 2, 0, 1, 0, 0],
    }
    assert set(batch) == set(expected) == set(EncDecFeatureConverter.FEATURES)
    for key, value in expected.items():
        assert batch[key].dtype == np.int32
        assert batch[key].tolist() == [value], key


def test_unpacked():
    batch = EncDecFeatureConverter({"inputs": 6, "targets": 4}, pack=False)(SEQIO_EXAMPLES, num_rows=3)
    assert batch["encoder_input_tokens"].tolist() == [[7, 8, 5, 1, 0, 0], [8, 4, 9, 3, 1, 0], [0] * 6]
    assert batch["encoder_segment_ids"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [0] * 6]
    assert batch["encoder_positions"].tolist() == [[0, 1, 2, 3, 0, 0], [0, 1, 2, 3, 4, 0], [0] * 6]
    assert batch["decoder_target_tokens"].tolist() == [[3, 9, 1, 0], [4, 1, 0, 0], [0] * 4]
    assert batch["decoder_input_tokens"].tolist() == [[0, 3, 9, 0], [0, 4, 0, 0], [0] * 4]
    assert batch["decoder_loss_weights"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [0] * 4]
    assert batch["decoder_segment_ids"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [0] * 4]
    assert batch["decoder_positions"].tolist() == [[0, 1, 2, 0], [0, 1, 0, 0], [0] * 4]


def test_bos_id():
    batch = EncDecFeatureConverter({"inputs": 10, "targets": 7}, bos_id=5)(SEQIO_EXAMPLES)
    assert batch["decoder_input_tokens"].tolist() == [[5, 3, 9, 5, 4, 0, 0]]


def test_next_fit_assignment():
    converter = EncDecFeatureConverter({"inputs": 10, "targets": 7})
    # Example 2 does not fit row 0 (targets 3 + 2 + 3 > 7), so it starts row 1; example 3 would fit in
    # row 0 but next-fit never goes back.
    assert converter.assign_rows([4, 5, 3, 1], [3, 2, 3, 1]).tolist() == [0, 0, 1, 1]
    assert converter.assign_rows([4, 5, 3, 9, 2], [3, 2, 3, 1, 1], max_rows=2).tolist() == [0, 0, 1]
    assert EncDecFeatureConverter({"inputs": 10, "targets": 7}, pack=False).assign_rows(
        [4, 5, 3], [3, 2, 3], max_rows=2).tolist() == [0, 1]


def test_no_cross_segment_leakage_and_round_trip():
    rng = np.random.default_rng(0)
    n = 200
    inputs = Ragged.from_rows([rng.integers(2, 100, size=rng.integers(1, 30)) for _ in range(n)])
    targets = Ragged.from_rows([rng.integers(2, 100, size=rng.integers(1, 12)) for _ in range(n)])
    converter = EncDecFeatureConverter({"inputs": 64, "targets": 24})
    batch = converter({"inputs": inputs, "targets": targets})
    assert unpack(batch) == list(zip(inputs.to_list(), targets.to_list()))
    starts = (batch["decoder_positions"] == 0) & (batch["decoder_segment_ids"] > 0)
    assert (batch["decoder_input_tokens"][starts] == 0).all()
    inside = batch["decoder_positions"][:, 1:] > 0
    np.testing.assert_array_equal(batch["decoder_input_tokens"][:, 1:][inside],
                                  batch["decoder_target_tokens"][:, :-1][inside])
    # Packing packs, and each row is closed by an example that did not fit in it (next-fit).
    assert batch["encoder_input_tokens"].shape[0] < n / 2
    used_inputs = (batch["encoder_segment_ids"] > 0).sum(axis=1)
    used_targets = (batch["decoder_segment_ids"] > 0).sum(axis=1)
    for row in range(1, batch["encoder_input_tokens"].shape[0]):
        first_inputs = (batch["encoder_segment_ids"][row] == 1).sum()
        first_targets = (batch["decoder_segment_ids"][row] == 1).sum()
        assert used_inputs[row - 1] + first_inputs > 64 or used_targets[row - 1] + first_targets > 24
    for feature in ("encoder", "decoder"):
        positions, segments = batch[f"{feature}_positions"], batch[f"{feature}_segment_ids"]
        assert (positions[segments == 0] == 0).all()
    np.testing.assert_array_equal(batch["decoder_loss_weights"], batch["decoder_segment_ids"] > 0)


def test_over_long_example_is_an_error():
    converter = EncDecFeatureConverter({"inputs": 4, "targets": 7})
    with pytest.raises(ValueError, match="example 1 has inputs of length 5 > feature length 4"):
        converter(SEQIO_EXAMPLES)
    converter = EncDecFeatureConverter({"inputs": 10, "targets": 2}, pack=False)
    with pytest.raises(ValueError, match="example 0 has targets of length 3 > feature length 2"):
        converter(SEQIO_EXAMPLES)


def test_too_few_rows_is_an_error():
    with pytest.raises(ValueError, match="need 2 rows but the batch has 1"):
        EncDecFeatureConverter({"inputs": 10, "targets": 7}, pack=False)(SEQIO_EXAMPLES, num_rows=1)
