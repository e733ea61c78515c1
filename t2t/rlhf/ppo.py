"""Step 3 of InstructGPT: PPO against the reward model, with a per-token KL penalty to the SFT model
(`t2t rlhf ppo`).

Each PPO step is one rollout batch and several epochs of minibatch updates on it, both jitted:

    rollout   sample a response per prompt from the policy (KV cache, temperature 1), then in one
              teacher-forced pass: log π(a_t), log π_SFT(a_t), V(s_t) and the reward model's score;
              rewards r_t = -β (log π(a_t) - log π_SFT(a_t)) + score·[t is the last token];
              GAE(γ, λ) advantages (whitened over the batch) and returns
    update    `epochs` passes over the batch in `minibatches` shuffled minibatches, minimising the
              clipped policy loss and the clipped value loss (`t2t.rlhf.losses`)

The policy starts from the SFT run; the value function is a separate `ScalarHeadModel` started from
the reward model (as in InstructGPT), so the two have separate gradients and optimizer states and
no value-loss coefficient is needed. β is fixed or adapts to a target KL (`KLController`).

The run directory gets metrics.jsonl (per step: reward-model score, KL to the SFT model, the true
rule-satisfaction rate when a `true_metric` is given, policy and value losses, clip fraction, β,
...), samples.jsonl (a few responses per logged step), config.gin, and the final policy as a params-only
checkpoint in policy/ (model_config.json + params/, a valid INITIAL_CHECKPOINT_PATH).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax

from t2t.configuration import ConfigError
from t2t.decoding.adapter import make_decoder
from t2t.decoding.run_dir import TrainedRun
from t2t.decoding.sampling import sample
from t2t.interop.checkpoint import save_params
from t2t.models.families import DecoderOnly
from t2t.rlhf.advantages import gae
from t2t.rlhf.kl_controller import KLController
from t2t.rlhf.losses import (clipped_policy_loss, clipped_value_loss, masked_mean, per_token_kl,
                             whiten)
from t2t.rlhf.reward_model import load_reward_model, reward
from t2t.rlhf.scalar_model import ScalarHeadModel
from t2t.rlhf.sequences import (QueryResponse, at_slots, encode_texts, query_response,
                                 token_log_probs)
from t2t.training.metrics import MetricsWriter
from t2t.training.partitioning import Partitioner, make_partitioner

Array = jax.Array
Params = dict[str, Any]  # {"policy": DecoderOnly params, "value": ScalarHeadModel params}
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PPOHyperparameters:
    """The constants of the jitted rollout and update."""

    response_length: int = 16  # most sampled tokens per response, EOS included
    gamma: float = 1.0  # discount: 1 credits every token with the final score, as InstructGPT
    lam: float = 0.95  # GAE's λ: bias (0) vs variance (1) of the advantage estimate
    clip: float = 0.2  # ε of the policy ratio
    value_clip: float = 0.2  # how far a value estimate may move from its rollout value per update
    epochs: int = 4  # passes over each rollout batch
    minibatches: int = 4  # minibatches per pass


class Rollout(NamedTuple):
    """One batch of experience; token arrays are [n, t], 0 outside the response."""

    queries: Array  # [n, m]
    responses: Array  # [n, t]
    log_probs: Array  # log π_old(a_t)
    values: Array  # V_old(s_t)
    advantages: Array  # whitened
    returns: Array


# (reward parameters, the query ⧺ response rows, responses [n, t]) -> a score per response [n].
ScoreFn = Callable[[Any, QueryResponse, Array], Array]


@dataclasses.dataclass(frozen=True)
class Models:
    """The networks of a PPO run (their parameters travel separately, as jit arguments)."""

    policy: DecoderOnly  # also the frozen reference (the SFT parameters)
    value: ScalarHeadModel
    score: ScoreFn  # the reward model's `reward`, or any other scorer (a toy rule in tests)


def reward_model_score(model: ScalarHeadModel) -> ScoreFn:
    """The `ScoreFn` of a reward model: r(query, response) read at the response's last token."""
    return lambda params, batch, responses: reward(model, params, batch)


def _policy_and_values(models: Models, params: Params, batch: QueryResponse,
                       responses: Array) -> tuple[Array, Array]:
    """log π(a_t) and V(s_t), both [n, t], in one pass of each network."""
    logits = models.policy.apply({"params": params["policy"]}, batch.features)["logits"]
    values = at_slots(models.value.apply({"params": params["value"]}, batch.features), batch.slots)
    return token_log_probs(logits, batch, responses), values * batch.response_mask


def _jit(fn: Callable, partitioner: Partitioner | None, in_batch: Sequence[bool],
         out_shardings: Callable[[Any, Any], Any]) -> Callable:
    """`fn` jitted; with a `partitioner`, data parallel: the arguments flagged in `in_batch` (and
    the outputs that `out_shardings(batch, replicated)` says) split over the batch axes, the rest
    (parameters, optimizer state, scalars) replicated. GSPMD adds the gradients' all-reduce and
    the cross-batch reductions (advantage whitening, means)."""
    if partitioner is None:
        return jax.jit(fn)
    batch, replicated = partitioner.sharding(("batch", None)), partitioner.replicated
    return jax.jit(fn, in_shardings=tuple(batch if b else replicated for b in in_batch),
                   out_shardings=out_shardings(batch, replicated))


def make_rollout(models: Models, hp: PPOHyperparameters,
                 partitioner: Partitioner | None = None) -> Callable:
    """Jitted (params, reference, reward_params, queries [n, m], rng, kl_coef) -> (Rollout,
    stats); with a `partitioner` the queries and the rollout are split over its batch axes."""

    def rollout(params: Params, reference: Any, reward_params: Any, queries: Array, rng: Array,
                kl_coef: Array) -> tuple[Rollout, dict[str, Array]]:
        decoder = make_decoder(models.policy, params["policy"], hp.response_length)
        generated = sample(decoder, queries, hp.response_length, rng)  # temperature 1: π itself
        batch = query_response(queries, generated.tokens)
        mask, responses = batch.response_mask, generated.tokens * batch.response_mask
        log_probs, values = _policy_and_values(models, params, batch, responses)
        reference_logits = models.policy.apply({"params": reference}, batch.features)["logits"]
        kl = per_token_kl(log_probs, token_log_probs(reference_logits, batch, responses), mask)
        score = models.score(reward_params, batch, responses)
        lengths = jnp.sum(mask, axis=1)
        at_end = jax.nn.one_hot(lengths - 1, hp.response_length)  # all 0 for an empty response
        rewards = -kl_coef * kl + score[:, None] * at_end
        advantages, returns = gae(rewards, values, mask, hp.gamma, hp.lam)
        stats = {"score": jnp.mean(score), "kl": jnp.mean(jnp.sum(kl, axis=1)),
                 "non_score_reward": jnp.mean(jnp.sum(-kl_coef * kl, axis=1)),
                 "response_length": jnp.mean(lengths),
                 "value_mean": masked_mean(values, mask), "return_mean": masked_mean(returns, mask)}
        return Rollout(queries, responses, log_probs, values, whiten(advantages, mask),
                       returns), stats

    return _jit(rollout, partitioner, (False, False, False, True, False, False),
                lambda batch, replicated: (Rollout(*[batch] * len(Rollout._fields)), replicated))


def make_update(models: Models, tx: optax.GradientTransformation, hp: PPOHyperparameters,
                partitioner: Partitioner | None = None) -> Callable:
    """Jitted (params, opt_state, rollout, rng) -> (params, opt_state, mean stats): `hp.epochs`
    shuffled passes of `hp.minibatches` minibatches, each one optimizer step; with a
    `partitioner` the rollout is split over its batch axes and the parameters replicated."""

    def loss_fn(params: Params, mb: Rollout) -> tuple[Array, dict[str, Array]]:
        batch = query_response(mb.queries, mb.responses)
        log_probs, values = _policy_and_values(models, params, batch, mb.responses)
        mask = batch.response_mask
        policy = clipped_policy_loss(log_probs, mb.log_probs, mb.advantages, mask, hp.clip)
        value_loss = clipped_value_loss(values, mb.values, mb.returns, mask, hp.value_clip)
        # The two networks share no parameter, so the sum gives each its own loss's gradient.
        return policy.loss + value_loss, {
            "policy_loss": policy.loss, "value_loss": value_loss,
            "clip_fraction": policy.clip_fraction, "approx_kl": policy.approx_kl}

    def update(params: Params, opt_state: Any, rollout: Rollout, rng: Array):
        n = rollout.queries.shape[0]
        if n % hp.minibatches:
            raise ValueError(f"rollout_batch_size={n} is not divisible by minibatches="
                             f"{hp.minibatches}; make it a multiple.")
        orders = jax.vmap(lambda k: jax.random.permutation(k, n))(
            jax.random.split(rng, hp.epochs))
        indices = orders.reshape(hp.epochs * hp.minibatches, n // hp.minibatches)

        def step(carry, index):
            params, opt_state = carry
            mb = jax.tree.map(lambda x: x[index], rollout)
            grads, stats = jax.grad(loss_fn, has_aux=True)(params, mb)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), stats

        (params, opt_state), stats = jax.lax.scan(step, (params, opt_state), indices)
        return params, opt_state, jax.tree.map(jnp.mean, stats)

    return _jit(update, partitioner, (False, False, True, False),
                lambda batch, replicated: replicated)


def per_network(make_tx: Callable[[], optax.GradientTransformation]
                ) -> optax.GradientTransformation:
    """One optimizer per network of `Params`: the value loss's gradients never enter the policy's
    gradient clipping (and vice versa), whatever their relative scale."""
    labels = lambda params: {name: jax.tree.map(lambda _: name, tree)
                             for name, tree in params.items()}
    return optax.multi_transform({"policy": make_tx(), "value": make_tx()}, labels)


class PromptSampler:
    """Draws rollout prompts from the "inputs" of a JSON-lines file, tokenised once."""

    def __init__(self, path: str | Path, vocabulary, query_length: int, seed: int):
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"No prompts at {path}: give JSON lines with an \"inputs\" "
                                    f"field (e.g. the demonstrations of `t2t rlhf data`).")
        self.texts = [json.loads(line)["inputs"] for line in open(path) if line.strip()]
        self.queries = encode_texts(vocabulary, self.texts, query_length)
        self.rng = np.random.default_rng(seed)

    def __call__(self, n: int) -> tuple[np.ndarray, list[str]]:
        index = self.rng.integers(len(self.texts), size=n)
        return self.queries[index], [self.texts[i] for i in index]


@dataclasses.dataclass(frozen=True)
class PPOResult:
    output_dir: Path
    first: dict[str, float]  # the metrics of the first rollout (the SFT policy)
    last: dict[str, float]  # of the last rollout (after every update)


@gin.configurable(denylist=["partitioner"])
def train_ppo(
    sft_run: str = gin.REQUIRED,
    reward_model: str = gin.REQUIRED,
    prompts: str = gin.REQUIRED,
    output_dir: str = gin.REQUIRED,
    ppo_steps: int = gin.REQUIRED,
    optimizer: Callable[..., optax.GradientTransformation] = gin.REQUIRED,
    learning_rate: float = gin.REQUIRED,
    rollout_batch_size: int = 64,
    query_length: int = 8,
    hyperparameters: PPOHyperparameters = PPOHyperparameters(),
    kl_coef: float = 0.05,
    kl_target: float | None = None,
    kl_horizon: int = 10_000,
    true_metric: Callable[[str, str], bool] | None = None,
    log_samples: int = 4,
    seed: int = 0,
    partitioner: Partitioner | None = None,
) -> PPOResult:
    """PPO on the SFT run's policy against a reward model (see the module docstring).

    Args:
      sft_run: the decoder-only `t2t train` run of step 1 (policy start and KL reference).
      reward_model: the output directory of `t2t rlhf reward-model` (value function start too).
      prompts: JSON lines whose "inputs" are the rollout prompts.
      output_dir: a new run directory.
      ppo_steps: rollout batches (each followed by its update); one more rollout measures the
        final policy.
      optimizer, learning_rate: an optax factory (e.g. @adamw) and its rate, one per network.
      rollout_batch_size: responses per rollout (a multiple of `hyperparameters.minibatches`).
      query_length: prompt tokens, EOS included.
      hyperparameters: the PPO constants (`PPOHyperparameters`; gin: @ppo_hyperparameters()).
      kl_coef, kl_target, kl_horizon: β's start, and its target KL per response (None: fixed β).
      true_metric: (prompt, response text) -> whether the response does what is wanted; its rate
        is logged as "true_metric" (the task's rule, not the reward model's opinion).
      log_samples: responses per step written to samples.jsonl.
      seed: sampling and minibatch order.
      partitioner: the mesh; default `make_partitioner()` (gin: `make_partitioner.preset`). PPO
        runs data parallel on it: each rollout's prompts, responses and advantages are split over
        the batch axes, the networks and optimizer states are replicated.
    """
    out = Path(output_dir).expanduser()
    if (out / "policy").exists():
        raise FileExistsError(f"{out} already holds a PPO run; choose a new OUTPUT_DIR.")
    partitioner = partitioner or make_partitioner()
    try:
        partitioner.check_batch_size(rollout_batch_size, "ROLLOUT_BATCH_SIZE")
    except ValueError as error:
        raise ConfigError(str(error)) from error
    run = TrainedRun.load(sft_run)
    reference, _ = run.load_params()
    rm_config, rm_params = load_reward_model(reward_model)
    models = Models(DecoderOnly(run.config), ScalarHeadModel(rm_config),
                    reward_model_score(ScalarHeadModel(rm_config)))
    reference, rm_params = jax.device_put((reference, rm_params), partitioner.replicated)
    params = {"policy": reference, "value": rm_params}
    tx = per_network(lambda: optimizer(learning_rate=learning_rate))
    opt_state = jax.device_put(tx.init(params), partitioner.replicated)
    rollout_fn = make_rollout(models, hyperparameters, partitioner)
    update_fn = make_update(models, tx, hyperparameters, partitioner)
    kl = KLController(kl_coef, kl_target, kl_horizon)
    sampler = PromptSampler(prompts.format(split="train"), run.vocabulary, query_length, seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.gin").write_text(gin.config_str())
    writer = MetricsWriter(out)
    rng = jax.random.key(seed)
    history = []
    with open(out / "samples.jsonl", "a") as samples:
        for step in range(ppo_steps + 1):
            queries, texts = sampler(rollout_batch_size)
            queries = partitioner.shard_batch({"queries": queries})["queries"]
            rollout, stats = rollout_fn(params, reference, rm_params, queries,
                                        jax.random.fold_in(rng, 2 * step), kl.value)
            responses = [run.vocabulary.decode(row) for row in np.asarray(rollout.responses)]
            metrics = {k: float(v) for k, v in jax.device_get(stats).items()}
            metrics["kl_coef"] = kl.value
            if true_metric is not None:
                metrics["true_metric"] = float(np.mean([true_metric(p, r)
                                                        for p, r in zip(texts, responses)]))
            for prompt_text, response in list(zip(texts, responses))[:log_samples]:
                samples.write(json.dumps({"step": step, "prompt": prompt_text,
                                          "response": response}) + "\n")
            if step < ppo_steps:
                params, opt_state, update_stats = update_fn(params, opt_state, rollout,
                                                            jax.random.fold_in(rng, 2 * step + 1))
                metrics |= {k: float(v) for k, v in jax.device_get(update_stats).items()}
                kl.update(metrics["kl"], rollout_batch_size)
            writer.write(step, metrics)
            history.append(metrics)
            log.info("PPO step %d: score %.3f, KL %.3f%s", step, metrics["score"], metrics["kl"],
                     f", true metric {metrics['true_metric']:.3f}" if true_metric else "")
    writer.close()
    save_params(out / "policy", jax.device_get(params["policy"]), run.config)
    return PPOResult(out, history[0], history[-1])


gin.external_configurable(PPOHyperparameters, "ppo_hyperparameters")


def main(argv: Sequence[str] | None = None) -> int:
    """`t2t rlhf ppo --gin_file=rlhf/ppo.gin --gin.SFT_RUN=... --gin.REWARD_MODEL=... ...`."""
    from t2t.rlhf import preference_task  # noqa: F401  (registers @describe_rule for ppo.gin)
    from t2t.rlhf.cli import run_gin_entry_point

    def summary(result: PPOResult) -> str:
        change = lambda key: (f"{key}: {result.first[key]:.3f} -> {result.last[key]:.3f}"
                              if key in result.first else "")
        return "\n".join(filter(None, [f"PPO run: {result.output_dir}", change("score"),
                                       change("kl"), change("true_metric")]))

    return run_gin_entry_point("t2t rlhf ppo", argv, lambda: train_ppo(), summary)
