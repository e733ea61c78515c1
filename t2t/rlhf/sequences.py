"""Query ⧺ response rows for a decoder-only model, and the per-response-token view of its outputs.

The reward model, the value function and the PPO policy all read one prompt ("query") and one
response per row, laid out as the supervised feature converter lays out a fine-tuning example and
as sampling (`t2t.decoding.adapter`) lays out a prompt: BOS ⧺ query ⧺ response. Response token t
is predicted at `slots[:, t]`, and the whole response has been read at `last` (where the reward
model reads its score). E.g. query [7, 8, 1] (EOS-terminated) and response [3, 9, 1, 0]:

    decoder_input_tokens  [0, 7, 8, 1, 3, 9, 1, 0]     (BOS, query, response, padding)
    slots                 [3, 4, 5, 6]                 the output at 3 predicts 3, at 4 predicts 9
    response_mask         [1, 1, 1, 0]
    last                  6                            the input there is the response's EOS

Responses are sampled, so a row may hold PAD (= 0) before its EOS if the policy drew it: the
response ends before the first PAD (`response_mask`), as decoding's output does after EOS.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from t2t.data.vocab import EOS_ID, PAD_ID, Vocabulary
from t2t.decoding.scoring import teacher_forced_features

Array = jax.Array


class QueryResponse(NamedTuple):
    """Model features of BOS ⧺ query ⧺ response rows, and where the response sits in them."""

    features: dict[str, Array]  # decoder_* features, each [n, m + t + 1]
    slots: Array  # [n, t] int32: the position whose output predicts response token t
    response_mask: Array  # [n, t] int32: 1 on the response's tokens (up to EOS included)
    last: Array  # [n] int32: the position whose input is the response's last token


def response_mask(responses: Array) -> Array:
    """[n, t] int32: 1 up to the first PAD of each row, e.g. [3, 0, 9, 1] -> [1, 0, 0, 0]."""
    return jnp.cumprod(responses != PAD_ID, axis=1).astype(jnp.int32)


def query_response(queries: Array, responses: Array) -> QueryResponse:
    """Lay out `queries` [n, m] (EOS-terminated, PAD-padded) and `responses` [n, t] (see the module
    docstring)."""
    mask = response_mask(responses)
    responses = responses * mask
    # One more PAD column, so the shifted decoder input still holds the response's last token.
    padded = jnp.pad(responses, ((0, 0), (0, 1)))
    features, _ = teacher_forced_features("decoder_only", queries, padded)
    query_lengths = jnp.sum(queries != PAD_ID, axis=1)
    slots = query_lengths[:, None] + jnp.arange(responses.shape[1])[None, :]
    return QueryResponse(features, slots.astype(jnp.int32), mask,
                         (query_lengths + jnp.sum(mask, axis=1)).astype(jnp.int32))


def at_slots(x: Array, slots: Array) -> Array:
    """x [n, l, ...] read at slots [n, t] -> [n, t, ...]."""
    index = slots.reshape(slots.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=1)


def token_log_probs(logits: Array, batch: QueryResponse, responses: Array) -> Array:
    """[n, t] float32: log p(response token t | query, earlier tokens) from the model's logits
    [n, l, v] on `batch.features`; 0 outside the response."""
    log_probs = jax.nn.log_softmax(at_slots(logits, batch.slots).astype(jnp.float32))
    chosen = jnp.take_along_axis(log_probs, responses[..., None], axis=-1)[..., 0]
    return chosen * batch.response_mask


def encode_texts(vocabulary: Vocabulary, texts: Sequence[str], length: int) -> np.ndarray:
    """[len(texts), length] int32: each text's ids ⧺ EOS, truncated to `length` (EOS kept, as the
    supervised objective truncates) and right-padded with PAD."""
    out = np.full((len(texts), length), PAD_ID, np.int32)
    for i, ids in enumerate(vocabulary.encode_batch(list(texts))):
        row = np.append(ids[:length - 1], EOS_ID)
        out[i, :len(row)] = row
    return out
