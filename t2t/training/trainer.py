"""The training loop: state, sharded train/eval steps, metrics, evaluation and checkpoints.

    text source ─► vocabulary ─► objective ─► packed batches ─► train_step (jit, sharded) ─► metrics
                                                     └──── data state ──► checkpoint ◄── train state

`train` is what `t2t train` calls; every argument is a gin binding (`train.batch_size`, or the T5X-style
macros `BATCH_SIZE`, `TRAIN_STEPS`, `TASK_FEATURE_LENGTHS`, `MODEL_DIR` of gin_configs/runs/).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import flax.linen as nn
import flax.struct
import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from t2t.configuration import ConfigError
from t2t.data.converters import CONVERTERS, FeatureConverter
from t2t.data.pipeline import Pipeline, TokenizedCorpus, tokenize_documents
from t2t.data.sources import get_source
from t2t.data.vocab import Vocabulary, default_vocabulary
from t2t.models.config import TransformerConfig
from t2t.models.families import build_model
from t2t.models.flops import flops_per_example
from t2t.training.checkpointing import Checkpointer
from t2t.training.losses import model_loss, per_token_metrics
from t2t.training.metrics import MetricsWriter
from t2t.training.partitioning import Partitioner, make_partitioner
from t2t.training.peak_flops import peak_flops_per_device

log = logging.getLogger("t2t")

Batch = Mapping[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    """Everything a step changes: the step counter, the parameters and the optimizer's state."""

    step: jax.Array
    params: Any
    opt_state: Any


@dataclasses.dataclass
class TrainResult:
    """What a finished run reports."""

    run_dir: Path
    step: int
    validation_loss: float
    initial_validation_loss: float | None
    unigram_entropy: float


def _loss(model: nn.Module, params: Any, batch: Batch, z_loss: float,
          dropout_rng: jax.Array | None) -> tuple[jax.Array, dict[str, jax.Array]]:
    outputs = model.apply({"params": params}, batch, deterministic=dropout_rng is None,
                          rngs=None if dropout_rng is None else {"dropout": dropout_rng})
    return model_loss(outputs, batch, z_loss)


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, z_loss: float,
                    seed: int) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """One optimizer step on one global batch; each head's loss is normalised per real token."""

    def loss_fn(params, batch, rng):
        return _loss(model, params, batch, z_loss, rng)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        # Dropout randomness is a function of (seed, step), so a resumed run draws the same masks.
        rng = jax.random.fold_in(jax.random.key(seed), state.step)
        (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, rng)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(step=state.step + 1,
                                  params=optax.apply_updates(state.params, updates),
                                  opt_state=opt_state)
        return new_state, {**terms, "grad_norm": optax.tree.norm(grads)}

    return train_step


def make_eval_step(model: nn.Module, z_loss: float) -> Callable[[Any, Batch], dict]:
    return lambda params, batch: _loss(model, params, batch, z_loss, None)[1]


class ShardedModel:
    """The model, optimizer and partitioner tied together: shardings of the state, jitted steps."""

    def __init__(self, config: TransformerConfig, tx: optax.GradientTransformation,
                 partitioner: Partitioner, converter: FeatureConverter, batch_size: int,
                 z_loss: float = 1e-4, seed: int = 0) -> None:
        self.model = build_model(config)
        self.z_loss = z_loss
        self.tx = tx
        self.partitioner = partitioner
        self.seed = seed
        self.batch_shapes = {k: (batch_size, length)
                             for k, length in converter.output_lengths().items()}
        dummy = {k: jnp.ones(s, jnp.int32) for k, s in self.batch_shapes.items()}

        # Shapes and logical names only: no mesh is needed (or wanted) to trace these.
        boxed = jax.eval_shape(lambda rng: self.model.init(rng, dummy)["params"],
                               jax.random.key(0))
        param_shardings = partitioner.tree_shardings(boxed)
        abstract_params = nn.unbox(boxed)
        abstract_opt = jax.eval_shape(tx.init, abstract_params)
        # Optimizer slots shaped like their parameter share its sharding; the rest (step counts,
        # Adafactor's factored row/column statistics) are small and replicated.
        opt_shardings = optax.tree_map_params(
            tx, lambda slot, sharding, param: sharding if slot.shape == param.shape
            else partitioner.replicated,
            abstract_opt, param_shardings, abstract_params,
            transform_non_params=lambda _: partitioner.replicated)
        self.state_shardings = TrainState(partitioner.replicated, param_shardings, opt_shardings)
        self.abstract_state = jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
            TrainState(jax.ShapeDtypeStruct((), jnp.int32), abstract_params, abstract_opt),
            self.state_shardings)
        batch_sharding = partitioner.sharding(("batch", "length"))
        self.batch_shardings = {k: batch_sharding for k in self.batch_shapes}
        self._dummy = dummy

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """Mesh and logical rules, active while tracing, so activation constraints resolve."""
        with jax.set_mesh(self.partitioner.mesh), nn.logical_axis_rules(self.partitioner.rules):
            yield

    def init_state(self) -> TrainState:
        def init(rng):
            params = nn.unbox(self.model.init(rng, self._dummy)["params"])
            return TrainState(jnp.zeros((), jnp.int32), params, self.tx.init(params))

        with self.context():
            return jax.jit(init, out_shardings=self.state_shardings)(jax.random.key(self.seed))

    def compile_train_step(self):
        """AOT-compiled train step (state donated) and its compile time in seconds."""
        step = jax.jit(make_train_step(self.model, self.tx, self.z_loss, self.seed),
                       in_shardings=(self.state_shardings, self.batch_shardings),
                       out_shardings=(self.state_shardings, self.partitioner.replicated),
                       donate_argnums=(0,))
        batch = {k: jax.ShapeDtypeStruct(s, jnp.int32, sharding=self.batch_shardings[k])
                 for k, s in self.batch_shapes.items()}
        start = time.perf_counter()
        with self.context():
            compiled = step.lower(self.abstract_state, batch).compile()
        return compiled, time.perf_counter() - start

    def eval_step(self):
        with self.context():
            return jax.jit(make_eval_step(self.model, self.z_loss),
                           in_shardings=(self.state_shardings.params, self.batch_shardings),
                           out_shardings=self.partitioner.replicated)


def _fresh_run_dir() -> Path:
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def _resolve_vocab_size(config: TransformerConfig, vocab: Vocabulary) -> TransformerConfig:
    if config.vocab_size is None:
        return config.replace(vocab_size=vocab.padded_vocab_size)
    if config.vocab_size < vocab.vocab_size:
        raise ValueError(
            f"model_config.vocab_size={config.vocab_size} is smaller than the vocabulary's "
            f"{vocab.vocab_size} ids (pieces + sentinels). Leave it unset to use "
            f"{vocab.padded_vocab_size}.")
    return config


def _make_converter(config: TransformerConfig,
                    feature_lengths: Mapping[str, int]) -> FeatureConverter:
    """The family's feature converter; a decoder-only model's prefix-LM setting decides its masks."""
    if config.family == "decoder_only":
        return CONVERTERS["decoder_only"](feature_lengths, prefix_lm=config.prefix_lm)
    return CONVERTERS[config.family](feature_lengths)


def _check_objective_fits_family(objective: Any, config: TransformerConfig) -> None:
    produces = getattr(objective, "family_features", "text_to_text")
    needs = "mlm" if config.family == "encoder_only" else "text_to_text"
    if produces != needs:
        raise ValueError(
            f"Objective {type(objective).__name__} makes {produces!r} examples, but the "
            f"{config.family} family trains on {needs!r} ones. Use an MLM objective (bert_mlm_nsp, "
            f"roberta_mlm) with encoder-only models and a text-to-text one otherwise.")


class _TqdmHandler(logging.Handler):
    """Log lines printed above the progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record))


def _setup_logging(run_dir: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
    for handler in (_TqdmHandler(), logging.FileHandler(run_dir / "train.log")):
        handler.setFormatter(fmt)
        log.addHandler(handler)


@gin.configurable(denylist=["partitioner"])
def train(
    model_dir: str | None = None,
    train_steps: int = gin.REQUIRED,
    batch_size: int = gin.REQUIRED,
    task_feature_lengths: Mapping[str, int] = gin.REQUIRED,
    model: TransformerConfig = gin.REQUIRED,
    objective: Any = gin.REQUIRED,
    optimizer: Callable[..., optax.GradientTransformation] = gin.REQUIRED,
    learning_rate: float | optax.Schedule = gin.REQUIRED,
    data_source: str = "embedded",
    validation_source: str | None = None,
    vocabulary: str | None = None,
    seed: int = 0,
    z_loss: float = 1e-4,
    log_every: int = 10,
    eval_every: int = 100,
    eval_batches: int = 8,
    checkpoint_every: int = 100,
    keep_checkpoints: int = 3,
    cache_dir: str | None = None,
    partitioner: Partitioner | None = None,
) -> TrainResult:
    """Pretrain a model; resumes from the latest checkpoint in `model_dir` if there is one.

    Args:
      model_dir: the run directory (checkpoints, metrics, logs, config); default a fresh one under runs/.
      train_steps: total optimizer steps (a resumed run stops at the same total).
      batch_size: global batch size in packed rows.
      task_feature_lengths: {"inputs": I, "targets": T} lengths of the packed features.
      model: the model's TransformerConfig (usually `@model_config()`).
      objective: the pretraining objective, e.g. `@SpanCorruption()`.
      optimizer: an optimizer factory taking `learning_rate`, e.g. `@adafactor` (not called in gin).
      learning_rate: a constant or a schedule, e.g. `@rsqrt_schedule()`.
      data_source: "embedded", or a file pattern (`*.jsonl[.gz]`, `*.json.gz` or text files).
      validation_source: defaults to the "validation" split of `data_source`.
      vocabulary: a SentencePiece model path; default the embedded 8k vocabulary.
      seed: seeds the parameters, the data order, the objective's noise and dropout.
      z_loss: weight of the z-loss term.
      log_every, eval_every, checkpoint_every: intervals in steps.
      eval_batches: validation batches per evaluation (a fixed, deterministic set).
      keep_checkpoints: how many recent checkpoints to keep.
      cache_dir: where tokenised corpora are cached; default ~/.cache/t2t.
      partitioner: mesh + rules; default `make_partitioner()` (gin: `make_partitioner.preset`).
    """
    run_dir = Path(model_dir) if model_dir else _fresh_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    _setup_logging(run_dir)
    (run_dir / "config.gin").write_text(gin.config_str())
    cache_dir = cache_dir or os.environ.get("T2T_CACHE_DIR") or str(Path.home() / ".cache" / "t2t")

    # Everything that can be wrong with the configuration fails here, before any compile.
    try:
        vocab = Vocabulary(vocabulary) if vocabulary else default_vocabulary()
        config = _resolve_vocab_size(model, vocab)
        raw_length = objective.raw_length(task_feature_lengths)
        partitioner = partitioner or make_partitioner()
        partitioner.check_batch_size(batch_size)
        converter = _make_converter(config, task_feature_lengths)
        _check_objective_fits_family(objective, config)
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from error

    log.info("Run directory: %s", run_dir.absolute())
    log.info("Tokenising %s (cached in %s)", data_source, cache_dir)
    train_corpus = tokenize_documents(get_source(data_source, "train"), vocab, cache_dir)
    valid_corpus = tokenize_documents(
        get_source(validation_source or data_source, "validation"), vocab, cache_dir)
    unigram_entropy = train_corpus.unigram_entropy()
    log.info("Train corpus: %d documents, %d tokens; unigram entropy %.3f nats/token. "
             "Validation: %d documents, %d tokens.", train_corpus.num_docs,
             train_corpus.num_tokens, unigram_entropy, valid_corpus.num_docs,
             valid_corpus.num_tokens)
    log.info("Objective %s: %d raw tokens -> %s", type(objective).__name__, raw_length,
             dict(task_feature_lengths))

    sharded = ShardedModel(config, optimizer(learning_rate=learning_rate), partitioner,
                           converter, batch_size, z_loss, seed)
    num_params = sum(math.prod(x.shape) for x in jax.tree.leaves(sharded.abstract_state.params))
    log.info("Model: %s params on mesh %s", f"{num_params:,}", dict(partitioner.mesh.shape))

    pipeline = Pipeline(train_corpus, objective, converter, batch_size, seed=seed)
    checkpointer = Checkpointer(run_dir / "checkpoints", checkpoint_every, keep_checkpoints)
    start_step = checkpointer.latest_step()
    if start_step is None:
        state = sharded.init_state()
        start_step = 0
    else:
        state, data_state, start_step = checkpointer.restore(sharded.abstract_state)
        pipeline.set_state(data_state)
        log.info("Resumed from the checkpoint at step %d.", start_step)

    train_step, compile_seconds = sharded.compile_train_step()
    log.info("Compiled the train step in %.1f s.", compile_seconds)
    eval_step = sharded.eval_step()

    def evaluate(params) -> dict[str, float]:
        valid = Pipeline(valid_corpus, objective, converter, batch_size, seed=seed,
                         shuffle=False, num_epochs=1)
        totals: dict[str, float] = {}
        for _, batch in zip(range(eval_batches), valid):
            terms = jax.device_get(eval_step(params, partitioner.shard_batch(batch)))
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v)
        return per_token_metrics(totals)

    writer = MetricsWriter(run_dir)
    flops_per_step = batch_size * flops_per_example(config, task_feature_lengths).training
    tokens_per_step = batch_size * sum(task_feature_lengths.values())
    devices = partitioner.mesh.devices.size
    # A CPU host is one compute unit however many fake devices it is split into.
    peak = peak_flops_per_device() * (1 if jax.devices()[0].platform == "cpu" else devices)
    schedule = learning_rate if callable(learning_rate) else (lambda _: learning_rate)

    initial_eval = None
    if start_step == 0:
        initial_eval = evaluate(state.params)
        writer.write(0, initial_eval, split="validation")
        log.info("Step 0: validation loss %.4f (unigram entropy %.4f)", initial_eval["loss"],
                 unigram_entropy)

    progress = tqdm(total=train_steps, initial=start_step, desc="train", unit="step",
                    dynamic_ncols=True, disable=None)
    pending: list[dict] = []
    padding = 0.0
    last_time = time.perf_counter()
    last_eval = initial_eval
    step = start_step
    try:
        while step < train_steps:
            batch = next(pipeline)
            padding += float(np.mean([np.mean(v == 0) for k, v in batch.items()
                                      if k.endswith("segment_ids")]))
            state, metrics = train_step(state, partitioner.shard_batch(batch))
            step += 1
            pending.append(metrics)
            checkpointer.save(step, state, pipeline.get_state())
            progress.update(1)
            if step % log_every == 0 or step == train_steps:
                fetched = jax.device_get(pending)  # blocks until the steps have really run
                elapsed = time.perf_counter() - last_time
                summed = jax.tree.map(lambda *xs: float(np.sum(xs)), *fetched)
                n = len(pending)
                step_time = elapsed / n
                record = {
                    **per_token_metrics(summed),
                    "grad_norm": summed["grad_norm"] / n,
                    "learning_rate": float(schedule(step - 1)),
                    "step_time": step_time,
                    "tokens_per_second": tokens_per_step / step_time,
                    "mfu": flops_per_step / step_time / peak,
                    "padding_fraction": padding / n,
                }
                writer.write(step, record)
                log.info("Step %d: loss %.4f, accuracy %.3f, lr %.3g, grad norm %.3f, %.3f s/step, "
                         "%.0f tokens/s, MFU %.1f%%", step, record["loss"], record["accuracy"],
                         record["learning_rate"], record["grad_norm"], step_time,
                         record["tokens_per_second"], 100 * record["mfu"])
                progress.set_postfix(loss=f"{record['loss']:.3f}", mfu=f"{record['mfu']:.2f}")
                pending, padding, last_time = [], 0.0, time.perf_counter()
            if step % eval_every == 0 or step == train_steps:
                last_eval = evaluate(state.params)
                writer.write(step, last_eval, split="validation")
                log.info("Step %d: validation loss %.4f, accuracy %.3f (unigram entropy %.4f)",
                         step, last_eval["loss"], last_eval["accuracy"], unigram_entropy)
                last_time = time.perf_counter()  # keep evaluation out of the step time
        if checkpointer.latest_step() != step:
            checkpointer.save(step, state, pipeline.get_state(), force=True)
    finally:
        progress.close()
        checkpointer.close()
        writer.close()

    if last_eval is None:  # resumed at or past train_steps: nothing trained, still report
        last_eval = evaluate(state.params)
    log.info("Done at step %d. Validation loss %.4f nats/target token; unigram entropy of the "
             "corpus %.4f nats/token.", step, last_eval["loss"], unigram_entropy)
    return TrainResult(run_dir, step, last_eval["loss"],
                       None if initial_eval is None else initial_eval["loss"], unigram_entropy)
