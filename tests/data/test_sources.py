"""Tests for t2t.data.sources: embedded corpus splits, jsonl/text globs, error messages."""

import gzip
import json

import pytest

from t2t.data.embedded.build import is_validation
from t2t.data.sources import embedded_corpus, get_source, jsonl_files, make_source, text_files


def write_jsonl(path, records, compress=False):
    lines = "".join(json.dumps(r) + "\n" for r in records)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(lines)
    else:
        path.write_text(lines, encoding="utf-8")


# --------------------------------------------------------------------------- embedded


def test_embedded_splits_nonempty_and_disjoint():
    train, validation = embedded_corpus("train"), embedded_corpus("validation")
    assert len(train) > 1000 and len(validation) > 50
    assert sum(map(len, validation)) > 300_000  # enough held-out text for a stable loss
    assert not set(train) & set(validation)
    assert all(isinstance(d, str) and len(d) >= 500 for d in train + validation)


def test_embedded_hash_split_rule():
    assert not any(is_validation(d) for d in embedded_corpus("train"))
    assert all(is_validation(d) for d in embedded_corpus("validation"))


def test_embedded_unknown_split():
    with pytest.raises(ValueError, match="unknown split 'test'.*'train', 'validation'"):
        embedded_corpus("test")


def test_get_source_embedded():
    assert get_source("embedded", "validation") == embedded_corpus("validation")


# --------------------------------------------------------------------------- json lines


def test_jsonl_files_glob_plain_and_gzip(tmp_path):
    write_jsonl(tmp_path / "b.jsonl.gz", [{"text": "third"}], compress=True)
    records = [{"text": "first", "url": "x"}, {"text": "  "}, {"text": "second"}]
    write_jsonl(tmp_path / "a.jsonl", records)
    (tmp_path / "a.jsonl").write_text((tmp_path / "a.jsonl").read_text() + "\n")  # blank line
    assert list(jsonl_files(str(tmp_path / "*.jsonl*"))) == ["first", "second", "third"]


def test_jsonl_files_other_field(tmp_path):
    write_jsonl(tmp_path / "c4-train.json.gz", [{"body": "hello", "text": "no"}], compress=True)
    assert list(jsonl_files(str(tmp_path / "*.json.gz"), field="body")) == ["hello"]


def test_jsonl_missing_field_names_file_and_line(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", [{"text": "ok"}, {"body": "no text"}])
    with pytest.raises(ValueError, match=r"d\.jsonl, line 2: no field 'text'"):
        list(jsonl_files(str(tmp_path / "d.jsonl")))


def test_jsonl_bad_json_names_file_and_line(tmp_path):
    (tmp_path / "e.jsonl").write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(ValueError, match=r"e\.jsonl, line 2: not valid JSON"):
        list(jsonl_files(str(tmp_path / "e.jsonl")))


def test_no_match_raises_eagerly(tmp_path):
    pattern = str(tmp_path / "missing-*.jsonl")
    with pytest.raises(ValueError, match="no file matches .*missing-"):
        jsonl_files(pattern)  # raised at the call, not at the first next()
    with pytest.raises(ValueError, match="no file matches"):
        text_files(str(tmp_path / "*.txt"))


# --------------------------------------------------------------------------- text files


def test_text_files_one_document_per_file(tmp_path):
    (tmp_path / "1.txt").write_text("Para one.\n\nPara two.\n")
    (tmp_path / "2.txt").write_text("Another file.")
    (tmp_path / "3.txt").write_text("\n  \n")
    assert list(text_files(str(tmp_path / "*.txt"))) == ["Para one.\n\nPara two.", "Another file."]


def test_text_files_split_paragraphs(tmp_path):
    (tmp_path / "1.txt").write_text("Para one,\nwrapped.\n\n\nPara two.\n \nPara three.")
    docs = list(text_files(str(tmp_path / "1.txt"), split_paragraphs=True))
    assert docs == ["Para one,\nwrapped.", "Para two.", "Para three."]


# --------------------------------------------------------------------------- get_source


def test_get_source_dispatch_split_and_epochs(tmp_path):
    write_jsonl(tmp_path / "c4-train.jsonl", [{"text": "train doc"}])
    write_jsonl(tmp_path / "c4-validation.jsonl", [{"text": "validation doc"}])
    (tmp_path / "notes.txt").write_text("plain text doc")
    source = get_source(str(tmp_path / "c4-{split}.jsonl"), "validation")
    assert list(source) == ["validation doc"]
    assert list(source) == ["validation doc"]  # iterable again, for another epoch
    assert list(get_source(str(tmp_path / "c4-{split}.jsonl"))) == ["train doc"]
    assert list(get_source(str(tmp_path / "*.txt"))) == ["plain text doc"]


def test_get_source_missing_and_empty(tmp_path):
    with pytest.raises(ValueError, match="no file matches .*nowhere.*'embedded'"):
        get_source(str(tmp_path / "nowhere" / "*.json.gz"))
    write_jsonl(tmp_path / "empty.jsonl", [{"text": ""}])
    source = get_source(str(tmp_path / "empty.jsonl"))
    with pytest.raises(ValueError, match="empty.jsonl.*no non-empty document"):
        list(source)


def test_task_source_gives_fine_tuning_the_examples_that_eval_scores(tmp_path, monkeypatch):
    (tmp_path / "wiki_topic").mkdir()
    records = [{"title": "Erbium", "extract": "Erbium is a chemical element.", "topic": "Physical sciences"},
               {"title": "Bach", "extract": "Bach was a composer.", "topic": "People"}]
    (tmp_path / "wiki_topic" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setenv("T2T_EVAL_SUITE", str(tmp_path))
    pairs = [json.loads(d) for d in make_source("task:wiki_topic", "train", field="inputs,targets")]
    assert pairs == [["topic: Erbium is a chemical element.", "Physical sciences"],
                     ["topic: Bach was a composer.", "People"]]
    assert list(make_source("task:wiki_topic", "train", field="targets")) == ["Physical sciences", "People"]
    with pytest.raises(ValueError, match="no field 'text'"):
        make_source("task:wiki_topic", "train")
