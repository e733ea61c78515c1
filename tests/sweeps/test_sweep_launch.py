"""`t2t sweep launch`: the printed commands, fed to the real tpu_scripts with --dry-run, start
`t2t train` with exactly the local runner's flags (under the remote MODEL_DIR prefix)."""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from sweep_fakes import write_sweep_file

from t2t.sweeps import cli
from t2t.sweeps.commands import train_flags
from t2t.sweeps.launch import run_name
from t2t.sweeps.store import ResultsStore
from t2t.sweeps.sweep_file import load_sweep

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "gs://bucket/sweeps/fake"
TRIALS = """
    Trial("ed+lm", gin_files=("experiments/t5_table2/encoder_decoder-lm.gin",),
          bindings={"TRAIN_STEPS": 100, "TASK_FEATURE_LENGTHS": {"inputs": 64, "targets": 64},
                    "train.optimizer": "@adafactor"}),
    Trial("second", after=("{python} eval.py --dir={model_dir} --seed={seed}",)),
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def launch(tmp_path, capsys, *args: str) -> list[str]:
    """The printed lines of `t2t sweep launch` on the fake sweep."""
    sweep_file = tmp_path / "fake_sweep.py"
    assert cli.main(["launch", str(sweep_file), "--sweep_dir", str(tmp_path / "sweep"),
                     *args]) == 0
    return capsys.readouterr().out.splitlines()


def dry_run(command: list[str], tmp_path: Path) -> list[list[str]]:
    """Run a launch command's script with --dry-run; the commands it prints, as words. A PATH of
    fakes makes any real gcloud/sbatch call fail the test."""
    fakes = tmp_path / "bin"
    fakes.mkdir(exist_ok=True)
    for name in ("gcloud", "sbatch", "srun"):
        (fakes / name).write_text("#!/bin/sh\nexit 97\n")
        (fakes / name).chmod(0o755)
    script, *args = command
    split = args.index("--")
    result = subprocess.run(["bash", script, *args[:split], "--dry-run", *args[split:]],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f"{fakes}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines() if not line.startswith("#")]


def test_tpu_commands_start_t2t_train_with_the_runners_flags(tmp_path, capsys):
    sweep = load_sweep(write_sweep_file(tmp_path, TRIALS, seeds=(0, 7)))
    lines = launch(tmp_path, capsys, "--target", "tpu", "--model_dir_prefix", PREFIX + "/",
                   "--", "--name=t5", "--zone=us-central2-b")
    commands = [shlex.split(line) for line in lines if not line.startswith("#")]
    assert len(commands) == 4
    for command, (trial, seed) in zip(commands, sweep.runs()):
        assert (ROOT / command[0]).resolve() == ROOT / "tpu_scripts" / "launch.sh"
        assert f"--run-name={run_name(sweep, trial.name, seed)}" in command
        gcloud, = dry_run(command, tmp_path)
        assert gcloud[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"] and "t5" in gcloud
        remote = shlex.split(next(a for a in gcloud if a.startswith("--command="))[10:])
        train = remote[remote.index("train") + 1:remote.index(">>")]
        model_dir = f"{PREFIX}/{trial.name}/seed_{seed}"
        assert train == train_flags(sweep, trial, seed, model_dir)
    notes = [line for line in lines if line.startswith("# then")]
    assert len(notes) == 2 and f"--dir={PREFIX}/second/seed_7" in notes[1]


def test_slurm_commands_and_skipping_done_runs(tmp_path, capsys):
    sweep = load_sweep(write_sweep_file(tmp_path, TRIALS, seeds=(0, 7)))
    with ResultsStore(tmp_path / "sweep") as store:
        store.mark_done("ed+lm", 0, [("validation", "loss", 100, 2.0)])
    lines = launch(tmp_path, capsys, "--target", "slurm", "--only", "ed*", "--", "--nodes=2")
    assert "1 run(s) to launch (1 done" in lines[0]
    command, = [shlex.split(line) for line in lines if not line.startswith("#")]
    assert (ROOT / command[0]).resolve() == ROOT / "tpu_scripts" / "slurm" / "submit.sh"
    assert command[1] == "--job-name=fake.ed_lm.s7"
    sbatch, srun = dry_run(command, tmp_path)
    assert sbatch[0] == "sbatch" and "--nodes=2" in sbatch and srun[0] == "srun"
    trial = sweep.trial("ed+lm")
    expected = train_flags(sweep, trial, 7, str(tmp_path / "sweep" / "ed+lm" / "seed_7"))
    assert srun[-len(expected):] == expected and sbatch[-len(expected):] == expected
