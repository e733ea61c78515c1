"""`t2t train`: the train state, the sharded train and eval steps, and a run's setup (data,
model, resume or fine-tuning start) around the shared loop of `t2t.training.loop`.

    text source ─► vocabulary ─► objective ─► packed batches ─► train_step (jit, sharded) ─► metrics
                                                     └──── data state ──► checkpoint ◄── train state

`train` is what `t2t train` calls; every argument is a gin binding (`train.batch_size`, or the T5X-style
macros `BATCH_SIZE`, `TRAIN_STEPS`, `TASK_FEATURE_LENGTHS`, `MODEL_DIR` of gin_configs/runs/).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

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
from t2t.data.pipeline import data_pipeline
from t2t.data.pipeline import unigram_entropy as data_unigram_entropy
from t2t.data.vocab import Vocabulary, default_vocabulary
from t2t.models.config import TransformerConfig
from t2t.models.families import build_model
from t2t.models.flops import flops_per_example
from t2t.training import initial_checkpoint
from t2t.training.checkpointing import Checkpointer
from t2t.training.loop import TrainLoop, check_nan_policy, guarded_update, held_out_evaluation
from t2t.training.losses import loss_normalizers, model_loss, per_token_metrics
from t2t.training.metrics import MetricsWriter
from t2t.training.partitioning import Partitioner, make_partitioner
from t2t.training.peak_flops import peak_flops_per_device
from t2t.training.run_lock import RunLock

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
    preempted: str | None = None  # the signal that stopped the run early, if one did


def _loss(model: nn.Module, params: Any, batch: Batch, z_loss: float,
          dropout_rng: jax.Array | None, normalizers: Mapping[str, jax.Array] | None = None
          ) -> tuple[jax.Array, dict[str, jax.Array]]:
    outputs = model.apply({"params": params}, batch, deterministic=dropout_rng is None,
                          rngs=None if dropout_rng is None else {"dropout": dropout_rng})
    return model_loss(outputs, batch, z_loss, normalizers)


def _split_microbatches(batch: Batch, microbatches: int) -> Batch:
    """[b, l] -> [microbatches, b / microbatches, l], microbatch m holding rows m, m + M, ...

    Strided rather than contiguous, so that every device, which holds a contiguous block of rows,
    contributes to every microbatch and none sits idle.
    """
    def split(x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0] // microbatches, microbatches, *x.shape[1:])
        return nn.with_logical_constraint(jnp.swapaxes(x, 0, 1), (None, "batch", "length"))

    return jax.tree.map(split, dict(batch))


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, z_loss: float,
                    seed: int, microbatches: int = 1
                    ) -> Callable[[TrainState, Batch], tuple[TrainState, dict]]:
    """One optimizer step on one global batch; each head's loss is normalised per real token.

    With `microbatches` > 1 the batch is processed in that many slices whose gradients are summed
    (a `lax.scan`, so activations of one slice live at a time); every slice divides by the whole
    batch's token counts, so the update equals the one-shot step up to float rounding.
    """
    grad_fn = jax.value_and_grad(
        lambda params, batch, rng, norm: _loss(model, params, batch, z_loss, rng, norm),
        has_aux=True)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        # Dropout randomness is a function of (seed, step), so a resumed run draws the same masks.
        rng = jax.random.fold_in(jax.random.key(seed), state.step)
        normalizers = loss_normalizers(batch)
        if microbatches == 1:
            (_, terms), grads = grad_fn(state.params, batch, rng, normalizers)
        else:
            def accumulate(carry, mb):
                index, micro = mb
                (_, terms), grads = grad_fn(state.params, micro, jax.random.fold_in(rng, index),
                                            normalizers)
                return jax.tree.map(jnp.add, carry, (terms, grads)), None

            term_shapes = jax.eval_shape(
                lambda: _loss(model, state.params, batch, z_loss, rng, normalizers)[1])
            zeros = (jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), term_shapes),
                     jax.tree.map(jnp.zeros_like, state.params))
            (terms, grads), _ = jax.lax.scan(
                accumulate, zeros,
                (jnp.arange(microbatches), _split_microbatches(batch, microbatches)))
        new_state, guard = guarded_update(state, grads, terms, tx)
        return new_state, {**terms, **guard}

    return train_step


def check_feature_lengths(lengths: Any) -> None:
    """Refuse TASK_FEATURE_LENGTHS other than {"inputs": I, "targets": T} (either key alone for
    one-sequence families) of positive ints, e.g. a bare word the command line made a string."""
    if not (isinstance(lengths, Mapping) and lengths and set(lengths) <= {"inputs", "targets"}
            and all(type(v) is int and v > 0 for v in lengths.values())):
        raise ValueError(
            f"TASK_FEATURE_LENGTHS must map 'inputs' and/or 'targets' to positive lengths, got "
            f"{lengths!r}. Quote it on the command line: "
            f"--gin.TASK_FEATURE_LENGTHS=\"{{'inputs': 512, 'targets': 114}}\".")


def make_eval_step(model: nn.Module, z_loss: float) -> Callable[[Any, Batch], dict]:
    return lambda params, batch: _loss(model, params, batch, z_loss, None)[1]


class ShardedModel:
    """The model, optimizer and partitioner tied together: shardings of the state, jitted steps."""

    def __init__(self, config: TransformerConfig, tx: optax.GradientTransformation,
                 partitioner: Partitioner, converter: FeatureConverter, batch_size: int,
                 z_loss: float = 1e-4, seed: int = 0, microbatches: int = 1) -> None:
        self.model = build_model(config)
        self.z_loss = z_loss
        self.microbatches = microbatches
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

    @property
    def num_params(self) -> int:
        """Parameter count, from the abstract state's shapes."""
        return sum(math.prod(x.shape) for x in jax.tree.leaves(self.abstract_state.params))

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
        step = jax.jit(make_train_step(self.model, self.tx, self.z_loss, self.seed,
                                       self.microbatches),
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


def compile_report(sharded: ShardedModel, config: TransformerConfig,
                   feature_lengths: Mapping[str, int], batch_size: int) -> dict[str, Any]:
    """Compile the train step without running it: memory per device, FLOPs and compile time.

    XLA's memory figures are per device (the partitioned program); FLOPs are t2t's model FLOPs
    per step (`flops_per_example`, what MFU uses) next to XLA's own count of the compiled step.
    """
    compiled, seconds = sharded.compile_train_step()
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    mesh = sharded.partitioner.mesh
    gib = 2.0**30
    per_device = {
        "arguments_gib": memory.argument_size_in_bytes / gib,
        "outputs_gib": memory.output_size_in_bytes / gib,
        "aliased_gib": memory.alias_size_in_bytes / gib,  # donated: outputs reuse arguments
        "temporaries_gib": memory.temp_size_in_bytes / gib,
        "code_gib": memory.generated_code_size_in_bytes / gib,
    }
    per_device["peak_estimate_gib"] = (per_device["arguments_gib"] + per_device["outputs_gib"]
                                       - per_device["aliased_gib"]
                                       + per_device["temporaries_gib"])
    return {
        "devices": int(mesh.devices.size),
        "device_kind": mesh.devices.flat[0].device_kind,
        "mesh": {k: int(v) for k, v in mesh.shape.items()},
        "parameters": sharded.num_params,
        "batch_size": batch_size,
        "feature_lengths": dict(feature_lengths),
        "model_flops_per_step": batch_size * flops_per_example(config, feature_lengths).training,
        "xla_flops_per_step_per_device": float(cost.get("flops", float("nan"))) if cost else None,
        "compile_seconds": seconds,
        "memory_per_device": per_device,
    }


def fresh_run_dir() -> Path:
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def resolve_vocab_size(config: TransformerConfig, vocab: Vocabulary) -> TransformerConfig:
    if config.vocab_size is None:
        return config.replace(vocab_size=vocab.padded_vocab_size)
    if config.vocab_size < vocab.vocab_size:
        raise ValueError(
            f"model_config.vocab_size={config.vocab_size} is smaller than the vocabulary's "
            f"{vocab.vocab_size} ids (pieces + sentinels). Leave it unset to use "
            f"{vocab.padded_vocab_size}.")
    return config


def make_converter(config: TransformerConfig,
                    feature_lengths: Mapping[str, int]) -> FeatureConverter:
    """The family's feature converter; a decoder-only model's prefix-LM setting decides its masks,
    an encoder-only model's heads the labels its batches carry, and `one_example_per_row` turns
    packing off (else the converter's own setting holds, gin's `<Converter>.pack`)."""
    options = {"pack": False} if config.one_example_per_row else {}
    if config.family == "decoder_only":
        options["prefix_lm"] = config.prefix_lm
    elif config.family == "encoder_only":  # batches carry the labels of its fine-tuning heads
        options["heads"] = config.encoder_heads
    return CONVERTERS[config.family](feature_lengths, **options)


def check_objective_fits_family(objective: Any, config: TransformerConfig) -> None:
    produces = getattr(objective, "family_features", "text_to_text")
    needs = "mlm" if config.family == "encoder_only" else "text_to_text"
    if produces != needs:
        raise ValueError(
            f"Objective {type(objective).__name__} makes {produces!r} examples, but the "
            f"{config.family} family trains on {needs!r} ones. Use an MLM objective (bert_mlm_nsp, "
            f"roberta_mlm) with encoder-only models and a text-to-text one otherwise.")


def check_same_model(run_dir: Path, config: TransformerConfig, resuming: bool,
                     write: bool) -> None:
    """Refuse to resume a run whose model configuration differs from the one that wrote it (a
    field that t2t added since counts as its default)."""
    check_same_settings(run_dir / "model_config.json", dataclasses.asdict(config), resuming, write,
                        defaults=dataclasses.asdict(TransformerConfig()))


def check_same_settings(path: Path, settings: Mapping[str, Any], resuming: bool,
                        write: bool, defaults: Mapping[str, Any] | None = None) -> None:
    """Refuse to resume a run whose settings (as JSON in `path`) differ from `settings`, naming
    each field that changed; a field missing from the file is taken from `defaults` (else None).
    On a fresh run (or one without the file), write them if `write`."""
    current = json.loads(json.dumps(settings))  # tuples -> lists, as stored
    if resuming and path.exists():
        saved = {**json.loads(json.dumps(defaults or {})), **json.loads(path.read_text())}
        changed = {k: (saved.get(k), v) for k, v in current.items() if saved.get(k) != v}
        if changed:
            details = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ConfigError(
                f"Cannot resume {path.parent}: its checkpoints were written by a different model "
                f"or settings ({details}). Use a new MODEL_DIR, or restore the original settings.")
    elif write:
        path.write_text(json.dumps(current, indent=2))


class _TqdmHandler(logging.Handler):
    """Log lines printed above the progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record))


def setup_logging(run_dir: Path | None) -> None:
    """Log to the console, and to run_dir/train.log when given."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
    handlers = [_TqdmHandler()]
    if run_dir is not None:
        handlers.append(logging.FileHandler(run_dir / "train.log"))
    for handler in handlers:
        handler.setFormatter(fmt)
        log.addHandler(handler)


class _PretrainLoop(TrainLoop):
    """`train`'s loop: records add MFU and padding; evaluations the corpus's unigram entropy."""

    def __init__(self, *args, flops_per_step: float, peak_flops: float, unigram_entropy: float,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.flops_per_step, self.peak_flops = flops_per_step, peak_flops
        self.unigram_entropy = unigram_entropy
        self.padding = 0.0  # summed over the steps since the last record

    def on_batch(self, batch: Mapping[str, np.ndarray]) -> None:
        self.padding += float(np.mean([np.mean(v == 0) for k, v in batch.items()
                                       if k.endswith("segment_ids")]))

    def record(self, summed: dict[str, float], steps: int, step: int, step_time: float
               ) -> dict[str, float]:
        padding, self.padding = self.padding / steps, 0.0
        return {**per_token_metrics(summed),
                "mfu": self.flops_per_step / step_time / self.peak_flops,
                "padding_fraction": padding}

    def describe(self, record: Mapping[str, float]) -> str:
        return (f"loss {record['loss']:.4f}, accuracy {record['accuracy']:.3f}, "
                f"lr {record['learning_rate']:.3g}, grad norm {record['grad_norm']:.3f}, "
                f"{record['step_time']:.3f} s/step, {record['tokens_per_second']:.0f} tokens/s, "
                f"MFU {100 * record['mfu']:.1f}%")

    def describe_eval(self, metrics: Mapping[str, float]) -> str:
        return (f"validation loss {metrics['loss']:.4f}, accuracy {metrics['accuracy']:.3f} "
                f"(unigram entropy {self.unigram_entropy:.4f})")


@gin.configurable(denylist=["partitioner", "compile_only"])
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
    microbatches: int = 1,
    nan_policy: str = "stop",
    max_skipped_steps: int = 10,
    keep_every: int | None = None,
    keep_hours: float | None = None,
    vocabulary_extra_ids: int = 100,
    initial_checkpoint_path: str | None = None,
    initial_checkpoint_include: Sequence[str] = (".*",),
    initial_checkpoint_exclude: Sequence[str] = (),
    partitioner: Partitioner | None = None,
    compile_only: bool = False,
) -> TrainResult | dict[str, Any]:
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
      microbatches: gradient accumulation: split each batch into this many slices, one forward and
        backward pass each, summed into one update (memory of one slice, result of the batch).
      nan_policy: what a step with a non-finite loss or gradient does (it is never applied):
        "stop" ends the run with a message naming the step, keeping the last good checkpoint;
        "skip" goes on, counting skipped steps in the metrics, until `max_skipped_steps`.
      keep_every, keep_hours: besides the newest `keep_checkpoints`, also keep every checkpoint
        whose step is a multiple of `keep_every`, and one per `keep_hours` hours.
      vocabulary_extra_ids: sentinels appended to the vocabulary (T5: 100); objectives that write
        sentinels or mask tokens need them.
      initial_checkpoint_path: fine-tuning: start from this run's (or checkpoint's) parameters,
        with a fresh step, optimizer state and data position (t2t/training/initial_checkpoint.py).
        Ignored once `model_dir` has its own checkpoint (a resumed fine-tuning run).
      initial_checkpoint_include, initial_checkpoint_exclude: regular expressions over parameter
        paths ("lm_head/kernel"): restore the matching ones, keep a fresh init for
        the rest (a partial restore, e.g. a new head).
      partitioner: mesh + rules; default `make_partitioner()` (gin: `make_partitioner.preset`).
      compile_only: check the configuration and compile the train step for the partitioner's
        devices, then return `compile_report`'s dict instead of training (no data, no run dir).
    """
    # Everything that can be wrong with the configuration fails here, before any compile.
    try:
        check_feature_lengths(task_feature_lengths)
        vocab = (Vocabulary(vocabulary, extra_ids=vocabulary_extra_ids) if vocabulary
                 else default_vocabulary(extra_ids=vocabulary_extra_ids))
        if getattr(objective, "uses_sentinels", False) and vocab.extra_ids == 0:
            raise ValueError(
                f"The vocabulary {vocab.model_path} has no sentinels (extra ids), but objective "
                f"{type(objective).__name__} writes sentinel or mask ids above the vocabulary's "
                f"pieces. Give it T5's 100 extra ids (--gin.train.vocabulary_extra_ids=100) or use "
                f"an objective without sentinels (lm, prefix_lm, iid_15_d_d, all_permute).")
        check_nan_policy(nan_policy)
        config = resolve_vocab_size(model, vocab)
        raw_length = objective.raw_length(task_feature_lengths)
        partitioner = partitioner or make_partitioner()
        partitioner.check_batch_size(batch_size)
        if batch_size % microbatches or (batch_size // microbatches) % partitioner.data_shards:
            raise ValueError(
                f"BATCH_SIZE={batch_size} in {microbatches} microbatches gives slices that do not "
                f"split evenly into the {partitioner.data_shards} data shards: BATCH_SIZE must be a "
                f"multiple of microbatches x data shards = {microbatches * partitioner.data_shards}.")
        converter = make_converter(config, task_feature_lengths)
        check_objective_fits_family(objective, config)
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from error
    sharded = ShardedModel(config, optimizer(learning_rate=learning_rate), partitioner,
                           converter, batch_size, z_loss, seed, microbatches)
    if compile_only:
        return compile_report(sharded, config, task_feature_lengths, batch_size)

    run_dir = Path(model_dir) if model_dir else fresh_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    chief = jax.process_index() == 0  # the one host that writes logs, metrics and the config
    lock = RunLock(run_dir).acquire() if chief else None  # released when the loop ends
    setup_logging(run_dir if chief else None)
    if chief:
        (run_dir / "config.gin").write_text(gin.config_str())
    cache_dir = cache_dir or os.environ.get("T2T_CACHE_DIR") or str(Path.home() / ".cache" / "t2t")
    log.info("Run directory: %s", run_dir.absolute())
    log.info("Data: %s (token cache in %s)", data_source, cache_dir)
    try:  # a missing or empty source, a bad field or host count fails here, before any compile
        pipeline = data_pipeline(data_source, "train", vocab, objective, converter, batch_size,
                                 seed=seed, cache_dir=cache_dir)
        valid_pipeline = data_pipeline(validation_source or data_source, "validation", vocab,
                                       objective, converter, batch_size, seed=seed, shuffle=False,
                                       num_epochs=1, cache_dir=cache_dir)
        unigram_entropy = data_unigram_entropy(pipeline.sample_tokens())
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from error
    log.info("Train data: %r in %d virtual shards (data fingerprint %s); unigram entropy %.3f "
             "nats/token. Validation: %r.", pipeline.source, pipeline.num_shards,
             pipeline.fingerprint, unigram_entropy, valid_pipeline.source)
    log.info("Objective %s: %d raw tokens -> %s", type(objective).__name__, raw_length,
             dict(task_feature_lengths))

    log.info("Model: %s params on mesh %s", f"{sharded.num_params:,}",
             dict(partitioner.mesh.shape))

    checkpointer = Checkpointer(run_dir / "checkpoints", checkpoint_every, keep_checkpoints,
                                keep_every=keep_every, keep_hours=keep_hours)
    check_same_model(run_dir, config, resuming=checkpointer.latest_step() is not None,
                      write=chief)
    start_step = checkpointer.latest_step()
    if start_step is None:
        state = sharded.init_state()
        start_step = 0
        if initial_checkpoint_path:
            try:
                restored, names = initial_checkpoint.load_params(
                    initial_checkpoint_path, sharded.abstract_state.params,
                    initial_checkpoint_include, initial_checkpoint_exclude)
            except (ValueError, FileNotFoundError) as error:
                raise ConfigError(str(error)) from error
            state = state.replace(params=initial_checkpoint.merge(state.params, restored))
            log.info("Fine-tuning from %s: %d parameter arrays restored, %d freshly initialised.",
                     initial_checkpoint_path, len(names),
                     len(jax.tree.leaves(state.params)) - len(names))
    else:
        state, data_state, start_step = checkpointer.restore(sharded.abstract_state)
        try:
            pipeline.set_state(data_state)
        except ValueError as error:
            raise ConfigError(f"cannot resume {run_dir}: {error}") from error
        log.info("Resumed from the checkpoint at step %d.", start_step)

    train_step, compile_seconds = sharded.compile_train_step()
    log.info("Compiled the train step in %.1f s.", compile_seconds)
    evaluate = held_out_evaluation(sharded.eval_step(), valid_pipeline, partitioner.shard_batch,
                                   eval_batches)
    writer = MetricsWriter(run_dir, enabled=chief)
    devices = partitioner.mesh.devices.size
    # A CPU host is one compute unit however many fake devices it is split into.
    peak = peak_flops_per_device() * (1 if jax.devices()[0].platform == "cpu" else devices)
    loop = _PretrainLoop(
        lambda state, batch: train_step(state, partitioner.shard_batch(batch)), pipeline,
        checkpointer, writer, evaluate, train_steps=train_steps, log_every=log_every,
        eval_every=eval_every, nan_policy=nan_policy, max_skipped_steps=max_skipped_steps,
        show_progress=chief, learning_rate=learning_rate,
        tokens_per_step=batch_size * sum(task_feature_lengths.values()),
        flops_per_step=batch_size * flops_per_example(config, task_feature_lengths).training,
        peak_flops=peak, unigram_entropy=unigram_entropy)
    try:
        result = loop.run(state, start_step)
    finally:
        checkpointer.close()
        writer.close()
        if lock is not None:
            lock.release()
    if not result.preempted:
        log.info("Done at step %d. Validation loss %.4f nats/target token; unigram entropy of "
                 "the corpus %.4f nats/token.", result.step, result.validation_loss,
                 unigram_entropy)
    return TrainResult(run_dir, result.step, result.validation_loss,
                       result.initial_validation_loss, unigram_entropy, result.preempted)
