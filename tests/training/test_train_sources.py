"""`t2t train` runs unchanged on every kind of source; switching is one gin include (gin_configs/data/).

Each case builds a small corpus in that source's real layout from the embedded text (a local corpus
as `t2t data build-local` writes it, a C4-format TFDS ArrayRecord dataset read without TensorFlow,
and raw C4 json.gz shards in the allenai/c4 layout), includes the data file, points DATA_SOURCE at
the corpus and trains a tiny model for a few steps.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from t2t.configuration import parse_gin
from t2t.data.sources import embedded_corpus
from t2t.training.trainer import train

EXPERIMENT = "gin_configs/experiments/t5_1_1_tiny_embedded.gin"
SPLITS = {"train": embedded_corpus("train")[:300], "validation": embedded_corpus("validation")[:40]}


def _write_jsonl_gz(path: Path, docs: list[str], **extra) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps({"text": doc, **extra}) + "\n")


def _local(root: Path) -> str:
    for split, docs in SPLITS.items():
        for i in range(2):
            _write_jsonl_gz(root / split / f"part-{i:05d}.jsonl.gz", docs[i::2])
    return f"local:{root}"


def _c4_json(root: Path) -> str:
    for split, docs in SPLITS.items():
        for i in range(2):
            _write_jsonl_gz(root / f"c4-{split}.{i:05d}-of-00002.json.gz", docs[i::2],
                            url="https://example.org", timestamp="2019-04-25T12:57:54Z")
    return str(root / "c4-{split}.*-of-*.json.gz")


def _tfds(root: Path) -> tuple[str, list[str]]:
    pytest.importorskip("tensorflow_datasets")
    from t2t.data.tfds import build_c4_format_dataset
    build_c4_format_dataset(str(root), SPLITS)
    return "tfds:c4/en:3.1.0", [f"tfds_source.data_dir='{root}'", "tfds_source.records_per_unit=64"]


@pytest.mark.slow
@pytest.mark.parametrize("data_gin", ["local", "c4_json", "tfds_c4"])  # embedded: test_train_e2e
def test_train_runs_on_the_source(data_gin, tmp_path):
    bindings = []
    if data_gin == "local":
        source = _local(tmp_path / "corpus")
    elif data_gin == "c4_json":
        source = _c4_json(tmp_path / "c4")
    else:
        source, bindings = _tfds(tmp_path / "tfds")
    run = tmp_path / "run"
    parse_gin([EXPERIMENT, f"gin_configs/data/{data_gin}.gin"],
              [f"DATA_SOURCE='{source}'", "TRAIN_STEPS=3", "BATCH_SIZE=8", f"MODEL_DIR='{run}'",
               "TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 16}", "train.eval_batches=1",
               "train.log_every=1", *bindings])
    result = train()
    assert result.step == 3 and math.isfinite(result.validation_loss)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if line["split"] == "train"] == [1, 2, 3]
    assert source in (run / "config.gin").read_text()
