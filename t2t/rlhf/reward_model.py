"""Step 2 of InstructGPT: a reward model trained on ranked comparisons (`t2t rlhf reward-model`).

r(x, y) is a `ScalarHeadModel` read at the last token of BOS ⧺ query x ⧺ response y, started from
the SFT run's parameters, and trained with the pairwise ranking loss
-log sigmoid(r(x, y_chosen) - r(x, y_rejected)) on {"prompt", "chosen", "rejected"} JSON lines.
Both responses of a pair share one batch (InstructGPT puts all of a prompt's pairs in one batch to
avoid overfitting to a prompt; with pairs shuffled independently we keep only the pairing).

The output directory is a params-only checkpoint (`t2t.interop.checkpoint`: model_config.json +
params/) next to metrics.jsonl (loss; held-out pairwise accuracy, the fraction of validation pairs
whose chosen response scores higher) and config.gin. PPO (`t2t rlhf ppo`) reads it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax

from t2t.decoding.run_dir import TrainedRun
from t2t.interop.checkpoint import load_params, save_params
from t2t.models.config import TransformerConfig
from t2t.rlhf.losses import pairwise_ranking_loss
from t2t.rlhf.scalar_model import ScalarHeadModel, init_from_language_model
from t2t.rlhf.sequences import QueryResponse, encode_texts, query_response
from t2t.training.metrics import MetricsWriter

Array = jax.Array
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Comparisons:
    """Tokenised comparisons: queries [n, m], chosen and rejected responses [n, t], all int32."""

    queries: np.ndarray
    chosen: np.ndarray
    rejected: np.ndarray

    @classmethod
    def read(cls, path: str | Path, vocabulary, query_length: int,
             response_length: int) -> "Comparisons":
        """The {"prompt", "chosen", "rejected"} JSON lines of `path`, each text ⧺ EOS."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"No comparisons at {path}: write them with `t2t rlhf data "
                                    f"--output DIR` and set COMPARISONS to 'DIR/comparisons/"
                                    f"{{split}}.jsonl'.")
        records = [json.loads(line) for line in open(path) if line.strip()]
        column = lambda key, length: encode_texts(vocabulary, [r[key] for r in records], length)
        return cls(column("prompt", query_length), column("chosen", response_length),
                   column("rejected", response_length))

    def __len__(self) -> int:
        return len(self.queries)

    def rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.queries[index], self.chosen[index], self.rejected[index]


def reward(model: ScalarHeadModel, params: Any, batch: QueryResponse) -> Array:
    """[n] float32: r(query, response) of each row, read at the response's last token."""
    scalars = model.apply({"params": params}, batch.features)
    return jnp.take_along_axis(scalars, batch.last[:, None], axis=1)[:, 0]


def _pair_rewards(model: ScalarHeadModel, params: Any, queries: Array, chosen: Array,
                  rejected: Array) -> tuple[Array, Array]:
    """Rewards of both responses of each pair, in one forward pass over 2n rows."""
    rewards = reward(model, params, query_response(jnp.concatenate([queries, queries]),
                                                   jnp.concatenate([chosen, rejected])))
    return rewards[:len(queries)], rewards[len(queries):]


def make_train_step(model: ScalarHeadModel, tx: optax.GradientTransformation) -> Callable:
    """(params, opt_state, queries, chosen, rejected) -> (params, opt_state, loss, accuracy)."""

    def loss_fn(params, queries, chosen, rejected):
        r_chosen, r_rejected = _pair_rewards(model, params, queries, chosen, rejected)
        return pairwise_ranking_loss(r_chosen, r_rejected), jnp.mean(r_chosen > r_rejected)

    @jax.jit
    def step(params, opt_state, queries, chosen, rejected):
        (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, queries, chosen, rejected)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, accuracy

    return step


def pairwise_accuracy(model: ScalarHeadModel, params: Any, data: Comparisons,
                      batch_size: int) -> float:
    """The fraction of `data`'s pairs whose chosen response gets the higher reward."""
    compare = jax.jit(lambda p, q, c, r: jnp.greater(*_pair_rewards(model, p, q, c, r)))
    # Pad to whole batches (repeating row 0) so one compiled shape serves every batch.
    index = np.arange(-(-len(data) // batch_size) * batch_size) % len(data)
    correct = [np.asarray(compare(params, *data.rows(index[i:i + batch_size])))
               for i in range(0, len(index), batch_size)]
    return float(np.mean(np.concatenate(correct)[:len(data)]))


def load_reward_model(path: str | Path) -> tuple[TransformerConfig, Any]:
    """(config, params) of a reward model that `train_reward_model` wrote."""
    params, config = load_params(path)
    if "scalar_head" not in params:
        raise ValueError(f"{path} holds no reward model (no scalar_head parameters): give the "
                         f"output directory of `t2t rlhf reward-model`.")
    return config, params


@dataclasses.dataclass(frozen=True)
class RewardModelResult:
    output_dir: Path
    initial_accuracy: float  # held-out pairwise accuracy before training (head at random)
    accuracy: float  # after training


@gin.configurable
def train_reward_model(
    sft_run: str = gin.REQUIRED,
    output_dir: str = gin.REQUIRED,
    comparisons: str = gin.REQUIRED,
    train_steps: int = gin.REQUIRED,
    optimizer: Callable[..., optax.GradientTransformation] = gin.REQUIRED,
    learning_rate: float | optax.Schedule = gin.REQUIRED,
    batch_size: int = 32,
    query_length: int = 8,
    response_length: int = 16,
    log_every: int = 10,
    eval_every: int = 100,
    seed: int = 0,
) -> RewardModelResult:
    """Train a reward model from the SFT run `sft_run` (see the module docstring).

    Args:
      sft_run: a decoder-only `t2t train` run directory (its latest checkpoint).
      output_dir: a new directory for the reward model, its metrics and config.
      comparisons: JSON lines of {"prompt", "chosen", "rejected"}; "{split}" is filled with
        "train" and "validation".
      train_steps, batch_size: optimizer steps, and pairs per step.
      optimizer, learning_rate: an optax optimizer factory (e.g. @adamw) and its learning rate.
      query_length, response_length: token lengths (EOS included) that texts are truncated to.
      log_every, eval_every: steps between training metrics and held-out accuracy.
      seed: the head's initialisation and the order of pairs.
    """
    out = Path(output_dir).expanduser()
    if (out / "params").exists():
        raise FileExistsError(f"{out} already holds a reward model; choose a new OUTPUT_DIR.")
    run = TrainedRun.load(sft_run)
    lm_params, sft_step = run.load_params()
    model = ScalarHeadModel(run.config)
    params = init_from_language_model(run.config, lm_params, jax.random.key(seed))
    read = lambda split: Comparisons.read(comparisons.format(split=split), run.vocabulary,
                                          query_length, response_length)
    train_data, validation = read("train"), read("validation")
    log.info("Reward model from %s (step %d); %d training and %d validation pairs.", sft_run,
             sft_step, len(train_data), len(validation))

    tx = optimizer(learning_rate=learning_rate)
    opt_state = tx.init(params)
    step_fn = make_train_step(model, tx)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.gin").write_text(gin.config_str())
    writer = MetricsWriter(out)
    rng = np.random.default_rng(seed)
    order = np.zeros(0, np.int64)
    initial_accuracy = accuracy = pairwise_accuracy(model, params, validation, batch_size)
    writer.write(0, {"pairwise_accuracy": accuracy}, split="validation")
    for step in range(1, train_steps + 1):
        if len(order) < batch_size:  # a fresh shuffle of the pairs each epoch
            order = np.concatenate([order, rng.permutation(len(train_data))])
        index, order = order[:batch_size], order[batch_size:]
        params, opt_state, loss, batch_accuracy = step_fn(params, opt_state,
                                                          *train_data.rows(index))
        if step % log_every == 0:
            writer.write(step, {"loss": loss, "accuracy": batch_accuracy})
        if step % eval_every == 0 or step == train_steps:
            accuracy = pairwise_accuracy(model, params, validation, batch_size)
            writer.write(step, {"pairwise_accuracy": accuracy}, split="validation")
            log.info("step %d: loss %.4f, held-out pairwise accuracy %.3f", step, loss, accuracy)
    writer.close()
    save_params(out, jax.device_get(params), run.config)
    return RewardModelResult(out, initial_accuracy, accuracy)


def main(argv: Sequence[str] | None = None) -> int:
    """`t2t rlhf reward-model --gin_file=rlhf/reward_model.gin --gin.SFT_RUN=... ...`."""
    from t2t.rlhf.cli import run_gin_entry_point

    return run_gin_entry_point("t2t rlhf reward-model", argv, lambda: train_reward_model(),
                               lambda r: f"Reward model: {r.output_dir}\nHeld-out pairwise "
                                         f"accuracy: {r.initial_accuracy:.3f} -> {r.accuracy:.3f}")
