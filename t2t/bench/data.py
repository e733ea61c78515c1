"""``t2t bench data``: input-pipeline throughput in raw tokens per second per CPU core.

    t2t bench data [--out PATH] [--seconds N] [--batch_size N] [--repeats N] [--cases a,b,...] [--max_docs N]

What is measured, per case (objective + feature converter + next-fit packing, i.e. ``Pipeline``):

    tokenized embedded corpus ──► Pipeline(corpus, objective, converter, batch_size) ──► next(...) ...
                                  └───────────────── timed ───────────────────┘

* The corpus is tokenized once, before timing (``tokenize_documents`` with the embedded vocabulary);
  SentencePiece speed is reported on its own line (1 thread), since a real run caches the tokens.
* One warm-up batch first (length tables, the first objective block), then ``repeats`` timed windows
  of ``seconds / repeats`` each; the reported number is the median window.
* Raw tokens = tokens of the corpus stream consumed, counted exactly from the pipeline state delta
  (``raw_length`` per example; the shorter last segment of each epoch counts what it holds).
* Single process, pinned to one CPU with ``os.sched_setaffinity`` while timing, and BLAS/OpenMP pools
  limited to one thread (threadpoolctl if installed, else the usual environment variables, which
  only take effect if NumPy was not imported yet; the pin keeps any extra threads on the same core
  anyway). So the numbers are per core: a host feeding N accelerators scales them by the cores it
  gives the pipeline.

The target comes from the issue: span corruption at 512/114 must give >= 3M raw tokens/s per core
(8 H100s training T5 v1.1 base at 45% MFU consume about 2.4M tokens/s).
"""

from __future__ import annotations

import os
import sys

# Before NumPy is imported (as under ``t2t bench data``), this pins its BLAS/OpenMP pools to one thread.
_NUMPY_PREIMPORTED = "numpy" in sys.modules
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from t2t.bench import machine  # noqa: E402

SPAN_TARGET_TOKENS_PER_S = 3_000_000
TARGET_NOTE = ("span corruption on packed 512/114 examples >= 3M raw tokens/s per core: 8 H100s training "
               "T5 v1.1 base at 45% MFU consume about 2.4M tokens/s")


# --------------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmarked pipeline: ``make()`` returns a fresh (objective, converter)."""

    name: str
    objective: str  # how it is built, for the table
    converter: str
    make: Callable[[], tuple]
    target: int | None = None  # raw tokens/s per core, where the issue sets one


def _span_corruption():
    from t2t.data.converters import EncDecFeatureConverter
    from t2t.data.objectives import span_3_15_u_u

    return span_3_15_u_u(), EncDecFeatureConverter({"inputs": 512, "targets": 114})


def _iid():
    from t2t.data.converters import EncDecFeatureConverter
    from t2t.data.objectives import iid_15_u_u

    objective = iid_15_u_u()
    return objective, EncDecFeatureConverter(objective.feature_lengths(512))


def _prefix_lm():
    from t2t.data.converters import DecoderFeatureConverter
    from t2t.data.objectives import PrefixLM

    objective = PrefixLM()
    return objective, DecoderFeatureConverter(objective.feature_lengths(512), prefix_lm=True)


def _bert():
    from t2t.data.converters import EncoderFeatureConverter
    from t2t.data.objectives import BertMLM

    return BertMLM(), EncoderFeatureConverter({"inputs": 512})


def _bart_infilling():
    from t2t.data.converters import EncDecFeatureConverter
    from t2t.data.objectives import Bart, TextInfilling

    objective = Bart(steps=(TextInfilling(),))
    return objective, EncDecFeatureConverter(objective.feature_lengths(512))


CASES: tuple[Case, ...] = (
    Case("span_corruption", "span_3_15_u_u()", "EncDecFeatureConverter", _span_corruption,
         SPAN_TARGET_TOKENS_PER_S),
    Case("iid_denoising", "iid_15_u_u()", "EncDecFeatureConverter", _iid),
    Case("prefix_lm", "PrefixLM()", "DecoderFeatureConverter(prefix_lm=True)", _prefix_lm),
    Case("bert_mlm", "BertMLM() (MLM + NSP)", "EncoderFeatureConverter", _bert),
    Case("bart_infilling", "Bart(steps=(TextInfilling(),))", "EncDecFeatureConverter", _bart_infilling),
)


# --------------------------------------------------------------------------------------------------
# Measurement helpers
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def one_core():
    """Run the body on one CPU (the last one this process may use) with single-threaded BLAS.

    Yields a dict describing what was applied (for the JSON).
    """
    info = {"cpu": None, "blas_threads": "env vars" if not _NUMPY_PREIMPORTED else "not limited (numpy "
            "imported before t2t.bench.data; the CPU pin still keeps every thread on one core)"}
    saved = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    limiter = contextlib.nullcontext()
    try:
        import threadpoolctl

        limiter = threadpoolctl.threadpool_limits(1)
        info["blas_threads"] = "threadpoolctl(1)"
    except ImportError:
        pass
    try:
        if saved is not None:
            cpu = max(saved)
            os.sched_setaffinity(0, {cpu})
            info["cpu"] = cpu
        with limiter:
            yield info
    finally:
        if saved is not None:
            os.sched_setaffinity(0, saved)


def _consumed(pipeline, state: dict) -> int:
    """Raw corpus tokens consumed from the pipeline's start up to ``state`` (exact)."""
    n = pipeline.corpus.num_tokens
    return state["epoch"] * n + min(state["example"] * pipeline.raw_length, n)


def _examples(pipeline, state: dict) -> int:
    return state["epoch"] * pipeline.examples_per_epoch + state["example"]


def _row_fill(batch: dict[str, np.ndarray]) -> dict[str, float]:
    """Fraction of non-padding positions of each packed stream (keyed by its segment-id feature)."""
    return {k.replace("_segment_ids", ""): round(float((v > 0).mean()), 4)
            for k, v in batch.items() if k.endswith("_segment_ids")}


def tokenizer_throughput(texts: Sequence[str], vocab, repeats: int = 3) -> dict:
    """SentencePiece ``encode_batch`` with 1 thread on one core: tokens/s and chars/s (median of repeats)."""
    texts = list(texts)
    chars = sum(len(t) for t in texts)
    rates, tokens = [], 0
    with one_core():
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            ids = vocab.encode_batch(texts, num_threads=1)
            seconds = time.perf_counter() - start
            tokens = sum(len(x) for x in ids)
            rates.append(seconds)
    seconds = statistics.median(rates)
    return {"documents": len(texts), "characters": chars, "tokens": tokens, "seconds": round(seconds, 4),
            "tokens_per_s": round(tokens / seconds), "chars_per_s": round(chars / seconds), "threads": 1,
            "repeats": len(rates)}


def measure(corpus, case: Case, batch_size: int = 128, seconds: float = 5.0, repeats: int = 5,
            seed: int = 0) -> dict:
    """Steady-state throughput of one case; see the module docstring."""
    from t2t.data.pipeline import Pipeline

    objective, converter = case.make()
    pipeline = Pipeline(corpus, objective, converter, batch_size=batch_size, seed=seed)
    expected = {k: [batch_size, v] for k, v in converter.output_lengths().items()}
    windows, batch_times = [], []
    with one_core() as pin:
        first = next(pipeline)  # warm-up: length tables, first objective block
        shapes = {k: list(v.shape) for k, v in first.items()}
        dtypes = sorted({str(v.dtype) for v in first.values()})
        window = seconds / max(1, repeats)
        for _ in range(max(1, repeats)):
            state = pipeline.get_state()
            cpu_start = time.process_time()
            start = now = time.perf_counter()
            batches = 0
            while batches < 2 or now - start < window:
                before = now
                batch = next(pipeline)
                now = time.perf_counter()
                batch_times.append(now - before)
                batches += 1
                if {k: list(v.shape) for k, v in batch.items()} != shapes:
                    raise AssertionError(f"{case.name}: batch shapes changed")
            wall = now - start
            cpu = time.process_time() - cpu_start
            after = pipeline.get_state()
            windows.append({"seconds": wall, "cpu_seconds": cpu, "batches": batches,
                            "raw_tokens": _consumed(pipeline, after) - _consumed(pipeline, state),
                            "examples": _examples(pipeline, after) - _examples(pipeline, state)})
    fills = [_row_fill(next(pipeline)) for _ in range(4)]  # untimed
    rates = [w["raw_tokens"] / w["seconds"] for w in windows]
    tokens_per_s = statistics.median(rates)
    total_s = sum(w["seconds"] for w in windows)
    total_examples = sum(w["examples"] for w in windows)
    total_batches = sum(w["batches"] for w in windows)
    result = {
        "objective": case.objective,
        "converter": case.converter,
        "feature_lengths": dict(converter.feature_lengths),
        "raw_length": pipeline.raw_length,
        "batch_size": batch_size,
        "batch_shapes": shapes,
        "expected_shapes": expected,
        "dtypes": dtypes,
        "raw_tokens_per_s": round(tokens_per_s),
        "raw_tokens_per_s_windows": [round(r) for r in rates],
        # Per CPU-second of this process: insensitive to other load on the core (wall time is not).
        "raw_tokens_per_cpu_s": round(statistics.median(w["raw_tokens"] / max(w["cpu_seconds"], 1e-9)
                                                        for w in windows)),
        "cpu_share": round(sum(w["cpu_seconds"] for w in windows) / sum(w["seconds"] for w in windows), 3),
        "examples_per_s": round(statistics.median(w["examples"] / w["seconds"] for w in windows), 1),
        "examples_per_batch": round(total_examples / total_batches, 2),
        "batch_ms_mean": round(1e3 * total_s / total_batches, 3),
        "batch_ms_median": round(1e3 * statistics.median(batch_times), 3),
        "batch_ms_max": round(1e3 * max(batch_times), 3),
        "batches": total_batches,
        "measured_s": round(total_s, 3),
        "row_fill": {k: round(statistics.mean(f[k] for f in fills), 4) for k in fills[0]},
        "cpu_pinned": pin["cpu"],
        "target_raw_tokens_per_s": case.target,
        "pass": None if case.target is None else bool(tokens_per_s >= case.target),
    }
    return result


# --------------------------------------------------------------------------------------------------
# Machine description, the whole run, the table
# --------------------------------------------------------------------------------------------------


def machine_info() -> dict:
    import sentencepiece

    return {
        **machine.host(),
        "processor": platform.processor(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "numpy": np.__version__,
        "sentencepiece": sentencepiece.__version__,
        **machine.code_version(),
    }


def run(seconds: float = 5.0, batch_size: int = 128, repeats: int = 5, cases: Sequence[str] | None = None,
        tokenizer_repeats: int = 3, max_docs: int | None = None, log=None) -> dict:
    """Benchmark every case (or those named in ``cases``) and return the JSON-able result.

    Args:
      seconds: timed seconds per case (split into ``repeats`` windows; the median window is reported).
      batch_size: rows per batch.
      repeats: timed windows per case.
      cases: names from ``CASES`` (default all).
      tokenizer_repeats: timed SentencePiece passes over the corpus.
      max_docs: use only the first documents of the embedded corpus (for quick tests).
      log: called with progress lines (e.g. ``print``), or None.
    """
    from t2t.data.pipeline import tokenize_documents
    from t2t.data.sources import get_source
    from t2t.data.vocab import default_vocabulary

    selected = [c for c in CASES if cases is None or c.name in cases]
    unknown = set(cases or ()) - {c.name for c in CASES}
    if unknown:
        raise ValueError(f"unknown cases {sorted(unknown)}; choose from {[c.name for c in CASES]}")
    log = log or (lambda *_: None)
    load_before = [round(x, 2) for x in os.getloadavg()]
    texts = list(get_source("embedded", "train"))[:max_docs]
    vocab = default_vocabulary()
    log(f"tokenizing {len(texts)} documents (SentencePiece, 1 thread) ...")
    tokenizer = tokenizer_throughput(texts, vocab, tokenizer_repeats)
    corpus = tokenize_documents(texts, vocab)
    results = {}
    for case in selected:
        log(f"{case.name}: {seconds:g} s ...")
        results[case.name] = measure(corpus, case, batch_size, seconds, repeats)
        log(f"  {results[case.name]['raw_tokens_per_s'] / 1e6:.2f}M raw tokens/s/core")
    machine = machine_info()
    machine["load_average_before"] = load_before
    machine["load_average_after"] = machine.pop("load_average")
    return {
        "benchmark": "t2t bench data",
        "description": "objective + feature converter + next-fit packing (Pipeline), steady state, one "
                       "process pinned to one CPU; raw tokens = corpus stream tokens consumed",
        "target": {"case": "span_corruption", "raw_tokens_per_s_per_core": SPAN_TARGET_TOKENS_PER_S,
                   "why": TARGET_NOTE},
        "settings": {"seconds_per_case": seconds, "repeats": repeats, "batch_size": batch_size,
                     "seed": 0, "block_size": 1024, "statistic": "median of repeats"},
        "machine": machine,
        "corpus": {"source": "embedded/train", "documents": corpus.num_docs, "tokens": corpus.num_tokens,
                   "vocab_size": vocab.vocab_size},
        "tokenization": tokenizer,
        "cases": results,
    }


def _m(x: float) -> str:
    return f"{x / 1e6:.2f}M"


def markdown(result: dict) -> str:
    """A short table of ``run``'s result."""
    m = result["machine"]
    lines = [
        "| case | objective | converter | feature lengths | raw/example | raw tokens/s/core | per CPU-s | examples/s "
        "| ms/batch | examples/batch | row fill | target |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, r in result["cases"].items():
        lengths = "/".join(str(v) for v in r["feature_lengths"].values())
        fill = ", ".join(f"{k} {v:.0%}" for k, v in r["row_fill"].items())
        target = "—" if r["target_raw_tokens_per_s"] is None else \
            f"≥ {_m(r['target_raw_tokens_per_s'])}: {'**pass**' if r['pass'] else '**FAIL**'}"
        lines.append(f"| {name} | `{r['objective']}` | {r['converter']} | {lengths} | {r['raw_length']} "
                     f"| {_m(r['raw_tokens_per_s'])} | {_m(r['raw_tokens_per_cpu_s'])} | {r['examples_per_s']:,.0f} | {r['batch_ms_mean']:.2f} "
                     f"| {r['examples_per_batch']:.2f} | {fill} | {target} |")
    t = result["tokenization"]
    s = result["settings"]
    lines += [
        "",
        f"Tokenization (not in the numbers above; cached in real runs): SentencePiece, 1 thread, "
        f"{_m(t['tokens_per_s'])} tokens/s ({t['chars_per_s'] / 1e6:.1f}M chars/s) on "
        f"{t['documents']} documents / {t['tokens']:,} tokens.",
        "",
        f"Batches of {s['batch_size']} rows; median of {s['repeats']} windows over {s['seconds_per_case']:g} s per "
        f"case after a warm-up batch; one process pinned to one CPU. Machine: {machine.cpu_summary(m)} "
        f"({m['cpu_cores']} CPUs), load average {m['load_average_before'][0]} before / "
        f"{m['load_average_after'][0]} after ('per CPU-s' divides by this process's CPU time instead of wall "
        f"time, so it is robust to other load on the core; the target applies to wall time), Python {m['python']}, NumPy {m['numpy']}, "
        f"commit {(m['git_commit'] or '?')[:10]}{' (dirty tree)' if m['git_dirty'] else ''}, {m['date']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="t2t bench data", description=__doc__.split("\n\n")[0] + ".")
    parser.add_argument("--out", help="write the JSON here and the Markdown table next to it (.md)")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per case (default 5)")
    parser.add_argument("--batch_size", type=int, default=128, help="rows per batch (default 128)")
    parser.add_argument("--repeats", type=int, default=5, help="timed windows per case; median (default 5)")
    parser.add_argument("--cases", default=None,
                        help=f"comma-separated subset of {','.join(c.name for c in CASES)}")
    parser.add_argument("--max_docs", type=int, default=None,
                        help="use only the first N embedded documents (quick checks; default all)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--seconds, --batch_size and --repeats must be positive")
    try:
        result = run(args.seconds, args.batch_size, args.repeats,
                     args.cases.split(",") if args.cases else None, max_docs=args.max_docs,
                     log=lambda line: print(line, file=sys.stderr))
    except ValueError as error:
        parser.error(str(error))
    table = markdown(result)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        md = out.with_suffix(".md")
        md.write_text("# Data pipeline throughput (`t2t bench data`)\n\n"
                      "Raw corpus tokens consumed per second per CPU core by objective + feature converter + "
                      "packing (`Pipeline`), tokenization excluded. Target: " + TARGET_NOTE + ".\n"
                      f"Regenerate: `t2t bench data --out {args.out}`.\n\n" + table)
        print(f"Wrote {out} and {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
