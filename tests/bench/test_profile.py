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


def test_with_the_program_ops_are_named_by_pass_and_module(tmp_path):
    """Two GPU kernels of one HLO fusion count as that fusion; the program says what it is."""
    from t2t.bench.hlo_ops import HloOp
    from t2t.bench.profile import OUTSIDE, profile_table

    def kernel(name, op, ts, dur, run):
        return {"pid": 2, "tid": 1, "name": name, "ts": ts, "dur": dur,
                "args": {"hlo_op": op, "hlo_module": "jit_train_step", "run_id": run}}

    path = _trace(tmp_path, [
        kernel("sm90_xmma_gemm", "fusion.7", 0.0, 300.0, "a"),
        kernel("cutlass_splitk_reduce", "fusion.7", 300.0, 100.0, "a"),
        kernel("loop_multiply_fusion", "fusion.9", 400.0, 100.0, "a"),
        kernel("sm90_xmma_gemm", "fusion.7", 1000.0, 300.0, "b"),
        kernel("cutlass_splitk_reduce", "fusion.7", 1300.0, 100.0, "b"),
        kernel("loop_multiply_fusion", "fusion.9", 1400.0, 100.0, "b"),
        {"pid": 2, "tid": 1, "name": "memset", "ts": 0.0, "dur": 0.0,  # another program
         "args": {"hlo_op": "x", "hlo_module": "jit_other", "run_id": "c"}},
    ], {2: "/device:GPU:0"}, {(2, 1): "stream 7"})
    ops = {"fusion.7": HloOp("fusion.7", "fusion", "bf16[8,512,768]", "matmul", "backward",
                             "decoder/layers_*/mlp/wo", "jit(step)/transpose(jvp(M))/..."),
           "fusion.9": HloOp("fusion.9", "fusion", "f32[768]", "elementwise", "update", "",
                             "jit(step)/mul")}
    summary = summarize_trace(path, steps=2, ops=ops)
    assert summary["step_ms"] == [0.5, 0.5]  # first kernel's start to last one's end, per run
    assert summary["by_category"] == pytest.approx({"matmul": 0.8, "elementwise": 0.2})
    assert summary["by_phase"] == pytest.approx({"backward": 0.8, "update": 0.2})
    assert [(m["module"], m["phase"]) for m in summary["by_module"]] == [
        ("decoder/layers_*/mlp/wo", "backward"), (OUTSIDE, "update")]
    top = summary["top_ops"][0]
    assert (top["name"], top["count"], top["ms_per_step"]) == ("fusion.7", 2.0, pytest.approx(0.4))
    assert top["shape"] == "bf16[8,512,768]"
    table = profile_table("t2t", summary)
    assert "| `fusion.7` | backward `decoder/layers_*/mlp/wo` bf16[8,512,768] | matmul |" in table
    assert "steps 0.50, 0.50 ms" in table and "By pass: backward 80%, update 20%" in table


def test_inside_cuda_graphs_kernels_name_their_fusions(tmp_path):
    """With XLA's command buffers every kernel's hlo_op names the graph; an XLA fusion's kernel
    name ("loop_add_fusion_3") still names its instruction ("loop_add_fusion.3"), a library
    kernel keeps its own name and its category."""
    from t2t.bench.hlo_ops import HloOp

    def kernel(name, dur):
        return {"pid": 2, "tid": 1, "name": name, "ts": 0.0, "dur": dur,
                "args": {"hlo_op": "command_buffer_376", "hlo_module": "jit_train_step"}}

    path = _trace(tmp_path, [kernel("loop_add_fusion_3", 100.0), kernel("loop_add_fusion", 50.0),
                             kernel("nvjet_sm90_tst_128x160_64x5_2x1_v_bz_NNT", 250.0),
                             kernel("cudnn_generated_fort_native_sdpa_sm90_flash_bprop", 100.0)],
                  {2: "/device:GPU:0"}, {(2, 1): "stream 7"})
    ops = {name: HloOp(name, "fusion", "bf16[8,512,768]", "elementwise", "forward", "encoder", "")
           for name in ("loop_add_fusion.3", "loop_add_fusion")}
    summary = summarize_trace(path, steps=1, ops=ops)
    assert {op["name"] for op in summary["top_ops"]} == {
        "loop_add_fusion.3", "loop_add_fusion", "nvjet_sm90_tst_128x160_64x5_2x1_v_bz_NNT",
        "cudnn_generated_fort_native_sdpa_sm90_flash_bprop"}
    assert summary["by_category"] == pytest.approx(
        {"matmul": 0.5, "elementwise": 0.3, "attention": 0.2})
    assert summary["by_phase"] == pytest.approx({"forward": 0.3, "unknown": 0.7})
