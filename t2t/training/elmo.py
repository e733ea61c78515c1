"""Pretrain ELMo's biLM: forward and backward LM losses on the trainer's data pipeline.

    text source ─► vocabulary ─► lm objective ─► DecoderFeatureConverter (packed) ─► decoder_target_tokens,
                                                                                    decoder_segment_ids
          character_table[tokens] ─► char_ids [b, l, c] ─► Elmo ─► forward + backward cross-entropy

The batches are the `lm` objective's, exactly as `t2t train` makes them for a GPT (same pipeline, so
the same tokens in the same order for a given seed); ELMo reads the whole packed sequence
(`decoder_target_tokens`) and its `decoder_segment_ids`, and the character ids come from a table
built once from the vocabulary. The loss is the mean of the two directions' per-token
cross-entropies (plus z-loss), as the paper's "average of the forward and backward perplexities".

Reused from the trainer: `data_pipeline`, the optimizers and schedules, the training loop
(`t2t.training.loop`: checkpoints of train state and data position together, so a run resumes
exactly, also after SIGTERM; non-finite steps skipped or stopped on; metrics, evaluation and a
progress bar), the partitioner (data parallel; the LSTM's parameters are small and replicated)
and the loss terms of `t2t.training.losses`. `train_elmo` is `t2t train-elmo`; every argument is
a gin binding.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax

from t2t.configuration import ConfigError, call_configured, parse_gin
from t2t.data.converters import DecoderFeatureConverter
from t2t.data.objectives.denoise import LM
from t2t.data.pipeline import data_pipeline
from t2t.data.vocab import Vocabulary, default_vocabulary
from t2t.models.elmo import Elmo, ElmoConfig, bidirectional_lm_targets, character_table
from t2t.training import initial_checkpoint
from t2t.training.checkpointing import Checkpointer
from t2t.training.loop import TrainLoop, check_nan_policy, guarded_update, run_command
from t2t.training.losses import cross_entropy_with_z_loss, per_token_metrics
from t2t.training.metrics import MetricsWriter
from t2t.training.partitioning import Partitioner, make_partitioner
from t2t.training.run_lock import RunLock
from t2t.training.trainer import TrainState, check_same_settings, setup_logging

log = logging.getLogger("t2t")

Batch = Mapping[str, jax.Array]
RUN_FILE = "elmo_run.json"  # the model config and vocabulary, for `load_elmo`
DIRECTIONS = ("forward", "backward")


@dataclasses.dataclass
class ElmoResult:
    """What a finished run reports: losses are the mean of both directions, nats per token."""

    run_dir: Path
    step: int
    validation_loss: float  # nan when preempted
    initial_validation_loss: float | None
    preempted: str | None = None  # the signal that stopped the run early, if one did


def elmo_batch(batch: Mapping[str, np.ndarray], table: np.ndarray) -> dict[str, np.ndarray]:
    """An `lm` batch of DecoderFeatureConverter -> ELMo's features (host side, numpy).

    tokens [b, l] = decoder_target_tokens (the whole packed sequence, EOS included), segment_ids
    [b, l], char_ids [b, l, c] = table[tokens].
    """
    tokens = batch["decoder_target_tokens"]
    return {"tokens": tokens, "segment_ids": batch["decoder_segment_ids"],
            "char_ids": table[tokens]}


def lm_terms(model: Elmo, params: Any, batch: Batch, z_loss: float,
             dropout_rng: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(loss, summed terms): the loss is the mean over directions of the per-token cross-entropy
    + z-loss; terms are `cross_entropy_with_z_loss`'s sums prefixed "forward_" / "backward_"."""
    outputs = model.apply({"params": params}, batch["char_ids"], batch["segment_ids"],
                          deterministic=dropout_rng is None,
                          rngs=None if dropout_rng is None else {"dropout": dropout_rng})
    targets = bidirectional_lm_targets(batch["tokens"], batch["segment_ids"])
    loss, terms = 0.0, {}
    for direction in DIRECTIONS:
        sums = cross_entropy_with_z_loss(outputs[f"{direction}_logits"],
                                         targets[f"{direction}_targets"],
                                         targets[f"{direction}_weights"], z_loss)
        loss += (sums["cross_entropy"] + sums["z_loss"]) / jnp.maximum(sums["weight"], 1.0)
        terms.update({f"{direction}_{k}": v for k, v in sums.items()})
    return loss / len(DIRECTIONS), terms


def summarize(terms: Mapping[str, float]) -> dict[str, float]:
    """Summed terms -> per-token metrics of each direction, and `loss`, their mean."""
    metrics = per_token_metrics(terms)
    metrics["loss"] = float(np.mean([metrics[f"{d}_loss"] for d in DIRECTIONS]))
    return metrics


def make_elmo_train_step(model: Elmo, tx: optax.GradientTransformation, z_loss: float, seed: int
                         ) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """One optimizer step (not applied if it is not finite: `guarded_update`); dropout draws from
    (seed, step), so a resumed run draws the same masks."""
    grad_fn = jax.value_and_grad(lambda p, b, rng: lm_terms(model, p, b, z_loss, rng), has_aux=True)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        rng = jax.random.fold_in(jax.random.key(seed), state.step)
        (_, terms), grads = grad_fn(state.params, batch, rng)
        new_state, guard = guarded_update(state, grads, terms, tx)
        return new_state, {**terms, **guard}

    return train_step


def _dummy_inputs(config: ElmoConfig) -> tuple[jax.Array, jax.Array]:
    return (jnp.zeros((1, 8, config.max_characters), jnp.int32), jnp.ones((1, 8), jnp.int32))


def abstract_params(config: ElmoConfig, sharding: jax.sharding.Sharding) -> Any:
    """The parameters' shapes (ShapeDtypeStructs placed by `sharding`), without initialising."""
    shapes = jax.eval_shape(lambda: Elmo(config).init(jax.random.key(0),
                                                      *_dummy_inputs(config))["params"])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def _vocabulary(path: str | None, extra_ids: int) -> Vocabulary:
    return Vocabulary(path, extra_ids=extra_ids) if path else default_vocabulary(extra_ids=extra_ids)


def load_elmo(run_dir: str | Path) -> tuple[ElmoConfig, Vocabulary, Any]:
    """(config, vocabulary, parameters of the newest checkpoint) of a `train_elmo` run directory."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a `t2t train-elmo` run "
                                f"directory (it holds {RUN_FILE} and checkpoints/).")
    saved = json.loads(path.read_text())
    fields = {k: tuple(map(tuple, v)) if k == "filters" else v for k, v in saved["model"].items()}
    config = ElmoConfig(**fields)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    params, _ = initial_checkpoint.load_params(run_dir, abstract_params(config, device))
    return config, _vocabulary(saved["vocabulary"], saved["vocabulary_extra_ids"]), params


class _ElmoLoop(TrainLoop):
    """`train_elmo`'s loop: records and log lines hold each direction's loss."""

    def record(self, summed: dict[str, float], steps: int, step: int, step_time: float
               ) -> dict[str, float]:
        return summarize(summed)

    def describe(self, record: Mapping[str, float]) -> str:
        return (f"loss {record['loss']:.4f} (forward {record['forward_loss']:.4f}, backward "
                f"{record['backward_loss']:.4f}), {record['step_time']:.3f} s/step")


@gin.configurable(denylist=["partitioner"])
def train_elmo(
    model_dir: str | None = None,
    train_steps: int = gin.REQUIRED,
    batch_size: int = gin.REQUIRED,
    sequence_length: int = 128,
    model: ElmoConfig = gin.REQUIRED,
    optimizer: Callable[..., optax.GradientTransformation] = gin.REQUIRED,
    learning_rate: float | optax.Schedule = gin.REQUIRED,
    data_source: str = "embedded",
    validation_source: str | None = None,
    vocabulary: str | None = None,
    vocabulary_extra_ids: int = 100,
    seed: int = 0,
    z_loss: float = 1e-4,
    log_every: int = 10,
    eval_every: int = 100,
    eval_batches: int = 4,
    checkpoint_every: int = 100,
    keep_checkpoints: int = 2,
    cache_dir: str | None = None,
    nan_policy: str = "stop",
    max_skipped_steps: int = 10,
    partitioner: Partitioner | None = None,
) -> ElmoResult:
    """Pretrain an ELMo biLM; resumes from the latest checkpoint in `model_dir` if there is one.

    Args:
      model_dir: the run directory; default a fresh one under runs/.
      train_steps, batch_size: optimizer steps and packed rows per step.
      sequence_length: tokens per packed row (the `lm` objective's targets length).
      model: the ElmoConfig (usually `@elmo_config()`); vocab_size None = the vocabulary's.
      optimizer, learning_rate: as `train` (e.g. `@adamw`, `@warmup_cosine_schedule()`).
      data_source, validation_source, vocabulary, vocabulary_extra_ids, seed, z_loss, cache_dir:
        as `train`. The default 100 extra ids give BERT's vocabulary size (8,192 rows), so the
        two models' softmaxes match in a comparison.
      log_every, eval_every, checkpoint_every: intervals in steps.
      eval_batches: validation batches per evaluation (a fixed set).
      keep_checkpoints: how many recent checkpoints to keep.
      nan_policy, max_skipped_steps: as `train`: a non-finite step is never applied; "stop" ends
        the run naming it, "skip" goes on for up to `max_skipped_steps` of them.
      partitioner: mesh; default `make_partitioner()` (data parallel).
    """
    try:
        vocab = _vocabulary(vocabulary, vocabulary_extra_ids)
        config = model if model.vocab_size is not None else model.replace(
            vocab_size=vocab.padded_vocab_size)
        table = character_table(vocab, config.vocab_size, config.max_characters)
        partitioner = partitioner or make_partitioner()
        partitioner.check_batch_size(batch_size)
        check_nan_policy(nan_policy)
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from error
    run_dir = Path(model_dir) if model_dir else Path("runs") / time.strftime("elmo-%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir).acquire()  # released when the loop ends
    setup_logging(run_dir)  # the trainer's: console above the progress bar, and train.log
    (run_dir / "config.gin").write_text(gin.config_str())
    cache_dir = cache_dir or os.environ.get("T2T_CACHE_DIR") or str(Path.home() / ".cache" / "t2t")
    converter = DecoderFeatureConverter({"targets": sequence_length})
    try:
        pipeline = data_pipeline(data_source, "train", vocab, LM(), converter, batch_size,
                                 seed=seed, cache_dir=cache_dir)
        valid_pipeline = data_pipeline(validation_source or data_source, "validation", vocab, LM(),
                                       converter, batch_size, seed=seed, shuffle=False,
                                       num_epochs=1, cache_dir=cache_dir)
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from error

    elmo = Elmo(config)
    tx = optimizer(learning_rate=learning_rate)
    replicated = partitioner.replicated
    shard = lambda batch: partitioner.shard_batch(elmo_batch(batch, table))

    def init(rng: jax.Array) -> TrainState:
        params = elmo.init(rng, *_dummy_inputs(config))["params"]
        return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))

    checkpointer = Checkpointer(run_dir / "checkpoints", checkpoint_every, keep_checkpoints)
    start_step = checkpointer.latest_step()
    check_same_settings(run_dir / RUN_FILE, {
        "model": dataclasses.asdict(config), "vocabulary": vocabulary,
        "vocabulary_extra_ids": vocabulary_extra_ids, "sequence_length": sequence_length},
        resuming=start_step is not None, write=True)
    if start_step is None:
        state, start_step = jax.jit(init, out_shardings=replicated)(jax.random.key(seed)), 0
    else:
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                                jax.eval_shape(init, jax.random.key(seed)))
        state, data_state, start_step = checkpointer.restore(abstract)
        pipeline.set_state(data_state)
        log.info("Resumed from the checkpoint at step %d.", start_step)
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    log.info("ELMo: %s parameters; run directory %s", f"{num_params:,}", run_dir.absolute())

    train_step = jax.jit(make_elmo_train_step(elmo, tx, z_loss, seed), donate_argnums=(0,))
    eval_step = jax.jit(lambda params, batch: lm_terms(elmo, params, batch, z_loss)[1])

    def evaluate(params: Any) -> dict[str, float]:
        valid_pipeline.reset()
        terms = [eval_step(params, shard(batch)) for _, batch in zip(range(eval_batches),
                                                                     valid_pipeline)]
        return summarize(jax.tree.map(lambda *xs: float(np.sum(xs)), *jax.device_get(terms)))

    writer = MetricsWriter(run_dir)
    loop = _ElmoLoop(lambda state, batch: train_step(state, shard(batch)), pipeline, checkpointer,
                     writer, evaluate, train_steps=train_steps, log_every=log_every,
                     eval_every=eval_every, nan_policy=nan_policy,
                     max_skipped_steps=max_skipped_steps, learning_rate=learning_rate,
                     tokens_per_step=batch_size * sequence_length)
    try:
        result = loop.run(state, start_step)
    finally:
        checkpointer.close()
        writer.close()
        lock.release()
    return ElmoResult(run_dir, result.step, result.validation_loss,
                      result.initial_validation_loss, result.preempted)


def main(argv: Sequence[str] | None = None) -> int:
    """`t2t train-elmo [--gin_file=FILE]... [--gin.NAME=VALUE]...`"""
    args = list(sys.argv[1:] if argv is None else argv)
    bindings = [a[len("--gin."):] for a in args if a.startswith("--gin.")]
    parser = argparse.ArgumentParser(prog="t2t train-elmo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gin_file", action="append", default=[],
                        help="repeatable; e.g. experiments/elmo_tiny_lm.gin")
    files = parser.parse_args([a for a in args if not a.startswith("--gin.")]).gin_file

    def run() -> ElmoResult:
        parse_gin(files or ["experiments/elmo_tiny_lm.gin"], bindings)
        return call_configured(train_elmo)

    return run_command("t2t train-elmo", run, lambda result: (
        f"Run directory: {result.run_dir}\nFinal step: {result.step}\n"
        f"Validation loss: {result.validation_loss:.4f} nats/token (mean of both directions)"
        + (f", initial {result.initial_validation_loss:.4f}"
           if result.initial_validation_loss is not None else "")))
