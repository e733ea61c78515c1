"""`t2t bench attention`: packed rows as the packer makes them, every kernel checked against float32."""

import json

import numpy as np
import pytest

from t2t.bench import attention as bench


def test_packed_rows_hold_the_same_examples_in_each_length():
    rng = np.random.default_rng(0)
    inputs, targets = bench.packed_segment_ids(rng, 64, (48, 12), max_segments=4)
    for ids in (inputs, targets):
        for row in ids:
            real = row[row > 0]
            count = real.max()
            # examples 1..n, each one contiguous run, in order, then only padding
            assert np.array_equal(np.unique(real), np.arange(1, count + 1))
            assert np.all(np.diff(real) >= 0) and np.all(row[len(real):] == 0)
    assert np.array_equal(inputs.max(axis=1), targets.max(axis=1))  # example i pairs with example i
    assert set(inputs.max(axis=1)) == {1, 2, 3, 4} and (inputs == 0).any()


def test_flops_halve_when_causal():
    full = bench.AttentionCase("x", 2, 8, 8, 3, 4, causal=False, bias=False)
    causal = bench.AttentionCase("x", 2, 8, 8, 3, 4, causal=True, bias=False)
    assert full.flops() == 3 * 4 * 2 * 3 * 8 * 8 * 4 == 2 * causal.flops()


@pytest.mark.parametrize("case", bench.PRESETS["smoke"], ids=lambda c: c.name)
def test_kernels_agree_with_float32_and_cudnn_says_why_it_cannot_run(case):
    result = bench.run_case(case, ["einsum", "xla", "cudnn_mask", "cudnn_lengths"],
                            np.dtype("bfloat16"), steps=1, log=lambda s: None)
    for kernel in ("einsum", "xla"):
        entry = result["kernels"][kernel]
        assert entry["finite_everywhere"] and entry["ms"] > 0
        names = {"out", "d_query", "d_key", "d_value"} | ({"d_bias"} if case.bias else set())
        assert set(entry["relative_errors"]) == names
        assert max(entry["relative_errors"].values()) < 2e-2  # bf16 inputs against float32
    for kernel in ("cudnn_mask", "cudnn_lengths"):
        assert "CUDA GPU" in result["kernels"][kernel]["error"]


def test_row_lengths_count_the_real_tokens():
    case = bench.PRESETS["smoke"][1]  # cross-attention: 16 queries over 32 keys
    inputs = bench.make_inputs(case, np.dtype("float32"))
    assert np.array_equal(inputs["masks"]["q_lengths"], inputs["q_real"].sum(axis=1))
    assert np.array_equal(inputs["masks"]["kv_lengths"], inputs["kv_real"].sum(axis=1))
    assert (inputs["masks"]["kv_lengths"] < case.kv_len).any()  # some rows end in padding


def test_a_wrong_mask_shows_as_a_large_error():
    """The check can fail: attention without the segment mask is far from the reference."""
    case = bench.PRESETS["smoke"][0]
    inputs = bench.make_inputs(case, np.dtype("float32"))
    masks = {**inputs["masks"], "full": None}
    args = [inputs[n] for n in ("query", "key", "value", "bias")]
    fn = bench.kernel_fn("einsum", case.causal)
    right = np.asarray(fn(*args, inputs["masks"]))
    wrong = np.asarray(fn(*args, masks))
    real = inputs["q_real"]
    assert bench._relative_error(wrong, right, real) > 0.1


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "attention.json"
    assert bench.main(["--preset", "smoke", "--only", "cross", "--kernels", "einsum,xla",
                       "--steps", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result["cases"]) == ["cross"] and result["kernels"] == ["einsum", "xla"]
    assert result["cases"]["cross"]["shape"]["kv_len"] == 32
    assert "| cross |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--preset", "smoke", "--kernels", "flash3"])
