"""The layers every t2t model is built from.

Shapes use: b = batch, q/k = query/key length, l = length, e = d_model, h = heads, d = head_dim,
f = d_ff, v = vocabulary rows.

Every parameter is created with logical axis names (`vocab`, `embed`, `mlp`, `heads`, `kv`,
`relpos_buckets`) and every large activation is constrained with its own names (`batch`, `length`,
`act_embed`, `act_mlp`, `act_heads`, `act_kv`, `act_vocab`). Activations get names of their own so that
FSDP can shard a parameter's `embed` axis without also sharding the activations' feature axis;
`t2t.training.partitioning` maps all of them to mesh axes. Models only name axes; they never shard.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from t2t.models.config import TransformerConfig

Array = jax.Array
NEG_INF = -1e10  # added to masked attention logits; finite, so fully masked (padding) rows stay finite

_ACTIVATION_FNS: dict[str, Callable[[Array], Array]] = {
    "relu": nn.relu,
    "gelu": functools.partial(nn.gelu, approximate=True),  # T5 v1.1 and GPT-2 use the tanh form
    "gelu_exact": functools.partial(nn.gelu, approximate=False),  # BERT uses the erf form
    "silu": nn.silu,
    "linear": lambda x: x,
}


def constrain(x: Array, *names: str | None) -> Array:
    """Annotate an activation with logical axis names (a no-op outside a mesh)."""
    return nn.with_logical_constraint(x, names)


class RMSNorm(nn.Module):
    """T5's layer norm: rescale by the root mean square; no mean subtraction, no bias."""

    epsilon: float = 1e-6
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: Array) -> Array:  # [..., e] -> [..., e]
        scale = self.param(
            "scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
            (x.shape[-1],), jnp.float32)
        return rms_norm(x, scale, self.epsilon).astype(self.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def rms_norm(x: Array, scale: Array, epsilon: float) -> Array:
    """x / rms(x) * scale in float32 (the mean of squares in float32 even for bf16 compute):
    [..., e], [e] -> float32 [..., e].

    The gradient is written by hand so that the backward pass keeps only x and the per-row
    r = 1 / rms(x) [..., 1]. Autodiff keeps x * r and materialises r and the scale broadcast to
    x's shape (each a full [b, l, e] tensor per norm, written in the forward pass and read in the
    backward); with r alone the backward recomputes x * r inside the fusions that use it:

        y = s x r,   r = (mean(x^2) + eps)^-1/2,   dr/dx = -r^3 x / e
        dx = r (g s) - x r^3 mean(g s x),          ds = sum over rows of g x r
    """
    return _rms_norm_fwd(x, scale, epsilon)[0]


def _rms_norm_fwd(x: Array, scale: Array, epsilon: float) -> tuple[Array, tuple]:
    x32 = x.astype(jnp.float32)
    r = jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + epsilon)
    return x32 * r * scale, (x, r, scale)


def _rms_norm_bwd(epsilon: float, residuals: tuple, g: Array) -> tuple[Array, Array]:
    del epsilon  # r holds it
    x, r, scale = residuals
    x32, g = x.astype(jnp.float32), g.astype(jnp.float32)
    gs = g * scale
    d_x = r * gs - x32 * (r * r * r) * jnp.mean(gs * x32, axis=-1, keepdims=True)
    d_scale = jnp.sum(g * x32 * r, axis=tuple(range(x.ndim - 1)))
    return d_x.astype(x.dtype), d_scale


rms_norm.defvjp(_rms_norm_fwd, _rms_norm_bwd)


class LayerNorm(nn.Module):
    """Standard layer norm with scale and bias (BERT, GPT-2)."""

    epsilon: float = 1e-6
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: Array) -> Array:  # [..., e] -> [..., e]
        features = (x.shape[-1],)
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                           features, jnp.float32)
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
                          features, jnp.float32)
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon)
        return (y * scale + bias).astype(self.dtype)


def make_norm(config: TransformerConfig, name: str) -> nn.Module:
    """The configured norm: T5's RMSNorm or a LayerNorm with bias."""
    cls = RMSNorm if config.norm == "rms" else LayerNorm
    return cls(config.layer_norm_epsilon, config.dtype, name=name)


def _dense_dot(x: Array, kernel: Array, axes: tuple[int, ...]) -> Array:
    """x's `axes` contracted with the kernel's leading axes, in that order: [..., in...] x
    [in..., out...] -> [..., out...]; autodiff's gradients (`contract`: the same, with x^T g)."""
    return jax.lax.dot_general(x, kernel, ((axes, tuple(range(len(axes)))), ((), ())))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def contract(x: Array, kernel: Array, axes: tuple[int, ...]) -> Array:
    """`_dense_dot` with the kernel's gradient formed as x^T g; only the backward pass differs.

    Autodiff computes the kernel's gradient as (g^T x)^T, for which XLA:CPU writes a transposed
    copy of the output gradient g (an MLP input projection's: [f, b*l]) from the fusion that
    produces it; here it is x^T g. On this repository's 2-core CPU the gated-GeLU MLP's forward and
    backward at T5 v1.1 small's sizes (8 layers, 4096 tokens) take 0.75 s instead of 1.36 s, and a
    whole T5 v1.1 small training step 2.99 s instead of 3.93 s
    (experiments/benchmarks/train_step_cpu_kernel_gradient.md).
    """
    return _dense_dot(x, kernel, axes)


def _contract_fwd(x: Array, kernel: Array, axes: tuple[int, ...]) -> tuple[Array, tuple]:
    return _dense_dot(x, kernel, axes), (x, kernel)


def _contract_bwd(axes: tuple[int, ...], residuals: tuple[Array, Array], g: Array
                  ) -> tuple[Array, Array]:
    x, kernel = residuals
    others = tuple(a for a in range(x.ndim) if a not in axes)  # g's leading axes, in x's order
    n_in = len(axes)
    # x^T g over every other axis of x (batch, length): [in... (x's order), out...] directly.
    d_kernel = jax.lax.dot_general(x, g, ((others, tuple(range(len(others)))), ((), ())))
    if axes != tuple(sorted(axes)):
        in_order = [sorted(axes).index(a) for a in axes]
        d_kernel = jnp.transpose(d_kernel, in_order + list(range(n_in, kernel.ndim)))
    # [others..., in...], then back into x's axis order.
    d_x = jax.lax.dot_general(g, kernel, ((tuple(range(len(others), g.ndim)),
                                           tuple(range(n_in, kernel.ndim))), ((), ())))
    order = tuple(int(i) for i in np.argsort(others + axes))
    return (d_x if order == tuple(range(x.ndim)) else jnp.transpose(d_x, order)), d_kernel


contract.defvjp(_contract_fwd, _contract_bwd)


def kernel_gradient_inputs_first(kernel_gradient: str) -> bool:
    """Whether `TransformerConfig.kernel_gradient` asks for `contract`'s x^T g on this backend:
    "auto" on CPUs only (measured there; elsewhere autodiff's form is kept until measured)."""
    if kernel_gradient == "auto":
        return jax.default_backend() == "cpu"
    return kernel_gradient == "inputs_first"


class DenseGeneral(nn.Module):
    """A bias-free linear map contracting `axis` of the input into `features`.

    The kernel keeps its natural shape (e.g. [e, h, d] for a query projection) so each of its axes can
    carry a logical name; `kernel_axes` names the input axes first, then the output axes. The init is
    variance scaling over the fan-in of all contracted axes, with `init_scale` as the variance scale.
    """

    features: int | tuple[int, ...]
    kernel_axes: tuple[str, ...]
    axis: int | tuple[int, ...] = -1
    init_scale: float = 1.0
    init_distribution: str = "truncated_normal"
    init_std: float | None = None
    use_bias: bool = False
    dtype: str = "float32"
    kernel_gradient: str = "auto"  # TransformerConfig.kernel_gradient

    @nn.compact
    def __call__(self, x: Array) -> Array:
        features = (self.features,) if isinstance(self.features, int) else tuple(self.features)
        axis = (self.axis,) if isinstance(self.axis, int) else tuple(self.axis)
        axis = tuple(a % x.ndim for a in axis)
        n_in = len(axis)
        kernel_shape = tuple(x.shape[a] for a in axis) + features
        if self.init_std is None:
            init = nn.initializers.variance_scaling(
                self.init_scale, "fan_in", self.init_distribution,
                in_axis=tuple(range(n_in)), out_axis=tuple(range(n_in, len(kernel_shape))))
        else:  # BERT/GPT: a fixed std, with init_scale still applied to the variance
            init = nn.initializers.normal(self.init_std * self.init_scale**0.5)
        kernel = self.param("kernel", nn.with_logical_partitioning(init, self.kernel_axes),
                            kernel_shape, jnp.float32)
        project = contract if kernel_gradient_inputs_first(self.kernel_gradient) else _dense_dot
        y = project(x.astype(self.dtype), kernel.astype(self.dtype), axis)
        if self.use_bias:
            bias = self.param("bias", nn.with_logical_partitioning(
                nn.initializers.zeros, self.kernel_axes[n_in:]), features, jnp.float32)
            y = y + bias.astype(self.dtype)
        return y


def dense(config: TransformerConfig, features: int | tuple[int, ...], kernel_axes: tuple[str, ...],
          name: str, **kwargs) -> DenseGeneral:
    """A DenseGeneral with the config's dtype, bias and initialisation."""
    return DenseGeneral(features, kernel_axes, use_bias=config.use_bias, init_std=config.init_std,
                        dtype=config.dtype, kernel_gradient=config.kernel_gradient, name=name,
                        **kwargs)


class Embed(nn.Module):
    """Token embedding table [v, e], usable in reverse as a tied output layer (`attend`)."""

    num_embeddings: int
    features: int
    dtype: str = "float32"
    init_std: float = 1.0  # T5: unit variance; BERT/GPT: 0.02
    axis_name: str = "vocab"

    def setup(self) -> None:
        self.embedding = self.param(
            "embedding", nn.with_logical_partitioning(nn.initializers.normal(self.init_std),
                                                      (self.axis_name, "embed")),
            (self.num_embeddings, self.features), jnp.float32)

    def __call__(self, ids: Array) -> Array:  # [b, l] int -> [b, l, e]
        # A gather, not T5X's one-hot matmul: on CPUs and GPUs the one-hot costs 2*b*l*v*e FLOPs.
        return jnp.take(self.embedding, ids, axis=0).astype(self.dtype)

    def attend(self, x: Array) -> Array:  # [b, l, e] -> [b, l, v]
        return jnp.einsum("ble,ve->blv", x, self.embedding.astype(self.dtype))


def sinusoidal_positions(positions: Array, features: int, max_timescale: float = 1e4) -> Array:
    """The original Transformer's fixed position encodings: [b, l] positions -> [b, l, e] float32.

    Half the features are sines, half cosines, at timescales from 1 to `max_timescale` (Vaswani et
    al. 2017 §3.5, in the concatenated rather than interleaved layout).
    """
    half = features // 2
    timescales = max_timescale ** (-jnp.arange(half, dtype=jnp.float32) / max(half - 1, 1))
    angles = positions[..., None].astype(jnp.float32) * timescales
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def relative_position_bucket(relative_position: np.ndarray, bidirectional: bool,
                             num_buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """T5's bucket of each relative position (key position − query position).

    Half the buckets (all of them, if causal) hold exact small distances; the rest grow
    logarithmically up to `max_distance`, beyond which everything shares the last bucket. If
    bidirectional, keys after the query use the upper half of the buckets.

    >>> relative_position_bucket(np.array([-1000, -9, -1, 0, 1, 9, 1000]), bidirectional=True)
    array([15,  8,  1,  0, 17, 24, 31], dtype=int32)
    >>> relative_position_bucket(np.array([-1000, -9, -1, 0, 1]), bidirectional=False)
    array([31,  9,  1,  0,  0], dtype=int32)
    """
    n = -np.asarray(relative_position)
    bucket = np.zeros_like(n)
    if bidirectional:
        num_buckets //= 2
        bucket += (n < 0) * num_buckets
        n = np.abs(n)
    else:
        n = np.maximum(n, 0)
    max_exact = num_buckets // 2
    # max(n, 1) keeps log() finite where the exact branch is taken anyway.
    log_ratio = np.log(np.maximum(n, 1) / max_exact) / np.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return (bucket + np.where(n < max_exact, n, large)).astype(np.int32)


class RelativePositionBias(nn.Module):
    """A learned scalar bias per (head, relative-position bucket), added to attention logits."""

    num_heads: int
    num_buckets: int = 32
    max_distance: int = 128
    dtype: str = "float32"

    @nn.compact
    def __call__(self, q_len: int, k_len: int, bidirectional: bool,
                 query_positions: Array | None = None) -> Array:
        """Queries at 0..q_len-1 -> [1, h, q, k]; or, while decoding, queries at key index
        `query_positions` [b, q] (traced) -> [b, h, q, k].

        E.g. decoding the token at position 5 with a 16-slot cache: `query_positions=[[5]]` gives
        the bias row of query 5 in a 16 x 16 training-time bias, for every head.
        """
        table = self.param(
            "rel_embedding",
            nn.with_logical_partitioning(
                nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"),
                ("heads", "relpos_buckets")),
            (self.num_heads, self.num_buckets), jnp.float32)
        bucket = functools.partial(relative_position_bucket, bidirectional=bidirectional,
                                   num_buckets=self.num_buckets, max_distance=self.max_distance)
        if query_positions is None:
            # Buckets depend only on static shapes, so they are computed once in NumPy at trace
            # time. With packing, positions in different segments are masked anyway, so arange
            # offsets suffice.
            buckets = bucket(np.arange(k_len)[None, :] - np.arange(q_len)[:, None])
            return table[:, buckets][None].astype(self.dtype)
        # Traced positions: bucket every possible offset -(k-1)..k-1 in NumPy (float64 logs, the
        # same buckets as in training, where float32 could round a boundary differently) and
        # look the offsets up.
        buckets_of_offset = jnp.asarray(bucket(np.arange(-(k_len - 1), k_len)))
        offsets = jnp.arange(k_len) - query_positions[..., None]  # [b, q, k]
        buckets = buckets_of_offset[offsets + k_len - 1]
        return jnp.moveaxis(table[:, buckets], 0, 1).astype(self.dtype)  # [h, b, ...] -> [b, h, ...]


def attention_mask(query_segment_ids: Array, key_segment_ids: Array, causal: bool = False,
                   bidirectional: Array | None = None) -> Array:
    """Which keys each query may see: same packed segment, neither padding (id 0), and causal if asked.

    [b, q] and [b, k] -> bool [b, 1, q, k]. E.g. query segments [1, 1, 2, 0] with themselves as keys,
    causal: row 1 sees key 0 and 1, row 2 only key 2, row 3 (padding) nothing.

    `bidirectional` ([b, l], self-attention only) marks a prefix LM's fully visible positions: two
    marked positions of one segment see each other even when causal (seqio's
    `decoder_causal_attention`, which covers the inputs plus the first target position).
    """
    q = query_segment_ids[:, :, None]
    k = key_segment_ids[:, None, :]
    mask = (q == k) & (q > 0) & (k > 0)
    if causal:
        q_len, k_len = query_segment_ids.shape[1], key_segment_ids.shape[1]
        visible = jnp.tril(jnp.ones((q_len, k_len), dtype=bool))[None]
        if bidirectional is not None:
            visible = visible | (bidirectional[:, :, None] > 0) & (bidirectional[:, None, :] > 0)
        mask &= visible
    return mask[:, None]


class RowLengths(NamedTuple):
    """Which keys each query may see when every row holds one example at its start (unpacked rows,
    `model_config.one_example_per_row`): the first `keys[r]` keys of row r, for its first
    `queries[r]` queries. The `dot_product` kernel takes these as sequence lengths and masks inside
    the kernel, so no [b, 1, q, k] mask is built and a shared bias stays [1, h, q, k] (on GPUs cuDNN
    otherwise gets the mask folded into a [b, h, q, k] bias, and writes that bias's gradient in
    full). The same visibility as `attention_mask` of such rows' segment ids.

    queries [b] and keys [b]: int32 real lengths (segment id > 0) of the query and key rows.
    """

    queries: Array
    keys: Array


def row_lengths(segment_ids: Array) -> Array:
    """[b, l] segment ids of unpacked rows (1 on the example, then 0) -> int32 [b] lengths."""
    return jnp.sum(segment_ids > 0, axis=1, dtype=jnp.int32)


def decoding_mask(query_positions: Array, cache_prefix: Array,
                  query_prefix: Array | None = None) -> Array:
    """Which cache slots each query may see while decoding: bool [b, 1, q, K].

    `query_positions` [b, q] are the queries' cache slots; `cache_prefix` [b, K] marks the slots
    that hold a prefix LM's fully visible prefix, and `query_prefix` [b, q] the queries inside it.
    A query at slot p sees slots 0..p: a row writes its slots in order (prompt, then one token per
    step), so those hold its own tokens and nothing stale. E.g. a prefix LM prefill of [BOS, x, y]
    (all prefix) lets BOS see x and y; the first generated token, at slot 3, sees slots 0..3.
    """
    slots = jnp.arange(cache_prefix.shape[1])
    visible = slots[None, None, :] <= query_positions[:, :, None]
    if query_prefix is not None:
        visible = visible | (query_prefix[:, :, None] > 0) & (cache_prefix[:, None, :] > 0)
    return visible[:, None]


def _fused_attention_implementation(dtype: jnp.dtype, decode: bool) -> str | None:
    """cuDNN's fused kernel where it applies (a GPU, 16-bit inputs, not one-token decoding steps);
    None lets JAX choose, which today means XLA's implementation."""
    if jax.default_backend() == "gpu" and jnp.dtype(dtype).itemsize == 2 and not decode:
        return "cudnn"
    return None


def fused_attention(query: Array, key: Array, value: Array, mask: Array | RowLengths | None,
                    bias: Array | None = None, is_causal: bool = False,
                    decode: bool = False) -> Array:
    """The `dot_product` kernel: `jax.nn.dot_product_attention`, cuDNN's fused kernel on GPUs.

    query [b, q, h, d], key and value [b, k, h, d], mask [b, 1, q, k] or `RowLengths`, bias
    [1 or b, h, q, k] -> [b, q, h, d]. scale=1: the 1/sqrt(d) is already in the query (its init,
    or `runtime_attention_scale`), as in the einsum path. `is_causal` adds the causal mask inside
    the kernel, which then skips the blocks above the diagonal; `mask` keeps the packing and
    padding.
    """
    lengths = {}
    if isinstance(mask, RowLengths):
        # At least 1: an all-padding row (the end of a finite stream) sees one key rather than
        # none, whose softmax could be NaN; its outputs carry no loss weight either way.
        lengths = {"query_seq_lengths": jnp.maximum(mask.queries, 1),
                   "key_value_seq_lengths": jnp.maximum(mask.keys, 1)}
        mask = None
    return jax.nn.dot_product_attention(
        query, key, value, bias=bias, mask=mask, scale=1.0, is_causal=is_causal,
        implementation=_fused_attention_implementation(query.dtype, decode), **lengths)


def einsum_attention(query: Array, key: Array, value: Array, mask: Array | None,
                     bias: Array | None = None, dropout_keep: Array | None = None) -> Array:
    """The `einsum` kernel: explicit logits [b, h, q, k] with the softmax in float32.

    Shapes as `fused_attention`; causality, if any, is in `mask`. `dropout_keep` [b, h, q, k] (the
    inputs' dtype: 0 or 1 / keep probability) scales the attention weights.

    The gradient is written by hand (`_attention_bwd`) rather than left to autodiff, for two savings
    on the [b, h, q, k] tensors, which dominate attention's memory traffic at T5's lengths:

    - the softmax gradient w * (dw - sum_k w dw) needs the row sums sum_k w dw, which equal
      sum_d g * out (g = the output's gradient [b, q, h, d]): a pass over [b, q, h, d] instead of
      one over two [b, h, q, k] tensors (FlashAttention's trick);
    - a [1, h, q, k] bias (T5's relative positions) is shared by every layer of a stack, so its
      gradient sums each layer's logits gradient over the batch. Left to autodiff, XLA:CPU fuses all
      layers' batch sums into one reduction at the end of the backward pass, which holds every
      layer's [b, h, q, k] gradient until then; here each layer reduces its own at once, as a dot
      with ones (T5 v1.1 small, batch 8 x 512/114: 5.19 vs 5.33 s/step, experiments/benchmarks/
      train_step_cpu.md).
    """
    return _attention(query, key, value, mask, bias, dropout_keep)


def _attention_weights(query: Array, key: Array, mask: Array | None, bias: Array | None) -> Array:
    """softmax(q k^T + bias), masked: float32 [b, h, q, k]."""
    logits = jnp.einsum("bqhd,bkhd->bhqk", query, key).astype(jnp.float32)
    if bias is not None:
        logits = logits + bias.astype(jnp.float32)
    if mask is not None:
        logits = jnp.where(mask, logits, NEG_INF)
    return jax.nn.softmax(logits)  # float32 for stability


def _kept(weights: Array, dtype: jnp.dtype, dropout_keep: Array | None) -> Array:
    weights = weights.astype(dtype)
    return weights if dropout_keep is None else weights * dropout_keep


@jax.custom_vjp
def _attention(query: Array, key: Array, value: Array, mask: Array | None, bias: Array | None,
               dropout_keep: Array | None) -> Array:
    return _attention_fwd(query, key, value, mask, bias, dropout_keep)[0]


def _attention_fwd(query: Array, key: Array, value: Array, mask: Array | None, bias: Array | None,
                   dropout_keep: Array | None) -> tuple[Array, tuple]:
    weights = _attention_weights(query, key, mask, bias)
    out = jnp.einsum("bhqk,bkhd->bqhd", _kept(weights, query.dtype, dropout_keep), value)
    return out, (query, key, value, mask, bias, dropout_keep, weights, out)


def _attention_bwd(residuals: tuple, g: Array) -> tuple:
    query, key, value, mask, bias, dropout_keep, weights, out = residuals
    dkept = jnp.einsum("bqhd,bkhd->bhqk", g, value)
    dweights = (dkept if dropout_keep is None else dkept * dropout_keep).astype(jnp.float32)
    # sum_k w dw = sum_k w keep (g . v_k) = g . out, in float32: [b, q, h, d] -> [b, h, q, 1].
    row_sums = jnp.einsum("bqhd,bqhd->bhq", g.astype(jnp.float32), out.astype(jnp.float32))
    dlogits = weights * (dweights - row_sums[..., None])
    if mask is not None:
        # Masked logits are constants: exact zeros, also in fully masked (padding) rows, whose
        # weights are uniform rather than zero.
        dlogits = jnp.where(mask, dlogits, 0.0)
    dbias = None
    if bias is not None:
        if bias.shape[0] == dlogits.shape[0]:
            dbias = dlogits.astype(bias.dtype)
        else:  # a bias shared by the batch: sum the batch as a dot with ones (see einsum_attention)
            ones = jnp.ones((1, dlogits.shape[0]), dlogits.dtype)
            dbias = jnp.tensordot(ones, dlogits, axes=1).astype(bias.dtype)
    dlogits = dlogits.astype(query.dtype)
    dquery = jnp.einsum("bhqk,bkhd->bqhd", dlogits, key)
    dkey = jnp.einsum("bhqk,bqhd->bkhd", dlogits, query)
    dvalue = jnp.einsum("bhqk,bqhd->bkhd", _kept(weights, value.dtype, dropout_keep), g)
    return dquery, dkey, dvalue, None, dbias, None


_attention.defvjp(_attention_fwd, _attention_bwd)


# Logical names of a key or value cache [b, K, h, d]: laid out like the keys and values themselves.
CACHE_AXES = ("batch", "length", "act_heads", "act_kv")


class MultiHeadAttention(nn.Module):
    """Multi-head dot-product attention without biases, as in T5.

    With `decode=True` the keys and values live in a cache (collection "cache"):

    - self-attention: each call writes its keys and values ([b, K, h, d] each) at the queries'
      slots `cache_positions` [b, q], and the queries attend over all K slots; the caller's mask
      decides which of them are visible. The call that creates the cache (`mutable=["cache"]`,
      none given) sizes it by its input: K, and leaves it empty.
    - cross-attention (`static_kv=True`): the encoder output is the same at every step, so the
      call that creates the cache projects it to keys and values ([b, m, h, d] each) and every
      later step reads them, instead of projecting all m encoder positions again for each new
      token (at m = 512 that projection costs tens of times the rest of a T5 decoding step).
    """

    config: TransformerConfig

    @nn.compact
    def __call__(self, inputs_q: Array, inputs_kv: Array, mask: Array | RowLengths | None,
                 bias: Array | None = None, deterministic: bool = True, decode: bool = False,
                 cache_positions: Array | None = None, is_causal: bool = False,
                 static_kv: bool = False) -> Array:
        """[b, q, e], [b, k, e], mask [b, 1, q, k] (or `RowLengths`, dot_product kernel only),
        bias [1 or b, h, q, k] -> [b, q, e].

        While decoding, k is the cache's length K and `cache_positions` is [b, q]. `is_causal`
        (dot_product kernel only) adds the causal mask inside the kernel, which then skips the
        blocks above the diagonal; `mask` keeps the packing and padding.
        """
        cfg = self.config
        project = functools.partial(dense, cfg, (cfg.num_heads, cfg.head_dim),
                                    ("embed", "heads", "kv"), init_distribution="normal")
        # Attention's 1/sqrt(d): T5 folds it into the query's init (variance scaled by 1/d), which
        # Adafactor's parameter-scaled steps keep in proportion; BERT, GPT and BART apply it at run
        # time, so that Adam's steps on the query are theirs (`runtime_attention_scale`).
        query = project(init_scale=1.0 if cfg.runtime_attention_scale else 1.0 / cfg.head_dim,
                        name="query")(inputs_q)  # [b, q, h, d]
        if cfg.runtime_attention_scale:
            query = query * jnp.asarray(cfg.head_dim**-0.5, query.dtype)
        query = constrain(query, *CACHE_AXES)
        if decode and static_kv:
            key, value = self._static_keys_and_values(project, inputs_kv)
        else:
            key, value = (constrain(project(name=name)(inputs_kv), *CACHE_AXES)  # [b, k, h, d]
                          for name in ("key", "value"))
            if decode:
                key, value = self._cached_keys_and_values(key, value, cache_positions)

        if cfg.attention_kernel == "dot_product":
            out = fused_attention(query, key, value, mask, bias, is_causal, decode)
        else:
            if is_causal:
                raise ValueError("is_causal needs attention_kernel='dot_product'; the einsum "
                                 "kernel takes causality in its mask.")
            keep = None
            if not deterministic and cfg.dropout_rate > 0:
                # The dropout of the attention weights as a scale (0 or 1 / keep probability), so
                # that the hand-written gradient can apply it too.
                shape = (query.shape[0], cfg.num_heads, query.shape[1], key.shape[1])
                keep = nn.Dropout(cfg.dropout_rate)(jnp.ones(shape, query.dtype),
                                                    deterministic=False)
            out = einsum_attention(query, key, value, mask, bias, keep)
        out = constrain(out, "batch", "length", "act_heads", "act_kv")
        return dense(cfg, cfg.d_model, ("heads", "kv", "embed"), "out", axis=(-2, -1),
                     init_distribution="normal")(out)

    def _static_keys_and_values(self, project: Callable[..., nn.Module],
                                inputs_kv: Array) -> tuple[Array, Array]:
        """The keys and values of `inputs_kv` [b, m, e], [b, m, h, d] each: projected by the call
        that creates the cache, read from the cache by every call after it."""
        if self.has_variable("cache", "cached_key"):
            return self.variable("cache", "cached_key").value, \
                self.variable("cache", "cached_value").value
        projected = {}
        for name in ("key", "value"):
            projected[name] = constrain(project(name=name)(inputs_kv), *CACHE_AXES)
            self.variable("cache", f"cached_{name}",
                          nn.with_logical_partitioning(lambda x=projected[name]: x, CACHE_AXES))
        return projected["key"], projected["value"]

    def _cached_keys_and_values(self, key: Array, value: Array,
                                positions: Array) -> tuple[Array, Array]:
        """Write key and value [b, q, h, d] at slots `positions` [b, q]; return the whole cache,
        [b, K, h, d] each."""
        created = not self.has_variable("cache", "cached_key")
        init = nn.with_logical_partitioning(jnp.zeros, CACHE_AXES)
        cached_key = self.variable("cache", "cached_key", init, key.shape, key.dtype)
        cached_value = self.variable("cache", "cached_value", init, value.shape, value.dtype)
        if created:  # the sizing call: the cache starts empty, so attend over this input only
            return key, value
        rows = jnp.arange(key.shape[0])[:, None]  # each row writes at its own slots
        cached_key.value = cached_key.value.at[rows, positions].set(key)
        cached_value.value = cached_value.value.at[rows, positions].set(value)
        return cached_key.value, cached_value.value


class Mlp(nn.Module):
    """Position-wise MLP; several activations are multiplied, which makes it gated (GLU variants)."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x: Array, deterministic: bool = True) -> Array:  # [b, l, e] -> [b, l, e]
        cfg = self.config
        hidden = None
        for i, activation in enumerate(cfg.mlp_activations):
            name = "wi" if len(cfg.mlp_activations) == 1 else f"wi_{i}"
            h = dense(cfg, cfg.d_ff, ("embed", "mlp"), name)(x)
            h = _ACTIVATION_FNS[activation](h)
            hidden = h if hidden is None else hidden * h
        hidden = constrain(hidden, "batch", "length", "act_mlp")  # [b, l, f]
        hidden = nn.Dropout(cfg.dropout_rate)(hidden, deterministic=deterministic)
        return dense(cfg, cfg.d_model, ("mlp", "embed"), "wo")(hidden)
