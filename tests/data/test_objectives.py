"""Span corruption and its pieces against T5's definitions and worked examples (T5_REFERENCE §8, §12)."""

import functools

import gin
import numpy as np
import pytest

from t2t.data.objectives import (Denoise, Ragged, SpanCorruption, drop_noise_tokens, drop_nonnoise_tokens,
                                 noise_span_to_unique_sentinel, noise_token_to_sentinel,
                                 nonnoise_span_to_unique_sentinel, random_spans_helper, random_spans_noise_mask)

VOCAB = 32100


def fixed_mask(mask):
    """A noise_mask_fn that always returns ``mask`` (for hand-built test vectors)."""
    mask = np.asarray(mask, dtype=bool)
    return lambda length, noise_density, rng, num_examples: np.broadcast_to(mask, (num_examples, length))


def reconstruct(inputs, targets, vocab_size, num_sentinels=100):
    """Undo span corruption: replace input sentinel k by what follows target sentinel k."""
    is_sentinel = lambda t: t >= vocab_size - num_sentinels
    spans, current = {}, None
    for t in targets:
        if is_sentinel(t):
            current = t
            spans[t] = []
        else:
            spans[current].append(t)
    out = []
    for t in inputs:
        out.extend(spans[t] if is_sentinel(t) else [t])
    return out


# ----- random_spans_helper -----


def helper_by_definition(inputs_length, density, mean_span):
    """The largest T whose inputs (kept + sentinels + EOS) fit, searched upwards from T = 1."""
    def lengths(t):
        noise = round(t * density)
        spans = round(noise / mean_span)
        return t - noise + spans + 1, noise + spans + 1

    t = 1
    while lengths(t + 1)[0] <= inputs_length:
        t += 1
    tokens_length, targets_length = t, lengths(t)[1]
    if density == 0.5 and targets_length > inputs_length:
        tokens_length, targets_length = tokens_length - 1, targets_length - 1
    return tokens_length, targets_length


@pytest.mark.parametrize("args, expected", [
    ((512, 0.15, 3.0), (568, 114)),
    ((64, 0.2, 2.0), (70, 22)),
    ((64, 0.2, 1.0), (63, 27)),
    ((512, 0.15, 2.0), (552, 126)),  # spans = round(41.5) = 42: half to even
    ((512, 0.15, 10.0), (591, 99)),
    ((512, 0.5, 3.0), (766, 512)),
    ((20, 0.5, 1.0), (18, 20)),  # the density-0.5 quirk: (19, 21) -> (18, 20)
])
def test_random_spans_helper_values(args, expected):
    assert random_spans_helper(*args) == expected


@pytest.mark.parametrize("density", [0.1, 0.15, 0.25, 0.5])
@pytest.mark.parametrize("mean_span", [1.0, 2.0, 3.0, 5.0])
def test_random_spans_helper_matches_definition(density, mean_span):
    for inputs_length in (32, 100, 128, 256, 511, 512, 1024):
        assert random_spans_helper(inputs_length, density, mean_span) == \
            helper_by_definition(inputs_length, density, mean_span)


# ----- input / target functions: §8.7 A -----

TOKENS = np.array([[10, 11, 12, 13, 14, 15]], dtype=np.int32)
MASK = np.array([[True, True, False, False, True, False]])


@pytest.mark.parametrize("fn, expected", [
    (noise_token_to_sentinel, [999, 999, 12, 13, 999, 15]),
    (noise_span_to_unique_sentinel, [999, 12, 13, 998, 15]),
    (nonnoise_span_to_unique_sentinel, [10, 11, 999, 14, 998]),
    (drop_noise_tokens, [12, 13, 15]),
    (drop_nonnoise_tokens, [10, 11, 14]),
])
def test_input_target_functions_vector_a(fn, expected):
    assert fn(TOKENS, MASK, 1000).to_list() == [expected]


def test_input_target_functions_are_row_wise():
    tokens = np.stack([TOKENS[0], TOKENS[0] + 100])
    mask = np.stack([MASK[0], ~MASK[0]])
    out = noise_span_to_unique_sentinel(tokens, mask, 1000)
    assert out.to_list() == [[999, 12, 13, 998, 15], [110, 111, 999, 114, 998]]
    assert out.lengths.tolist() == [5, 5] and out.values.dtype == np.int32


def test_ragged_helpers():
    r = Ragged.from_rows([[5, 6, 7], [], [8]])
    assert r.offsets.tolist() == [0, 3, 3, 4]
    assert r.append(1).to_list() == [[5, 6, 7, 1], [1], [8, 1]]
    assert r.take(np.array([2, 0, 1])).to_list() == [[8], [5, 6, 7], []]
    assert r.slice(1, 3).to_list() == [[], [8]]
    assert Ragged.concat([r, r.slice(0, 1)]).to_list() == [[5, 6, 7], [], [8], [5, 6, 7]]


# ----- Denoise: §8.7 B, C, D -----


def test_denoise_vector_b():
    """T5's test_denoise (vocab 26, noise at 8 and 14..18), plus EOS which T5 adds later."""
    tokens = [3, 2, 20, 4, 3, 2, 8, 13, 2, 3, 2, 23, 7, 19, 22, 3, 2, 7, 2]
    mask = np.zeros(19, bool)
    mask[[8, 14, 15, 16, 17, 18]] = True
    objective = Denoise(fixed_mask(mask), noise_span_to_unique_sentinel, nonnoise_span_to_unique_sentinel, 0.3)
    out = objective(Ragged.from_rows([tokens]), np.random.default_rng(0), vocab_size=26)
    assert out["inputs"].to_list() == [[3, 2, 20, 4, 3, 2, 8, 13, 25, 3, 2, 23, 7, 19, 24, 1]]
    assert out["targets"].to_list() == [[25, 2, 24, 22, 3, 2, 7, 2, 1]]


def test_denoise_no_corruption():
    tokens = [3, 2, 20, 4, 3, 2, 8, 13, 2, 3, 2, 23, 7, 19, 22, 3, 2, 7, 2]
    out = SpanCorruption(noise_density=0.0)(Ragged.from_rows([tokens]), np.random.default_rng(0), vocab_size=26)
    assert out["inputs"].to_list() == [tokens + [1]]
    assert out["targets"].to_list() == [[25, 1]]


def test_span_corruption_vector_c():
    mask = np.zeros(40, bool)
    mask[[10, 11, 36, 37, 38, 39]] = True
    objective = Denoise(fixed_mask(mask), noise_span_to_unique_sentinel, nonnoise_span_to_unique_sentinel, 0.15)
    out = objective(Ragged.from_rows([list(range(100, 140))]), np.random.default_rng(0), VOCAB)
    assert out["inputs"].to_list() == [list(range(100, 110)) + [32099] + list(range(112, 136)) + [32098, 1]]
    assert out["targets"].to_list() == [[32099, 110, 111, 32098, 136, 137, 138, 139, 1]]
    # A random mask at the same length has the same shape: 37 inputs, 9 targets.
    out = SpanCorruption()(Ragged.from_rows([list(range(100, 140))]), np.random.default_rng(0), VOCAB)
    assert out["inputs"].lengths.tolist() == [37] and out["targets"].lengths.tolist() == [9]


def test_iid_misalignment_vector_d():
    objective = Denoise(fixed_mask(MASK[0]), noise_span_to_unique_sentinel, nonnoise_span_to_unique_sentinel, 0.15)
    out = objective(Ragged.from_dense(TOKENS), np.random.default_rng(0), VOCAB)
    assert out["inputs"].to_list() == [[32099, 12, 13, 32098, 15, 1]]
    assert out["targets"].to_list() == [[10, 11, 32099, 14, 32098, 1]]


def test_denoise_targets_none_is_full_text():
    objective = Denoise(fixed_mask(MASK[0]), noise_token_to_sentinel, None, 0.15)
    out = objective(Ragged.from_dense(TOKENS), np.random.default_rng(0), 1000)
    assert out["inputs"].to_list() == [[999, 999, 12, 13, 999, 15, 1]]
    assert out["targets"].to_list() == [[10, 11, 12, 13, 14, 15, 1]]


# ----- span corruption: §12 checklist and statistics -----


def corrupt(segments, seed=0, objective=None):
    objective = objective or SpanCorruption()
    return objective(Ragged.from_dense(np.asarray(segments, np.int32)), np.random.default_rng(seed), VOCAB)


def test_span_corruption_checklist_568():
    segments = np.random.default_rng(1).integers(3, 32000, size=(64, 568))
    out = corrupt(segments)
    assert out["inputs"].lengths.tolist() == [512] * 64
    assert out["targets"].lengths.tolist() == [114] * 64
    for i in range(64):
        inputs, targets = out["inputs"][i], out["targets"][i]
        assert inputs[-1] == 1 and targets[-1] == 1
        assert inputs[-2] >= 32000  # the last noise span is at the very end of the segment
        assert targets[0] == VOCAB - 1
        assert targets[-2] < 32000
        input_sentinels, target_sentinels = inputs[inputs >= 32000], targets[targets >= 32000]
        assert len(input_sentinels) == len(target_sentinels) == 28
        np.testing.assert_array_equal(input_sentinels, np.arange(32099, 32099 - 28, -1))
        np.testing.assert_array_equal(target_sentinels, input_sentinels)
        assert reconstruct(inputs[:-1].tolist(), targets[:-1].tolist(), VOCAB) == segments[i].tolist()


def test_noise_mask_statistics():
    masks = random_spans_noise_mask(568, 0.15, 3.0, np.random.default_rng(0), num_examples=4000)
    assert masks.shape == (4000, 568) and masks.dtype == bool
    assert (masks.sum(axis=1) == 85).all()
    starts = masks[:, 1:] & ~masks[:, :-1]
    assert (starts.sum(axis=1) == 28).all()  # the first token is never noise, so every span has a start
    assert not masks[:, 0].any() and masks[:, -1].all()
    # Span lengths are a uniformly random composition of 85 into 28 parts: P(first span = 1) = 27/84.
    first_start = np.argmax(masks, axis=1)
    first_len = np.argmin(masks[np.arange(4000)[:, None], first_start[:, None] + np.arange(20)], axis=1)
    assert abs((first_len == 1).mean() - 27 / 84) < 0.03
    assert abs(first_len.mean() - 85 / 28) < 0.1
    # Non-noise parts: 483 into 28, so the first span starts on average at 483 / 28.
    assert abs(first_start.mean() - 483 / 28) < 1.0
    # Noise is spread over the whole segment, not bunched.
    density = masks.mean(axis=0)
    assert abs(density[:284].mean() - density[284:].mean()) < 0.02


@pytest.mark.parametrize("length, density, mean_span", [(1, 0.15, 3), (2, 0.15, 3), (5, 0.5, 1), (100, 0.3, 2),
                                                         (33, 0.15, 10)])
def test_noise_mask_counts(length, density, mean_span):
    masks = random_spans_noise_mask(length, density, mean_span, np.random.default_rng(0), num_examples=50)
    padded = max(length, 2)
    noise = min(max(round(padded * density), 1), padded - 1)
    spans = max(round(noise / mean_span), 1)
    assert masks.shape == (50, length)
    if length > 1:
        assert (masks.sum(axis=1) == noise).all()
        assert ((np.diff(masks.astype(int), axis=1) == 1).sum(axis=1) == spans).all()
    else:
        assert not masks.any()  # [non-noise, noise] cut to its first token


def test_noise_mask_random_roll_keeps_counts():
    masks = random_spans_noise_mask(100, 0.15, 3.0, np.random.default_rng(0), num_examples=500, random_roll=True)
    assert (masks.sum(axis=1) == 15).all()
    assert 0.05 < masks[:, 0].mean() < 0.3  # rolled masks may start with noise


def test_determinism():
    segments = np.random.default_rng(1).integers(3, 32000, size=(8, 568))
    a, b, c = corrupt(segments, seed=5), corrupt(segments, seed=5), corrupt(segments, seed=6)
    for k in ("inputs", "targets"):
        np.testing.assert_array_equal(a[k].values, b[k].values)
    assert not np.array_equal(a["inputs"].values, c["inputs"].values)


def test_mixed_lengths_keep_segment_order():
    rng = np.random.default_rng(2)
    rows = [rng.integers(3, 32000, size=n).tolist() for n in (568, 100, 568, 1, 7)]
    out = SpanCorruption()(Ragged.from_rows(rows), np.random.default_rng(0), VOCAB)
    for i, row in enumerate(rows):
        assert reconstruct(out["inputs"][i][:-1].tolist(), out["targets"][i][:-1].tolist(), VOCAB) == row
    assert out["inputs"].lengths.tolist()[0] == 512 and out["targets"].lengths.tolist()[0] == 114
    assert out["inputs"][3].tolist() == [rows[3][0], 1]


def test_short_segments_fit_the_feature_lengths():
    objective = SpanCorruption()
    inputs, targets = objective.output_lengths(np.arange(1, 569))
    assert inputs.max() == 512 and targets.max() == 114


# ----- raw_length -----


def test_raw_length():
    assert SpanCorruption().raw_length({"inputs": 512, "targets": 114}) == 568
    assert SpanCorruption().raw_length({"inputs": 512, "targets": 200}) == 568
    assert SpanCorruption(0.15, 2.0).raw_length({"inputs": 512, "targets": 126}) == 552
    assert Denoise().raw_length({"inputs": 512, "targets": 114}) == 511


def test_raw_length_no_noise():
    assert SpanCorruption(noise_density=0.0).raw_length({"inputs": 512, "targets": 2}) == 511


def test_raw_length_too_short_targets():
    with pytest.raises(ValueError) as error:
        SpanCorruption().raw_length({"inputs": 512, "targets": 100})
    message = str(error.value)
    assert "needs targets >= 114" in message
    assert "TASK_FEATURE_LENGTHS['targets']=100" in message
    assert "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 512, 'targets': 114}\"" in message


def test_raw_length_exposes_float32_rounding():
    # The helper says 57, but 190-token segments get round(float32(28.5)) = 29 noise tokens.
    assert random_spans_helper(191, 0.15, 1.0) == (190, 57)
    with pytest.raises(ValueError, match="needs targets >= 59"):
        SpanCorruption(0.15, 1.0).raw_length({"inputs": 191, "targets": 57})


def test_gin_configurable():
    gin.clear_config()
    try:
        gin.parse_config("span_corruption.noise_density = 0.25\nspan_corruption.mean_noise_span_length = 2.0")
        objective = SpanCorruption()
        assert (objective.noise_density, objective.mean_noise_span_length) == (0.25, 2.0)
        assert objective.raw_length({"inputs": 512, "targets": 1000}) == random_spans_helper(512, 0.25, 2.0)[0]
    finally:
        gin.clear_config()


def test_denoise_composes_other_masks():
    """Any (length, density, rng, num_examples) mask composes with any inputs/targets functions."""
    mask_fn = functools.partial(random_spans_noise_mask, mean_noise_span_length=1.0)
    objective = Denoise(mask_fn, drop_noise_tokens, drop_nonnoise_tokens, noise_density=0.5)
    segments = np.random.default_rng(0).integers(3, 1000, size=(4, 20))
    out = objective(Ragged.from_dense(segments), np.random.default_rng(0), 1000)
    assert out["inputs"].lengths.tolist() == [11] * 4 and out["targets"].lengths.tolist() == [11] * 4
    for i in range(4):
        assert sorted(out["inputs"][i][:-1].tolist() + out["targets"][i][:-1].tolist()) == sorted(segments[i])
