"""The loop that `t2t train`, `t2t distill` and `t2t train-elmo` share, and the step's guard.

What every run needs from its loop, written once:

* **Non-finite steps are never applied** (`guarded_update`, inside the jitted step): neither the
  parameters nor the optimizer's moments see a step whose loss, gradients or update are NaN or
  infinite. On the host, `check_divergence` stops the run naming the step
  (``nan_policy='stop'``) or counts skipped steps up to a limit (``'skip'``).
* **Preemption** (`PreemptionGuard`): SIGTERM or SIGINT checkpoints at the next step boundary
  (with several hosts, the first one they all reach), data position included, and the run
  returns; the same command resumes it bit-exactly.
* **Checkpoints** on the `Checkpointer`'s interval and at the end, **metrics** every `log_every`
  steps (metrics.jsonl and TensorBoard, with a log line), **evaluation** every `eval_every` steps
  and at the start of a fresh run, and a progress bar.

A run's own code builds the jitted step, the data and the evaluation, then subclasses `TrainLoop`
for what its logged record holds (`record`) and how its log lines read (`describe`); its command
line ends in `run_command`, which gives every command the same exit codes and messages.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from tqdm import tqdm

from t2t.training.checkpointing import Checkpointer
from t2t.training.losses import per_token_metrics
from t2t.training.metrics import MetricsWriter

if TYPE_CHECKING:
    from t2t.data.pipeline import Pipeline as DataPipeline

log = logging.getLogger("t2t")

NAN_POLICIES = ("stop", "skip")


def guarded_update(state: Any, grads: Any, terms: Mapping[str, jax.Array],
                   tx: optax.GradientTransformation) -> tuple[Any, dict[str, jax.Array]]:
    """`state` (a `TrainState`) after one optimizer step, unless the step is not finite.

    The step is not applied (parameters and optimizer state stay as they were; the step counter
    still advances, so the next step draws fresh dropout) when the gradient norm, the update norm
    or any ``*cross_entropy`` term of `terms` is not finite. Returns the new state and the metrics
    the host's `check_divergence` reads: ``grad_norm``, ``update_norm`` and ``nonfinite`` (1.0
    for a step that was not applied).
    """
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    update_norm = optax.tree.norm(updates)
    finite = jnp.isfinite(grad_norm) & jnp.isfinite(update_norm)
    for key, value in terms.items():
        if key.endswith("cross_entropy"):
            finite &= jnp.isfinite(value)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    new_state = state.replace(step=state.step + 1,
                              params=keep(optax.apply_updates(state.params, updates), state.params),
                              opt_state=keep(opt_state, state.opt_state))
    return new_state, {"grad_norm": grad_norm, "update_norm": update_norm,
                       "nonfinite": 1.0 - finite.astype(jnp.float32)}


def check_nan_policy(nan_policy: str) -> None:
    """Refuse an unknown `nan_policy` (before anything is compiled)."""
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"train.nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}.")


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or gradient and was told to stop."""


def check_divergence(fetched: list[dict], first_step: int, nan_policy: str, skipped: int,
                     max_skipped: int, checkpointer: Checkpointer) -> int:
    """Skipped (non-finite) steps among `fetched` metrics (steps `first_step`, ...); raises
    `DivergenceError` when the policy says stop."""
    bad = [i for i, m in enumerate(fetched) if m["nonfinite"]]
    if not bad:
        return 0
    metrics = fetched[bad[0]]
    checks = [("loss" if key == "cross_entropy" else key.replace("_", " "), key)
              for key in metrics if key.endswith("cross_entropy")]
    checks += [("gradient norm", "grad_norm"), ("update norm", "update_norm")]
    what, value = next((name, metrics[key]) for name, key in checks
                       if not np.isfinite(metrics[key]))
    step = first_step + bad[0]
    if nan_policy == "skip" and skipped + len(bad) <= max_skipped:
        log.warning("Skipped %d step(s) with a non-finite %s, first at step %d (%d skipped so "
                    "far, at most %d).", len(bad), what, step, skipped + len(bad), max_skipped)
        return len(bad)
    checkpointer.wait()
    reason = (f"more than train.max_skipped_steps={max_skipped} steps were skipped"
              if nan_policy == "skip" else "train.nan_policy='stop'")
    raise DivergenceError(
        f"Training diverged: the {what} is {value} at step {step}, and {reason}. That update was "
        f"not applied; the last good checkpoint is step {checkpointer.latest_step()} in "
        f"{checkpointer.directory}. Lower the learning rate, or set "
        f"--gin.train.nan_policy='skip' to skip such steps.")


# What stopped a multi-host run whose hosts agreed on a step to stop at.
MULTIHOST_NOTICE = "a preemption notice (SIGTERM on some host)"


class PreemptionGuard:
    """Turns SIGTERM and SIGINT into a request to checkpoint and stop at a step boundary.

    One process: a handler notes the signal, and `requested` answers at the next step.

    Several processes (`jax.distributed`): the notice may reach one host only, or the hosts at
    different steps, yet all of them must stop at the same step, since the checkpoint and the data
    position are saved by collectives. JAX's preemption sync manager, which
    `jax.distributed.initialize` starts, catches SIGTERM itself, tells the other hosts, and names
    the first step that every host has yet to reach: `requested` answers at that step on all of
    them (`multihost_utils.reached_preemption_sync_point`, asked at every step). A Python SIGTERM
    handler would replace its own, so here only SIGINT gets one, which passes it on as SIGTERM.
    With that service off (``jax_enable_preemption_service``) no handler is installed: a signal
    ends the run, and it resumes from its last periodic checkpoint.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous = {}
        self._multihost = jax.process_count() > 1
        self._synced = self._multihost and jax.config.jax_enable_preemption_service
        if self._multihost and not self._synced:
            log.warning("jax_enable_preemption_service is off: the hosts cannot agree on a step to "
                        "checkpoint at, so SIGTERM and SIGINT end this run; it resumes from its last "
                        "periodic checkpoint.")
            return
        if threading.current_thread() is threading.main_thread():  # signals need the main thread
            for sig in (signal.SIGINT,) if self._multihost else (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame) -> None:
        self.signal = signal.Signals(signum).name
        if self._multihost:  # the sync manager's own handler tells the other hosts
            os.kill(os.getpid(), signal.SIGTERM)

    def requested(self, step: int) -> bool:
        """Whether to checkpoint and stop before training step `step` + 1 (every host the same)."""
        if not self._multihost:
            return self.signal is not None
        if not self._synced or not multihost_utils.reached_preemption_sync_point(step):
            return False
        # JAX's manager, not us, caught the SIGTERM, on this host or another one.
        self.signal = self.signal or MULTIHOST_NOTICE
        return True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclasses.dataclass
class LoopResult:
    """Where a loop stopped: its state and step, the evaluations at the start (a fresh run) and
    at the end (None when preempted), and the signal that preempted it, if one did."""

    state: Any
    step: int
    initial_eval: dict[str, float] | None
    last_eval: dict[str, float] | None
    preempted: str | None

    @property
    def validation_loss(self) -> float:
        """The last evaluation's loss; NaN when preempted (no final evaluation)."""
        return float("nan") if self.last_eval is None else self.last_eval["loss"]

    @property
    def initial_validation_loss(self) -> float | None:
        """The loss before training; None for a resumed run."""
        return None if self.initial_eval is None else self.initial_eval["loss"]


class Pipeline(Protocol):
    """What the loop needs of a data pipeline (`t2t.data.pipeline`): batches and a position."""

    def __next__(self) -> Mapping[str, np.ndarray]: ...

    def get_state(self) -> Any: ...


def held_out_evaluation(eval_step: Callable[[Any, Any], Mapping[str, jax.Array]],
                        pipeline: DataPipeline, shard: Callable[[Mapping[str, np.ndarray]], Any],
                        batches: int) -> Callable[[Any], dict[str, float]]:
    """A `TrainLoop` ``evaluate``: params -> the per-token metrics of `eval_step`'s loss terms
    summed over the first `batches` batches of `pipeline` (reset first, so every evaluation reads
    the same examples), each batch put on the devices by `shard`."""
    def evaluate(params: Any) -> dict[str, float]:
        pipeline.reset()
        totals: dict[str, float] = {}
        for _, batch in zip(range(batches), pipeline):
            for key, value in jax.device_get(eval_step(params, shard(batch))).items():
                totals[key] = totals.get(key, 0.0) + float(value)
        return per_token_metrics(totals)
    return evaluate


class TrainLoop:
    """Steps a run from `start_step` to `train_steps` (module doc).

    Args:
      train_step: (state, host batch) -> (state, metrics), the metrics summed per step (device
        arrays, fetched only at logging steps so steps run back to back) and holding
        `guarded_update`'s.
      pipeline: the training batches; its position is saved with each checkpoint.
      checkpointer, writer: where checkpoints and metrics go (the caller closes them).
      evaluate: params -> validation metrics (with ``loss``).
      train_steps, log_every, eval_every: the run's length and intervals, in steps.
      nan_policy, max_skipped_steps: what a non-finite step does (`check_divergence`; the run
        checks `nan_policy` with `check_nan_policy` before it compiles).
      show_progress: draw a progress bar (off on every host but the chief).
      learning_rate: the optimizer's constant or schedule, logged as ``learning_rate``.
      tokens_per_step: logged as ``tokens_per_second`` with the step time.
    """

    def __init__(self, train_step: Callable[[Any, Mapping[str, np.ndarray]], tuple[Any, dict]],
                 pipeline: Pipeline, checkpointer: Checkpointer, writer: MetricsWriter,
                 evaluate: Callable[[Any], dict[str, float]], *, train_steps: int, log_every: int,
                 eval_every: int, nan_policy: str = "stop", max_skipped_steps: int = 10,
                 show_progress: bool = True, learning_rate: float | optax.Schedule | None = None,
                 tokens_per_step: int | None = None):
        self.train_step, self.pipeline, self.evaluate = train_step, pipeline, evaluate
        self.checkpointer, self.writer = checkpointer, writer
        self.train_steps, self.log_every, self.eval_every = train_steps, log_every, eval_every
        self.nan_policy, self.max_skipped_steps = nan_policy, max_skipped_steps
        self.show_progress = show_progress
        self.schedule = (learning_rate if callable(learning_rate) or learning_rate is None
                         else (lambda _: learning_rate))
        self.tokens_per_step = tokens_per_step

    # What a run says; subclasses override.

    def on_batch(self, batch: Mapping[str, np.ndarray]) -> None:
        """Host-side accounting of a batch before its step (e.g. its padding)."""

    def record(self, summed: dict[str, float], steps: int, step: int, step_time: float
               ) -> dict[str, float]:
        """The logged metrics of the `steps` steps up to `step`, whose per-step metrics sum to
        `summed`, besides what the loop adds: the mean gradient and update norms, the step time,
        the skipped-step count, the learning rate and tokens/s."""
        return per_token_metrics(summed)

    def describe(self, record: Mapping[str, float]) -> str:
        """The log line of a training record, after "Step N: "."""
        return f"loss {record['loss']:.4f}, {record['step_time']:.3f} s/step"

    def describe_eval(self, metrics: Mapping[str, float]) -> str:
        """The log line of an evaluation, after "Step N: "."""
        return f"validation loss {metrics['loss']:.4f}"

    # The loop.

    def _evaluate(self, state: Any, step: int) -> dict[str, float]:
        metrics = self.evaluate(state.params)
        self.writer.write(step, metrics, split="validation")
        log.info("Step %d: %s", step, self.describe_eval(metrics))
        return metrics

    def _save(self, step: int, state: Any) -> None:
        if self.checkpointer.latest_step() != step:
            self.checkpointer.save(step, state, self.pipeline.get_state(), force=True)

    def run(self, state: Any, start_step: int) -> LoopResult:
        initial = last_eval = self._evaluate(state, 0) if start_step == 0 else None
        progress = tqdm(total=self.train_steps, initial=start_step, desc="train", unit="step",
                        dynamic_ncols=True, disable=None if self.show_progress else True)
        pending: list[dict] = []
        skipped, step = 0, start_step
        last_time = time.perf_counter()
        preemption = PreemptionGuard()
        try:
            while step < self.train_steps:
                if preemption.requested(step):
                    self._save(step, state)
                    self.checkpointer.wait()
                    log.info("Received %s at step %d: saved a checkpoint with the data position "
                             "in %s. Run the same command to resume.", preemption.signal, step,
                             self.checkpointer.directory)
                    return LoopResult(state, step, initial, None, preemption.signal)
                batch = next(self.pipeline)
                self.on_batch(batch)
                state, metrics = self.train_step(state, batch)
                step += 1
                pending.append(metrics)
                # Ask first: the data state of a multi-host pipeline is an all-gather across hosts.
                if self.checkpointer.should_save(step):
                    self.checkpointer.save(step, state, self.pipeline.get_state())
                progress.update(1)
                if step % self.log_every == 0 or step == self.train_steps:
                    fetched = jax.device_get(pending)  # blocks until the steps have really run
                    step_time = (time.perf_counter() - last_time) / len(fetched)
                    skipped += check_divergence(fetched, step - len(fetched) + 1, self.nan_policy,
                                                skipped, self.max_skipped_steps, self.checkpointer)
                    summed = jax.tree.map(lambda *xs: float(np.sum(xs)), *fetched)
                    n = len(fetched)
                    record = {**self.record(summed, n, step, step_time),
                              "grad_norm": summed["grad_norm"] / n,
                              "update_norm": summed["update_norm"] / n,
                              "step_time": step_time, "skipped_steps": skipped}
                    if self.schedule is not None:  # the rate of the window's last step
                        record["learning_rate"] = float(self.schedule(step - 1))
                    if self.tokens_per_step is not None:
                        record["tokens_per_second"] = self.tokens_per_step / step_time
                    self.writer.write(step, record)
                    log.info("Step %d: %s", step, self.describe(record))
                    progress.set_postfix({k: f"{record[k]:.3f}" for k in ("loss", "mfu")
                                          if k in record})
                    pending, last_time = [], time.perf_counter()
                if step % self.eval_every == 0 or step == self.train_steps:
                    last_eval = self._evaluate(state, step)
                    last_time = time.perf_counter()  # keep evaluation out of the step time
            self._save(step, state)
        finally:
            preemption.restore()
            progress.close()
        if last_eval is None:  # resumed at or past train_steps: nothing trained, still report
            last_eval = self.evaluate(state.params)
        return LoopResult(state, step, initial, last_eval, None)


def run_command(prog: str, run: Callable[[], Any], summary: Callable[[Any], str]) -> int:
    """A training command's exit code, after `run()` (gin parsing included) and its messages.

    2: a configuration error (bad binding, run directory in use), on stderr. 1: the run diverged
    (`DivergenceError`, naming the step). 0: it finished (`summary(result)` is printed) or was
    preempted (`result.preempted`; the same command resumes it).
    """
    from t2t.configuration import ConfigError
    from t2t.training.run_lock import RunLockedError

    try:
        result = run()
    except (ConfigError, RunLockedError) as error:
        print(f"{prog}: configuration error: {error}", file=sys.stderr)
        return 2
    except DivergenceError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 1
    if result.preempted:
        print(f"Stopped by {result.preempted} at step {result.step}; the same command resumes "
              f"from the checkpoint in {result.run_dir}.")
    else:
        print(summary(result))
    return 0
