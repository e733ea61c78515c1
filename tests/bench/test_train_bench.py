"""``t2t bench train`` on tiny models: the JSON's structure and that every number is positive.

No timing assertions: the numbers of a tiny model on a shared CPU mean nothing; the committed
results are experiments/benchmarks/train_step_cpu.{json,md}.
"""

import json
import math
from pathlib import Path

import pytest

from t2t import cli
from t2t.bench import train as bench

TINY = {"vocab_size": 512}


def _tiny_specs(peers):
    return bench.cpu_systems("t5_1_1/tiny", 2, 32, 16, TINY, {"t2t_scan": {"scan_layers": True}},
                             peers)


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _check_timed(system, tokens_per_step=2 * (32 + 16)):
    for key in ("step_time_s", "tokens_per_s", "model_flops_per_step", "mfu", "parameters",
                "first_step_s", "loss_first", "loss_last"):
        assert _positive(system[key]), (key, system.get(key))
    assert system["tokens_per_step"] == tokens_per_step
    assert all(_positive(t) for r in system["step_times_s"] for t in r)


@pytest.fixture(scope="module")
def in_process():
    peers = [p for p in bench.PEERS if not bench.missing_peer_modules(p)]
    return bench.run_benchmark(_tiny_specs(peers), rounds=2, steps_per_round=1,
                               compile_layers=(1, 2), isolate=False), peers


def test_t2t_systems_report_positive_numbers(in_process):
    result, _ = in_process
    json.dumps(result)  # serialisable as is
    assert {"machine", "systems", "ratios", "peak_flops", "compile_scaling", "targets",
            "skipped", "reference"} <= set(result)
    for key in ("cpu_model", "cpu_family", "cpu_vector_flags", "cpu_cores", "jax", "flax",
                "load_average_before", "load_average_after", "date", "git_commit"):
        assert key in result["machine"], key
    assert _positive(result["peak_flops"]["value"])
    # The highest sample: noise only slows a matmul, and MFU against it is the safest.
    assert result["peak_flops"]["value"] == max(result["peak_flops"]["samples"])
    for name in ("t2t", "t2t_scan"):
        system = result["systems"][name]
        _check_timed(system)
        assert _positive(system["compile_s"])
        assert _positive(system["xla_flops_per_step"])
        assert _positive(system["xla_memory_per_device"]["peak_estimate_gib"])
        assert system["config"]["vocab_size"] == 512
    assert result["systems"]["t2t_scan"]["config"]["scan_layers"] is True
    # Both do the same work, so the same model FLOPs.
    assert (result["systems"]["t2t"]["model_flops_per_step"]
            == result["systems"]["t2t_scan"]["model_flops_per_step"])
    scaling = result["compile_scaling"]
    assert scaling["layers"] == [1, 2] and _positive(scaling["ratio"])
    assert all(_positive(s) for s in scaling["compile_s"].values())


@pytest.mark.parametrize("peer", bench.PEERS)
def test_peers_report_ratios(in_process, peer):
    for module in bench.PEER_MODULES[peer]:
        pytest.importorskip(module)
    result, _ = in_process
    system = result["systems"][peer]
    _check_timed(system)
    assert system["parameters"] == result["systems"]["t2t"]["parameters"]  # same shapes
    assert _positive(result["ratios"][f"ratio_vs_{peer}"])
    assert _positive(result["ratios"][f"ratio_vs_{peer}_paired_rounds_median"])


def test_isolated_worker_reports_its_memory():
    specs = bench.cpu_systems("t5_1_1/tiny", 2, 32, 16, TINY, peers=())
    result = bench.run_benchmark(specs, rounds=1, compile_layers=None, isolate=True)
    system = result["systems"]["t2t"]
    _check_timed(system)
    assert _positive(system["peak_rss_gib"]) and system["peak_rss_delta_gib"] >= 0
    assert system["peak_rss_gib"] >= system["rss_after_imports_gib"]


def test_gpu_preset_smoke_runs_on_cpu():
    """The GPU preset's models (bf16, scan, minimal remat, the fused dot-product attention kernel)."""
    specs = bench.gpu_systems(smoke=True)
    result = bench.run_benchmark(specs, rounds=1, steps_per_round=1, alternate=False,
                                 compile_layers=None, isolate=False, reference=specs[0].name)
    assert not result["skipped"]
    for spec in specs:
        system = result["systems"][spec.name]
        _check_timed(system, spec.case.tokens_per_step)
        assert system["config"]["dtype"] == "bfloat16" and system["config"]["scan_layers"]
        assert system["config"]["remat_policy"] == "minimal"
        assert system["config"]["attention_kernel"] == "dot_product"


def test_gpu_variants_copy_each_system_with_their_fields():
    specs = bench._with_variants(bench.gpu_systems(smoke=True), {"remat_policy": "full"},
                                 {"einsum": {"attention_kernel": "einsum"}})
    assert [s.name for s in specs] == ["t2t_t5_1_1_base_bf16", "t2t_t5_1_1_base_bf16+einsum",
                                       "t2t_decoder_1b_bf16", "t2t_decoder_1b_bf16+einsum"]
    for spec in specs:
        fields = dict(spec.case.overrides)
        assert fields["remat_policy"] == "full"
        assert fields["attention_kernel"] == ("einsum" if spec.name.endswith("+einsum")
                                              else "dot_product")


def test_a_variant_may_set_the_batch_size():
    specs = bench._with_variants(bench.gpu_systems(smoke=True), {},
                                 {"b4": {"batch_size": 4, "remat_policy": "full"}})
    base, doubled = specs[0], specs[1]
    assert (base.case.batch_size, doubled.case.batch_size) == (2, 4)
    assert dict(doubled.case.overrides)["remat_policy"] == "full"
    assert "batch_size" not in dict(doubled.case.overrides)  # not a TransformerConfig field
    cpu = bench.cpu_systems("t5_1_1/tiny", 2, 32, 16, {"vocab_size": 512},
                            {"b8": {"batch_size": 8}}, peers=())
    assert [(s.name, s.case.batch_size) for s in cpu] == [("t2t", 2), ("b8", 8)]
    assert cpu[1].case.tokens_per_step == 8 * (32 + 16)


def test_full_size_gpu_specs_are_the_intended_models():
    from t2t.models.flops import count_params

    t5, lm = bench.gpu_systems()
    assert t5.case.size == "t5_1_1/base" and t5.case.lengths == {"inputs": 512, "targets": 114}
    config = lm.case.config()
    assert config.family == "decoder_only" and config.position_embedding == "learned"
    assert 0.9e9 < count_params(config) < 1.2e9


def test_cli_writes_json_and_markdown(tmp_path, capsys):
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    code = cli.main(["bench", "train", "--smoke", "--peers", "none", "--compile_layers", "none",
                     "--no_isolate", "--out", str(out), "--md", str(md),
                     "--profile", str(tmp_path / "profile")])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["smoke"] and _positive(result["systems"]["t2t"]["tokens_per_s"])
    assert "| t2t |" in capsys.readouterr().out
    assert "| t2t |" in md.read_text()
    # --profile: where each JAX system's step time went, from a trace kept on disk.
    profile = result["systems"]["t2t"]["profile"]
    assert _positive(profile["op_ms_per_step"]) and profile["top_ops"]
    assert sum(profile["by_category"].values()) == pytest.approx(1.0)
    assert str(tmp_path / "profile" / "t2t") in profile["trace"]
    assert "Where the time goes" in md.read_text()
    # The compiled program, saved beside the trace, names every traced operation.
    assert (Path(profile["trace"]).parent / "program.hlo.txt").is_file()
    assert all("phase" in op for op in profile["top_ops"])
    assert sum(profile["by_phase"].values()) == pytest.approx(1.0)
    assert {"forward", "backward", "update"} <= set(profile["by_phase"])
    assert len(profile["step_ms"]) == profile["steps"]
