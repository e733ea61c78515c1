"""`t2t data build-encoder-tasks` on a tiny fake evaluation suite (and TFDS mock SQuAD)."""

import json

import pytest

from t2t.data import build_encoder_tasks as build
from t2t.data.objectives.encoder_tasks import SpanQA

ARTICLES = [("Erbium", "Erbium is a metal . Erbium is rare", "Chemical element", "Physical sciences"),
            ("Mozart", "Mozart was a composer of music", "Austrian composer", "People"),
            ("Danube", "The Danube flows through Vienna", "River in Europe", "Geography"),
            ("Algebra", "Algebra studies symbols and rules", "Branch of mathematics", "Mathematics")] * 5


def fake_suite(root):
    for task, key in (("wiki_topic", "topic"), ("wiki_description", "description")):
        (root / task).mkdir(parents=True)
        for split in build.SPLITS:
            with open(root / task / f"{split}.jsonl", "w") as f:
                for i, (title, extract, description, topic) in enumerate(ARTICLES):
                    record = {"title": f"{title} {i}", "extract": extract, "inputs": "x", "targets": "y",
                              key: description if key == "description" else topic}
                    f.write(json.dumps(record) + "\n")
    return root


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_wiki_tasks(tmp_path):
    suite, out = fake_suite(tmp_path / "suite"), tmp_path / "out"
    assert build.main(["--output", str(out), "--suite_dir", str(suite)]) == 0
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert set(manifest["tasks"]) == {"topic", "pairs", "tagging"}
    for split in build.SPLITS:
        topic = read(out / "topic" / f"{split}.jsonl")
        assert [(r["text"], r["label"]) for r in topic] == [(a[1], a[3]) for a in ARTICLES]
        pairs = read(out / "pairs" / f"{split}.jsonl")
        own = {f"{a[0]} {i}": a[2] for i, a in enumerate(ARTICLES)}
        assert [r["text_b"] for r in pairs] == [a[1] for a in ARTICLES]
        assert all((r["label"] == "match") == (r["text_a"] == own[r["title"]]) for r in pairs)
        assert {r["label"] for r in pairs} == {"match", "mismatch"}
        assert manifest["tasks"]["pairs"][split]["examples"] == len(ARTICLES)
        for r in read(out / "tagging" / f"{split}.jsonl"):
            assert len(r["words"].split()) == len(r["tags"].split())
    erbium = read(out / "tagging" / "train.jsonl")[0]
    assert erbium["tags"].split() == ["new", "new", "new", "new", "punct", "repeat", "repeat", "new"]
    # Seeded: the same seed rebuilds the same negatives, another seed draws others.
    again = tmp_path / "again"
    build.build_encoder_tasks(str(again), str(suite), ["pairs"], seed=0, log=lambda *_: None)
    assert (again / "pairs" / "train.jsonl").read_text() == (out / "pairs" / "train.jsonl").read_text()
    build.build_encoder_tasks(str(again), str(suite), ["pairs"], seed=1, log=lambda *_: None)
    assert (again / "pairs" / "train.jsonl").read_text() != (out / "pairs" / "train.jsonl").read_text()


def test_missing_suite_is_a_clear_error(tmp_path, capsys):
    assert build.main(["--output", str(tmp_path / "out"), "--suite_dir", str(tmp_path / "none")]) == 1
    assert "t2t data build-eval" in capsys.readouterr().err


def test_squad_from_tfds_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=3):
        build.build_encoder_tasks(str(tmp_path), tasks=["squad"], log=lambda *_: None)
    records = read(tmp_path / "squad" / "validation.jsonl")
    assert len(records) == 3
    for r in records:
        assert set(SpanQA().fields) <= set(r) and r["answer"] == r["answers"][0] and r["answer_start"].isdigit()
