"""Stress test of preemption: `kill -9` a training run at random moments, resume it, and check that
it ends bit-for-bit where an uninterrupted run ends.

    python -m t2t.training.preemption_stress --trials 20 --workdir /tmp/t2t-stress

Each trial starts `t2t train` on a small model that checkpoints every step (so kills often land in
the middle of an asynchronous save), kills it with SIGKILL after a random number of steps plus a
random delay, runs the same command again until it finishes, and compares the final parameters
and optimizer state, and every step's training loss, with a reference run. It prints how many
trials resumed bit-exactly (expected: all).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

SMALL_RUN = [
    "BATCH_SIZE=8", "TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 14}",
    "model_config.d_model=32", "model_config.num_heads=2", "model_config.head_dim=16",
    "model_config.d_ff=64", "model_config.num_encoder_layers=1",
    "model_config.num_decoder_layers=1", "model_config.dropout_rate=0.1",  # dropout: rng resumes
    "train.log_every=1", "train.eval_every=1000", "train.eval_batches=1",
    "train.checkpoint_every=1", "train.keep_checkpoints=2",
]


def train_command(run_dir: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "t2t.cli", "train", *(f"--gin.{b}" for b in SMALL_RUN),
            f"--gin.TRAIN_STEPS={steps}", f"--gin.MODEL_DIR='{run_dir}'"]


def _env() -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one device: the stress is about the checkpoints, not the mesh
    return env


def _run(run_dir: Path, steps: int) -> None:
    result = subprocess.run(train_command(run_dir, steps), env=_env(), capture_output=True,
                            text=True)
    if result.returncode:
        raise RuntimeError(f"t2t train failed in {run_dir}:\n{result.stderr[-3000:]}")


def _train_lines(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return path.read_text().count('"split": "train"') if path.exists() else 0


def run_and_kill(run_dir: Path, steps: int, kill_after: int, delay: float) -> bool:
    """Start a run, SIGKILL it once `kill_after` steps are logged plus `delay` seconds; returns
    whether the kill happened before the run finished."""
    process = subprocess.Popen(train_command(run_dir, steps), env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None and _train_lines(run_dir) < kill_after:
        time.sleep(0.005)
    time.sleep(delay)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def final_state(run_dir: Path) -> dict:
    """The last checkpoint's train state, as NumPy arrays."""
    checkpoints = run_dir / "checkpoints"
    step = max(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
    state = ocp.StandardCheckpointer().restore(checkpoints / str(step) / "state")
    return {"step": step, "leaves": [np.asarray(x) for x in jax.tree.leaves(state)]}


def train_losses(run_dir: Path) -> dict[int, float]:
    """Loss per step; a step run again after a resume keeps its last value."""
    losses = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["split"] == "train":
            losses[record["step"]] = record["loss"]
    return losses


def same(a: Path, b: Path) -> bool:
    """Bit-identical final state and identical per-step losses."""
    state_a, state_b = final_state(a), final_state(b)
    return (state_a["step"] == state_b["step"]
            and len(state_a["leaves"]) == len(state_b["leaves"])
            and all(np.array_equal(x, y) for x, y in zip(state_a["leaves"], state_b["leaves"]))
            and train_losses(a) == train_losses(b))


def stress(workdir: Path, trials: int, steps: int, seed: int = 0,
           log=print) -> tuple[int, int]:
    """Run `trials` kill-and-resume trials; returns (bit-exact resumes, trials)."""
    rng = random.Random(seed)
    shutil.rmtree(workdir, ignore_errors=True)
    reference = workdir / "reference"
    _run(reference, steps)
    exact = 0
    for trial in range(trials):
        run_dir = workdir / f"trial_{trial}"
        kill_after, delay = rng.randint(1, steps - 1), rng.uniform(0.0, 0.05)
        killed = run_and_kill(run_dir, steps, kill_after, delay)
        _run(run_dir, steps)
        ok = same(reference, run_dir)
        exact += ok
        log(f"trial {trial}: kill after {kill_after} steps + {delay * 1000:.0f} ms "
            f"({'killed' if killed else 'finished first'}), resumed "
            f"{'bit-exactly' if ok else 'DIFFERENTLY'}")
    return exact, trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/t2t-preemption-stress"))
    args = parser.parse_args(argv)
    exact, trials = stress(args.workdir, args.trials, args.steps, args.seed)
    print(f"{exact}/{trials} trials resumed bit-exactly.")
    return 0 if exact == trials else 1


if __name__ == "__main__":
    sys.exit(main())
