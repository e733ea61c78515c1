"""Noise masks against T5's definitions (T5_REFERENCE §8.3, §8.4)."""

import numpy as np
import pytest

from t2t.data.objectives import (iid_noise_mask, random_prefix_noise_mask, random_spans_noise_mask,
                                 regular_noise_mask)


def test_iid_noise_mask():
    masks = iid_noise_mask(500, 0.15, np.random.default_rng(0), num_examples=400)
    assert masks.shape == (400, 500) and masks.dtype == bool
    assert abs(masks.mean() - 0.15) < 0.005
    assert masks.sum(axis=1).std() > 3  # Binomial, not a fixed count
    np.testing.assert_array_equal(masks, iid_noise_mask(500, 0.15, np.random.default_rng(0), num_examples=400))
    assert iid_noise_mask(20, 1.0, np.random.default_rng(0), num_examples=3).all()


def test_random_prefix_noise_mask():
    masks = random_prefix_noise_mask(11, 0.5, np.random.default_rng(0), num_examples=4000)
    k = masks.sum(axis=1)
    np.testing.assert_array_equal(masks, np.arange(11) < k[:, None])  # a prefix
    assert k.min() == 1 and k.max() == 10  # uniform in [1, L - 1]
    assert np.all(np.abs(np.bincount(k, minlength=11)[1:] / 4000 - 0.1) < 0.02)
    masks = random_prefix_noise_mask(101, 0.25, np.random.default_rng(0), num_examples=2000)
    k = masks.sum(axis=1)
    assert k.min() == 50 and k.max() == 100  # min_in = round(0.5 * 100)
    assert not random_prefix_noise_mask(1, 0.5, np.random.default_rng(0), num_examples=2).any()
    with pytest.raises(ValueError, match="<= 0.5"):
        random_prefix_noise_mask(10, 0.6, np.random.default_rng(0))


def test_regular_noise_mask():
    masks = regular_noise_mask(200, 0.2, np.random.default_rng(0), num_examples=300)
    i = np.arange(200)
    for mask in masks:
        starts = np.flatnonzero(mask & ~np.roll(mask, 1))
        span = int(np.argmin(mask[starts[1]:])) if len(starts) > 1 else None
        assert span is not None and 1 <= span <= 5
        period = round(span / 0.2)
        offset = (period - starts[1] % period) % period
        np.testing.assert_array_equal(mask, (i + offset) % period < span)
    assert abs(masks.mean() - 0.2) < 0.02


def test_regular_noise_mask_docstring_example():
    # s = 2, density 0.5 -> period 4; offset 1.
    assert ((np.arange(11) + 1) % 4 < 2).tolist() == [True, False, False, True, True, False, False, True, True,
                                                      False, False]


def test_random_spans_noise_mask_statistics():
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
def test_random_spans_noise_mask_counts(length, density, mean_span):
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


def test_random_spans_noise_mask_random_roll_keeps_counts():
    masks = random_spans_noise_mask(100, 0.15, 3.0, np.random.default_rng(0), num_examples=500, random_roll=True)
    assert (masks.sum(axis=1) == 15).all()
    assert 0.05 < masks[:, 0].mean() < 0.3  # rolled masks may start with noise


@pytest.mark.parametrize("fn", [iid_noise_mask, random_prefix_noise_mask, random_spans_noise_mask,
                                regular_noise_mask])
def test_masks_need_an_rng(fn):
    with pytest.raises(ValueError, match="rng"):
        fn(10, 0.5)
