"""Where a training step's time goes: a `jax.profiler` trace of a few steps, summarised.

`t2t bench train --profile DIR` traces each JAX system after its timed rounds and stores the
summary in the JSON, so one run on a lent accelerator says both how fast a step is and which
operations to work on next, without a second session to open the trace:

    {"trace": "DIR/t2t/plugins/profile/.../host.trace.json.gz", "steps": 2,
     "op_ms_per_step": 812.4,                      # summed over streams or threads
     "by_category": {"matmul": 0.61, "attention": 0.12, "fusion": 0.19, ...},   # shares
     "top_ops": [{"name": "ynn_fusion.147", "category": "fusion", "ms_per_step": 82.3,
                  "share": 0.10, "count": 1.0}, ...]}

What is counted: on an accelerator, the kernels on the device (processes named ``/device:...``);
on a CPU, the XLA operations that run on XLA's own threads (not Python's, which dispatch). Op time
is summed over streams or threads, so with parallel execution it exceeds the step time; shares
are of that sum. Categories come from the kernel or HLO op's name (`CATEGORIES`).
"""

from __future__ import annotations

import collections
import gzip
import json
import re
from pathlib import Path
from typing import Any, Callable

# First match wins: (category, pattern on the lowercased op name).
CATEGORIES: tuple[tuple[str, re.Pattern], ...] = tuple((name, re.compile(pattern)) for name, pattern in (
    ("collective", r"all-reduce|all-gather|reduce-scatter|all-to-all|collective|nccl"),
    ("attention", r"cudnn|flash|fmha|attention|softmax"),
    ("matmul", r"gemm|dot|matmul|xmma|cutlass|cublas|convolution"),
    ("copy", r"copy|transpose|memcpy|memset|dynamic-update-slice|slice"),
    ("reduce", r"reduce"),
    ("fusion", r"fusion|loop|input_|elementwise"),
))
# Events that mark time, or enclose the operations (XLA CPU's executor), rather than spend it.
_IGNORED = re.compile(r"^(end: |ThreadpoolListener|ThunkExecutor::)|::Await$")


def category(name: str) -> str:
    """The kind of operation `name` is, by `CATEGORIES`, else "other".

    >>> category("sm90_xmma_gemm_bf16bf16_bf16f32"), category("loop_add_fusion"), category("foo")
    ('matmul', 'fusion', 'other')
    """
    lowered = name.lower()
    return next((kind for kind, pattern in CATEGORIES if pattern.search(lowered)), "other")


def summarize_trace(path: str | Path, steps: int, top: int = 15) -> dict[str, Any]:
    """The summary of a Perfetto trace (``*.trace.json.gz``) of `steps` steps (module doc)."""
    with gzip.open(path, "rt") as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    processes = {e["pid"]: e["args"]["name"] for e in events
                 if e.get("ph") == "M" and e.get("name") == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    devices = {pid for pid, name in processes.items() if name.startswith("/device:")}
    # Python's threads ("python", "python3.11", ...; the ones with the tracer's "$file:line"
    # events) dispatch and wait; XLA's own threads run the operations.
    python = {key for key, name in threads.items() if name.startswith("python")}
    python |= {(e["pid"], e.get("tid")) for e in events
               if e.get("ph") == "X" and e.get("name", "").startswith("$")}

    def counted(event: dict) -> bool:
        if event.get("ph") != "X" or _IGNORED.search(event.get("name", "")):
            return False
        if devices:
            return event["pid"] in devices
        return (event["pid"], event.get("tid")) not in python

    total_us: dict[str, float] = collections.Counter()
    count: dict[str, int] = collections.Counter()
    for event in filter(counted, events):
        total_us[event["name"]] += float(event.get("dur", 0.0))
        count[event["name"]] += 1
    overall = sum(total_us.values())
    shares: dict[str, float] = collections.Counter()
    for name, us in total_us.items():
        shares[category(name)] += us / overall if overall else 0.0
    ranked = sorted(total_us.items(), key=lambda item: -item[1])[:top]
    return {
        "trace": str(path), "steps": steps, "op_ms_per_step": overall / 1e3 / steps,
        "by_category": dict(sorted(shares.items(), key=lambda item: -item[1])),
        "top_ops": [{"name": name, "category": category(name), "ms_per_step": us / 1e3 / steps,
                     "share": us / overall if overall else 0.0, "count": count[name] / steps}
                    for name, us in ranked],
    }


def profile_steps(one_step: Callable[[], None], out_dir: str | Path, steps: int = 2
                  ) -> dict[str, Any]:
    """Run `one_step` (which blocks until its step is done) `steps` times under the profiler;
    the summary of the trace written under `out_dir`."""
    import jax

    out_dir = Path(out_dir)
    before = set(out_dir.rglob("*.trace.json.gz")) if out_dir.exists() else set()
    with jax.profiler.trace(str(out_dir), create_perfetto_trace=True):
        for _ in range(steps):
            one_step()
    written = sorted(set(out_dir.rglob("*.trace.json.gz")) - before)
    if not written:
        raise RuntimeError(f"jax.profiler wrote no Perfetto trace under {out_dir}")
    return summarize_trace(written[-1], steps)


def profile_table(name: str, summary: dict[str, Any], top: int = 8) -> str:
    """A few Markdown lines: the category shares and the top ops of one system."""
    shares = ", ".join(f"{kind} {share:.0%}" for kind, share in summary["by_category"].items()
                       if share >= 0.005)
    lines = [f"**{name}**: {summary['op_ms_per_step']:.1f} ms of operations per step ({shares})",
             "", "| op | category | ms/step | share |", "|---|---|---|---|"]
    lines += [f"| `{op['name'][:60]}` | {op['category']} | {op['ms_per_step']:.2f} | "
              f"{op['share']:.1%} |" for op in summary["top_ops"][:top]]
    return "\n".join(lines)
