"""A stand-in for `t2t train` in the sweep tests: the same flags, a metrics.jsonl, in ~50 ms.

    fake_trainer.py --gin_file=FILE... --gin.NAME=VALUE...
    fake_trainer.py eval MODEL_DIR SEED [TASK] (an after-command: appends the score of
                                               eval:TASK, default "fake", to eval.jsonl, or
                                               fails if MODEL_DIR/fail_TASK exists)

Every VALUE must be a Python literal, as gin reads it, so a quoting mistake in the runner fails
here as it would in gin. Names:
  SEED, MODEL_DIR   required;
  LOSS              the final validation loss is LOSS + SEED / 100 (default 3.0);
  SLEEP             seconds to "train" first; SIGTERM during it exits 0 after writing
                    MODEL_DIR/checkpoint, as t2t train does; a later call with that checkpoint
                    resumes without sleeping;
  anything else     fails like an unknown gin macro (exit 2).
Each call appends its arguments to MODEL_DIR/calls.log and writes its pid to MODEL_DIR/pid.
"""

import ast
import json
import os
import signal
import sys
import time
from pathlib import Path

KNOWN = {"SEED", "MODEL_DIR", "LOSS", "SLEEP"}


def evaluate(model_dir: str, seed: str, task: str = "fake") -> int:
    if (Path(model_dir) / f"fail_{task}").exists():
        print(f"evaluation of {task} failed", file=sys.stderr)
        return 3
    with open(Path(model_dir) / "eval.jsonl", "a") as f:
        f.write(json.dumps({"step": 10, "split": f"eval:{task}",
                            "accuracy": 0.5 + int(seed) / 10}) + "\n")
    return 0


def train(argv: list[str]) -> int:
    bindings = {}
    for arg in argv:
        if arg.startswith("--gin."):
            name, value = arg[len("--gin."):].split("=", 1)
            if name not in KNOWN:
                print(f"t2t train: configuration error: Unknown macro {name!r}", file=sys.stderr)
                return 2
            bindings[name] = ast.literal_eval(value)
    run_dir = Path(bindings["MODEL_DIR"])
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "calls.log", "a") as f:
        f.write(json.dumps(argv) + "\n")
    (run_dir / "pid").write_text(str(os.getpid()))
    if bindings.get("SLEEP") and not (run_dir / "checkpoint").exists():
        def checkpoint_and_exit(signum, frame):
            (run_dir / "checkpoint").write_text("stopped by SIGTERM")
            sys.exit(0)

        signal.signal(signal.SIGTERM, checkpoint_and_exit)
        (run_dir / "started").write_text("")
        time.sleep(bindings["SLEEP"])
    loss = bindings.get("LOSS", 3.0) + bindings["SEED"] / 100
    with open(run_dir / "metrics.jsonl", "a") as f:
        for record in ({"step": 0, "split": "validation", "loss": 10.0},
                       {"step": 10, "split": "train", "loss": loss + 0.5},
                       {"step": 10, "split": "validation", "loss": loss, "accuracy": 1 / loss}):
            f.write(json.dumps(record) + "\n")
    print(f"Validation loss: {loss:.4f}")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(evaluate(*args[1:]) if args[:1] == ["eval"] else train(args))
