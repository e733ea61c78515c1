"""``t2t bench attention``: one attention call, forward and backward, per kernel, on packed rows.

    t2t bench attention [--preset gpu|cpu|smoke] [--only CASE,...] [--steps N] [--out FILE.json]

Why: a training step's profile says how long attention takes, not what a different kernel or mask
layout would take. This times the attention call alone, on the shapes of the GPU training bench,
for each way t2t can call it, and checks each against the float32 reference on the same data.

Cases (``--preset gpu``): T5 v1.1 base's encoder self-attention (128 x 512, 12 heads of 64, the
relative-position bias [1, h, q, k]), its decoder self-attention (causal, 114, bias) and
cross-attention (114 queries over 512 keys), and the ~1B decoder-only model's causal
self-attention (16 x 1024, 14 heads of 128); ``--preset cpu``: the same three T5 cases at T5 v1.1
small's sizes and ``t2t bench train --preset cpu``'s batch (8 x 512 / 114, 6 heads of 64), in
float32. Rows are packed as pretraining packs them: 1-4
examples per row of random lengths, then padding (segment id 0); a cross-attention row's targets
and inputs hold the same examples.

Kernels:

* ``einsum``: t2t's ``attention_kernel='einsum'`` (``einsum_attention``), the dense segment mask.
* ``xla``: ``jax.nn.dot_product_attention(implementation='xla')``, the dense mask; its gradient is
  autodiff's, where ``einsum``'s is written by hand.
* ``cudnn_mask``: t2t's ``attention_kernel='dot_product'`` on a GPU (``fused_attention``): cuDNN with
  the dense mask, which cuDNN takes as an additive bias [b, h, q, k] (summed with the relative
  bias) and whose gradient it writes in full.
* ``cudnn_lengths``: cuDNN with each row's padding given as its length (``query_seq_lengths``,
  ``key_value_seq_lengths``) instead of a dense mask, the relative bias staying [1, h, q, k]: what
  unpacked rows (one example each, as in fine-tuning) could use; wrong on packed rows.
* ``cudnn_no_mask``: cuDNN without any segment mask: wrong on packed rows (its error is shown, not
  judged); the cost of the mask is its time against ``cudnn_mask``.

Per case and kernel: the median time of ``steps`` calls of ``jit(grad)`` of sum(out * g) with
respect to query, key, value (and the bias) after a warm-up call, the attention FLOP/s that
implies (forward 4·b·h·q·k·d, halved when causal; backward twice that), and the largest error of
the output and the three input gradients against ``einsum`` in float32 on the same (rounded)
inputs, over real (non-padding) queries and keys, relative to the reference's largest magnitude.
A kernel that cannot run here (cuDNN on a CPU) is recorded with its reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from t2t.models.layers import attention_mask, einsum_attention, fused_attention

Array = jax.Array
KERNELS = ("einsum", "xla", "cudnn_mask", "cudnn_lengths", "cudnn_no_mask")


@dataclasses.dataclass(frozen=True)
class AttentionCase:
    """One attention call: batch b, q queries over k keys, h heads of d; `bias`: a relative
    bias [1, h, q, k]; `max_segments`: examples packed per row (1 to this many)."""

    name: str
    batch: int
    q_len: int
    kv_len: int
    heads: int
    head_dim: int
    causal: bool
    bias: bool
    max_segments: int = 4

    def flops(self) -> float:
        """Forward + backward attention FLOPs: 4·b·h·q·k·d forward (two matmuls), twice that
        backward; half of each when causal (the kernel skips the blocks above the diagonal)."""
        forward = 4 * self.batch * self.heads * self.q_len * self.kv_len * self.head_dim
        return 3 * forward * (0.5 if self.causal else 1.0)


PRESETS: dict[str, tuple[AttentionCase, ...]] = {
    "gpu": (AttentionCase("t5_base_encoder", 128, 512, 512, 12, 64, causal=False, bias=True),
            AttentionCase("t5_base_decoder_self", 128, 114, 114, 12, 64, causal=True, bias=True),
            AttentionCase("t5_base_cross", 128, 114, 512, 12, 64, causal=False, bias=False),
            AttentionCase("decoder_1b", 16, 1024, 1024, 14, 128, causal=True, bias=False)),
    # T5 v1.1 small at `t2t bench train --preset cpu`'s shapes (batch 8, 512 inputs, 114 targets).
    "cpu": (AttentionCase("t5_small_encoder", 8, 512, 512, 6, 64, causal=False, bias=True),
            AttentionCase("t5_small_decoder_self", 8, 114, 114, 6, 64, causal=True, bias=True),
            AttentionCase("t5_small_cross", 8, 114, 512, 6, 64, causal=False, bias=False)),
    "smoke": (AttentionCase("encoder", 2, 32, 32, 2, 8, causal=False, bias=True),
              AttentionCase("cross", 2, 16, 32, 2, 8, causal=False, bias=False),
              AttentionCase("decoder", 2, 32, 32, 2, 8, causal=True, bias=False)),
}


def packed_segment_ids(rng: np.random.Generator, batch: int, lengths: Sequence[int],
                       max_segments: int) -> list[np.ndarray]:
    """Segment ids [batch, length] for each of `lengths` (one array per length), the same examples
    in each: row r holds n_r (1..max_segments) examples, numbered 1..n_r, then padding 0.

    Each example takes a random share of every length, so cross-attention between two of the
    arrays pairs example i of one with example i of the other, as the packer does for inputs and
    targets. E.g. lengths (8,), one row of 2 examples: [[1, 1, 1, 2, 2, 2, 2, 0]].
    """
    out = [np.zeros((batch, n), np.int32) for n in lengths]
    for row in range(batch):
        count = int(rng.integers(1, max_segments + 1))
        used = rng.uniform(0.85, 1.0)  # the rest of the row is padding
        shares = rng.dirichlet(np.ones(count)) * used
        for ids, n in zip(out, lengths):
            start = 0
            for segment, end in enumerate(np.round(np.cumsum(shares) * n).astype(int), 1):
                # at least one token each, and room left for the examples after it
                end = min(max(end, start + 1), n - (count - segment))
                ids[row, start:end] = segment
                start = end
    return out


def kernel_fn(kernel: str, causal: bool) -> Callable[..., Array]:
    """(query, key, value, bias, masks) -> out [b, q, h, d] for `kernel`; `masks` holds the dense
    "full" mask (segments and causality), the "segments" mask alone and each row's real length
    ("q_lengths", "kv_lengths")."""
    if kernel == "einsum":
        return lambda q, k, v, bias, masks: einsum_attention(q, k, v, masks["full"], bias)
    if kernel == "xla":
        return lambda q, k, v, bias, masks: jax.nn.dot_product_attention(
            q, k, v, bias=bias, mask=masks["full"], scale=1.0, implementation="xla")
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose from {KERNELS}")
    if jax.default_backend() != "gpu":
        raise RuntimeError("cuDNN kernels need a CUDA GPU")
    if kernel == "cudnn_mask":  # as the model calls it: causality in the kernel, packing in the mask
        return lambda q, k, v, bias, masks: fused_attention(q, k, v, masks["segments"], bias,
                                                            is_causal=causal)
    if kernel == "cudnn_lengths":
        return lambda q, k, v, bias, masks: jax.nn.dot_product_attention(
            q, k, v, bias=bias, scale=1.0, is_causal=causal, query_seq_lengths=masks["q_lengths"],
            key_value_seq_lengths=masks["kv_lengths"], implementation="cudnn")
    return lambda q, k, v, bias, masks: fused_attention(q, k, v, None, bias, is_causal=causal)


def make_inputs(case: AttentionCase, dtype: jnp.dtype, seed: int = 0) -> dict[str, Any]:
    """Random query/key/value [b, *, h, d] (query scaled by 1/sqrt(d), as T5's init does), a
    bias [1, h, q, k] if the case has one, a cotangent [b, q, h, d] that is zero on padding
    queries, which queries and keys are real, and the masks of `kernel_fn`."""
    rng = np.random.default_rng(seed)
    b, h, d = case.batch, case.heads, case.head_dim
    q_ids, kv_ids = packed_segment_ids(rng, b, (case.q_len, case.kv_len), case.max_segments)
    normal = lambda *shape: rng.standard_normal(shape, np.float32)  # noqa: E731
    g = normal(b, case.q_len, h, d) * (q_ids > 0)[:, :, None, None]
    q_ids_j, kv_ids_j = jnp.asarray(q_ids), jnp.asarray(kv_ids)
    masks = {"full": attention_mask(q_ids_j, kv_ids_j, causal=case.causal),
             "segments": attention_mask(q_ids_j, kv_ids_j),
             "q_lengths": jnp.asarray((q_ids > 0).sum(axis=1), jnp.int32),
             "kv_lengths": jnp.asarray((kv_ids > 0).sum(axis=1), jnp.int32)}
    return {"query": jnp.asarray(normal(b, case.q_len, h, d) / np.sqrt(d), dtype),
            "key": jnp.asarray(normal(b, case.kv_len, h, d), dtype),
            "value": jnp.asarray(normal(b, case.kv_len, h, d), dtype),
            "bias": jnp.asarray(normal(1, h, case.q_len, case.kv_len) * 0.5, dtype)
            if case.bias else None,
            "cotangent": jnp.asarray(g, jnp.float32), "masks": masks,
            "q_real": q_ids > 0, "kv_real": kv_ids > 0}


def _relative_error(x: Array, reference: Array, where: np.ndarray | None) -> float:
    x, reference = np.asarray(x, np.float32), np.asarray(reference, np.float32)
    if where is not None:
        where = np.broadcast_to(where.reshape(where.shape + (1,) * (x.ndim - where.ndim)), x.shape)
        x, reference = x[where], reference[where]
    scale = float(np.max(np.abs(reference))) or 1.0
    return float(np.max(np.abs(x - reference))) / scale


def _loss_and_grads(fn: Callable[..., Array], has_bias: bool) -> Callable[..., Any]:
    """jit of (q, k, v, bias, masks, g) -> (out, grads wrt q, k, v[, bias]) of sum(out * g)."""
    def loss(q, k, v, bias, masks, g):
        out = fn(q, k, v, bias, masks)
        return jnp.sum(out.astype(jnp.float32) * g), out

    argnums = (0, 1, 2, 3) if has_bias else (0, 1, 2)
    return jax.jit(lambda *args: (lambda r: (r[0][1], r[1]))(
        jax.value_and_grad(loss, argnums, has_aux=True)(*args)))


def run_case(case: AttentionCase, kernels: Sequence[str], dtype: jnp.dtype, steps: int,
             log: Callable[[str], None]) -> dict[str, Any]:
    """Time every kernel on `case` and compare it with the float32 einsum reference."""
    inputs = make_inputs(case, dtype)
    args = [inputs[n] for n in ("query", "key", "value", "bias", "masks", "cotangent")]
    reference_args = [None if a is None else jax.tree.map(
        lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x, a)
        for a in args]
    ref_out, ref_grads = _loss_and_grads(kernel_fn("einsum", case.causal), case.bias)(
        *reference_args)
    result: dict[str, Any] = {"shape": dataclasses.asdict(case),
                              "flops_forward_backward": case.flops(), "kernels": {}}
    names = ("out", "d_query", "d_key", "d_value", "d_bias")
    masks = (inputs["q_real"], inputs["q_real"], inputs["kv_real"], inputs["kv_real"], None)
    for kernel in kernels:
        try:
            step = _loss_and_grads(kernel_fn(kernel, case.causal), case.bias)
            start = time.perf_counter()
            jax.block_until_ready(step(*args))
            compile_s = time.perf_counter() - start
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                out, grads = jax.block_until_ready(step(*args))
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            errors = {name: _relative_error(x, r, m) for name, x, r, m in
                      zip(names, (out, *grads), (ref_out, *ref_grads), masks)}
            finite = all(bool(jnp.all(jnp.isfinite(x))) for x in (out, *grads))
            entry = {"ms": seconds * 1e3, "tflops": case.flops() / seconds / 1e12,
                     "first_call_s": compile_s, "relative_errors": errors,
                     "finite_everywhere": finite}
            log(f"{case.name:>22} {kernel:>14}: {seconds * 1e3:8.3f} ms "
                f"{entry['tflops']:7.1f} TFLOP/s  max rel. error {max(errors.values()):.2e}"
                f"{'' if finite else '  NON-FINITE (padding)'}")
        except Exception as e:  # noqa: BLE001  a kernel that cannot run is a result, not a crash
            entry = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:500]}
            if not isinstance(e, RuntimeError):
                entry["traceback"] = traceback.format_exc()[-2000:]
            log(f"{case.name:>22} {kernel:>14}: {entry['error']}")
        result["kernels"][kernel] = entry
    return result


def table(result: dict[str, Any]) -> str:
    """Markdown: one row per case, ms (TFLOP/s) per kernel."""
    kernels = result["kernels"]
    rows = ["| case | " + " | ".join(kernels) + " |", "|---|" + "---|" * len(kernels)]
    for name, case in result["cases"].items():
        cells = []
        for kernel in kernels:
            entry = case["kernels"].get(kernel, {})
            if "ms" in entry:
                err = max(entry["relative_errors"].values())
                cells.append(f"{entry['ms']:.3g} ms, {entry['tflops']:.3g} TFLOP/s, error {err:.0e}")
            else:
                cells.append(entry.get("error", "–").split(":")[0])
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="t2t bench attention", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="gpu")
    parser.add_argument("--only", help="comma list of case names")
    parser.add_argument("--kernels", default=",".join(KERNELS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"],
                        help="default: float32 for the cpu preset, bfloat16 otherwise")
    parser.add_argument("--out", help="write the JSON here")
    args = parser.parse_args(argv)
    from t2t.bench.train import machine_info

    cases = [c for c in PRESETS[args.preset] if not args.only or c.name in args.only.split(",")]
    if not cases:
        parser.error(f"--only {args.only} matches no case of preset {args.preset}: "
                     f"{[c.name for c in PRESETS[args.preset]]}")
    kernels = args.kernels.split(",")
    unknown = set(kernels) - set(KERNELS)
    if unknown:
        parser.error(f"unknown kernels {sorted(unknown)}; choose from {KERNELS}")
    args.dtype = args.dtype or ("float32" if args.preset == "cpu" else "bfloat16")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    device = jax.devices()[0]
    result = {"benchmark": "attention", "preset": args.preset, "dtype": args.dtype,
              "steps": args.steps, "device": device.device_kind, "machine": machine_info(),
              "kernels": kernels, "cases": {}}
    for case in cases:
        result["cases"][case.name] = run_case(case, kernels, jnp.dtype(args.dtype), args.steps, log)
        if args.out:  # after every case: a run cut short keeps what it measured
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
