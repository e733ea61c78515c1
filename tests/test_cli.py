"""The `t2t` command: usage, flag and configuration errors (exit status 2), `t2t vocab train`."""

import random
import re
from pathlib import Path

import pytest

from t2t import cli
from t2t.data.vocab import Vocabulary

SUBJECTS = ["The old miller", "A quiet river", "Every engineer", "My grandmother", "The committee",
            "Seven sailors", "That stubborn goat", "Our neighbour's daughter", "The orchestra",
            "A travelling merchant", "The lighthouse keeper", "Twelve students"]
VERBS = ["carried", "painted", "questioned", "discovered", "measured", "borrowed", "described",
         "repaired", "followed", "forgot", "celebrated", "photographed", "abandoned", "translated"]
OBJECTS = ["a copper kettle", "the northern bridge", "forty-two lanterns", "an unfinished symphony",
           "the broken telescope", "several purple umbrellas", "a jar of honey",
           "the winter harvest",
           "three wooden chairs", "the mayor's bicycle", "an ancient manuscript", "fresh bread"]
ENDINGS = ["before sunrise.", "during the storm!", "near the harbour.", "without any help.",
           "while humming softly.", "in 1897.", "at exactly 5:30 pm.", "because nobody else would.",
           "(again).", "for the village fair?", "with remarkable patience.", "under the old oak."]


@pytest.fixture
def no_training(monkeypatch):
    """Make any attempt to train fail loudly."""
    import t2t.training.trainer as trainer

    def fail(*args, **kwargs):
        raise AssertionError("train() must not run")

    monkeypatch.setattr(trainer, "train", fail)


@pytest.fixture(autouse=True)
def clear_gin():
    import gin

    yield
    gin.clear_config()


@pytest.fixture
def corpus(tmp_path):
    """A text file of 400 varied English sentences, each also naming a made-up place."""
    rng = random.Random(0)
    syllables = ["ka", "tor", "mel", "vin", "dra", "oss", "phe", "lun", "bri", "zek", "qua", "th"]

    def sentence():
        place = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))).title()
        parts = [rng.choice(part) for part in (SUBJECTS, VERBS, OBJECTS)]
        return f"{' '.join(parts)} from {place} {rng.choice(ENDINGS)}"

    lines = [sentence() for _ in range(400)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_no_arguments_prints_usage(capsys):
    """`t2t` alone prints the usage on stderr and exits with 2."""
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "t2t train" in err and "t2t vocab train" in err


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["train", "--help"],
                                  ["train", "--gin_file=x.gin", "-h"]])
def test_help_exits_zero(argv, capsys):
    """`t2t --help` and `t2t train --help` print the usage and succeed."""
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "t2t train" in err and "unrecognised" not in err


def test_compile_only_help_names_the_gin_flags(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["compile-only", "--help"])
    assert exit_.value.code == 0
    assert "--gin_file=FILE" in capsys.readouterr().out


def test_compile_only_names_a_mesh_that_the_devices_cannot_fill(capsys):
    assert cli.main(["compile-only", "--gin.MESH_SHAPE={'fsdp': 3, 'data': -1}"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "3, which does not divide 8" in err
    assert "Traceback" not in err


def test_unknown_command_prints_usage(capsys):
    """An unknown command is a usage error."""
    assert cli.main(["pretrain"]) == 2
    assert "t2t train" in capsys.readouterr().err


def test_mistyped_macro_is_a_configuration_error(capsys, no_training):
    """A mistyped --gin macro exits with 2 before training, naming it and the closest macro."""
    assert cli.main(["train", "--gin.TRIAN_STEPS=5"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err
    assert "TRIAN_STEPS" in err and "TRAIN_STEPS" in err


def test_missing_gin_file_is_a_configuration_error(capsys, no_training):
    """`--gin_file NAME` (space-separated form) of a missing file exits with 2 naming the file."""
    assert cli.main(["train", "--gin_file", "runs/nope.gin"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "runs/nope.gin" in err


@pytest.mark.parametrize("binding, message", [
    # gin builds train's arguments (@model_config()) before train runs
    ("--gin.model_config.size=t5_1_1/bse", "Did you mean 't5_1_1/base'"),
    # a bare word is a string on the command line
    ("--gin.TASK_FEATURE_LENGTHS=targets:2", "TASK_FEATURE_LENGTHS must map 'inputs' and/or"),
])
def test_bad_values_are_configuration_errors_not_tracebacks(binding, message, capsys):
    assert cli.main(["train", binding]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and message in err and "Traceback" not in err


def test_unknown_flag_is_rejected(capsys, no_training):
    """A flag that is neither --gin_file nor --gin.NAME=VALUE exits with 2 and names it."""
    assert cli.main(["train", "--bogus"]) == 2
    assert "--bogus" in capsys.readouterr().err


@pytest.mark.parametrize("capture", [
    "capfd",
    "capsys",  # sys.stderr is not a real file here: SentencePiece must not need its fileno
])
def test_vocab_train_writes_a_t5_vocabulary(tmp_path, corpus, capture, request):
    """`t2t vocab train` writes PREFIX.model with 300 pieces; loaded with T5's layout it has
    300 + 100 sentinels = 400 ids, and the printed summary says so (also when stdout/stderr are
    Python-level streams rather than file descriptors)."""
    captured = request.getfixturevalue(capture)
    prefix = tmp_path / "out" / "spm300"
    assert cli.main(["vocab", "train", "--input", str(corpus), "--output", str(prefix),
                     "--vocab_size", "300"]) == 0
    model = prefix.parent / "spm300.model"
    assert model.is_file()
    out = captured.readouterr().out
    assert re.search(r"300 pieces \+ 100 sentinels = 400 ids \(512 embedding rows\)", out), out
    assert str(model) in out
    vocab = Vocabulary(model)
    assert vocab.vocab_size == 400
    assert vocab.sentinel_id(0) == 399
    text = "The old miller repaired a jar of honey before sunrise."
    assert vocab.decode(vocab.encode(text)) == text


def test_vocab_train_requires_input_and_output(capsys):
    """`t2t vocab train` without --input/--output is an argparse usage error (exit 2)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["vocab", "train", "--output", "x"])
    assert exit_info.value.code == 2
    assert "--input" in capsys.readouterr().err


@pytest.mark.parametrize("command,environ,expected", [
    ("train", {}, Path.home() / ".cache" / "t2t" / "jax_compilation_cache"),
    ("eval", {"T2T_CACHE_DIR": "/data/t2t"}, Path("/data/t2t/jax_compilation_cache")),
    ("train", {"JAX_COMPILATION_CACHE_DIR": "/elsewhere"}, None),  # JAX reads it itself
    ("train", {"JAX_ENABLE_COMPILATION_CACHE": "false"}, None),
    ("bench", {}, None), ("compile-only", {}, None),  # they time compilation
])
def test_training_and_evaluation_commands_keep_compiled_programs(command, environ, expected):
    assert cli.compilation_cache_dir(command, environ) == expected


def test_main_points_jax_at_the_cache_before_the_command_runs(monkeypatch, tmp_path):
    used = []
    monkeypatch.setattr(cli, "_use_compilation_cache", used.append)
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("T2T_CACHE_DIR", str(tmp_path))
    with pytest.raises(SystemExit):
        cli.main(["eval", "--help"])
    assert used == [tmp_path / "jax_compilation_cache"]


KEEP = "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1099511627776"


@pytest.mark.parametrize("environ,libc,on_cpu,expected", [
    ({}, ("glibc", "2.36"), True, "glibc.malloc.hugetlb=1:" + KEEP),
    ({}, ("glibc", "2.36"), False, "glibc.malloc.hugetlb=1"),  # step buffers on the accelerator
    ({}, ("glibc", "2.31"), True, KEEP),  # no huge-page tunable before 2.35
    ({}, ("glibc", "2.31"), False, None),
    # the user's own values win, one by one
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, ("glibc", "2.35"), True,
     "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:"
     "glibc.malloc.trim_threshold=1099511627776"),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, ("glibc", "2.36"), True,
     "glibc.malloc.hugetlb=0:" + KEEP),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0:" + KEEP}, ("glibc", "2.36"), True, None),
    ({"T2T_MALLOC_TUNING": "0"}, ("glibc", "2.36"), True, None),
    ({"T2T_MALLOC_TUNING": "False"}, ("glibc", "2.36"), True, None),
    ({"T2T_MALLOC_TUNING": "off"}, ("glibc", "2.36"), True, None),
    ({"T2T_MALLOC_TUNING": "1"}, ("glibc", "2.36"), False, "glibc.malloc.hugetlb=1"),
    ({}, ("glibc", "2.25"), True, None),  # no malloc tunables at all
    ({}, ("", ""), True, None),  # musl, macOS
])
def test_commands_restart_with_malloc_tuned_where_glibc_can(environ, libc, on_cpu, expected):
    restarted = cli.malloc_environ(environ, libc, on_cpu)
    assert (restarted and restarted["GLIBC_TUNABLES"]) == expected
    if restarted:
        assert {k: v for k, v in restarted.items() if k != "GLIBC_TUNABLES"} == {
            k: v for k, v in environ.items() if k != "GLIBC_TUNABLES"}


def test_jax_platforms_decides_whether_jax_runs_on_the_cpu(monkeypatch):
    assert cli.jax_runs_on_cpu({"JAX_PLATFORMS": "cpu"})
    assert not cli.jax_runs_on_cpu({"JAX_PLATFORMS": "cuda,cpu"})
    assert not cli.jax_runs_on_cpu({"JAX_PLATFORMS": "tpu"})
    found = {"/dev/nvidia[0-9]*": ["/dev/nvidia0"]}
    monkeypatch.setattr(cli.glob, "glob", lambda pattern: found.get(pattern, []))
    assert not cli.jax_runs_on_cpu({})  # a GPU's device file, JAX_PLATFORMS unset
    found.clear()
    assert cli.jax_runs_on_cpu({})


def test_a_command_runs_after_its_restart(tmp_path):
    """`t2t ...` as a process restarts itself with the tunables (where this glibc has them) and
    then does its work: the bench records the environment it ran in."""
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "attention.json"
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "T2T_MALLOC_TUNING")}
    subprocess.run([sys.executable, "-m", "t2t.cli", "bench", "attention", "--preset", "smoke",
                    "--only", "cross", "--kernels", "einsum", "--steps", "1", "--out", str(out)],
                   env=env, check=True, capture_output=True, timeout=300)
    tunables = json.loads(out.read_text())["machine"]["glibc_tunables"]
    restarted = cli.malloc_environ(env)
    assert tunables == (restarted["GLIBC_TUNABLES"] if restarted else "")
