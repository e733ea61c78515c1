"""`t2t data build-local`'s cleaning, dedupe and split logic on small offline fixtures."""

import gzip
import json

from t2t.data.build_local import (clean_documents, is_prose, paragraphs_of_html, paragraphs_of_pod,
                                  paragraphs_of_text, split_of, write_split)

PROSE = "The function returns a list of the words in the string, using sep as the delimiter string."


def test_prose_is_kept_and_code_tables_and_titles_are_dropped():
    assert is_prose(PROSE)
    assert not is_prose("x = foo(bar); return {'a': 1} if y else None;")
    assert not is_prose("Too short.")
    assert not is_prose("Table Of Contents Indices And Tables Search Page Module Index Here.")
    assert not is_prose("Use os.path.join() to build the path from its parts in this call.")


def test_html_keeps_paragraphs_outside_pre_and_tables():
    page = (f"<html><nav><p>Navigation text is not prose at all here.</p></nav><p>{PROSE}</p>"
            "<pre>def f():\n    return 1</pre><table><tr><td><p>cell text in a table here.</p></td></tr>"
            "</table><p>Second <a href='#'>paragraph</a> with a link inside of it, kept.</p></html>")
    assert paragraphs_of_html(page) == [PROSE, "Second paragraph with a link inside of it, kept."]


def test_text_drops_indented_code_and_tables():
    text = f"{PROSE}\n\n    code = 1\n    more()\n\n+-----+-----+\n| a   | b   |\n\nA  B   C\n\nLast one.\n"
    assert paragraphs_of_text(text) == [PROSE, "Last one."]


def test_pod_keeps_ordinary_paragraphs_and_strips_formatting_codes():
    pod = "=head1 NAME\n\nperlfoo - x\n\nThe B<print> function writes I<text> to L<perlfunc|x>.\n\n  verbatim code\n"
    assert paragraphs_of_pod(pod) == ["perlfoo - x", "The print function writes text to perlfunc."]


def test_dedupe_is_across_documents_and_empty_documents_vanish():
    docs = [("u1", [PROSE, "Another fine paragraph of ordinary English prose to keep here."]),
            ("u2", [PROSE.upper().lower().capitalize()[:0] + PROSE]),  # exact duplicate
            ("u3", ["  ".join(PROSE.split(" "))])]  # duplicate after whitespace normalisation
    records = list(clean_documents(docs))
    assert [r["url"] for r in records] == ["u1"]
    assert records[0]["text"].count("\n") == 1 and set(records[0]) == {"text", "url", "timestamp"}


def test_split_by_hash_is_stable_and_about_two_percent():
    urls = [f"apt://pkg/file{i}.html" for i in range(5000)]
    splits = [split_of(u) for u in urls]
    assert splits == [split_of(u) for u in urls]
    assert 0.01 < splits.count("validation") / len(urls) < 0.03


def test_written_files_are_c4_style_json_lines_and_reproducible(tmp_path):
    records = [{"text": f"{PROSE} {i}", "url": f"u{i}", "timestamp": "t"} for i in range(10)]
    first = write_split(records, tmp_path / "train", 4)
    second = write_split(records, tmp_path / "train", 4)
    assert first == second and len(first) == 4
    lines = [json.loads(line) for e in first for line in gzip.open(tmp_path / e["file"], "rt")]
    assert sorted(r["url"] for r in lines) == sorted(r["url"] for r in records)
