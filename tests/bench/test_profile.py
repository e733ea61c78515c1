"""The profile summary of `t2t bench train --profile`: which events count, categories, shares."""

import gzip
import json

import pytest

from t2t.bench.profile import category, summarize_trace


def _trace(tmp_path, events, processes, threads):
    meta = ([{"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}}
             for pid, name in processes.items()]
            + [{"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}
               for (pid, tid), name in threads.items()])
    path = tmp_path / "host.trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": meta + [{"ph": "X", **e} for e in events]}, f)
    return path


def test_on_a_cpu_xla_threads_count_and_python_does_not(tmp_path):
    path = _trace(tmp_path, [
        {"pid": 1, "tid": 10, "name": "dot.3", "dur": 600.0},
        {"pid": 1, "tid": 11, "name": "dot.3", "dur": 200.0},  # another XLA thread
        {"pid": 1, "tid": 10, "name": "loop_add_fusion", "dur": 200.0},
        {"pid": 1, "tid": 10, "name": "end: loop_add_fusion", "dur": 1.0},  # a marker
        {"pid": 1, "tid": 10, "name": "ThunkExecutor::Execute", "dur": 1000.0},  # encloses them
        {"pid": 1, "tid": 11, "name": "SlinkyThreadPool::Await", "dur": 300.0},  # waits
        {"pid": 1, "tid": 99, "name": "PjitFunction(step)", "dur": 5000.0},  # Python's
        {"pid": 1, "tid": 98, "name": "$train.py:301 _one_step", "dur": 5000.0},  # a worker's
        {"pid": 1, "tid": 98, "name": "np.asarray(jax.Array)", "dur": 5000.0},  # main thread
    ], {1: "/host:CPU"}, {(1, 10): "tf_XLAEigen/1", (1, 11): "tf_XLAEigen/2", (1, 99): "python",
                          (1, 98): "MainThread"})
    summary = summarize_trace(path, steps=2)
    assert summary["op_ms_per_step"] == pytest.approx(0.5)  # 1000 us over 2 steps
    assert summary["by_category"] == pytest.approx({"matmul": 0.8, "fusion": 0.2})
    assert [(op["name"], op["count"]) for op in summary["top_ops"]] == [("dot.3", 1.0),
                                                                        ("loop_add_fusion", 0.5)]


def test_on_an_accelerator_only_device_kernels_count(tmp_path):
    path = _trace(tmp_path, [
        {"pid": 2, "tid": 1, "name": "sm90_xmma_gemm_bf16", "dur": 300.0},
        {"pid": 2, "tid": 2, "name": "cudnn_flash_fprop", "dur": 100.0},
        {"pid": 1, "tid": 5, "name": "ThunkExecutor::Execute", "dur": 9000.0},  # host side
    ], {1: "/host:CPU", 2: "/device:GPU:0"}, {(1, 5): "tf_XLA/1", (2, 1): "s1", (2, 2): "s2"})
    summary = summarize_trace(path, steps=1)
    assert summary["by_category"] == pytest.approx({"matmul": 0.75, "attention": 0.25})
    assert summary["op_ms_per_step"] == pytest.approx(0.4)


@pytest.mark.parametrize("name,kind", [
    ("all-reduce.1", "collective"), ("ncclAllReduceKernel", "collective"),
    ("cudnn$fmha", "attention"), ("softmax_fusion", "attention"), ("cutlass_80_gemm", "matmul"),
    ("copy_transpose_fusion", "copy"), ("input_reduce_fusion", "reduce"),
    ("convert_fusion", "fusion"), ("rng-bit-generator", "other")])
def test_categories_by_name(name, kind):
    assert category(name) == kind
