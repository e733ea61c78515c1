"""Knowledge distillation, DistilBERT-style (Sanh et al. 2019), for every model family.

A frozen teacher and a shallower student read the same packed batches; the student starts from
every other teacher layer and learns from three signals:

    teacher (frozen, eval mode) -> logits_t, hidden_t
    student                     -> logits_s, hidden_s
    loss = α_soft · T² · KL(softmax(logits_t / T) ‖ softmax(logits_s / T))
         + α_hard · the family's usual loss (MLM, LM, denoising: `losses.model_loss`)
         + α_cos  · (1 − cos(hidden_s, hidden_t))

The soft term covers the positions the hard loss scores (masked tokens for MLM, every target token
for LMs and encoder-decoders); the cosine term covers every real token of the stack that feeds the
output head (BERT's encoder, a GPT's or T5's decoder). Both models run inside the one jitted step.

Everything a pretraining run is configured with (student model, objective, data, optimizer, steps,
intervals, run directory) is read from `train`'s gin bindings, so the gin files that train the
student from scratch distill it too: add `runs/distill.gin` and name the teacher.

    t2t distill --gin_file=experiments/distillation/bert_6l.gin --gin_file=runs/distill.gin \
                --gin.TEACHER="'runs/bert_12l'" --gin.MODEL_DIR="'runs/bert_6l_distilled'"

The run directory has the layout `t2t train` writes (config.gin, model_config.json, metrics.jsonl,
checkpoints/), so `t2t infer`, `t2t eval` and fine-tuning read a distilled student as they read
any run; `validation` lines of metrics.jsonl hold the student's usual held-out loss.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from t2t.configuration import ConfigError
from t2t.data.pipeline import data_pipeline
from t2t.data.pipeline import unigram_entropy as data_unigram_entropy
from t2t.data.vocab import Vocabulary, default_vocabulary
from t2t.interop.checkpoint import CONFIG_FILE, config_from_json
from t2t.interop.layout import relayout, unscan
from t2t.models.config import TransformerConfig
from t2t.training import initial_checkpoint, trainer
from t2t.training.checkpointing import Checkpointer
from t2t.training.loop import (TrainLoop, check_nan_policy, guarded_update,
                               held_out_evaluation, run_command)
from t2t.training.losses import (HEAD_TARGETS, loss_normalizers, model_loss, per_token_metrics,
                                 primary_head)
from t2t.training.metrics import MetricsWriter
from t2t.training.partitioning import Partitioner, make_partitioner
from t2t.training.run_lock import RunLock

log = logging.getLogger("t2t")

Array = jax.Array
Batch = Mapping[str, Array]

# What must be equal for the student to take the teacher's tensors and compare hidden states.
_WIDTHS = ("d_model", "num_heads", "head_dim", "d_ff")
# What must be equal for the two to read the same batches and share one output vocabulary.
_INTERFACE = ("family", "prefix_lm", "vocab_size")
_LAYER = re.compile(r"layers_(\d+)$")


# ---------------------------------------------------------------------------------------------
# The student's initialisation: every other teacher layer.


def check_compatible(teacher: TransformerConfig, student: TransformerConfig,
                     same_width: bool = True) -> None:
    """Raise a ValueError naming every field in which `student` cannot follow `teacher`.

    The two must read the same features and predict the same vocabulary; with `same_width`
    (initialising from the teacher, or a cosine term) they must also have its widths.
    """
    fields = _INTERFACE + (_WIDTHS if same_width else ())
    diff = [f"{f}: teacher {getattr(teacher, f)!r}, student {getattr(student, f)!r}"
            for f in fields if getattr(teacher, f) != getattr(student, f)]
    if diff:
        raise ValueError(
            "The student does not fit the teacher (" + "; ".join(diff) + "). Distillation "
            "initialises the student from the teacher's layers and compares their hidden states "
            "and logits, so the student may differ in depth only: set these model_config fields "
            "to the teacher's (its run's model_config.json), e.g. --gin.model_config."
            f"{diff[0].split(':')[0]}={getattr(teacher, diff[0].split(':')[0])!r}.")


def default_teacher_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spaced teacher layers for a shallower student, starting at the bottom.

    Halving the depth takes every other layer, as DistilBERT does: 12 -> 6 gives
    [0, 2, 4, 6, 8, 10]; 12 -> 4 gives [0, 3, 6, 9].
    """
    return [i * teacher_layers // student_layers for i in range(student_layers)]


def stack_depths(params: Any) -> dict[tuple[str, ...], int]:
    """{stack path: number of layers} of a parameter tree in either layout; the leaves may be
    arrays or shapes (jax.ShapeDtypeStruct), e.g. {("encoder",): 12} for BERT."""
    depths: dict[tuple[str, ...], int] = {}
    for key, leaf in traverse_util.flatten_dict(params).items():
        for i, part in enumerate(key):
            if part == "layers" and key[i + 1:i + 2] == ("block",):  # scanned: [layers, ...]
                depths[key[:i]] = leaf.shape[0]
            elif m := _LAYER.match(part):
                depths[key[:i]] = max(depths.get(key[:i], 0), int(m.group(1)) + 1)
    return depths


def layer_maps(teacher_params: Any, student_params: Any,
               teacher_layers: Sequence[int] | None = None) -> dict[tuple[str, ...], list[int]]:
    """{stack path: the teacher layer of each student layer}, checked against both trees.

    `teacher_layers` applies to every stack; None means `default_teacher_layers`.
    """
    teacher_depths = stack_depths(teacher_params)
    maps = {}
    for stack, depth in stack_depths(student_params).items():
        available = teacher_depths.get(stack, 0)
        chosen = (list(teacher_layers) if teacher_layers is not None
                  else default_teacher_layers(available, depth))
        if len(chosen) != depth or not all(0 <= i < available for i in chosen):
            raise ValueError(
                f"teacher_layers={chosen} does not fit stack {'/'.join(stack)!r}: the student has "
                f"{depth} layers there, so give {depth} indices of the teacher's {available} "
                f"layers (0..{available - 1}), e.g. {default_teacher_layers(available, depth)}.")
        maps[stack] = chosen
    return maps


def student_from_teacher(teacher_params: Any, student_params: Any, scan_layers: bool,
                         teacher_layers: Sequence[int] | None = None
                         ) -> tuple[dict, list[str], list[str]]:
    """The student's parameters, taken from the teacher's: layer i of each stack from teacher
    layer `teacher_layers[i]` (default `default_teacher_layers`), everything else (embeddings,
    norms, relative position tables, heads) from the same path.

    Either tree may be scanned or unscanned; the result has the layout `scan_layers` names, as
    numpy arrays. A student parameter the teacher lacks (a head the teacher was not trained
    with) keeps its value from `student_params`.

    Example: a 4-layer teacher and a 2-layer student, unscanned
        student encoder/layers_0/mlp/wi/kernel  <-  teacher encoder/layers_0/mlp/wi/kernel
        student encoder/layers_1/mlp/wi/kernel  <-  teacher encoder/layers_2/mlp/wi/kernel
        student embedder/tokens/embedding       <-  teacher embedder/tokens/embedding

    Returns (params, the copied paths, the paths kept from `student_params`).
    """
    maps = layer_maps(teacher_params, student_params, teacher_layers)
    teacher = traverse_util.flatten_dict(unscan(jax.device_get(teacher_params)))
    student = traverse_util.flatten_dict(unscan(jax.device_get(student_params)))

    def source(key: tuple[str, ...]) -> tuple[str, ...]:
        for i, part in enumerate(key):
            if m := _LAYER.match(part):
                return key[:i] + (f"layers_{maps[key[:i]][int(m.group(1))]}",) + key[i + 1:]
        return key

    out, copied, kept = {}, [], []
    for key, value in student.items():
        origin = source(key)
        if origin not in teacher:
            out[key] = np.asarray(value)
            kept.append("/".join(key))
            continue
        if teacher[origin].shape != value.shape:
            raise ValueError(
                f"student parameter {'/'.join(key)} has shape {value.shape} but its teacher "
                f"source {'/'.join(origin)} has {teacher[origin].shape}: give the student the "
                f"teacher's model config except for the number of layers.")
        out[key] = np.asarray(teacher[origin])
        copied.append("/".join(key))
    return relayout(traverse_util.unflatten_dict(out), scan_layers), copied, kept


# ---------------------------------------------------------------------------------------------
# The loss.


def soft_target_loss(student_logits: Array, teacher_logits: Array, weights: Array,
                     temperature: float) -> Array:
    """Σ_positions w · T² · KL(softmax(teacher / T) ‖ softmax(student / T)).

    [b, l, v] logits, [b, l] weights -> a scalar sum (divide by Σ w for a per-token value).
    DistilBERT writes the cross-entropy H(teacher, student); the KL differs from it by the
    teacher's entropy, a constant, so the gradients are the same, and the KL is 0 exactly when
    the student matches. T² keeps the gradient's scale independent of T (Hinton et al. 2015).
    """
    teacher_logp = jax.nn.log_softmax(teacher_logits.astype(jnp.float32) / temperature)
    student_logp = jax.nn.log_softmax(student_logits.astype(jnp.float32) / temperature)
    kl = jnp.sum(jnp.exp(teacher_logp) * (teacher_logp - student_logp), axis=-1)  # [b, l]
    return temperature**2 * jnp.sum(kl * weights.astype(jnp.float32))


def cosine_loss(student_hidden: Array, teacher_hidden: Array, weights: Array) -> Array:
    """Σ w · (1 − cos(student, teacher)): [b, l, e] states, [b, l] weights -> a scalar."""
    s = student_hidden.astype(jnp.float32)
    t = teacher_hidden.astype(jnp.float32)
    norms = jnp.linalg.norm(s, axis=-1) * jnp.linalg.norm(t, axis=-1)
    cos = jnp.sum(s * t, axis=-1) / jnp.maximum(norms, 1e-8)  # [b, l]
    return jnp.sum((1.0 - cos) * weights.astype(jnp.float32))


def hidden_source(config: TransformerConfig) -> tuple[str, str]:
    """(the stack whose output feeds the primary head, the segment-ids feature of its tokens)."""
    if config.family == "encoder_only":
        return "encoder", "encoder_segment_ids"
    return "decoder", "decoder_segment_ids"


def apply_with_hidden(model: nn.Module, params: Any, batch: Batch,
                      dropout_rng: Array | None = None) -> tuple[dict[str, Array], Array]:
    """(the model's outputs, the final hidden states [b, l, e] of its `hidden_source` stack).

    The states are the stack module's return value, captured by flax's `capture_intermediates`,
    so no model code changes. A shared encoder-decoder calls its one stack twice; the last call
    is the decoder's.
    """
    stack, _ = hidden_source(model.config)
    outputs, state = model.apply(
        {"params": params}, batch, deterministic=dropout_rng is None,
        rngs=None if dropout_rng is None else {"dropout": dropout_rng},
        capture_intermediates=lambda module, method: module.name == stack and method == "__call__",
        mutable=["intermediates"])
    return outputs, state["intermediates"][stack]["__call__"][-1]


@dataclasses.dataclass(frozen=True)
class DistillationLoss:
    """α_soft · soft_target_loss + α_hard · model_loss + α_cos · cosine_loss, each per token.

    Defaults are DistilBERT's (HF's distillation/train.py as used for DistilBERT and DistilGPT-2:
    `--temperature 2.0 --alpha_ce 5.0 --alpha_mlm 2.0 --alpha_cos 1.0`).
    """

    temperature: float = 2.0
    alpha_soft: float = 5.0
    alpha_hard: float = 2.0
    alpha_cos: float = 1.0
    z_loss: float = 1e-4

    def __call__(self, student: tuple[dict[str, Array], Array],
                 teacher: tuple[dict[str, Array], Array], batch: Batch,
                 hidden_segment_ids: str) -> tuple[Array, dict[str, Array]]:
        """(outputs, hidden) of student and teacher -> (loss, terms): the hard loss's summed
        terms (`model_loss`) plus the per-token means `soft_loss`, `cosine_loss`, `distill_loss`."""
        (s_out, s_hidden), (t_out, t_hidden) = student, jax.lax.stop_gradient(teacher)
        normalizers = loss_normalizers(batch)
        hard, terms = model_loss(s_out, batch, self.z_loss, normalizers)
        head = primary_head(s_out)  # logits or mlm_logits; auxiliary heads (NSP) get no soft term
        soft = soft_target_loss(s_out[head], t_out[head], batch[HEAD_TARGETS[head][1]],
                                self.temperature) / normalizers[head]
        real = (batch[hidden_segment_ids] > 0).astype(jnp.float32)
        cos = cosine_loss(s_hidden, t_hidden, real) / jnp.maximum(jnp.sum(real), 1.0)
        loss = self.alpha_soft * soft + self.alpha_hard * hard + self.alpha_cos * cos
        return loss, {**terms, "soft_loss": soft, "cosine_loss": cos, "distill_loss": loss}


_MEAN_TERMS = ("soft_loss", "cosine_loss", "distill_loss")  # per-step means, averaged when logged


def make_distill_step(student: nn.Module, teacher: nn.Module, tx: optax.GradientTransformation,
                      loss: DistillationLoss, seed: int
                      ) -> Callable[[trainer.TrainState, Any, Batch],
                                    tuple[trainer.TrainState, dict]]:
    """One optimizer step of the student: (state, teacher params, batch) -> (state, metrics).

    A non-finite step is not applied (`t2t.training.loop.guarded_update`); the metrics carry
    what the loop's divergence check reads (`nonfinite`, `grad_norm`, `update_norm`).
    """
    _, segment_ids = hidden_source(student.config)

    def objective(params, teacher_params, batch, rng):
        return loss(apply_with_hidden(student, params, batch, rng),
                    apply_with_hidden(teacher, teacher_params, batch), batch, segment_ids)

    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def step(state: trainer.TrainState, teacher_params: Any, batch: Batch):
        # Dropout masks are a function of (seed, step), as in the trainer: resuming redraws them.
        rng = jax.random.fold_in(jax.random.key(seed), state.step)
        (_, terms), grads = grad_fn(state.params, teacher_params, batch, rng)
        new_state, guard = guarded_update(state, grads, terms, tx)
        return new_state, {**terms, **guard}

    return step


# ---------------------------------------------------------------------------------------------
# The run.


class _DistillLoop(TrainLoop):
    """`distill`'s loop: records add the distillation terms; log lines name them."""

    def record(self, summed: dict[str, float], steps: int, step: int, step_time: float
               ) -> dict[str, float]:
        return {**per_token_metrics(summed), **{k: summed[k] / steps for k in _MEAN_TERMS}}

    def describe(self, record: Mapping[str, float]) -> str:
        return (f"distillation loss {record['distill_loss']:.4f} (soft {record['soft_loss']:.4f}, "
                f"hard {record['loss']:.4f}, cosine {record['cosine_loss']:.4f}), "
                f"{record['step_time']:.3f} s/step")

    def describe_eval(self, metrics: Mapping[str, float]) -> str:
        return (f"student validation loss {metrics['loss']:.4f}, "
                f"accuracy {metrics['accuracy']:.3f}")


def teacher_config(path: str | Path) -> TransformerConfig:
    """The TransformerConfig saved with the teacher: model_config.json in the run (or params-only
    checkpoint) directory, found from the run, its checkpoints/ or one checkpoints/<step>."""
    path = Path(path).expanduser().absolute()
    for directory in (path, path.parent, path.parent.parent):
        if (directory / CONFIG_FILE).is_file():
            return config_from_json((directory / CONFIG_FILE).read_text())
    raise FileNotFoundError(
        f"No {CONFIG_FILE} at or above the teacher {path}: give TEACHER as a `t2t train` run "
        f"directory (or one of its checkpoints/<step>), or a `t2t convert import` output.")


def train_settings() -> dict[str, Any]:
    """`train`'s arguments as gin binds them now (its defaults where unbound), references
    evaluated: the student's model, objective, data, optimizer, steps and intervals."""
    defaults = {name: p.default for name, p in inspect.signature(trainer.train).parameters.items()}
    settings = {**defaults, **gin.get_bindings("train")}
    missing = [name for name, value in settings.items() if value is gin.REQUIRED]
    if missing:
        raise ValueError(f"train.{missing[0]} is not set: distill reads the student's model, data "
                         f"and optimizer from train's bindings; include the student's experiment "
                         f"file (e.g. experiments/distillation/bert_6l.gin) before "
                         f"runs/distill.gin.")
    unsupported = {"microbatches": (1, "distill has no gradient accumulation"),
                   "initial_checkpoint_path": (None, "the student starts from the teacher")}
    for name, (allowed, why) in unsupported.items():
        if settings[name] != allowed:
            raise ValueError(f"train.{name}={settings[name]!r} is not supported by distill "
                             f"({why}); leave it at {allowed!r}.")
    return settings


@gin.configurable(denylist=["partitioner"])
def distill(teacher: str = gin.REQUIRED, temperature: float = 2.0, alpha_soft: float = 5.0,
            alpha_hard: float = 2.0, alpha_cos: float = 1.0,
            teacher_layers: Sequence[int] | None = None, init_from_teacher: bool = True,
            partitioner: Partitioner | None = None) -> trainer.TrainResult:
    """Distil `teacher` into the student that `train`'s gin bindings describe.

    Args:
      teacher: the teacher's run directory, one of its checkpoints/<step>, or a `t2t convert
        import` output; its model_config.json gives its architecture.
      temperature: softmax temperature T of the soft targets (DistilBERT: 2).
      alpha_soft, alpha_hard, alpha_cos: weights of the soft-target KL (scaled by T²), the
        family's usual loss and the hidden-state cosine term (DistilBERT: 5, 2, 1).
      teacher_layers: which teacher layer initialises each student layer, per stack; default
        evenly spaced from layer 0 (every other layer when halving the depth).
      init_from_teacher: initialise the student from the teacher (False: a fresh init, for
        ablations).
      partitioner: mesh + rules; default `make_partitioner()`.

    Resumes from the student's latest checkpoint in `train.model_dir` if there is one.
    """
    try:
        s = train_settings()  # the student's run, as `t2t train` would run it
        vocab = (Vocabulary(s["vocabulary"], extra_ids=s["vocabulary_extra_ids"])
                 if s["vocabulary"] else default_vocabulary(extra_ids=s["vocabulary_extra_ids"]))
        config = trainer.resolve_vocab_size(s["model"], vocab)
        teacher_cfg = teacher_config(teacher)
        check_compatible(teacher_cfg, config, same_width=init_from_teacher or alpha_cos > 0)
        check_nan_policy(s["nan_policy"])
        partitioner = partitioner or make_partitioner()
        partitioner.check_batch_size(s["batch_size"])
        converter = trainer.make_converter(config, s["task_feature_lengths"])
        trainer.check_objective_fits_family(s["objective"], config)
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from error
    batch_size, steps = s["batch_size"], s["train_steps"]
    tx = s["optimizer"](learning_rate=s["learning_rate"])
    student = trainer.ShardedModel(config, tx, partitioner, converter, batch_size, s["z_loss"],
                                   s["seed"])
    frozen = trainer.ShardedModel(teacher_cfg, optax.identity(), partitioner, converter,
                                  batch_size, s["z_loss"])
    if init_from_teacher:  # a bad teacher_layers fails here, before the run directory exists
        try:
            layer_maps(frozen.abstract_state.params, student.abstract_state.params,
                       teacher_layers)
        except ValueError as error:
            raise ConfigError(str(error)) from error

    run_dir = Path(s["model_dir"]) if s["model_dir"] else trainer.fresh_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    chief = jax.process_index() == 0
    lock = RunLock(run_dir).acquire() if chief else None
    trainer.setup_logging(run_dir if chief else None)
    if chief:
        (run_dir / "config.gin").write_text(gin.config_str())
    cache_dir = (s["cache_dir"] or os.environ.get("T2T_CACHE_DIR")
                 or str(Path.home() / ".cache" / "t2t"))
    try:
        pipeline = data_pipeline(s["data_source"], "train", vocab, s["objective"], converter,
                                 batch_size, seed=s["seed"], cache_dir=cache_dir)
        valid = data_pipeline(s["validation_source"] or s["data_source"], "validation", vocab,
                              s["objective"], converter, batch_size, seed=s["seed"],
                              shuffle=False, num_epochs=1, cache_dir=cache_dir)
        teacher_params, _ = initial_checkpoint.load_params(teacher, frozen.abstract_state.params)
        unigram_entropy = data_unigram_entropy(pipeline.sample_tokens())
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from error
    log.info("Distilling %s (%s params) into %s params in %s; data %r (unigram entropy %.3f "
             "nats/token).", teacher, f"{frozen.num_params:,}", f"{student.num_params:,}",
             run_dir.absolute(), pipeline.source, unigram_entropy)

    checkpointer = Checkpointer(run_dir / "checkpoints", s["checkpoint_every"],
                                s["keep_checkpoints"], keep_every=s["keep_every"],
                                keep_hours=s["keep_hours"])
    trainer.check_same_model(run_dir, config, resuming=checkpointer.latest_step() is not None,
                              write=chief)
    start = checkpointer.latest_step()
    if start is None:
        start, state = 0, student.init_state()
        if init_from_teacher:
            try:
                params, copied, kept = student_from_teacher(
                    teacher_params, state.params, config.scan_layers, teacher_layers)
            except ValueError as error:
                raise ConfigError(str(error)) from error
            state = state.replace(params=jax.device_put(params, student.state_shardings.params))
            log.info("Student initialised from teacher layers %s: %d arrays copied, %d kept "
                     "fresh%s.", list(teacher_layers) if teacher_layers else "evenly spaced",
                     len(copied), len(kept), f" ({', '.join(kept)})" if kept else "")
    else:
        state, data_state, start = checkpointer.restore(student.abstract_state)
        pipeline.set_state(data_state)
        log.info("Resumed from the checkpoint at step %d.", start)

    loss = DistillationLoss(temperature, alpha_soft, alpha_hard, alpha_cos, s["z_loss"])
    with student.context():
        step_fn = jax.jit(make_distill_step(student.model, frozen.model, tx, loss, s["seed"]),
                          in_shardings=(student.state_shardings, frozen.state_shardings.params,
                                        student.batch_shardings),
                          out_shardings=(student.state_shardings, partitioner.replicated),
                          donate_argnums=(0,))
    evaluate = held_out_evaluation(student.eval_step(), valid, partitioner.shard_batch,
                                   s["eval_batches"])
    writer = MetricsWriter(run_dir, enabled=chief)

    def step(state: trainer.TrainState, batch: Batch):
        with student.context():
            return step_fn(state, teacher_params, partitioner.shard_batch(batch))

    loop = _DistillLoop(step, pipeline, checkpointer, writer, evaluate, train_steps=steps,
                        log_every=s["log_every"], eval_every=s["eval_every"],
                        nan_policy=s["nan_policy"], max_skipped_steps=s["max_skipped_steps"],
                        show_progress=chief, learning_rate=s["learning_rate"],
                        tokens_per_step=batch_size * sum(s["task_feature_lengths"].values()))
    try:
        result = loop.run(state, start)
    finally:
        checkpointer.close()
        writer.close()
        if lock is not None:
            lock.release()
    return trainer.TrainResult(
        run_dir, result.step, result.validation_loss, result.initial_validation_loss,
        unigram_entropy, result.preempted)


def main(argv: Sequence[str] | None = None) -> int:
    """`t2t distill [--gin_file=FILE]... [--gin.NAME=VALUE]...` (see the module docstring)."""
    from t2t.configuration import call_configured, parse_gin, split_gin_flags

    files, bindings, rest = split_gin_flags(sys.argv[1:] if argv is None else argv)
    if rest or not files:
        print("usage: t2t distill --gin_file=STUDENT_EXPERIMENT.gin --gin_file=runs/distill.gin "
              "--gin.TEACHER=\"'RUN_DIR'\" [--gin.NAME=VALUE]..."
              + (f"\nt2t distill: unrecognised arguments {rest}." if rest else ""),
              file=sys.stderr)
        return 2

    def run() -> trainer.TrainResult:
        parse_gin(files, bindings)
        return call_configured(distill)

    return run_command("t2t distill", run, lambda result: (
        f"Run directory: {result.run_dir}\nFinal step: {result.step}\n"
        f"Student validation loss: {result.validation_loss:.4f} nats/target token"))

if __name__ == "__main__":
    sys.exit(main())
