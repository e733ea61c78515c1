"""Tiny models and a table-driven fake decoder shared by the decoding tests."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from t2t.data.vocab import EOS_ID
from t2t.decoding.adapter import Decoder
from t2t.decoding.beam_search import length_penalty
from t2t.models.families import build_model, dummy_batch
from t2t.models.sizes import get_size

_TINY = dict(d_model=32, d_ff=64, num_heads=4, head_dim=8, num_decoder_layers=2)
# One of each decoding path: relative bias + cross-attention, learned positions (BART's per stack),
# prefix LM.
CONFIGS = {
    "enc_dec": lambda vocab: get_size("t5_1_1/tiny").replace(vocab_size=vocab,
                                                             num_encoder_layers=2, **_TINY),
    "bart": lambda vocab: get_size("bart/tiny").replace(vocab_size=vocab, dropout_rate=0.0,
                                                        max_length=64, num_encoder_layers=2,
                                                        **_TINY),
    "causal_lm": lambda vocab: get_size("gpt2/tiny").replace(vocab_size=vocab, dropout_rate=0.0,
                                                              max_length=64, **_TINY),
    "prefix_lm": lambda vocab: get_size("t5_1_1/tiny").replace(
        vocab_size=vocab, family="decoder_only", prefix_lm=True, **_TINY),
}
# Rows of different lengths, PAD-padded, each ending with EOS as the T5 tasks' inputs do; ids
# below 8, the smallest test vocabulary.
INPUTS = jnp.array([[5, 6, 7, 3, 1, 0], [2, 4, 1, 0, 0, 0], [3, 1, 0, 0, 0, 0]])


@functools.cache
def tiny_model(kind: str, scan_layers: bool = False, vocab: int = 64, seed: int = 0):
    """(model, params): a small model with N(0, 0.3^2) parameters drawn with `seed` (in NumPy:
    compiling the model's own initialisers would cost seconds per model)."""
    config = CONFIGS[kind](vocab).replace(scan_layers=scan_layers)
    model = build_model(config)
    shapes = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), dummy_batch(config)))["params"]
    rng = np.random.default_rng(seed)
    return model, jax.tree.map(lambda x: jnp.asarray(0.3 * rng.normal(size=x.shape), x.dtype),
                               shapes)


def markov_decoder(table: jax.Array) -> Decoder:
    """A fake model whose next-token logits are table[step, previous token] ([steps, v, v]); the
    first step's "previous token" is each row's first input token."""

    def step(tokens, state):
        position = state["position"] + 1
        return table[position, tokens], {"position": position}

    def start(inputs):
        return table[0, inputs[:, 0]], {"position": jnp.zeros(inputs.shape[0], jnp.int32)}

    return Decoder(start, step, lambda state, rows: jax.tree.map(lambda x: x[rows], state))


def markov_table(steps: int, vocab: int, seed: int = 0, scale: float = 2.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).normal(size=(steps, vocab, vocab)).astype(np.float32)


def emitted(tokens) -> np.ndarray:
    """[n, t] bool: the tokens each row of `tokens` [n, t] emitted, up to and including its first
    EOS."""
    tokens = np.asarray(tokens)
    return np.cumsum(tokens == EOS_ID, axis=1) - (tokens == EOS_ID) == 0


def penalised_scores(token_log_probs: np.ndarray, tokens: np.ndarray, alpha: float) -> np.ndarray:
    """Beam search's score of each row of `tokens` [n, t], from its tokens' log-probabilities
    [n, t]: their sum up to the first EOS (included) over length_penalty(that length), or over all
    t tokens for a row without EOS (beam search scores those as if they ended at t = max_length).
    alpha = 0 gives the plain log-likelihood that greedy decoding and sampling report."""
    scored = emitted(tokens)
    total = np.sum(np.where(scored, token_log_probs, 0.0), axis=1)
    return total / np.asarray(length_penalty(np.sum(scored, axis=1), alpha))
