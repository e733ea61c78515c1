"""``t2t bench pipeline``: end-to-end input-pipeline throughput (read → tokenise → objective → pack).

    t2t bench pipeline --local=/tmp/t2t-local --out=experiments/benchmarks/pipeline_throughput.json

(`t2t bench data` measures objective + converter + packing alone, per core; this measures the whole
pipeline the trainer runs, with its worker processes.)

Measures tokens/s (non-padding encoder input + decoder target tokens of the packed batches) of the
ShardedPipeline with span corruption at 512/114, batch 64, 8 virtual shards, for 1 and 2 worker processes,
on (a) the local corpus of `t2t data build-local` (JSON lines files) and (b) a C4-format ArrayRecord TFDS
dataset built from the same documents; each without the token cache (SentencePiece in the loop) and with a
warm pre-tokenised cache.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from t2t.bench import machine


def measure(pipeline, seconds: float) -> dict:
    next(pipeline)  # start workers, first blocks
    tokens, batches, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = next(pipeline)
        tokens += int(np.count_nonzero(batch["encoder_segment_ids"]) + np.count_nonzero(batch["decoder_segment_ids"]))
        batches += 1
    elapsed = time.perf_counter() - start
    pipeline.close()
    return {"tokens_per_second": tokens / elapsed, "batches": batches, "seconds": elapsed}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="t2t bench pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--local", default=os.path.expanduser("~/.cache/t2t/local_corpus"))
    parser.add_argument("--out", default="experiments/benchmarks/pipeline_throughput.json")
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args(argv)

    from t2t.data.converters import EncDecFeatureConverter
    from t2t.data.objectives import SpanCorruption
    from t2t.data.pipeline import ShardedPipeline
    from t2t.data.sources import make_source
    from t2t.data.vocab import default_vocabulary

    vocab = default_vocabulary()
    converter = EncDecFeatureConverter({"inputs": 512, "targets": 114})
    local = make_source(f"local:{args.local}", "train", min_units=8)
    tmp = tempfile.mkdtemp(prefix="t2t-bench-")
    from t2t.data.tfds import build_c4_format_dataset, tfds_source
    docs = [d for _, d in zip(range(4000), local.documents())]
    build_c4_format_dataset(os.path.join(tmp, "tfds"), {"train": docs}, num_shards=1)
    c4 = tfds_source("c4/en:3.1.0", "train", data_dir=os.path.join(tmp, "tfds"), min_units=8)
    results = []
    load_before = os.getloadavg()
    for name, source in (("local corpus (JSON lines, 64 files)", local),
                         ("C4-format TFDS ArrayRecord shard (4000 docs)", c4)):
        for cache in (False, True):
            cache_dir = os.path.join(tmp, "cache") if cache else None
            if cache:  # warm the token cache first (not timed)
                ShardedPipeline(source, vocab, SpanCorruption(), converter, 64, num_shards=8,
                                cache_dir=cache_dir).sample_tokens(1 << 40)
            for workers in (1, 2):
                pipeline = ShardedPipeline(source, vocab, SpanCorruption(), converter, 64, num_shards=8,
                                           cache_dir=cache_dir, num_workers=workers, worker_type="process")
                r = measure(pipeline, args.seconds)
                r.update(source=name, token_cache=cache, workers=workers, load_average=os.getloadavg()[0])
                print(json.dumps(r))
                results.append(r)
    out = {"machine": {**machine.host(), **machine.code_version()},
           "load_average_before": load_before, "config": "span corruption 512/114, batch 64, 8 virtual shards, "
           "docs_per_block 64, embedded 8k SentencePiece vocabulary, process workers",
           "results": results}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
