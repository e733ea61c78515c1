"""parse_gin: gin files and T5X-style --gin.NAME=VALUE bindings, with errors that name the fix."""

import re

import gin
import pytest

from t2t.configuration import (DEFAULT_GIN_FILE, REPO_GIN_DIR, ConfigError, call_configured,
                               parse_gin)
from t2t.models.config import model_config
from t2t.models.flops import count_params



def _is_elmo(path) -> bool:
    """ELMo's model files configure `elmo_config`, not the transformers' `model_config`."""
    return "elmo_config." in path.read_text()


MODEL_FILES = sorted(p.relative_to(REPO_GIN_DIR / "models")
                     for p in (REPO_GIN_DIR / "models").rglob("*.gin") if not _is_elmo(p))
ELMO_FILES = sorted(p.relative_to(REPO_GIN_DIR / "models")
                    for p in (REPO_GIN_DIR / "models").rglob("*.gin") if _is_elmo(p))
RUN_FILES = ["runs/pretrain.gin", "objectives/span_corruption.gin"]
REQUIRED = ["TRAIN_STEPS=1", "BATCH_SIZE=8", "TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 4}"]


@pytest.fixture(autouse=True)
def clear_gin():
    yield
    gin.clear_config()


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """Run from a directory without gin_configs/, so files must resolve from the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_experiment_parses():
    """Without gin files, the default experiment applies: tiny T5 v1.1, 600 steps, rsqrt, z-loss."""
    assert (REPO_GIN_DIR / DEFAULT_GIN_FILE).is_file()
    parse_gin([], [])
    assert gin.query_parameter("model_config.size") == "t5_1_1/tiny"
    assert gin.query_parameter("%TRAIN_STEPS") == 600
    assert gin.query_parameter("rsqrt_schedule.base") == 1.0
    assert gin.query_parameter("train.z_loss") == 1e-4


@pytest.mark.parametrize("binding, macro, value", [
    ("TRAIN_STEPS=7", "TRAIN_STEPS", 7),
    ("SEED=3", "SEED", 3),
    # What the shell passes on for T5X's --gin.MODEL_DIR="'runs/x'":
    ("MODEL_DIR='runs/x'", "MODEL_DIR", "runs/x"),
    ('MODEL_DIR="runs/x"', "MODEL_DIR", "runs/x"),
    ("MODEL_DIR=runs/x", "MODEL_DIR", "runs/x"),          # bare string
    ("PARTITIONING=fsdp", "PARTITIONING", "fsdp"),
    ("DATA_SOURCE=data/c4-*.json.gz", "DATA_SOURCE", "data/c4-*.json.gz"),
    ("MODEL_DIR=gs://bucket/run-1", "MODEL_DIR", "gs://bucket/run-1"),
    ("MODEL_DIR=None", "MODEL_DIR", None),
    ("TASK_FEATURE_LENGTHS={'inputs': 8, 'targets': 2}", "TASK_FEATURE_LENGTHS",
     {"inputs": 8, "targets": 2}),
])
def test_bindings_override_macros(binding, macro, value):
    """A --gin.MACRO=VALUE binding replaces the file's value; numbers stay numbers and strings may
    be quoted (as T5X's --gin.MODEL_DIR="'runs/x'" reaches the program) or bare."""
    parse_gin([], [binding])
    assert gin.query_parameter(f"%{macro}") == value


def test_later_bindings_win():
    """Bindings apply in order, so the last one for a name is the one that counts."""
    parse_gin([], ["TRAIN_STEPS=7", "TRAIN_STEPS=9", "train.log_every=3"])
    assert gin.query_parameter("%TRAIN_STEPS") == 9
    assert gin.query_parameter("train.log_every") == 3


@pytest.mark.parametrize("binding, pattern", [
    ("TRIAN_STEPS=5", r"TRIAN_STEPS.*Did you mean 'TRAIN_STEPS'"),
    ("trian.batch_size=2", r"'trian'.*Did you mean 'train'"),
    ("train.batch_szie=2", r"batch_szie.*Did you mean 'batch_size'"),
    ("TRAIN_STEPS", r"Malformed binding"),
])
def test_mistyped_bindings_raise_with_suggestion(binding, pattern):
    """An unknown macro, configurable or parameter (or no '=') is a ConfigError naming the mistake
    and, where there is one, the closest valid name."""
    with pytest.raises(ConfigError, match=pattern):
        parse_gin([], [binding])


def test_unset_required_macro_is_a_config_error():
    """A run file's %gin.REQUIRED macro left unset is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="TRAIN_STEPS"):
        parse_gin(["models/t5_1_1/tiny.gin", *RUN_FILES], [])


def test_missing_gin_file_is_named(elsewhere):
    """A gin file that does not exist raises a ConfigError naming it."""
    with pytest.raises(ConfigError, match=re.escape("experiments/no_such_run.gin")):
        parse_gin(["experiments/no_such_run.gin"], [])


@pytest.mark.parametrize("name", [DEFAULT_GIN_FILE, f"gin_configs/{DEFAULT_GIN_FILE}",
                                  str(REPO_GIN_DIR / DEFAULT_GIN_FILE)])
def test_explicit_gin_file_resolves_from_anywhere(elsewhere, name):
    """The experiment file resolves relative to gin_configs/, with a gin_configs/ prefix or as an
    absolute path, also from a directory without a gin_configs/ of its own; its includes resolve."""
    parse_gin([name], ["TRAIN_STEPS=11"])
    assert gin.query_parameter("model_config.size") == "t5_1_1/tiny"
    assert gin.query_parameter("%TRAIN_STEPS") == 11


def _header_counts(path):
    """(parameters, embedding rows) from a model file's header comment."""
    text = path.read_text()
    m = re.search(r"#\s*([\d,]+) parameters with (?:([\d,]+) embedding rows|"
                  r"the vocabulary's padded size \(([\d,]+) for)", text)
    assert m, f"{path} has no parameter count in its header"
    params, rows, padded = (int(g.replace(",", "")) if g else None for g in m.groups())
    return params, rows or padded, rows is None


@pytest.mark.parametrize("model_file", MODEL_FILES, ids=str)
def test_model_files_parse_and_match_their_header(elsewhere, model_file):
    """Each models/*.gin file parses with the pretraining run and objective, names its own size, and
    builds a config whose parameter count is the one its header states."""
    parse_gin([f"models/{model_file}", *RUN_FILES], REQUIRED)
    size = model_file.with_suffix("").as_posix()
    assert gin.query_parameter("model_config.size") == size
    config = model_config()
    params, rows, takes_vocab_rows = _header_counts(REPO_GIN_DIR / "models" / model_file)
    if takes_vocab_rows:
        assert config.vocab_size is None  # filled in from the vocabulary by the trainer
        config = config.replace(vocab_size=rows)
    else:
        assert config.vocab_size == rows
    assert count_params(config) == params


@pytest.mark.parametrize("model_file", ELMO_FILES, ids=str)
def test_elmo_model_files_match_their_header(elsewhere, model_file):
    """Each ELMo model file names its own size and states its parameter count (with the
    vocabulary's padded softmax rows, which the ELMo trainer fills in)."""
    import jax
    import jax.numpy as jnp

    from t2t.models.elmo import Elmo, elmo_config

    parse_gin([f"models/{model_file}"], [])
    assert gin.query_parameter("elmo_config.size") == model_file.with_suffix("").name
    params, rows, takes_vocab_rows = _header_counts(REPO_GIN_DIR / "models" / model_file)
    config = elmo_config()
    assert takes_vocab_rows and config.vocab_size is None
    config = config.replace(vocab_size=rows)
    shapes = jax.eval_shape(Elmo(config).init, jax.random.key(0),
                            jnp.ones((1, 4, config.max_characters), jnp.int32),
                            jnp.ones((1, 4), jnp.int32))
    assert sum(x.size for x in jax.tree.leaves(shapes)) == params


def test_a_runs_folder_on_sys_path_does_not_break_includes(tmp_path, monkeypatch):
    """Under `python -m`, ./runs (the default run directory) is importable as a namespace package;
    gin's package-resource lookup of `include 'runs/pretrain.gin'` must not crash on it."""
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    parse_gin([DEFAULT_GIN_FILE], [])
    assert gin.query_parameter("train.z_loss") == 1e-4  # set by the included runs/pretrain.gin


def test_errors_while_gin_builds_the_arguments_are_configuration_errors():
    from t2t.training.trainer import train

    parse_gin([], ["model_config.size='t5_1_1/bse'"])  # parses: the size is checked when built
    with pytest.raises(ConfigError, match="Did you mean 't5_1_1/base'"):
        call_configured(train)
    gin.clear_config()
    with pytest.raises(ValueError) as raised:  # raised by the called function's own code
        call_configured(model_config, size="t5_1_1/bse")
    assert not isinstance(raised.value, ConfigError)
