"""Sweep definitions: validation, sweep files, the flags gin reads back, after-commands, ingest."""

import json
import sys

import gin
import pytest
from sweep_fakes import write_sweep_file

from t2t.configuration import parse_gin
from t2t.sweeps.commands import after_commands, train_flags
from t2t.sweeps.ingest import ingest
from t2t.sweeps.spec import Sweep, Trial
from t2t.sweeps.store import ResultsStore
from t2t.sweeps.sweep_file import SweepFileError, load_sweep


@pytest.mark.parametrize("make, message", [
    (lambda: Sweep("s", [Trial("a"), Trial("a")]), "duplicate trial names"),
    (lambda: Sweep("s", []), "no trials"),
    (lambda: Trial("a b"), "folder name"),
    (lambda: Trial("a", bindings={"SEED": 1}), "runner sets"),
    (lambda: Sweep("s", [Trial("a")], bindings={"MODEL_DIR": "x"}), "runner sets"),
    (lambda: Trial("a", bindings={"not a name": 1}), "not a gin name"),
    (lambda: Trial("a", after=("eval {model}",)), r"placeholders are \{model_dir\}"),
    (lambda: Trial("a", after="eval {model_dir}"), "tuple of command templates"),
    (lambda: Sweep("s", [Trial("a")], directions={"loss": "down"}), "lower"),
])
def test_invalid_definitions_say_what_is_wrong(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_runs_are_trials_times_their_seeds_seed_major():
    """Every trial's first seed before any second seed: a half-done sweep is a whole table."""
    sweep = Sweep("s", [Trial("a"), Trial("b", seeds=(5,)), Trial("c")], seeds=(0, 1))
    assert [(t.name, s) for t, s in sweep.runs()] == [("a", 0), ("b", 5), ("c", 0), ("a", 1),
                                                      ("c", 1)]


@pytest.mark.parametrize("source, message", [
    (None, "not found"),
    ("X = 1\n", "defines no SWEEP"),
    ("SWEEP = {'name': 'x'}\n", "is a dict, not a t2t.sweeps.spec.Sweep"),
    ("from t2t.sweeps.spec import Sweep, Trial\n\nSWEEP = Sweep('s', [Trial('a', seeds=[1]),\n"
     "                          Trial('a')])\n", r"line 3\): ValueError: .*duplicate"),
    ("SWEEP = (\n", "SyntaxError"),
])
def test_sweep_file_errors(tmp_path, source, message):
    path = tmp_path / "sweep.py"
    if source is not None:
        path.write_text(source)
    with pytest.raises(SweepFileError, match=message):
        load_sweep(path)


def test_a_bad_sweep_file_exits_2_with_the_reason(tmp_path, capsys):
    from t2t.sweeps import cli

    (tmp_path / "sweep.py").write_text("X = 1\n")
    for command in ("run", "launch", "ingest", "report"):
        extra = ["--target", "tpu"] if command == "launch" else []
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, str(tmp_path / "sweep.py"), *extra])
        assert exit_info.value.code == 2 and "defines no SWEEP" in capsys.readouterr().err


def test_gin_reads_back_every_binding_as_written(tmp_path):
    """The flags go through t2t's real gin parsing and give back the sweep's Python values."""
    bindings = {"TRAIN_STEPS": 7, "TASK_FEATURE_LENGTHS": {"inputs": 64, "targets": 8},
                "PARTITIONING": "fsdp", "VOCABULARY": None, "model_config.dropout_rate": 0.25,
                "model_config.mlp_activations": ("relu",), "train.optimizer": "@adafactor",
                "model_config.scan_layers": True}
    sweep = Sweep("s", [Trial("t", ("experiments/t5_table2/encoder_decoder-denoising.gin",),
                              bindings)])
    model_dir = str(tmp_path / "it's a dir")
    flags = train_flags(sweep, sweep.trials[0], 3, model_dir)
    try:
        parse_gin([flags[0].split("=", 1)[1]], [f[len("--gin."):] for f in flags[1:]])
        read = {name: gin.query_parameter(name if "." in name else f"%{name}")
                for name in [*bindings, "SEED", "MODEL_DIR"]}
    finally:
        gin.clear_config()
    assert str(read.pop("train.optimizer")) == "@adafactor"
    expected = {**bindings, "SEED": 3, "MODEL_DIR": model_dir}
    del expected["train.optimizer"]
    assert read == expected


def test_after_commands_keep_each_word_whole():
    trial = Trial("t", after=("{python} eval.py --dir={model_dir} --tag='{trial} {seed}'",))
    command, = after_commands(trial, 4, "runs/my sweep/t/seed_4", "runs/my sweep")
    assert command == [sys.executable, "eval.py", "--dir=runs/my sweep/t/seed_4", "--tag=t 4"]


def test_ingest_records_finished_remote_runs_only(tmp_path):
    sweep = load_sweep(write_sweep_file(tmp_path, 'Trial("a", tags={"k": 1})', seeds=(0, 1, 2)))
    sweep_dir = tmp_path / "sweep"
    for seed, last_step in ((0, 10), (1, 5)):  # seed 0 finished, 1 stopped at step 5, 2 absent
        run_dir = sweep_dir / "a" / f"seed_{seed}"
        run_dir.mkdir(parents=True)
        (run_dir / "config.gin").write_text("TRAIN_STEPS = 10\ntrain.train_steps = %TRAIN_STEPS\n")
        (run_dir / "metrics.jsonl").write_text(
            json.dumps({"step": last_step, "split": "validation", "loss": 2.0}) + "\n")
    recorded, waiting = ingest(sweep, sweep_dir)
    assert (recorded, waiting) == (["a/seed_0"], ["a/seed_1", "a/seed_2"])
    with ResultsStore(sweep_dir) as store:
        assert store.statuses() == {("a", 0): "done"}
        assert store.runs()[0]["tags"] == {"k": 1}
        assert store.results() == [("a", 0, "validation", "loss", 10, 2.0)]
    assert ingest(sweep, sweep_dir) == ([], ["a/seed_1", "a/seed_2"])  # done stays done
