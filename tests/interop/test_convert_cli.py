"""`t2t convert import|export` end to end: HF directory -> params checkpoint -> HF directory, and
export from a run directory as the trainer writes it."""

import jax
import numpy as np
import optax
import pytest

pytest.importorskip("safetensors")

from t2t.interop import export_hf, import_hf, load_params  # noqa: E402
from t2t.interop.cli import main  # noqa: E402
from t2t.interop.hf_files import read_hf_dir  # noqa: E402
from t2t.interop.layout import relayout  # noqa: E402
from t2t.models.sizes import get_size  # noqa: E402
from t2t.training.checkpointing import Checkpointer  # noqa: E402
from t2t.training.trainer import TrainState, check_same_model  # noqa: E402

CONFIG = get_size("t5_1_1/tiny").replace(vocab_size=64, d_model=32, d_ff=48, num_heads=2,
                                         head_dim=16, num_decoder_layers=3)


def _assert_same_tree(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_import_then_export_gives_back_the_hf_directory(random_params, tmp_path, capsys):
    params = random_params(CONFIG)
    export_hf(params, CONFIG, tmp_path / "hf")
    assert main(["import", "--hf_dir", str(tmp_path / "hf"), "--out", str(tmp_path / "ckpt"),
                 "--scan_layers"]) == 0
    assert "encoder_decoder" in capsys.readouterr().out
    loaded, config = load_params(tmp_path / "ckpt")
    assert config == CONFIG.replace(scan_layers=True)
    _assert_same_tree(loaded, relayout(params, scan_layers=True))

    assert main(["export", "--params", str(tmp_path / "ckpt"), "--out",
                 str(tmp_path / "hf2")]) == 0
    (before, before_config), (after, after_config) = (read_hf_dir(tmp_path / d)
                                                      for d in ("hf", "hf2"))
    assert before_config == after_config
    assert sorted(before) == sorted(after)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def _write_run(run_dir, config, params_by_step):
    """A run directory in the trainer's layout: model_config.json and train-state checkpoints."""
    run_dir.mkdir()
    check_same_model(run_dir, config, resuming=False, write=True)
    checkpointer = Checkpointer(run_dir / "checkpoints", save_every=1)
    tx = optax.adamw(1e-3)
    for step, params in params_by_step.items():
        state = TrainState(np.int32(step), params, tx.init(params))
        checkpointer.save(step, state, {"position": step}, force=True)
    checkpointer.close()


def test_export_from_a_run_directory_newest_or_chosen_step(random_params, tmp_path):
    config = CONFIG.replace(scan_layers=True)  # the trainer's scanned layout
    params = {step: random_params(config, seed=step) for step in (10, 20)}
    _write_run(tmp_path / "run", config, params)
    for step, args in ((20, []), (10, ["--step", "10"])):
        out = tmp_path / f"hf_{step}"
        assert main(["export", "--run_dir", str(tmp_path / "run"), "--out", str(out),
                     *args]) == 0
        exported, exported_config = import_hf(out, scan_layers=True)
        assert exported_config == config
        _assert_same_tree(exported, params[step])


@pytest.mark.parametrize("argv, message", [
    (["import", "--hf_dir", "{tmp}", "--out", "{tmp}/out"], "no config.json"),
    (["export", "--params", "{tmp}", "--out", "{tmp}/out"], "no model_config.json"),
    (["export", "--run_dir", "{tmp}/run", "--out", "{tmp}/out", "--step", "3"],
     "no checkpoint at step 3"),
    (["export", "--params", "{tmp}", "--step", "3", "--out", "{tmp}/out"],
     "--step applies to --run_dir only"),
])
def test_errors_name_the_problem(argv, message, random_params, tmp_path, capsys):
    if "--run_dir" in argv:
        _write_run(tmp_path / "run", CONFIG, {1: random_params(CONFIG)})
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert message in capsys.readouterr().err
