"""Input/target functions against T5's test vectors (T5_REFERENCE §8.5, §8.7 A)."""

import numpy as np
import pytest

from t2t.data.objectives import (drop_noise_tokens, drop_nonnoise_tokens, noise_span_to_sentinel,
                                 noise_span_to_unique_sentinel, noise_token_to_random_token,
                                 noise_token_to_random_token_or_sentinel, noise_token_to_sentinel,
                                 nonnoise_span_to_sentinel, nonnoise_span_to_unique_sentinel, permute_noise_tokens)

TOKENS = np.array([[10, 11, 12, 13, 14, 15]], dtype=np.int32)
MASK = np.array([[True, True, False, False, True, False]])


@pytest.mark.parametrize("fn, expected", [
    (noise_token_to_sentinel, [999, 999, 12, 13, 999, 15]),
    (noise_span_to_sentinel, [999, 12, 13, 999, 15]),
    (nonnoise_span_to_sentinel, [10, 11, 999, 14, 999]),
    (noise_span_to_unique_sentinel, [999, 12, 13, 998, 15]),
    (nonnoise_span_to_unique_sentinel, [10, 11, 999, 14, 998]),
    (drop_noise_tokens, [12, 13, 15]),
    (drop_nonnoise_tokens, [10, 11, 14]),
])
def test_vector_a(fn, expected):
    assert fn(TOKENS, MASK, 1000).to_list() == [expected]


def test_row_wise():
    tokens = np.stack([TOKENS[0], TOKENS[0] + 100])
    mask = np.stack([MASK[0], ~MASK[0]])
    out = noise_span_to_unique_sentinel(tokens, mask, 1000)
    assert out.to_list() == [[999, 12, 13, 998, 15], [110, 111, 999, 114, 998]]
    assert out.lengths.tolist() == [5, 5] and out.values.dtype == np.int32


def test_noise_token_to_random_token():
    tokens = np.full((200, 50), 7, np.int32)
    mask = np.random.default_rng(0).random((200, 50)) < 0.3
    out = noise_token_to_random_token(tokens, mask, 20, np.random.default_rng(1)).values.reshape(200, 50)
    assert (out[~mask] == 7).all()
    assert out[mask].min() == 3 and out[mask].max() == 19  # [3, vocab_size): sentinel ids included
    assert out.dtype == np.int32


def test_noise_token_to_random_token_or_sentinel():
    tokens = np.full((400, 50), 7, np.int32)
    mask = np.random.default_rng(0).random((400, 50)) < 0.5
    out = noise_token_to_random_token_or_sentinel(tokens, mask, 32100, np.random.default_rng(1)).values
    out = out.reshape(400, 50)
    assert (out[~mask] == 7).all()
    noise = out[mask]
    assert abs((noise == 32099).mean() - 0.9) < 0.01  # sentinel 90%, random 10%, no keep branch
    assert (noise == 7).mean() < 0.001
    assert noise.min() >= 3
    out = noise_token_to_random_token_or_sentinel(tokens, mask, 32100, np.random.default_rng(1), random_prob=0.0)
    assert (out.values.reshape(400, 50)[mask] == 32099).all()


def test_permute_noise_tokens():
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 1000, size=(50, 30)).astype(np.int32)
    mask = rng.random((50, 30)) < 0.5
    out = permute_noise_tokens(tokens, mask, 1000, np.random.default_rng(1)).values.reshape(50, 30)
    assert (out[~mask] == tokens[~mask]).all()
    for i in range(50):  # a permutation within the row's noise positions
        assert sorted(out[i][mask[i]]) == sorted(tokens[i][mask[i]])
    assert (out != tokens).any()
    # All noise (deshuffling): each row is a permutation of itself, and permutations differ across rows.
    row = np.tile(np.arange(3, 14, dtype=np.int32), (20, 1))
    out = permute_noise_tokens(row, np.ones_like(row, bool), 1000, np.random.default_rng(2)).values.reshape(20, 11)
    assert (np.sort(out, axis=1) == row).all()
    assert len({tuple(r) for r in out.tolist()}) > 15
