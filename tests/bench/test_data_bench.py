"""``t2t bench data`` on a tiny budget: the JSON's structure and every case's batch shapes (no timing checks)."""

import json

import pytest

from t2t import cli
from t2t.bench import data as bench


@pytest.fixture(scope="module")
def result():
    return bench.run(seconds=0.05, batch_size=4, repeats=2, tokenizer_repeats=1, max_docs=100)


def test_every_case_gives_batches_of_the_converter_shapes(result):
    assert list(result["cases"]) == [c.name for c in bench.CASES]
    for name, case in result["cases"].items():
        assert case["batch_shapes"] == case["expected_shapes"], name
        assert all(shape[0] == 4 for shape in case["batch_shapes"].values()), name
        assert case["dtypes"] == ["int32"], name
        assert case["batches"] >= 2 * 2 and case["raw_tokens_per_s"] > 0 and case["examples_per_s"] > 0, name
        assert len(case["raw_tokens_per_s_windows"]) == 2, name
        assert case["examples_per_batch"] >= 1, name
        assert all(0 < fill <= 1 for fill in case["row_fill"].values()), name
    shapes = {name: case["batch_shapes"] for name, case in result["cases"].items()}
    assert shapes["span_corruption"]["encoder_input_tokens"] == [4, 512]
    assert shapes["span_corruption"]["decoder_target_tokens"] == [4, 114]
    assert shapes["prefix_lm"]["decoder_causal_attention"][1] == 1024
    assert shapes["bert_mlm"]["encoder_input_tokens"] == [4, 512]
    assert "nsp_labels" in shapes["bert_mlm"]
    assert result["cases"]["span_corruption"]["raw_length"] == 568


def test_json_structure_and_target(result):
    json.dumps(result)  # serialisable as is
    assert {"machine", "settings", "corpus", "tokenization", "cases", "target"} <= set(result)
    machine = result["machine"]
    for key in ("processor", "cpu_model", "cpu_family", "cpu_vector_flags", "cpu_cores",
                "load_average_before", "load_average_after", "python", "numpy", "date", "git_commit"):
        assert key in machine
    assert result["tokenization"]["threads"] == 1 and result["tokenization"]["tokens_per_s"] > 0
    span = result["cases"]["span_corruption"]
    assert span["target_raw_tokens_per_s"] == 3_000_000 and isinstance(span["pass"], bool)
    assert all(c["pass"] is None for n, c in result["cases"].items() if n != "span_corruption")
    table = bench.markdown(result)
    assert table.count("\n| ") == len(bench.CASES)  # one row per case after the header
    assert "SentencePiece, 1 thread" in table


def test_cli_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "bench" / "data.json"
    assert cli.main(["bench", "data", "--out", str(out), "--seconds", "0.02", "--repeats", "1",
                     "--batch_size", "2", "--cases", "span_corruption", "--max_docs", "50"]) == 0
    written = json.loads(out.read_text())
    assert list(written["cases"]) == ["span_corruption"]
    assert written["cases"]["span_corruption"]["batch_shapes"]["encoder_input_tokens"] == [2, 512]
    assert "| span_corruption |" in out.with_suffix(".md").read_text()
    assert "| span_corruption |" in capsys.readouterr().out


def test_cli_bench_dispatch_errors(capsys):
    assert cli.main(["bench"]) == 2
    assert cli.main(["bench", "nonsense"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "data", "--cases", "nope"])
    assert exit_info.value.code == 2
