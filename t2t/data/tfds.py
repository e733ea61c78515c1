"""TFDS sources: any builder and version (default ``c4/en:3.1.0``) from a ``data_dir``, without TensorFlow.

* ArrayRecord-prepared datasets are read through ``tfds.data_source``: random access by record index, no
  TensorFlow needed. Records are cut into units of ``records_per_unit`` consecutive records; epochs shuffle
  the units and the documents within each unit (see t2t/data/pipeline.py).
* TFRecord-prepared datasets (the format of the public ``gs://tfds-data`` C4) have no random access; they
  are read through tf.data, one unit per record range (``split[a:b]``), only when TensorFlow is installed.

``data_dir`` is a local path or ``gs://...`` (needs ``pip install 't2t[tfds]' gcsfs``; untested here).
tensorflow-datasets is an optional extra: ``pip install 't2t[tfds]'``.

``build_c4_format_dataset`` writes a small dataset with C4's real ``c4/en`` features (text, url,
content-type, content-length, timestamp) from local documents, as ArrayRecord, offline and without
TensorFlow or Apache Beam; the tests and the benchmark use it, and it can turn any local corpus into a
C4-format TFDS dataset.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Iterator, Mapping, Sequence

import gin

from t2t.data.sources import Source, Unit, docs_per_unit_for

DEFAULT_C4 = "c4/en:3.1.0"


def import_tfds():
    """The tensorflow_datasets module, or a ValueError that names the extra to install."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ValueError("reading TFDS datasets needs tensorflow-datasets: pip install 't2t[tfds]'") from error
    return tfds


def register_builder(name: str) -> None:
    """Import the module that registers ``name``'s builder (C4's builder is not imported by default)."""
    base = name.split("/")[0].split(":")[0]
    for package in ("text", "structured", "translate", "question_answering", "summarization"):
        try:
            importlib.import_module(f"tensorflow_datasets.{package}.{base}")
            return
        except ImportError:
            continue


def _has_tensorflow() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=16)
def _open(name: str, split: str, data_dir: str | None):
    """(random-access data source or None, number of records, file format) for a prepared dataset."""
    tfds = import_tfds()
    register_builder(name)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:
        raise ValueError(f"TFDS dataset {name!r} not found in data_dir={data_dir!r}: {error}") from None
    if not builder.is_prepared() if hasattr(builder, "is_prepared") else False:
        raise ValueError(f"TFDS dataset {name!r} is not prepared in {builder.data_dir!r}; prepare it first "
                         "(for C4: `tfds build c4/en --file_format=array_record`, or copy the files there).")
    splits = builder.info.splits
    if split not in splits:
        raise ValueError(f"TFDS dataset {name!r} has no split {split!r} (it has {sorted(splits)}).")
    num_records = splits[split].num_examples
    if num_records == 0:
        raise ValueError(f"TFDS dataset {name!r} split {split!r} in {builder.data_dir} has no records.")
    file_format = str(getattr(builder.info, "file_format", "") or "")
    if "array_record" in file_format.lower():
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False), num_records, "array_record"
    return None, num_records, file_format or "tfrecord"


def _decode(record: Mapping, field: str, where: str) -> str:
    if field not in record:
        raise ValueError(f"{where}: no feature {field!r} (features: {sorted(record)}); "
                         "set tfds_source.field")
    value = record[field]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class TfdsUnit(Unit):
    """Records ``start:stop`` of a TFDS split: random access (ArrayRecord) or tf.data (TFRecord)."""

    def __init__(self, name: str, split: str, data_dir: str | None, field: str, start: int, stop: int,
                 random_access: bool):
        self.name, self.split, self.data_dir, self.field = name, split, data_dir, field
        self.start, self.stop, self.random_access = start, stop, random_access
        self.key = f"tfds:{name}:{split}:{os.path.abspath(data_dir) if data_dir else ''}:{field}:{start}:{stop}"

    def size(self) -> int:
        return self.stop - self.start

    def get(self, indices: Sequence[int]) -> list[str]:
        source, _, _ = _open(self.name, self.split, self.data_dir)
        records = source.__getitems__([self.start + i for i in indices])
        where = f"tfds {self.name}[{self.split}]"
        return [_decode(r, self.field, where) for r in records]

    def read(self, start: int = 0) -> Iterator[str]:
        if self.random_access:
            for first in range(start, self.size(), 256):
                yield from self.get(range(first, min(first + 256, self.size())))
            return
        tfds = import_tfds()
        dataset = tfds.load(self.name, split=f"{self.split}[{self.start + start}:{self.stop}]",
                            data_dir=self.data_dir, download=False)
        for record in tfds.as_numpy(dataset):
            yield _decode(record, self.field, f"tfds {self.name}[{self.split}]")


@gin.configurable
def tfds_source(name: str = DEFAULT_C4, split: str = "train", data_dir: str | None = None,
                field: str = "text", records_per_unit: int = 4096, min_units: int = 1) -> Source:
    """A TFDS dataset as a :class:`Source` (gin: ``tfds_source.data_dir``, ``tfds_source.field``).

    ``name`` is ``builder/config:version`` as in ``tfds.load``; ``data_dir`` defaults to TFDS's own
    (``$TFDS_DATA_DIR`` or ~/tensorflow_datasets). Units hold ``records_per_unit`` records, fewer when the
    split is too small to give every one of ``min_units`` shards several units.
    """
    name = name or DEFAULT_C4
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
    source, num_records, file_format = _open(name, split, data_dir)
    if source is None and not _has_tensorflow():
        raise ValueError(f"TFDS dataset {name!r} in {data_dir!r} is stored as {file_format}, which only "
                         "TensorFlow can read; install tensorflow, or prepare it with "
                         "--file_format=array_record (random access, no TensorFlow).")
    per_unit = docs_per_unit_for(num_records, min_units, most=records_per_unit)
    units = [TfdsUnit(name, split, data_dir, field, a, min(a + per_unit, num_records), source is not None)
             for a in range(0, num_records, per_unit)]
    if source is not None:  # check the field on the first record now, not in a worker later
        units[0].get([0])
    return Source(units, f"tfds({name}[{split}], data_dir={data_dir!r})")


def build_c4_format_dataset(data_dir: str, splits: Mapping[str, Sequence[str]], version: str = "3.1.0",
                            num_shards: int | None = None, file_format: str = "array_record") -> str:
    """Write ``splits`` ({split: documents}) as a ``c4/en:<version>`` dataset under ``data_dir``, in
    ``file_format`` ("array_record"; "tfrecord" needs TensorFlow, as reading it does).

    The dataset has C4's real features (a builder named ``c4`` with config ``en`` that reuses TFDS's own C4
    ``_info`` and generates from local documents, as a plain generator builder since C4's is Beam-based), so ``tfds_source('c4/en:3.1.0', data_dir=...)`` reads it as it reads
    the real C4. Returns the dataset directory. No TensorFlow and no Apache Beam.
    """
    tfds = import_tfds()
    register_builder("c4")
    from tensorflow_datasets.core import registered
    from tensorflow_datasets.text import c4 as c4_module

    documents = {k: list(v) for k, v in splits.items()}

    with registered.skip_registration():
        class LocalC4(tfds.core.GeneratorBasedBuilder):
            """C4's name, configs and features (its own ``_info``), generated from local documents."""

            name = "c4"
            VERSION = tfds.core.Version(version)
            BUILDER_CONFIGS = [c for c in c4_module.C4.BUILDER_CONFIGS if c.name == "en"]
            _info = c4_module.C4._info

            def _split_generators(self, dl_manager):
                return {split: self._generate_examples(split) for split in documents}

            def _generate_examples(self, split):
                for i, text in enumerate(documents[split]):
                    yield f"{split}-{i}", {
                        "text": text, "url": f"file://local/{split}/{i}", "content-type": "text/plain",
                        "content-length": str(len(text.encode("utf-8"))),
                        "timestamp": "2019-04-25T00:00:00Z"}

    builder = LocalC4(config="en", data_dir=data_dir, file_format=file_format)
    config = (tfds.download.DownloadConfig(num_shards=num_shards) if num_shards else None)
    builder.download_and_prepare(download_config=config)
    _open.cache_clear()
    return str(builder.data_dir)
