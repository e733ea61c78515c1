"""Where a training step's time goes: a `jax.profiler` trace of a few steps, summarised.

`t2t bench train --profile DIR` traces each JAX system after its timed rounds and stores the
summary in the JSON, so one run on a lent accelerator says both how fast a step is and which
operations to work on next, without a second session to open the trace:

    {"trace": "DIR/t2t/plugins/profile/.../host.trace.json.gz", "steps": 2,
     "op_ms_per_step": 812.4,                      # summed over streams or threads
     "step_ms": [431.0, 402.2],                    # each traced step, first op to last
     "by_category": {"matmul": 0.61, "attention": 0.12, "elementwise": 0.19, ...},   # shares
     "by_phase": {"backward": 0.58, "forward": 0.31, "update": 0.11},
     "by_module": [{"module": "lm_head", "phase": "backward", "ms_per_step": 61.0,
                    "share": 0.075}, ...],
     "top_ops": [{"name": "fusion.147", "category": "matmul", "ms_per_step": 82.3, "share": 0.10,
                  "count": 1.0, "phase": "forward", "module": "decoder/layers_*/mlp/wo",
                  "shape": "bf16[8,512,768]"}, ...]}

What is counted: on an accelerator, the kernels on the device (processes named ``/device:...``);
on a CPU, the XLA operations that run on XLA's own threads (not Python's, which dispatch). Op time
is summed over streams or threads, so with parallel execution it exceeds the step time; shares
are of that sum. Events are grouped by the HLO instruction they ran (``args.hlo_op``; several
GPU kernels can run one). Given the compiled program (`t2t.bench.hlo_ops.parse_hlo` of
``compiled.as_text()``), each instruction's category, pass and model module come from the program
itself; without it the category is guessed from the name (`CATEGORIES`) and the by-phase and
by-module breakdowns are left out.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from t2t.bench.hlo_ops import HloOp, parse_hlo

# First match wins: (category, pattern on the lowercased op name).
CATEGORIES: tuple[tuple[str, re.Pattern], ...] = tuple((name, re.compile(pattern)) for name, pattern in (
    ("collective", r"all-reduce|all-gather|reduce-scatter|all-to-all|collective|nccl"),
    ("attention", r"cudnn|flash|fmha|attention|softmax"),
    ("matmul", r"gemm|dot|matmul|xmma|cutlass|cublas|nvjet|convolution"),
    ("copy", r"copy|transpose|memcpy|memset|dynamic-update-slice|slice"),
    ("reduce", r"reduce"),
    ("fusion", r"fusion|loop|input_|elementwise"),
))
# Events that mark time, or enclose the operations (XLA CPU's executor), rather than spend it.
# by_module's name for operations that name no module of the model (optimizer, loss sums).
OUTSIDE = "(outside the model)"
_IGNORED = re.compile(r"^(end: |ThreadpoolListener|ThunkExecutor::)|::Await$")


def category(name: str) -> str:
    """The kind of operation `name` is, by `CATEGORIES`, else "other".

    >>> category("sm90_xmma_gemm_bf16bf16_bf16f32"), category("loop_add_fusion"), category("foo")
    ('matmul', 'fusion', 'other')
    """
    lowered = name.lower()
    return next((kind for kind, pattern in CATEGORIES if pattern.search(lowered)), "other")


def _event_op(event: dict, ops: Mapping[str, HloOp]) -> str:
    """The HLO instruction an event ran (``args.hlo_op``), else the event's own name.

    Inside a CUDA graph (XLA's command buffers, on by default on GPUs) ``hlo_op`` names the
    graph (``command_buffer_376``), not the instruction; the kernel's own name then stands in: an
    XLA fusion's kernel is the instruction's name with "_" for "." (``loop_add_fusion_3`` ran
    ``loop_add_fusion.3``), a library kernel (cuBLAS ``nvjet_...``, cuDNN ``cudnn_...``) keeps its
    name and only its category is known.
    """
    hlo_op = event.get("args", {}).get("hlo_op")
    if hlo_op and not hlo_op.startswith("command_buffer"):
        return hlo_op
    name = event["name"]
    dotted = re.sub(r"_(\d+)$", r".\1", name)
    return dotted if name not in ops and dotted in ops else name


def summarize_trace(path: str | Path, steps: int, ops: Mapping[str, HloOp] | None = None,
                    top: int = 15) -> dict[str, Any]:
    """The summary of a Perfetto trace (``*.trace.json.gz``) of `steps` steps (module doc);
    `ops` is the traced program's `parse_hlo`, which names what each operation is."""
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

    ops = ops or {}
    total_us: dict[str, float] = collections.Counter()
    count: dict[str, int] = collections.Counter()
    # One run of a program (its step): [first start, last end], by (program, run id).
    runs: dict[tuple[str, str], list[float]] = {}
    module_us: dict[str, float] = collections.Counter()
    for event in filter(counted, events):
        name = _event_op(event, ops)
        total_us[name] += float(event.get("dur", 0.0))
        count[name] += 1
        args = event.get("args", {})
        if "run_id" in args:
            module_us[args.get("hlo_module", "")] += float(event.get("dur", 0.0))
            start, end = float(event["ts"]), float(event["ts"]) + float(event.get("dur", 0.0))
            span = runs.setdefault((args.get("hlo_module", ""), args["run_id"]), [start, end])
            span[0], span[1] = min(span[0], start), max(span[1], end)
    overall = sum(total_us.values()) or 1.0

    def kind(name: str) -> str:
        return ops[name].category if name in ops else category(name)

    def shares_by(key: Callable[[str], str]) -> dict[str, float]:
        shares: dict[str, float] = collections.Counter()
        for name, us in total_us.items():
            shares[key(name)] += us / overall
        return dict(sorted(((k, v) for k, v in shares.items() if v > 0), key=lambda kv: -kv[1]))

    def per_step(us: float) -> float:
        return us / 1e3 / steps

    def op_entry(name: str, us: float) -> dict[str, Any]:
        entry = {"name": name, "category": kind(name), "ms_per_step": per_step(us),
                 "share": us / overall, "count": count[name] / steps}
        if name in ops:
            entry.update(phase=ops[name].phase, module=ops[name].module, shape=ops[name].shape)
        return entry

    summary: dict[str, Any] = {"trace": str(path), "steps": steps,
                               "op_ms_per_step": per_step(sum(total_us.values()))}
    # The step's program is the one that took the most time; one run of it per step, its span
    # (first operation's start to last one's end) is the step as the device saw it.
    main = max(module_us, key=module_us.get) if module_us else None
    spans = sorted(span for (module, _), span in runs.items() if module == main)
    if main is not None and len(spans) == steps:
        summary["step_ms"] = [round((end - start) / 1e3, 3) for start, end in spans]
    summary["by_category"] = shares_by(kind)
    if ops and any(name in ops for name in total_us):
        summary["by_phase"] = shares_by(lambda n: ops[n].phase if n in ops else "unknown")
        modules: dict[tuple[str, str], float] = collections.Counter()
        for name, us in total_us.items():
            op = ops.get(name)
            modules[(op.module or OUTSIDE, op.phase) if op else ("unknown", "unknown")] += us
        summary["by_module"] = [
            {"module": module, "phase": phase, "ms_per_step": per_step(us), "share": us / overall}
            for (module, phase), us in sorted(modules.items(), key=lambda item: -item[1])[:top]
            if us > 0]
    summary["top_ops"] = [op_entry(name, us) for name, us in
                          sorted(total_us.items(), key=lambda item: -item[1])[:top]]
    return summary


def profile_steps(one_step: Callable[[], None], out_dir: str | Path, steps: int = 2,
                  hlo_text: str | None = None) -> dict[str, Any]:
    """Run `one_step` (which blocks until its step is done) `steps` times under the profiler;
    the summary of the trace written under `out_dir`. `hlo_text` is the step's compiled program
    (``compiled.as_text()``); it is also written beside the trace, as ``program.hlo.txt``."""
    import jax

    out_dir = Path(out_dir)
    before = set(out_dir.rglob("*.trace.json.gz")) if out_dir.exists() else set()
    with jax.profiler.trace(str(out_dir), create_perfetto_trace=True):
        for _ in range(steps):
            one_step()
    written = sorted(set(out_dir.rglob("*.trace.json.gz")) - before)
    if not written:
        raise RuntimeError(f"jax.profiler wrote no Perfetto trace under {out_dir}")
    if hlo_text is None:
        return summarize_trace(written[-1], steps)
    (written[-1].parent / "program.hlo.txt").write_text(hlo_text)
    return summarize_trace(written[-1], steps, parse_hlo(hlo_text))


def profile_table(name: str, summary: dict[str, Any], top: int = 8) -> str:
    """A few Markdown lines for one system: the shares by category (and by pass), the modules that
    take the most time (where the program was given) and the top operations."""

    def shares(key: str) -> str:
        return ", ".join(f"{kind} {share:.0%}" for kind, share in summary[key].items()
                         if share >= 0.005)

    spans = [f"{ms:.0f}" if ms >= 10 else f"{ms:.2f}" for ms in summary.get("step_ms", [])]
    steps = f"; steps {', '.join(spans)} ms" if spans else ""
    lines = [f"**{name}**: {summary['op_ms_per_step']:.1f} ms of operations per step{steps} "
             f"({shares('by_category')})"]
    if "by_phase" in summary:
        lines += ["", f"By pass: {shares('by_phase')}. Modules that take the most time:", "",
                  "| module | pass | ms/step | share |", "|---|---|---|---|"]
        lines += [f"| `{m['module']}` | {m['phase']} | {m['ms_per_step']:.1f} | {m['share']:.1%} |"
                  for m in summary["by_module"][:top]]
    lines += ["", "| op | what | category | ms/step | share |", "|---|---|---|---|---|"]
    lines += [f"| `{op['name'][:60]}` | {_what(op)} | {op['category']} | {op['ms_per_step']:.2f} | "
              f"{op['share']:.1%} |" for op in summary["top_ops"][:top]]
    return "\n".join(lines)


def _what(op: dict[str, Any]) -> str:
    """"backward `lm_head` f32[912,512]": an operation's pass, module and shape, where known."""
    if "phase" not in op:
        return ""
    return f"{op['phase']} `{op['module'] or OUTSIDE}` {op['shape']}"


def main(argv: list[str] | None = None) -> int:
    """Summarise a saved trace again, e.g. with the program that `profile_steps` wrote beside it:

        python -m t2t.bench.profile DIR/.../host.trace.json.gz --steps 2 \\
            --hlo DIR/.../program.hlo.txt
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m t2t.bench.profile", description=main.__doc__)
    parser.add_argument("trace", help="a jax.profiler Perfetto trace (*.trace.json.gz)")
    parser.add_argument("--steps", type=int, required=True, help="how many steps it traced")
    parser.add_argument("--hlo", default=None,
                        help="the traced program's text (compiled.as_text()); default the "
                             "program.hlo.txt beside the trace, if there is one")
    parser.add_argument("--name", default="profile", help="the heading of the Markdown summary")
    parser.add_argument("--json", default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    hlo = Path(args.hlo) if args.hlo else Path(args.trace).parent / "program.hlo.txt"
    ops = parse_hlo(hlo.read_text()) if hlo.exists() else None
    summary = summarize_trace(args.trace, args.steps, ops)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    print(profile_table(args.name, summary, top=12))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
