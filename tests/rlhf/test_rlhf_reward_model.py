"""The reward model: its scalar head reads the LM's hidden states, it starts from an SFT run, and
`t2t rlhf reward-model` trains and saves it."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_fakes import CONFIG, QUERIES, tiny_policy
from t2t.decoding.run_dir import TrainedRun
from t2t.rlhf.reward_model import load_reward_model, main
from t2t.rlhf.scalar_model import ScalarHeadModel, init_from_language_model
from t2t.rlhf.sequences import query_response


def test_scalar_head_reads_the_same_hidden_states_as_the_language_model():
    """With its head set to token j's (tied) embedding, the scalar model outputs the LM's logit of
    token j at every position: same layers, same parameters, same final hidden states."""
    model, lm_params = tiny_policy()
    params = init_from_language_model(CONFIG, lm_params, jax.random.key(0))
    j = 7
    embedding = lm_params["embedder"]["tokens"]["embedding"]
    params["scalar_head"] = jax.tree.map(jnp.zeros_like, params["scalar_head"])
    params["scalar_head"]["kernel"] = embedding[j][:, None]
    features = query_response(QUERIES, jnp.array([[3, 9, 1], [2, 1, 0], [4, 4, 4], [1, 0, 0]])
                              ).features
    logits = jax.jit(model.apply)({"params": lm_params}, features)["logits"]
    scalars = jax.jit(ScalarHeadModel(CONFIG).apply)({"params": params}, features)
    np.testing.assert_allclose(scalars, logits[..., j], rtol=1e-5, atol=1e-5)


def test_init_refuses_parameters_of_another_model():
    _, lm_params = tiny_policy()
    with pytest.raises(ValueError, match="do not fit the model config"):
        init_from_language_model(CONFIG.replace(d_model=64, head_dim=16), lm_params,
                                 jax.random.key(0))


def test_reward_model_starts_from_the_sft_run_and_trains(sft_run, task_dir, tmp_path):
    run = TrainedRun.load(sft_run)
    lm_params, _ = run.load_params()
    start = init_from_language_model(run.config, lm_params, jax.random.key(0))
    for a, b in zip(jax.tree.leaves(start["decoder"]), jax.tree.leaves(lm_params["decoder"])):
        np.testing.assert_array_equal(a, b)

    out = tmp_path / "rm"
    assert main(["--gin_file=rlhf/reward_model.gin", f"--gin.SFT_RUN='{sft_run}'",
                 f"--gin.COMPARISONS='{task_dir}/comparisons/{{split}}.jsonl'",
                 f"--gin.OUTPUT_DIR='{out}'", "--gin.TRAIN_STEPS=3", "--gin.BATCH_SIZE=8",
                 "--gin.train_reward_model.log_every=1"]) == 0
    config, params = load_reward_model(out)
    assert config == run.config and set(params) == {"embedder", "decoder", "scalar_head"}
    records = [json.loads(line) for line in open(out / "metrics.jsonl")]
    accuracies = [r["pairwise_accuracy"] for r in records if r["split"] == "validation"]
    assert len(accuracies) == 2 and all(0.0 <= a <= 1.0 for a in accuracies)
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3]
    # Training moved the backbone away from the SFT parameters.
    assert not np.allclose(params["decoder"]["final_norm"]["scale"],
                           lm_params["decoder"]["final_norm"]["scale"])
