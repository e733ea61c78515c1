"""The T5 reproduction sweeps at both scales: every run's flags, and its downstream fine-tuning's,
are a complete gin configuration of the model and settings the scale promises."""

from pathlib import Path

import gin
import pytest

from t2t.configuration import parse_gin, split_gin_flags
from t2t.sweeps.commands import after_commands, train_flags
from t2t.sweeps.scales import PAPER_TASKS, SCALE_ENV, current_scale
from t2t.sweeps.sweep_file import load_sweep

ROOT = Path(__file__).resolve().parents[2]
SWEEP_FILES = ("experiments/t5_table2/sweep.py", "experiments/t5_objectives/sweep.py")


def _bound(key: str):
    """The value bound to `key`, following macro references (`train.seed = %SEED`)."""
    value = gin.query_parameter(key)
    while isinstance(value, gin.config.ConfigurableReference) and value.selector == "gin.macro":
        value = gin.query_parameter(f"{'/'.join(value.scopes)}/gin.macro.value")
    return value


def _configure(flags: list[str]) -> None:
    files, bindings, rest = split_gin_flags(flags)
    assert rest == []
    parse_gin(files, bindings)  # raises on an unknown binding or an unset required macro


def _objective_of(experiment_gin: str) -> str:
    """The objective an experiment file trains, read alone (this clears gin)."""
    parse_gin([experiment_gin], [], finalize=False)
    return gin.query_parameter("train.objective").selector


@pytest.fixture
def paper(monkeypatch):
    monkeypatch.setenv(SCALE_ENV, "paper")
    yield
    gin.clear_config()


def _architecture(trial) -> str:
    return trial.tags.get("architecture", "encoder_decoder")


@pytest.mark.parametrize("sweep_file", SWEEP_FILES)
def test_paper_scale_runs_the_papers_models_and_settings_on_c4(sweep_file, paper, tmp_path):
    sweep = load_sweep(ROOT / sweep_file)
    for trial in sweep.trials:
        _configure(train_flags(sweep, trial, 0, str(tmp_path / trial.name)))
        assert _bound("model_config.size") == f"t5_table2/{_architecture(trial)}"
        assert _bound("train.train_steps") == 2 ** 19 and _bound("train.batch_size") == 128
        assert _bound("train.data_source").startswith("tfds:c4/en")
        assert _bound("train.task_feature_lengths") == {"inputs": 512, "targets": 512}
        # The experiment's objective is kept.
        assert (gin.query_parameter("train.objective").selector
                == _objective_of(trial.gin_files[0]))
    # Each run is fine-tuned from its own checkpoint on every task of the paper, same model.
    trial = sweep.trials[0]
    commands = after_commands(trial, 1, str(tmp_path / "run"), str(tmp_path))
    finetunes = [c for c in commands if c[3] == "train"]
    assert [c[3] for c in commands] == ["train", "eval"] * len(PAPER_TASKS)
    _configure(finetunes[0][4:])
    assert _bound("model_config.size") == f"t5_table2/{_architecture(trial)}"
    assert _bound("train.initial_checkpoint_path") == str(tmp_path / "run")
    assert _bound("train.data_source") == f"task:{PAPER_TASKS[0]}"
    assert _bound("train.train_steps") == 2 ** 18


@pytest.mark.parametrize("sweep_file", SWEEP_FILES)
def test_cpu_scale_runs_the_experiment_files_on_the_local_corpus(sweep_file, monkeypatch, tmp_path):
    monkeypatch.delenv(SCALE_ENV, raising=False)
    assert current_scale().name == "cpu"
    sweep = load_sweep(ROOT / sweep_file)
    try:
        for trial in sweep.trials:
            assert trial.gin_files == (f"experiments/{sweep.name}/{trial.name}.gin",)
            _configure(train_flags(sweep, trial, 0, str(tmp_path / trial.name)))
            assert _bound("model_config.size") == f"t5_table2_tiny/{_architecture(trial)}"
            assert _bound("train.train_steps") == 200
            assert _bound("train.data_source") == "local:~/.cache/t2t/local_corpus"
        # Every run is fine-tuned on, and scores, the five tasks of the offline suite: the topic
        # labels by rank classification, descriptions and translations by generation.
        commands = after_commands(trial, 0, str(tmp_path / trial.name), str(tmp_path))
        assert [c[3] for c in commands] == ["train", "eval"] * 5
        for (finetune, evaluate), (task, targets) in zip(
                zip(commands[::2], commands[1::2]),
                [("wiki_topic", 16), ("wiki_description", 32), ("gettext_ende", 64),
                 ("gettext_enfr", 64), ("gettext_enro", 64)]):
            _configure(finetune[4:])
            assert _bound("train.data_source") == f"~/.cache/t2t/eval_suite/{task}/{{split}}.jsonl"
            assert _bound("train.task_feature_lengths")["targets"] == targets
            assert _bound("model_config.size") == f"t5_table2_tiny/{_architecture(trial)}"
            assert f"--task={task}" in evaluate
            assert ("--rank_classification" in evaluate) == (task == "wiki_topic")
    finally:
        gin.clear_config()


def test_an_unknown_scale_names_the_choices(monkeypatch):
    monkeypatch.setenv(SCALE_ENV, "pod")
    with pytest.raises(ValueError, match=r"T2T_SWEEP_SCALE='pod' is not a scale; use one of \['cpu', 'paper'\]"):
        current_scale()
