"""Denoise, span corruption, prefix LM, LM and the named T5 objectives (T5_REFERENCE §3-5, §8, §12)."""

import functools

import gin
import numpy as np
import pytest

from t2t.data.objectives import (LM, NAMED_OBJECTIVES, T5_OBJECTIVE_NAMES, Denoise, PrefixLM, Ragged, SpanCorruption,
                                 VocabInfo, drop_noise_tokens, drop_nonnoise_tokens, iid_15_u_u, length_table,
                                 noise_span_to_unique_sentinel, noise_token_to_sentinel,
                                 nonnoise_span_to_unique_sentinel, random_spans_helper, random_spans_noise_mask,
                                 t5_objective)

VOCAB = 32100
WORDS = "Thank you for inviting me to your party last week .".split()
SENTENCE = list(range(3, 3 + len(WORDS)))  # word i -> id 3 + i, in a vocabulary of 1000 (sentinels 999, 998, ...)
NAMES = {999: "<X>", 998: "<Y>", 997: "<Z>", 1: "EOS"}


def words(ids):
    return " ".join(NAMES.get(i, WORDS[i - 3] if 3 <= i < 3 + len(WORDS) else str(i)) for i in ids)


def fixed_mask(mask):
    """A noise_mask_fn that always returns ``mask`` (for hand-built test vectors)."""
    mask = np.asarray(mask, dtype=bool)
    return lambda length, noise_density, rng, num_examples: np.broadcast_to(mask, (num_examples, length))


def with_mask(name, mask):
    objective = t5_objective(name)
    objective.noise_mask_fn = fixed_mask(mask)
    return objective


def run(objective, rows, seed=0, vocab=1000, feature_lengths=None):
    return objective(Ragged.from_rows(rows), np.random.default_rng(seed), vocab, feature_lengths)


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


# ----- Denoise: §8.7 B, C, D -----


def test_denoise_vector_b():
    """T5's test_denoise (vocab 26, noise at 8 and 14..18), plus EOS which T5 adds later."""
    tokens = [3, 2, 20, 4, 3, 2, 8, 13, 2, 3, 2, 23, 7, 19, 22, 3, 2, 7, 2]
    mask = np.zeros(19, bool)
    mask[[8, 14, 15, 16, 17, 18]] = True
    objective = Denoise(fixed_mask(mask), noise_span_to_unique_sentinel, nonnoise_span_to_unique_sentinel, 0.3)
    out = run(objective, [tokens], vocab=26)
    assert out["inputs"].to_list() == [[3, 2, 20, 4, 3, 2, 8, 13, 25, 3, 2, 23, 7, 19, 24, 1]]
    assert out["targets"].to_list() == [[25, 2, 24, 22, 3, 2, 7, 2, 1]]


def test_denoise_no_corruption():
    tokens = [3, 2, 20, 4, 3, 2, 8, 13, 2, 3, 2, 23, 7, 19, 22, 3, 2, 7, 2]
    out = run(SpanCorruption(noise_density=0.0), [tokens], vocab=26)
    assert out["inputs"].to_list() == [tokens + [1]]
    assert out["targets"].to_list() == [[25, 1]]


def test_span_corruption_vector_c():
    mask = np.zeros(40, bool)
    mask[[10, 11, 36, 37, 38, 39]] = True
    objective = Denoise(fixed_mask(mask), noise_span_to_unique_sentinel, nonnoise_span_to_unique_sentinel, 0.15)
    out = run(objective, [list(range(100, 140))], vocab=VOCAB)
    assert out["inputs"].to_list() == [list(range(100, 110)) + [32099] + list(range(112, 136)) + [32098, 1]]
    assert out["targets"].to_list() == [[32099, 110, 111, 32098, 136, 137, 138, 139, 1]]
    # A random mask at the same length has the same shape: 37 inputs, 9 targets.
    out = run(SpanCorruption(), [list(range(100, 140))], vocab=VOCAB)
    assert out["inputs"].lengths.tolist() == [37] and out["targets"].lengths.tolist() == [9]


def test_iid_misalignment_vector_d():
    objective = with_mask("iid_15_u_u", [True, True, False, False, True, False])
    out = run(objective, [[10, 11, 12, 13, 14, 15]], vocab=VOCAB)
    assert out["inputs"].to_list() == [[32099, 12, 13, 32098, 15, 1]]
    assert out["targets"].to_list() == [[10, 11, 32099, 14, 32098, 1]]


def test_denoise_takes_a_vocab_info():
    objective = Denoise(fixed_mask([True, False]), noise_token_to_sentinel, None, 0.5)
    vocab = VocabInfo(vocab_size=50, num_pieces=40, eos_id=1)
    assert run(objective, [[5, 6]], vocab=vocab)["inputs"].to_list() == [[49, 6, 1]]


# ----- Table 3 (and §8.7 E-H) on "Thank you for inviting me to your party last week ." -----

IID_MASK = [w in ("for", "inviting", "last") for w in WORDS]


@pytest.mark.parametrize("name, inputs, targets", [
    ("iid_15_u_u", "Thank you <X> me to your party <Y> week . EOS", "<X> for inviting <Y> last <Z> EOS"),
    ("iid_10_u_u", "Thank you <X> me to your party <Y> week . EOS", "<X> for inviting <Y> last <Z> EOS"),
    ("iid_15_d_d", "Thank you me to your party week . EOS", "for inviting last EOS"),
    ("iid_15_m_f", "Thank you <X> <X> me to your party <X> week . EOS",
     "Thank you for inviting me to your party last week . EOS"),
])
def test_table3_iid(name, inputs, targets):
    out = run(with_mask(name, IID_MASK), [SENTENCE])
    assert words(out["inputs"][0]) == inputs and words(out["targets"][0]) == targets


def test_table3_bert_style():
    """iid_15_r10s90_f: noise -> <extra_id_0> w.p. 0.9, else a random id in [3, vocab_size); full targets."""
    objective = with_mask("iid_15_r10s90_f", IID_MASK)
    inputs = np.array([run(objective, [SENTENCE], seed=s)["inputs"][0] for s in range(400)])
    assert (inputs[:, ~np.array(IID_MASK + [False])] == SENTENCE[:2] + SENTENCE[4:8] + SENTENCE[9:] + [1]).all()
    noise = inputs[:, np.flatnonzero(IID_MASK)]
    assert abs((noise == 999).mean() - 0.9) < 0.03 and noise.min() >= 3
    assert words(run(objective, [SENTENCE])["targets"][0]) == " ".join(WORDS) + " EOS"


def test_table3_deshuffling():
    out = run(t5_objective("all_permute"), [SENTENCE] * 5)
    for i in range(5):
        assert sorted(out["inputs"][i][:-1]) == SENTENCE and out["inputs"][i][-1] == 1
        assert out["targets"][i].tolist() == SENTENCE + [1]
    assert len({tuple(out["inputs"][i]) for i in range(5)}) == 5


def test_table3_span_corruption():
    mask = [w in ("for", "inviting", "me", "your", "party", "last") for w in WORDS]
    out = run(with_mask("span_3_15_u_u", mask), [SENTENCE])
    assert words(out["inputs"][0]) == "Thank you <X> to <Y> week . EOS"
    assert words(out["targets"][0]) == "<X> for inviting me <Y> your party last <Z> EOS"


def test_table3_prefix_lm():
    mask = np.arange(11) < 4
    objective = PrefixLM()
    objective.noise_mask_fn = fixed_mask(mask)
    out = run(objective, [SENTENCE])
    assert words(out["inputs"][0]) == "Thank you for inviting EOS"
    assert words(out["targets"][0]) == "me to your party last week . EOS"


def test_prefix_lm_split_is_uniform():
    segments = np.random.default_rng(0).integers(3, 1000, size=(3000, 11))
    out = PrefixLM()(Ragged.from_dense(segments.astype(np.int32)), np.random.default_rng(0), 1000)
    k = out["inputs"].lengths - 1
    assert k.min() == 1 and k.max() == 10 and abs(k.mean() - 5.5) < 0.15
    for i in range(0, 3000, 97):
        assert out["inputs"][i][:-1].tolist() + out["targets"][i][:-1].tolist() == segments[i].tolist()
    assert PrefixLM().raw_length({"inputs": 512, "targets": 511}) == 511
    assert PrefixLM().feature_lengths(512) == {"inputs": 512, "targets": 512}
    with pytest.raises(ValueError, match="needs targets >= 511"):
        PrefixLM().raw_length({"inputs": 512, "targets": 256})


def test_table3_lm():
    out = run(LM(), [SENTENCE, SENTENCE[:3]])
    assert out["inputs"].lengths.tolist() == [0, 0]
    assert words(out["targets"][0]) == " ".join(WORDS) + " EOS"
    assert LM().raw_length({"targets": 512}) == 511 == LM().raw_length({"inputs": 0, "targets": 512})
    assert LM().feature_lengths(512) == {"inputs": 0, "targets": 512}
    with pytest.raises(ValueError, match="targets >= 2"):
        LM().raw_length({"targets": 1})


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


def test_determinism():
    segments = np.random.default_rng(1).integers(3, 32000, size=(8, 568))
    a, b, c = corrupt(segments, seed=5), corrupt(segments, seed=5), corrupt(segments, seed=6)
    for k in ("inputs", "targets"):
        np.testing.assert_array_equal(a[k].values, b[k].values)
    assert not np.array_equal(a["inputs"].values, c["inputs"].values)


def test_mixed_lengths_keep_segment_order():
    rng = np.random.default_rng(2)
    rows = [rng.integers(3, 32000, size=n).tolist() for n in (568, 100, 568, 1, 7)]
    out = run(SpanCorruption(), rows, vocab=VOCAB)
    for i, row in enumerate(rows):
        assert reconstruct(out["inputs"][i][:-1].tolist(), out["targets"][i][:-1].tolist(), VOCAB) == row
    assert out["inputs"].lengths.tolist()[0] == 512 and out["targets"].lengths.tolist()[0] == 114
    assert out["inputs"][3].tolist() == [rows[3][0], 1]


def test_short_segments_fit_the_feature_lengths():
    inputs, targets = SpanCorruption().output_lengths(np.arange(1, 569))
    assert inputs.max() == 512 and targets.max() == 114


def test_span_raw_length():
    assert SpanCorruption().raw_length({"inputs": 512, "targets": 114}) == 568
    assert SpanCorruption().raw_length({"inputs": 512, "targets": 200}) == 568
    assert SpanCorruption(0.15, 2.0).raw_length({"inputs": 512, "targets": 126}) == 552
    assert SpanCorruption(noise_density=0.0).raw_length({"inputs": 512, "targets": 2}) == 511
    assert SpanCorruption().feature_lengths(512) == {"inputs": 512, "targets": 114}
    assert Denoise().raw_length({"inputs": 512, "targets": 114}) == 511


def test_span_raw_length_too_short_targets():
    with pytest.raises(ValueError) as error:
        SpanCorruption().raw_length({"inputs": 512, "targets": 100})
    message = str(error.value)
    assert "needs targets >= 114" in message
    assert "TASK_FEATURE_LENGTHS['targets']=100" in message
    assert "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 512, 'targets': 114}\"" in message


def test_span_raw_length_exposes_float32_rounding():
    # The helper says 57, but 190-token segments get round(float32(28.5)) = 29 noise tokens.
    assert random_spans_helper(191, 0.15, 1.0) == (190, 57)
    with pytest.raises(ValueError, match="needs targets >= 59"):
        SpanCorruption(0.15, 1.0).raw_length({"inputs": 191, "targets": 57})


def test_denoise_composes_other_masks():
    """Any (length, density, rng, num_examples) mask composes with any inputs/targets functions."""
    mask_fn = functools.partial(random_spans_noise_mask, mean_noise_span_length=1.0)
    objective = Denoise(mask_fn, drop_noise_tokens, drop_nonnoise_tokens, noise_density=0.5)
    segments = np.random.default_rng(0).integers(3, 1000, size=(4, 20))
    out = objective(Ragged.from_dense(segments), np.random.default_rng(0), 1000)
    assert out["inputs"].lengths.tolist() == [11] * 4 and out["targets"].lengths.tolist() == [11] * 4
    for i in range(4):
        assert sorted(out["inputs"][i][:-1].tolist() + out["targets"][i][:-1].tolist()) == sorted(segments[i])


# ----- named objectives: parameters, lengths, gin -----


def test_named_objectives_parameters():
    assert set(NAMED_OBJECTIVES) == set(T5_OBJECTIVE_NAMES)
    o = t5_objective("iid_15_r10s90_f")
    assert o.noise_density == 0.15 and o.inputs_fn.keywords == {"random_prob": 0.1} and o.targets_fn is None
    assert t5_objective("iid_15_r20s80_f").inputs_fn.keywords == {"random_prob": 0.2}
    assert t5_objective("iid_50_u_u").noise_density == 0.5
    assert t5_objective("all_permute").noise_density == 1.0
    span = t5_objective("span_10_15_u_u")
    assert isinstance(span, SpanCorruption) and span.mean_noise_span_length == 10.0 and span.name == "span_10_15_u_u"
    assert t5_objective("iid_15_u_u", noise_density=0.2).noise_density == 0.2
    assert t5_objective("regular_15_u_u").noise_density == 0.15
    with pytest.raises(ValueError, match="unknown objective"):
        t5_objective("iid_15_x_u")
    with pytest.raises(ValueError, match="no mean_noise_span_length"):
        t5_objective("iid_15_u_u", mean_noise_span_length=3.0)
    for name in T5_OBJECTIVE_NAMES:
        assert t5_objective(name).family_features == "text_to_text"


def test_length_table_for_512_inputs():
    """The table in denoise.py's docstring; T5's gin lengths where they hold >= 99.9% (192, 104, 114)."""
    table = length_table(512)
    targets = {name: (row["raw"], row["needed"]["targets"], row["suggested"]["targets"]) for name, row in table.items()}
    assert targets == {
        "iid_15_u_u": (511, 177, 192), "iid_15_d_d": (511, 97, 104), "iid_15_m_f": (511, 512, 512),
        "iid_15_r10s90_f": (511, 512, 512), "all_permute": (511, 512, 512), "prefix_lm": (511, 511, 512),
        "lm": (511, 512, 512), "span_2_15_u_u": (552, 126, 126), "span_3_15_u_u": (568, 114, 114),
        "span_5_15_u_u": (581, 105, 105), "span_10_15_u_u": (591, 99, 99), "iid_10_u_u": (511, 128, 144),
        "iid_25_u_u": (511, 261, 280), "iid_50_u_u": (511, 413, 424), "span_corruption": (568, 114, 114),
    }
    assert all(row["suggested"].get("inputs", 0) <= 512 for row in table.values())


def test_iid_raw_length_error_gives_the_fix():
    with pytest.raises(ValueError) as error:
        iid_15_u_u().raw_length({"inputs": 512, "targets": 114})
    message = str(error.value)
    assert "TASK_FEATURE_LENGTHS['targets']=114 is too short for iid_15_u_u" in message
    assert "needs targets >= 177" in message
    assert "--gin.TASK_FEATURE_LENGTHS=\"{'inputs': 512, 'targets': 192}\"" in message
    assert iid_15_u_u().raw_length({"inputs": 512, "targets": 192}) == 511


def test_iid_overflowing_rows_are_redrawn():
    """Targets of 150 (mean 143) overflow often: those rows get new masks until everything fits."""
    segments = np.random.default_rng(0).integers(3, 32000, size=(64, 511)).astype(np.int32)
    objective = iid_15_u_u()
    free = objective(Ragged.from_dense(segments), np.random.default_rng(3), VOCAB)
    assert (free["targets"].lengths > 150).sum() > 5  # without lengths, some rows are longer
    lengths = {"inputs": 512, "targets": 150}
    a = objective(Ragged.from_dense(segments), np.random.default_rng(3), VOCAB, lengths)
    b = objective(Ragged.from_dense(segments), np.random.default_rng(3), VOCAB, lengths)
    assert a["targets"].lengths.max() <= 150 and a["inputs"].lengths.max() <= 512
    np.testing.assert_array_equal(a["targets"].values, b["targets"].values)  # deterministic
    fitting = free["targets"].lengths <= 150  # rows that fitted keep their first draw
    assert [a["targets"][i].tolist() for i in np.flatnonzero(fitting)] == \
        [free["targets"][i].tolist() for i in np.flatnonzero(fitting)]
    for i in range(64):  # every row is still a valid example of its segment
        inputs, targets = a["inputs"][i][:-1].tolist(), a["targets"][i][:-1].tolist()
        masked = [t for t in inputs if t < 32000]
        assert len(masked) + sum(1 for t in targets if t < 32000) == 511


def test_iid_impossible_lengths_raise():
    segments = np.random.default_rng(0).integers(3, 32000, size=(8, 511)).astype(np.int32)
    with pytest.raises(ValueError, match="after 8 re-draws") as error:
        iid_15_u_u()(Ragged.from_dense(segments), np.random.default_rng(0), VOCAB, {"inputs": 512, "targets": 60})
    assert "--gin.TASK_FEATURE_LENGTHS=" in str(error.value)


def test_span_corruption_gin_configurable():
    gin.clear_config()
    try:
        gin.parse_config("span_corruption.noise_density = 0.25\nspan_corruption.mean_noise_span_length = 2.0")
        objective = SpanCorruption()
        assert (objective.noise_density, objective.mean_noise_span_length) == (0.25, 2.0)
        assert objective.raw_length({"inputs": 512, "targets": 1000}) == random_spans_helper(512, 0.25, 2.0)[0]
    finally:
        gin.clear_config()


def test_named_gin_configurables():
    gin.clear_config()
    try:
        gin.parse_config("iid_15_u_u.noise_density = 0.2\niid_15_r10s90_f.random_prob = 0.3")
        assert NAMED_OBJECTIVES["iid_15_u_u"]().noise_density == 0.2
        assert NAMED_OBJECTIVES["iid_15_r10s90_f"]().inputs_fn.keywords == {"random_prob": 0.3}
    finally:
        gin.clear_config()
