"""TFDS sources without TensorFlow: a C4-format ArrayRecord dataset built offline, and TFDS mock data."""

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from t2t.data.pipeline import ShardedPipeline  # noqa: E402
from t2t.data.tfds import build_c4_format_dataset, tfds_source  # noqa: E402

from test_sharded_pipeline import assert_same, documents, make, take  # noqa: E402


@pytest.fixture(scope="module")
def c4_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    build_c4_format_dataset(str(root), {"train": documents(200), "validation": documents(20, seed=1)})
    return str(root)


def test_c4_format_dataset_has_c4_features_and_reads_without_tensorflow(c4_dir):
    builder = tfds.builder("c4/en:3.1.0", data_dir=c4_dir)
    assert set(builder.info.features) == {"text", "url", "content-type", "content-length", "timestamp"}
    assert builder.info.splits["train"].num_examples == 200
    source = tfds_source("c4/en:3.1.0", "train", data_dir=c4_dir, min_units=4)
    assert sorted(source.documents()) == sorted(documents(200))
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass  # the point: all of the above ran without TensorFlow


def test_tfds_pipeline_is_host_independent_and_resumes(c4_dir):
    source = tfds_source("c4/en:3.1.0", "train", data_dir=c4_dir, min_units=4)
    straight = take(make(source), 8)
    hosts = [make(source, host_index=h, num_hosts=2) for h in range(2)]
    parts = [take(h, 8) for h in hosts]
    assert_same(straight, [{k: np.concatenate([p[i][k] for p in parts]) for k in straight[0]}
                           for i in range(8)])
    first = make(source)
    take(first, 3)
    resumed = make(source)
    resumed.set_state(first.get_state())
    assert_same(take(resumed, 5), straight[3:])


def test_missing_field_split_and_dataset_are_clear_errors(c4_dir, tmp_path):
    with pytest.raises(ValueError, match="no feature 'body'"):
        tfds_source("c4/en:3.1.0", "train", data_dir=c4_dir, field="body")
    with pytest.raises(ValueError, match="no split 'test'"):
        tfds_source("c4/en:3.1.0", "test", data_dir=c4_dir)
    with pytest.raises(ValueError, match="not prepared|not found"):
        tfds_source("c4/en:3.1.0", "train", data_dir=str(tmp_path / "nothing"))


def test_tfds_mock_data_through_the_data_source():
    import tensorflow_datasets.text.c4  # noqa: F401  (registers the builder)
    with tfds.testing.mock_data(num_examples=16):
        records = tfds.data_source("c4/en:3.1.0", split="train")
        assert len(records) == 16
        texts = [records[i]["text"] for i in range(16)]
    assert all(isinstance(t, (bytes, str)) for t in texts)
    from t2t.data.sources import list_source
    source = list_source([t.decode() if isinstance(t, bytes) else t for t in texts], "mock", docs_per_unit=1)
    assert isinstance(make(source), ShardedPipeline)


def test_tfrecord_dataset_reads_through_tf_data_when_tensorflow_is_installed(tmp_path):
    """TFRecord-prepared datasets have no random access: units read sequentially via tf.data."""
    pytest.importorskip("tensorflow")
    docs = documents(40)
    build_c4_format_dataset(str(tmp_path), {"train": docs}, file_format="tfrecord")
    source = tfds_source("c4/en:3.1.0", "train", data_dir=str(tmp_path), min_units=4)
    assert not any(unit.random_access for unit in source.units)
    assert sorted(source.documents()) == sorted(docs)
    assert_same(take(make(source), 2), take(make(source), 2))
