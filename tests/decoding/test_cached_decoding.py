"""Decoding with the KV cache equals recomputing the sequence with the training forward pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from decoding_fakes import INPUTS, tiny_model

from t2t.data.vocab import EOS_ID, PAD_ID
from t2t.decoding.adapter import make_decoder
from t2t.decoding.scoring import log_likelihood, teacher_forced_features
from t2t.models.families import build_model
from t2t.models.sizes import get_size

# Targets of different lengths, each ending with EOS, PAD after it.
TARGETS = jnp.array([[4, 9, 2, 8, 7, 1], [6, 1, 0, 0, 0, 0], [3, 3, 5, 1, 0, 0]])


def _full_logits(model, params, inputs, targets):
    """[n, t, v] logits of each target position, from one uncached forward pass."""
    features, _ = teacher_forced_features(model.config.family, inputs, targets)
    logits = model.apply({"params": params}, features)["logits"]
    if model.config.family == "decoder_only":  # the targets start after BOS + inputs
        starts = jnp.sum(inputs != PAD_ID, axis=1)[:, None] + jnp.arange(targets.shape[1])
        logits = jnp.take_along_axis(logits, starts[..., None], axis=1)
    return logits


@pytest.mark.parametrize("scan_layers", [False, True], ids=["loop", "scan"])
@pytest.mark.parametrize("kind", ["enc_dec", "bart", "causal_lm", "prefix_lm"])
def test_cached_decoding_equals_full_recomputation_and_scoring(kind, scan_layers):
    model, params = tiny_model(kind, scan_layers)

    @jax.jit
    def run(params):
        decoder = make_decoder(model, params, TARGETS.shape[1])

        def step(state, token):
            logits, state = decoder.step(token, state)
            return state, logits

        # Feed the targets one token per step, as decoding would have chosen them.
        first, state = decoder.start(INPUTS)
        _, stepped = jax.lax.scan(step, state, TARGETS.T[:-1])
        cached = jnp.concatenate([first[:, None], stepped.swapaxes(0, 1)], axis=1)
        return (cached, _full_logits(model, params, INPUTS, TARGETS),
                log_likelihood(model, params, INPUTS, TARGETS))

    cached, full, scores = run(params)
    # Every step's next-token logits equal the full forward pass's at that position (padding
    # after EOS included), and a prefix LM's prompt was read bidirectionally.
    np.testing.assert_allclose(cached, full, atol=2e-5)
    # Scoring = the sum of the teacher-forced log-probabilities of the targets, EOS included.
    log_probs = jnp.take_along_axis(jax.nn.log_softmax(cached), TARGETS[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(scores, jnp.sum(jnp.where(TARGETS != PAD_ID, log_probs, 0), 1),
                               rtol=1e-5)
    assert np.all(np.sum(TARGETS == EOS_ID, axis=1) == 1)


def test_decoding_refuses_too_few_learned_positions_and_encoder_only_models():
    model, params = tiny_model("causal_lm")  # max_length=64 positions
    with pytest.raises(ValueError, match="max_length=64"):
        jax.eval_shape(lambda p: make_decoder(model, p, 60).start(INPUTS), params)
    bert = build_model(get_size("bert/tiny").replace(vocab_size=64))
    with pytest.raises(ValueError, match="encoder_only"):
        make_decoder(bert, {}, 8)


def _step_flops(model, params, width: int) -> float:
    """XLA's FLOP count of one decoding step of 3 rows whose inputs are `width` tokens."""
    inputs = jnp.pad(INPUTS, ((0, 0), (0, width - INPUTS.shape[1])))
    _, state = jax.jit(lambda p, x: make_decoder(model, p, 8).start(x))(params, inputs)
    step = jax.jit(lambda p, t, s: make_decoder(model, p, 8).step(t, s))
    cost = step.lower(params, jnp.ones(3, jnp.int32), state).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"]


def test_a_decoding_step_reads_the_encoder_outputs_keys_and_values_from_the_cache():
    """Longer inputs cost a decoding step only the attention over them, not another projection
    of every encoder position to keys and values (computed once, in `start`)."""
    model, params = tiny_model("enc_dec")
    cfg = model.config
    extra = 64 - 8  # encoder positions added
    growth = _step_flops(model, params, 64) - _step_flops(model, params, 8)
    # Per added position, row and layer: q·k and weights·v (2 x 2 h d FLOPs) vs projecting it to
    # keys and values again (2 x 2 e h d FLOPs), which the step must not do.
    attention = 3 * cfg.num_decoder_layers * extra * 4 * cfg.num_heads * cfg.head_dim
    projection = 3 * cfg.num_decoder_layers * extra * 4 * cfg.d_model * cfg.num_heads * cfg.head_dim
    assert growth < attention + projection / 8, (growth, attention, projection)
