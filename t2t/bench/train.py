"""``t2t bench train``: training-step time, tokens/s, MFU, compile time and peak memory, next to peers.

    t2t bench train [--preset cpu|gpu] [--only NAME,...] [--smoke] [--size NAME] [--batch_size N] [--inputs N]
                    [--targets N] [--dtype float32|bfloat16] [--set FIELD=VALUE]...
                    [--variant NAME:FIELD=VALUE,...]... [--partitioning PRESET] [--mesh JSON]
                    [--num_devices N] [--optimizer adamw|adafactor] [--peers hf_flax_t5,pytorch_t5|none]
                    [--rounds N] [--steps_per_round N] [--compile_layers 2,24|none]
                    [--max_load X --max_wait S] [--profile DIR] [--out FILE.json] [--md FILE.md]

What one invocation does (``--preset cpu``, the default; the committed results are
experiments/benchmarks/train_step_cpu.{json,md}):

* **Systems.** ``t2t`` is the step training uses: ``ShardedModel(...).compile_train_step()`` on a
  ``make_partitioner(preset, mesh)`` mesh (data_parallel on one device by default), with ``--set``
  applied to the named size; every ``--variant`` adds another t2t system with more fields set (e.g.
  ``--variant t2t_scan:scan_layers=True``; ``batch_size=N`` sets the variant's batch instead).
  Peers, for T5 v1.1/v1.0-shaped encoder-decoders only, are configured from the same
  TransformerConfig (same widths, heads, layers, gated-GeLU with the tanh GeLU, untied logits,
  relative buckets 32/128, dropout 0, random init):
  ``hf_flax_t5`` is transformers' ``FlaxT5ForConditionalGeneration`` (``transformers<5``; its
  ``jnp.clip(a_min=, a_max=)`` calls are shimmed for current jax) in a jitted, donated step, and
  ``pytorch_t5`` is transformers' ``T5ForConditionalGeneration`` in eager PyTorch. Peers are
  benchmark-only dependencies: ``pip install -e ".[bench]"``; missing ones are skipped and say so.
* **Same work.** One batch of random tokens in full-length rows (no padding, one example per row;
  decoder inputs are the targets shifted right with BOS 0), the same arrays for every system;
  loss = cross-entropy averaged over target tokens (t2t's z-loss is set to 0); optimizer AdamW
  (b1 0.9, b2 0.999, eps 1e-8, no weight decay, no clipping, constant lr 1e-4) for all three:
  optax.adamw for the JAX systems, torch.optim.AdamW for PyTorch (its default for-loop kernel).
* **Isolation and timing.** Each system lives in its own spawned worker process (own heap, own
  thread pools). Each worker builds, compiles and runs one warm-up step; then the parent runs
  ``rounds`` rounds, and in each round asks every system in turn for ``steps_per_round`` steps and
  times each step (wall clock around the call, blocked until the outputs are ready). Alternating
  rounds spread the drift of a shared host across systems; reported step times are medians over
  all timed steps. ``--preset gpu`` runs the systems one after another instead (one process holds
  the GPU at a time).
* **Tokens/s** = batch x (inputs + targets) / median step time (encoder and decoder tokens both count).
* **MFU** = t2t's model FLOPs per step (``flops_per_example(config, lengths).training x batch``, the
  same count for every system since they do the same work) / median step time / peak. On a CPU the
  peak is measured in this invocation: a jitted float32 2048x2048 matmul, median of 5, once per
  round in the last JAX system's worker; the reported peak is the highest of those samples (a
  matmul cannot outrun the hardware, so noise only lowers a sample, and the highest one gives the
  lowest, safest MFU; before 2026-11-29 it was their median).
  (``t2t.training.peak_flops.measured_cpu_peak_flops()``, a 1024 matmul, is recorded next to it).
  On accelerators it is ``peak_flops_per_device()`` (the vendor's dense bf16 figure).
  XLA's own ``cost_analysis`` FLOPs of each jitted step are recorded too.
* **Compile time** = ``lower().compile()`` of the step (t2t: ``compile_train_step``'s own timing).
  The compile-scaling check compiles (never runs) t2t's step for ``--compile_layers`` depths of the
  named size with ``scan_layers=True`` in a fresh worker, after one throw-away compile, twice each,
  keeping the faster; the ratio deepest/shallowest is the figure of merit (target <= 1.5).
* **Memory.** ``peak_rss_gib``: the worker's ``getrusage`` high-water resident set (compilation
  included); ``peak_rss_delta_gib``: that minus the high-water mark after its imports, before the
  model was built. JAX systems also report XLA's ``memory_analysis`` of the compiled step
  (arguments + outputs - donated aliases + temporaries), and accelerators ``peak_bytes_in_use``.

``--smoke`` shrinks everything (tiny widths, 2 + 2 layers, batch 2 x 32/16, 1 round) so the whole
path, the GPU preset included, runs on a laptop CPU in seconds; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from t2t.bench import machine
from t2t.bench.profile import profile_table

# No jax at module level: spawned workers set XLA_FLAGS (fake devices) before importing it.

PEERS = ("hf_flax_t5", "pytorch_t5")
LEARNING_RATE = 1e-4
ADAMW = {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
TARGETS = {"ratio_vs_hf_flax_t5": 1.5, "mfu": 0.65, "compile_ratio": 1.5}
JAX_KINDS = ("t2t", "hf_flax_t5")  # the systems jax.profiler can trace
CPU_PEAK_MATMUL = 2048


# --------------------------------------------------------------------------------------------------
# What is benchmarked
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One workload: a named size with overrides, a batch, a mesh and an optimizer."""

    size: str
    batch_size: int
    feature_lengths: tuple[tuple[str, int], ...]  # (("inputs", 512), ("targets", 114)), hashable
    overrides: tuple[tuple[str, Any], ...] = ()
    partitioning: str = "data_parallel"
    mesh_shape: tuple[tuple[str, int], ...] | None = None
    num_devices: int | None = None  # devices of the mesh (default 1); on a CPU that many fake
    # devices are made (XLA_FLAGS, set in the worker before jax is imported)
    optimizer: str = "adamw"
    seed: int = 0

    @property
    def lengths(self) -> dict[str, int]:
        return dict(self.feature_lengths)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * sum(self.lengths.values())

    def config(self):
        from t2t.models.sizes import get_size

        return get_size(self.size).replace(**dict(self.overrides))

    def describe(self) -> dict:
        return {"size": self.size, "batch_size": self.batch_size, "feature_lengths": self.lengths,
                "overrides": {k: v for k, v in self.overrides}, "partitioning": self.partitioning,
                "mesh_shape": None if self.mesh_shape is None else dict(self.mesh_shape),
                "num_devices": self.num_devices, "optimizer": self.optimizer}


@dataclasses.dataclass(frozen=True)
class SystemSpec:
    """A system to time: `kind` is "t2t" or one of PEERS; `name` is its key in the results."""

    name: str
    kind: str
    case: Case


def random_batch(case: Case, seed: int = 0) -> dict[str, Any]:
    """Full-length rows of random tokens, as the family's converter lays them out (numpy int32).

    Token ids avoid PAD/EOS/UNK (0-2) and stay below 32,100 for T5's vocabulary.
    """
    import numpy as np

    from t2t.training.trainer import make_converter

    config = case.config()
    shapes = make_converter(config, case.lengths).output_lengths()
    high = min(config.vocab_size, 32_100)
    rng = np.random.default_rng(seed)
    b = case.batch_size
    batch = {}
    for key, length in shapes.items():
        if key.endswith("segment_ids") or key.endswith("loss_weights"):
            batch[key] = np.ones((b, length), np.int32)
        elif key.endswith("positions"):
            batch[key] = np.broadcast_to(np.arange(length, dtype=np.int32), (b, length)).copy()
        elif key == "decoder_causal_attention":
            batch[key] = np.zeros((b, length), np.int32)
        elif key.endswith("tokens") and key != "decoder_input_tokens":
            batch[key] = rng.integers(3, high, (b, length), dtype=np.int32)
        elif key != "decoder_input_tokens":
            raise ValueError(f"random_batch does not know how to fill feature {key!r}")
    if "decoder_input_tokens" in shapes:
        targets = batch["decoder_target_tokens"]
        batch["decoder_input_tokens"] = np.concatenate(
            [np.zeros((b, 1), np.int32), targets[:, :-1]], axis=1)
    return batch


# --------------------------------------------------------------------------------------------------
# Systems: setup() once, run(n) per round, close()
# --------------------------------------------------------------------------------------------------


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _xla_memory(compiled) -> dict | None:
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if m is None:
        return None
    gib = 2.0**30
    out = {"arguments_gib": m.argument_size_in_bytes / gib, "outputs_gib": m.output_size_in_bytes / gib,
           "aliased_gib": m.alias_size_in_bytes / gib, "temporaries_gib": m.temp_size_in_bytes / gib}
    out["peak_estimate_gib"] = (out["arguments_gib"] + out["outputs_gib"] - out["aliased_gib"]
                                + out["temporaries_gib"])
    return out


def _xla_flops(compiled) -> float | None:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001
        return None
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


def _device_peak_bytes() -> float | None:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**30


def matmul_peak_flops(size: int = CPU_PEAK_MATMUL, repeats: int = 5) -> float:
    """Median float32 FLOP/s of a jitted size x size matmul on the default device (a fresh
    sample each call: the benchmark takes one per round)."""
    from t2t.training.peak_flops import matmul_flops_per_second

    return matmul_flops_per_second(size, repeats)


def _partitioner(case: Case):
    """The case's mesh over its first `num_devices` devices (one by default)."""
    import jax

    from t2t.training.partitioning import make_partitioner

    devices = jax.devices()[: case.num_devices or 1]
    return make_partitioner(case.partitioning,
                            None if case.mesh_shape is None else dict(case.mesh_shape), devices)


class _System:
    """A system under test: `setup` builds and compiles it, `_one_step` runs one training step
    (blocking until it is done), `run` times steps and `close` reports losses and memory."""

    def __init__(self, case: Case):
        self.case = case
        self.losses: list[float] = []  # filled by `_one_step`, reset by `setup`

    def _one_step(self) -> None:
        raise NotImplementedError

    def run(self, steps: int) -> list[float]:
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            self._one_step()
            times.append(time.perf_counter() - start)
        return times

    def close(self) -> dict:
        return {"loss_first": self.losses[0], "loss_last": self.losses[-1],
                "device_peak_gib": _device_peak_bytes()}

    def profile(self, out_dir: str, steps: int) -> dict | None:
        """The summary of a `jax.profiler` trace of `steps` more steps (t2t.bench.profile); the
        compiled step's program names what each traced operation is."""
        from t2t.bench.profile import profile_steps

        return profile_steps(self._one_step, out_dir, steps, hlo_text=self.step.as_text())


class T2tSystem(_System):
    """t2t's own train step: ShardedModel.compile_train_step on the case's mesh."""

    def setup(self) -> dict:
        import jax

        from t2t.models.flops import flops_per_example
        from t2t.training import optimizers
        from t2t.training.trainer import ShardedModel, make_converter

        case = self.case
        config = case.config()
        lengths = case.lengths
        converter = make_converter(config, lengths)
        if case.optimizer == "adamw":
            tx = optimizers.adamw(LEARNING_RATE, clip_global_norm=None, **ADAMW)
        else:
            tx = optimizers.adafactor(LEARNING_RATE)
        partitioner = _partitioner(case)
        sharded = ShardedModel(config, tx, partitioner, converter, case.batch_size, z_loss=0.0,
                               seed=case.seed)
        self.state = sharded.init_state()
        self.step, compile_s = sharded.compile_train_step()
        self.batch = partitioner.shard_batch(random_batch(case))
        self.losses: list[float] = []
        start = time.perf_counter()
        self._one_step()
        first_step_s = time.perf_counter() - start
        mesh = partitioner.mesh
        return {
            "parameters": sharded.num_params,
            "compile_s": compile_s,
            "first_step_s": first_step_s,
            "model_flops_per_step": case.batch_size * flops_per_example(config, lengths).training,
            "xla_flops_per_step": _xla_flops(self.step),
            "xla_memory_per_device": _xla_memory(self.step),
            "devices": int(mesh.devices.size),
            "mesh": {k: int(v) for k, v in mesh.shape.items()},
            "device_kind": jax.devices()[0].device_kind,
            "platform": jax.devices()[0].platform,
            "config": dataclasses.asdict(config),
        }

    def _one_step(self) -> None:
        import jax

        self.state, metrics = self.step(self.state, self.batch)
        metrics = jax.device_get(metrics)  # blocks until the step has run
        self.losses.append(float(metrics["cross_entropy"]) / max(float(metrics["weight"]), 1.0))



def _hf_t5_config(config):
    """transformers.T5Config with the same shape as a t2t T5 TransformerConfig (t2t convert's
    mapping, which fails naming any field HF cannot hold)."""
    from transformers import T5Config

    from t2t.interop import config_to_hf

    if config.family != "encoder_decoder":
        raise ValueError("peers exist for T5-shaped encoder-decoders only")
    return T5Config(**config_to_hf(config), use_cache=False)


def _hf_batch(case: Case) -> dict[str, Any]:
    import numpy as np

    batch = random_batch(case)
    return {"input_ids": batch["encoder_input_tokens"],
            "attention_mask": np.ones_like(batch["encoder_input_tokens"]),
            "decoder_input_ids": batch["decoder_input_tokens"],
            "decoder_attention_mask": np.ones_like(batch["decoder_input_tokens"]),
            "labels": batch["decoder_target_tokens"]}


def shim_hf_flax_t5_clip() -> None:
    """transformers' Flax T5 calls ``jnp.clip(x, a_min=, a_max=)``, which current jax rejects: give
    that module a ``jnp`` whose ``clip`` maps the old keywords to ``min=``/``max=``."""
    import types

    import jax.numpy as jnp
    from transformers.models.t5 import modeling_flax_t5 as m

    if getattr(m.jnp, "_t2t_clip_shim", False):
        return

    def clip(x, min=None, max=None, *, a_min=None, a_max=None, **kwargs):  # noqa: A002
        return jnp.clip(x, min=a_min if min is None else min, max=a_max if max is None else max,
                        **kwargs)

    proxy = types.ModuleType("jnp_with_clip_shim")
    proxy.__dict__.update({k: getattr(jnp, k) for k in dir(jnp) if not k.startswith("__")})
    proxy.clip = clip
    proxy._t2t_clip_shim = True
    m.jnp = proxy


class HfFlaxT5System(_System):
    """transformers' FlaxT5ForConditionalGeneration, random init, one jitted AdamW step (donated)."""

    def setup(self) -> dict:
        import jax
        import jax.numpy as jnp
        import optax
        from transformers import FlaxT5ForConditionalGeneration

        shim_hf_flax_t5_clip()
        config = self.case.config()
        dtype = jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32
        model = FlaxT5ForConditionalGeneration(_hf_t5_config(config), seed=self.case.seed,
                                               dtype=dtype)
        tx = optax.adamw(LEARNING_RATE, **ADAMW)
        params = model.params
        opt_state = tx.init(params)
        self.batch = {k: jnp.asarray(v) for k, v in _hf_batch(self.case).items()}

        def loss_fn(params, batch, rng):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           decoder_input_ids=batch["decoder_input_ids"],
                           decoder_attention_mask=batch["decoder_attention_mask"],
                           params=params, dropout_rng=rng, train=True).logits
            return optax.softmax_cross_entropy_with_integer_labels(
                logits.astype(jnp.float32), batch["labels"]).mean()

        def train_step(params, opt_state, batch, step):
            rng = jax.random.fold_in(jax.random.key(0), step)
            loss, grads = jax.value_and_grad(loss_fn)(params, batch, rng)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        start = time.perf_counter()
        self.step = jax.jit(train_step, donate_argnums=(0, 1)).lower(
            params, opt_state, self.batch, 0).compile()
        compile_s = time.perf_counter() - start
        self.params, self.opt_state, self.count = params, opt_state, 0
        self.losses: list[float] = []
        start = time.perf_counter()
        self._one_step()
        first_step_s = time.perf_counter() - start
        return {"parameters": int(sum(x.size for x in jax.tree.leaves(params))),
                "compile_s": compile_s, "first_step_s": first_step_s,
                "xla_flops_per_step": _xla_flops(self.step),
                "xla_memory_per_device": _xla_memory(self.step)}

    def _one_step(self) -> None:
        self.params, self.opt_state, loss = self.step(self.params, self.opt_state, self.batch,
                                                      self.count)
        self.count += 1
        self.losses.append(float(loss))  # blocks until the step has run



class PytorchT5System(_System):
    """transformers' T5ForConditionalGeneration in eager PyTorch, random init, AdamW."""

    def setup(self) -> dict:
        import torch
        from transformers import T5ForConditionalGeneration

        config = self.case.config()
        if config.dtype != "float32":
            raise ValueError("the PyTorch peer runs float32 only")
        torch.manual_seed(self.case.seed)
        self.model = T5ForConditionalGeneration(_hf_t5_config(config)).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=LEARNING_RATE,
                                     betas=(ADAMW["b1"], ADAMW["b2"]), eps=ADAMW["eps"],
                                     weight_decay=ADAMW["weight_decay"])
        self.batch = {k: torch.from_numpy(v.astype("int64")) for k, v in _hf_batch(self.case).items()}
        self.losses: list[float] = []
        start = time.perf_counter()
        self._one_step()
        return {"parameters": int(sum(p.numel() for p in self.model.parameters())),
                "compile_s": None, "first_step_s": time.perf_counter() - start,
                "torch_threads": torch.get_num_threads()}

    def _one_step(self) -> None:
        loss = self.model(**self.batch).loss  # mean cross-entropy over the labels
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.losses.append(float(loss.detach()))

    def close(self) -> dict:  # no JAX device to ask for its memory
        return {"loss_first": self.losses[0], "loss_last": self.losses[-1]}


SYSTEMS: dict[str, type] = {"t2t": T2tSystem, "hf_flax_t5": HfFlaxT5System,
                            "pytorch_t5": PytorchT5System}
PEER_MODULES = {"hf_flax_t5": ("transformers", "flax"), "pytorch_t5": ("transformers", "torch")}


def missing_peer_modules(kind: str) -> list[str]:
    import importlib.util

    return [m for m in PEER_MODULES.get(kind, ()) if importlib.util.find_spec(m) is None]


def compile_scaling(case: Case, layers: Sequence[int], repeats: int = 2) -> dict:
    """Compile (never run) t2t's train step at each depth with scan on; the fastest of `repeats`."""
    from t2t.training import optimizers
    from t2t.training.trainer import ShardedModel, make_converter

    base = case.config().replace(scan_layers=True)
    partitioner = _partitioner(case)
    tx = optimizers.adamw(LEARNING_RATE, clip_global_norm=None, **ADAMW)

    def compile_seconds(n: int) -> float:
        config = base.replace(num_encoder_layers=n if base.num_encoder_layers else 0,
                              num_decoder_layers=n)
        sharded = ShardedModel(config, tx, partitioner, make_converter(config, case.lengths),
                               case.batch_size, z_loss=0.0)
        return sharded.compile_train_step()[1]

    compile_seconds(1)  # first compile in a process pays one-off costs (backend, caches)
    seconds = {n: [] for n in layers}
    for _ in range(repeats):
        for n in layers:
            seconds[n].append(compile_seconds(n))
    best = {str(n): min(s) for n, s in seconds.items()}
    lo, hi = min(layers), max(layers)
    return {"layers": list(layers), "scan_layers": True, "compile_s": best,
            "compile_s_all": {str(n): s for n, s in seconds.items()},
            "ratio": best[str(hi)] / best[str(lo)], "ratio_layers": [lo, hi],
            "target_max_ratio": TARGETS["compile_ratio"]}


# --------------------------------------------------------------------------------------------------
# Workers: one process per system
# --------------------------------------------------------------------------------------------------


def _apply_device_flags(num_devices: int | None) -> None:
    if num_devices:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + f" --xla_force_host_platform_device_count={num_devices}")


def _worker_main(conn, spec: SystemSpec) -> None:
    """A spawned process serving one system: ('run', n), ('peak',), ('close',) messages."""
    try:
        _apply_device_flags(spec.case.num_devices)
        if spec.kind == "t2t":
            import jax  # noqa: F401
            import t2t.training.trainer  # noqa: F401
        elif spec.kind == "hf_flax_t5":
            import transformers.models.t5.modeling_flax_t5  # noqa: F401
        elif spec.kind == "pytorch_t5":
            import transformers.models.t5.modeling_t5  # noqa: F401
        base_rss = _rss_gib()
        system = SYSTEMS[spec.kind](spec.case)
        info = system.setup()
        info["rss_after_imports_gib"] = base_rss
        conn.send(("ok", info))
        while True:
            message = conn.recv()
            if message[0] == "run":
                conn.send(("ok", system.run(message[1])))
            elif message[0] == "peak":
                conn.send(("ok", matmul_peak_flops(*message[1:])))
            elif message[0] == "profile":
                conn.send(("ok", system.profile(*message[1:])))
            elif message[0] == "close":
                info = system.close()
                info["peak_rss_gib"] = _rss_gib()
                info["peak_rss_delta_gib"] = info["peak_rss_gib"] - base_rss
                conn.send(("ok", info))
                return
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which decides
        conn.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))


def _scaling_worker_main(conn, case: Case, layers: Sequence[int]) -> None:
    try:
        _apply_device_flags(case.num_devices)
        conn.send(("ok", compile_scaling(case, layers)))
    except BaseException as error:  # noqa: BLE001
        conn.send(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))


class WorkerError(RuntimeError):
    pass


class Worker:
    """Parent-side handle of a spawned worker (or, with isolate=False, of a system in this process)."""

    def __init__(self, spec: SystemSpec, isolate: bool = True):
        self.spec = spec
        self.isolate = isolate
        if isolate:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            self.conn, child = ctx.Pipe()
            self.process = ctx.Process(target=_worker_main, args=(child, spec), daemon=True)
            self.process.start()
            child.close()
        else:
            self.system = SYSTEMS[spec.kind](spec.case)

    def _ask(self, *message):
        if not self.isolate:
            return None
        if message:
            self.conn.send(message)
        while not self.conn.poll(5.0):
            if not self.process.is_alive():
                raise WorkerError(f"{self.spec.name}: worker died (exit code "
                                  f"{self.process.exitcode}; out of memory?)")
        status, payload = self.conn.recv()
        if status == "error":
            raise WorkerError(f"{self.spec.name}: {payload}")
        return payload

    def setup(self) -> dict:
        if not self.isolate:
            base = _rss_gib()
            info = self.system.setup()
            info["rss_after_imports_gib"] = base
            return info
        return self._ask()

    def run(self, steps: int) -> list[float]:
        return self.system.run(steps) if not self.isolate else self._ask("run", steps)

    def peak(self, size: int = CPU_PEAK_MATMUL, repeats: int = 5) -> float:
        return matmul_peak_flops(size, repeats) if not self.isolate else self._ask("peak", size,
                                                                                    repeats)

    def profile(self, out_dir: str, steps: int) -> dict | None:
        return (self.system.profile(out_dir, steps) if not self.isolate
                else self._ask("profile", out_dir, steps))

    def close(self) -> dict:
        if not self.isolate:
            info = self.system.close()
            info["peak_rss_gib"] = None  # one process for all systems: no per-system figure
            info["peak_rss_delta_gib"] = None
            return info
        try:
            return self._ask("close")
        finally:
            self.process.join(timeout=60)

    def kill(self) -> None:
        if self.isolate and self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=10)


def _run_compile_scaling(case: Case, layers: Sequence[int], isolate: bool) -> dict:
    if not isolate:
        return compile_scaling(case, layers)
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    conn, child = ctx.Pipe()
    process = ctx.Process(target=_scaling_worker_main, args=(child, case, list(layers)), daemon=True)
    process.start()
    child.close()
    try:
        while not conn.poll(5.0):
            if not process.is_alive():
                raise WorkerError(f"compile scaling worker died (exit code {process.exitcode})")
        status, payload = conn.recv()
    finally:
        process.join(timeout=60)
    if status == "error":
        raise WorkerError(f"compile scaling: {payload}")
    return payload


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------


def _version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    return {
        **machine.host(),
        **{name: _version(name) for name in ("jax", "jaxlib", "flax", "optax", "numpy",
                                             "transformers", "torch")},
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        **machine.code_version(),
    }


def wait_for_load(max_load: float | None, max_wait: float, log: Callable[[str], None]) -> float:
    """Wait (up to max_wait s) until the 1-minute load average is at most max_load; return it."""
    start = time.time()
    load = os.getloadavg()[0]
    while max_load is not None and load > max_load and time.time() - start < max_wait:
        log(f"load average {load:.2f} > {max_load}; waiting")
        time.sleep(15)
        load = os.getloadavg()[0]
    return load


def run_benchmark(systems: Sequence[SystemSpec], rounds: int = 5, steps_per_round: int = 1,
                  alternate: bool = True, compile_layers: Sequence[int] | None = (2, 24),
                  isolate: bool = True, reference: str = "t2t",
                  log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
                  extra: Mapping[str, Any] | None = None, profile_dir: str | None = None,
                  profile_steps: int = 2) -> dict:
    """Time every system (see the module docstring) and return the JSON-able results.

    With `profile_dir`, each JAX system then runs `profile_steps` more steps under the profiler
    (after its timed rounds, so tracing slows none of them) and reports where their time went
    under ``profile`` (t2t.bench.profile); the traces stay in ``<profile_dir>/<system>/``.

    `reference` names the t2t system whose ratios to the peers are reported as
    ``ratio_vs_<peer>`` (its tokens/s over the peer's, same shapes). Systems whose libraries are
    missing are skipped and listed under ``skipped``; a system that fails is reported the same way.
    """
    result: dict[str, Any] = {"benchmark": "train_step", "machine": machine_info(),
                              **(dict(extra) if extra else {})}
    result["machine"]["load_average_before"] = list(os.getloadavg())
    skipped: dict[str, str] = {}
    active: list[SystemSpec] = []
    for spec in systems:
        missing = missing_peer_modules(spec.kind)
        if missing:
            skipped[spec.name] = f"not installed: {', '.join(missing)} (pip install -e '.[bench]')"
            log(f"skipping {spec.name}: {skipped[spec.name]}")
        else:
            active.append(spec)

    on_cpu = None
    peak_samples: list[float] = []
    peak_name = None  # the worker that samples the matmul peak
    out: dict[str, dict] = {}
    times: dict[str, list[list[float]]] = {s.name: [] for s in active}

    def start(spec: SystemSpec) -> Worker | None:
        log(f"{spec.name}: building and compiling ...")
        worker = Worker(spec, isolate)
        try:
            out[spec.name] = {"kind": spec.kind, **worker.setup()}
        except Exception as error:  # noqa: BLE001 - report and go on with the others
            skipped[spec.name] = f"failed: {error}"
            log(f"{spec.name} failed:\n{error}")
            worker.kill()
            return None
        log(f"{spec.name}: compiled in {out[spec.name].get('compile_s') or 0:.1f} s, first step "
            f"{out[spec.name]['first_step_s']:.2f} s")
        return worker

    def finish(spec: SystemSpec, worker: Worker) -> None:
        if profile_dir and spec.kind in JAX_KINDS:
            log(f"{spec.name}: profiling {profile_steps} steps ...")
            try:
                out[spec.name]["profile"] = worker.profile(str(Path(profile_dir) / spec.name),
                                                           profile_steps)
            except Exception as error:  # noqa: BLE001 - the timings stand without it
                out[spec.name]["profile"] = {"error": str(error)}
                log(f"{spec.name}: profiling failed: {error}")
        try:
            out[spec.name].update(worker.close())
        except Exception as error:  # noqa: BLE001
            log(f"{spec.name}: close failed: {error}")
            worker.kill()

    def timed_round(spec: SystemSpec, worker: Worker, r: int) -> None:
        step_times = worker.run(steps_per_round)
        times[spec.name].append(step_times)
        log(f"round {r + 1}/{rounds} {spec.name}: "
            + ", ".join(f"{t:.3f}" for t in step_times) + " s/step")

    workers: dict[str, Worker] = {}
    try:
        if alternate:
            for spec in active:
                worker = start(spec)
                if worker is not None:
                    workers[spec.name] = worker
            t2t_worker = next((s.name for s in active if s.kind == "t2t" and s.name in workers),
                              None)
            if t2t_worker is not None:
                on_cpu = out[t2t_worker]["platform"] == "cpu"
            # The matmul peak is sampled in the last JAX system of each round, right after its
            # step, so that no system's timed step directly follows the 2048² matmuls.
            peak_name = next((s.name for s in reversed(active)
                              if s.kind in JAX_KINDS and s.name in workers), None)
            for r in range(rounds):
                for spec in active:
                    if spec.name in workers:
                        timed_round(spec, workers[spec.name], r)
                        if on_cpu and spec.name == peak_name:
                            peak_samples.append(workers[spec.name].peak())
                            log(f"round {r + 1}/{rounds} matmul peak: "
                                f"{peak_samples[-1] / 1e9:.1f} GFLOP/s")
            for name, worker in list(workers.items()):
                finish(next(s for s in active if s.name == name), worker)
                del workers[name]
        else:  # one at a time (accelerators: one process may hold the device)
            for spec in active:
                worker = start(spec)
                if worker is None:
                    continue
                workers[spec.name] = worker
                if spec.kind == "t2t" and out[spec.name]["platform"] == "cpu":
                    on_cpu, peak_name = True, spec.name
                    peak_samples.append(worker.peak())
                for r in range(rounds):
                    timed_round(spec, worker, r)
                finish(spec, worker)
                del workers[spec.name]
    finally:
        for worker in workers.values():
            worker.kill()

    # Peak FLOP/s: measured on a CPU, the vendor's figure on an accelerator.
    t2t_names = [s.name for s in active if s.kind == "t2t" and s.name in out]
    peak = None
    if on_cpu:
        peak = max(peak_samples, default=None)
        result["peak_flops"] = {
            "source": f"measured: jitted float32 {CPU_PEAK_MATMUL}x{CPU_PEAK_MATMUL} matmul, median "
                      f"of 5 per sample, one sample per round in the {peak_name} worker after "
                      "its step; value = the highest sample",
            "value": peak, "samples": peak_samples}
        try:
            from t2t.training.peak_flops import measured_cpu_peak_flops

            result["peak_flops"]["t2t_measured_cpu_peak_flops_1024"] = measured_cpu_peak_flops()
        except Exception:  # noqa: BLE001
            pass
    elif t2t_names:
        from t2t.training.peak_flops import accelerator_peak_flops

        kind = out[t2t_names[0]]["device_kind"]
        peak = accelerator_peak_flops(kind)
        result["peak_flops"] = {"source": f"vendor dense bf16 figure for {kind!r} "
                                          "(t2t.training.peak_flops)", "value": peak}

    for spec in active:
        if spec.name not in out or not times[spec.name]:
            continue
        entry = out[spec.name]
        flat = [t for r in times[spec.name] for t in r]
        step_time = statistics.median(flat)
        flops = entry.get("model_flops_per_step")
        if flops is None:  # a peer doing the same case's work: the same model FLOPs
            from t2t.models.flops import flops_per_example

            flops = spec.case.batch_size * flops_per_example(spec.case.config(),
                                                             spec.case.lengths).training
            entry["model_flops_per_step"] = flops
        entry.update({
            "case": spec.case.describe(),
            "tokens_per_step": spec.case.tokens_per_step,
            "step_times_s": times[spec.name],
            "step_time_s": step_time,
            "step_time_s_min": min(flat),
            "tokens_per_s": spec.case.tokens_per_step / step_time,
            "model_tflops_per_s": flops / step_time / 1e12,
            "mfu": None if not peak else flops / step_time / peak,
        })
        xla = entry.get("xla_flops_per_step")
        entry["hfu_xla"] = None if not (peak and xla) else xla / step_time / peak

    ratios: dict[str, Any] = {}
    if reference in out and "tokens_per_s" in out[reference]:
        ref = out[reference]
        for spec in active:
            if spec.kind in PEERS and "tokens_per_s" in out.get(spec.name, {}):
                peer = out[spec.name]
                ratios[f"ratio_vs_{spec.name}"] = ref["tokens_per_s"] / peer["tokens_per_s"]
                paired = [statistics.median(p) / statistics.median(t) for t, p in
                          zip(times[reference], times[spec.name])]
                ratios[f"ratio_vs_{spec.name}_paired_rounds_median"] = statistics.median(paired)
    result["reference"] = reference
    result["systems"] = out
    result["ratios"] = ratios
    result["skipped"] = skipped

    if compile_layers:
        ref_case = next((s.case for s in active if s.name == reference), None) or \
            next((s.case for s in active if s.kind == "t2t"), None)
        if ref_case is not None:
            log(f"compile scaling: layers {list(compile_layers)} with scan ...")
            try:
                result["compile_scaling"] = _run_compile_scaling(ref_case, compile_layers, isolate)
                log(f"compile scaling: {result['compile_scaling']['compile_s']} -> ratio "
                    f"{result['compile_scaling']['ratio']:.2f}")
            except Exception as error:  # noqa: BLE001
                result["compile_scaling"] = {"error": str(error)}
                log(f"compile scaling failed: {error}")

    checks = {}
    if "ratio_vs_hf_flax_t5" in ratios:
        checks["ratio_vs_hf_flax_t5 >= 1.5"] = ratios["ratio_vs_hf_flax_t5"] >= TARGETS[
            "ratio_vs_hf_flax_t5"]
    if out.get(reference, {}).get("mfu") is not None:
        checks["mfu >= 0.65"] = out[reference]["mfu"] >= TARGETS["mfu"]
    if "ratio" in result.get("compile_scaling", {}):
        checks["compile_ratio <= 1.5"] = result["compile_scaling"]["ratio"] <= TARGETS[
            "compile_ratio"]
    result["targets"] = checks
    result["machine"]["load_average_after"] = list(os.getloadavg())
    return result


# --------------------------------------------------------------------------------------------------
# Presets, table, CLI
# --------------------------------------------------------------------------------------------------


def cpu_systems(size: str = "t5_1_1/small", batch_size: int = 8, inputs: int = 512,
                targets: int = 114, overrides: Mapping[str, Any] | None = None,
                variants: Mapping[str, Mapping[str, Any]] | None = None,
                peers: Sequence[str] = PEERS, **case_kwargs) -> list[SystemSpec]:
    """t2t (+ variants) and the peers on one T5 workload, float32."""
    case = with_fields(Case(size, batch_size, (("inputs", inputs), ("targets", targets)),
                            **case_kwargs), overrides or {})
    specs = [SystemSpec("t2t", "t2t", case)]
    specs += [SystemSpec(name, "t2t", with_fields(case, fields))
              for name, fields in (variants or {}).items()]
    specs += [SystemSpec(p, p, case) for p in peers]
    return specs


def with_fields(case: Case, fields: Mapping[str, Any]) -> Case:
    """`case` with more TransformerConfig fields set; the key "batch_size" sets the batch size."""
    fields = dict(fields)
    batch_size = fields.pop("batch_size", case.batch_size)
    return dataclasses.replace(case, batch_size=batch_size,
                               overrides=tuple(sorted({**dict(case.overrides), **fields}.items())))


def gpu_systems(smoke: bool = False) -> list[SystemSpec]:
    """T5 v1.1 base and a ~1B GPT-2-style decoder-only LM (learned positions), both in bf16 compute
    with float32 params, scan, minimal remat and the fused dot-product attention kernel (cuDNN on
    GPUs; T5's relative bias goes in as the kernel's bias). ``--variant einsum:attention_kernel=einsum``
    times the explicit-softmax path beside it."""
    fast = {"dtype": "bfloat16", "scan_layers": True, "remat_policy": "minimal",
            "attention_kernel": "dot_product"}
    t5 = Case("t5_1_1/base", 128, (("inputs", 512), ("targets", 114)), tuple(sorted(fast.items())))
    # 24 x 1792 (14 heads of 128), d_ff 4 x 1792: 0.92B non-embedding + 0.09B embedding params;
    # vocabulary padded 50,257 -> 50,304 (a multiple of 128), dropout 0 (the fused kernel needs it).
    lm = Case("gpt2/xl", 16, (("targets", 1024),), tuple(sorted({
        **fast, "dropout_rate": 0.0, "num_decoder_layers": 24,
        "d_model": 1792, "num_heads": 14, "head_dim": 128, "d_ff": 7168,
        "vocab_size": 50_304}.items())))
    if smoke:
        t5 = dataclasses.replace(t5, size="t5_1_1/tiny", batch_size=2,
                                 feature_lengths=(("inputs", 32), ("targets", 16)),
                                 overrides=tuple(sorted({**dict(t5.overrides),
                                                         "vocab_size": 512}.items())))
        lm = dataclasses.replace(lm, size="gpt2/tiny", batch_size=2,
                                 feature_lengths=(("targets", 32),),
                                 overrides=tuple(sorted({
                                     **fast, "dropout_rate": 0.0, "vocab_size": 512}.items())))
    return [SystemSpec("t2t_t5_1_1_base_bf16", "t2t", t5),
            SystemSpec("t2t_decoder_1b_bf16", "t2t", lm)]


def _with_variants(specs: Sequence[SystemSpec], overrides: Mapping[str, Any],
                   variants: Mapping[str, Mapping[str, Any]]) -> list[SystemSpec]:
    """Each spec with ``overrides`` applied, followed by one ``<name>+<variant>`` copy per variant."""
    out = []
    for spec in specs:
        base = dataclasses.replace(spec, case=with_fields(spec.case, overrides))
        out.append(base)
        out += [SystemSpec(f"{base.name}+{v}", base.kind, with_fields(base.case, fields))
                for v, fields in variants.items()]
    return out


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_fields(text: str) -> dict[str, Any]:
    fields = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        fields[key.strip()] = _parse_value(value.strip())
    return fields


def table(result: Mapping[str, Any]) -> str:
    """A short Markdown table of every timed system, then the ratios and the compile scaling."""
    rows = ["| system | step s (median) | tokens/s | MFU | XLA-FLOP util. | compile s | peak RSS Δ GiB | "
            "XLA peak est. GiB | params |",
            "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda x, spec: "–" if x is None else format(x, spec)  # noqa: E731
    for name, s in result["systems"].items():
        if "step_time_s" not in s:
            continue
        xla_mem = (s.get("xla_memory_per_device") or {}).get("peak_estimate_gib")
        rows.append(f"| {name} | {s['step_time_s']:.3f} | {s['tokens_per_s']:.1f} | "
                    f"{fmt(s.get('mfu'), '.3f')} | {fmt(s.get('hfu_xla'), '.3f')} | "
                    f"{fmt(s.get('compile_s'), '.1f')} | {fmt(s.get('peak_rss_delta_gib'), '.2f')} | "
                    f"{fmt(xla_mem, '.2f')} | {s['parameters'] / 1e6:.1f}M |")
    lines = ["\n".join(rows)]
    ref = result.get("reference", "t2t")
    for key, value in result.get("ratios", {}).items():
        if not key.endswith("_paired_rounds_median"):
            paired = result["ratios"].get(f"{key}_paired_rounds_median")
            lines.append(f"- {ref} / {key.removeprefix('ratio_vs_')} tokens/s: **{value:.2f}x**"
                         + (f" (median of per-round ratios {paired:.2f}x)" if paired else ""))
    peak = result.get("peak_flops")
    if peak and peak.get("value"):
        lines.append(f"- peak: {peak['value'] / 1e9:.1f} GFLOP/s ({peak['source']})")
    scaling = result.get("compile_scaling")
    if scaling and "ratio" in scaling:
        lo, hi = scaling["ratio_layers"]
        lines.append(f"- compile time with scan, {hi} vs {lo} layers: "
                     f"{scaling['compile_s'][str(hi)]:.1f} s / {scaling['compile_s'][str(lo)]:.1f} s"
                     f" = **{scaling['ratio']:.2f}x** (target <= {scaling['target_max_ratio']})")
    for name, why in result.get("skipped", {}).items():
        lines.append(f"- skipped {name}: {why.splitlines()[0]}")
    if result.get("targets"):
        lines.append("- targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}"
                                                for k, v in result["targets"].items()))
    return "\n".join(lines)


def markdown_report(result: Mapping[str, Any]) -> str:
    m = result["machine"]
    s = result.get("settings", {})
    load = m.get("load_average_before")
    header = [
        f"# `t2t bench train` ({result.get('preset', 'cpu')} preset)", "",
        f"Command: `{result.get('command', 't2t bench train')}`", "",
        f"Machine: {machine.cpu_summary(m)}, {m['cpu_cores']} cores; jax {m['jax']}, flax {m['flax']}, "
        f"transformers {m['transformers']}, torch {m['torch']}; commit "
        f"{(m['git_commit'] or '?')[:10]}{' (dirty tree)' if m['git_dirty'] else ''}; {m['date']}; "
        f"load average before {', '.join(f'{x:.2f}' for x in load) if load else '?'}.", "",
        f"Workload: {s.get('workload', '')}", "",
    ]
    notes = ["", "XLA-FLOP util. = XLA cost_analysis FLOPs / step time / peak; XLA counts a scanned "
             "loop body once, so it is not comparable for scan_layers=True systems."]
    profiles = [profile_table(name, entry["profile"]) for name, entry in result["systems"].items()
                if entry.get("profile") and "error" not in entry["profile"]]
    if profiles:
        notes += ["", "## Where the time goes (`--profile`: jax.profiler, op time summed over "
                      "streams or threads)", "", "\n\n".join(profiles)]
    return "\n".join(header) + table(result) + "\n" + "\n".join(notes) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="t2t bench train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["cpu", "gpu"], default="cpu",
                        help="cpu: one size next to its peers, rounds alternating; gpu: T5 v1.1 "
                             "base and a 1B decoder-only in bf16, one after another")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the path, not speed")
    parser.add_argument("--size", default="t5_1_1/small",
                        help="CPU preset: a named size (t2t.models.sizes; peers take T5 shapes)")
    parser.add_argument("--batch_size", type=int, default=8, help="CPU preset: rows per step")
    parser.add_argument("--inputs", type=int, default=512, help="CPU preset: encoder tokens")
    parser.add_argument("--targets", type=int, default=114, help="CPU preset: decoder tokens")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default=None,
                        help="compute dtype of the t2t systems (default: the preset's)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a TransformerConfig field for every t2t system (repeatable)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:F=V,F=V",
                        help="another t2t system with these fields set (repeatable); "
                             "batch_size=N sets its batch size")
    parser.add_argument("--partitioning", default="data_parallel",
                        help="t2t's partitioning preset (data_parallel, fsdp, fsdp_tensor, "
                             "tensor_parallel)")
    parser.add_argument("--mesh", default=None, help="e.g. \"{'data': 2, 'fsdp': -1}\"")
    parser.add_argument("--num_devices", type=int, default=None, help="fake CPU devices")
    parser.add_argument("--optimizer", choices=["adamw", "adafactor"], default="adamw",
                        help="the same for every system")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma list, or 'none'")
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed rounds, each system once per round (default: 5 on CPU, 3 on "
                             "GPU, 1 with --smoke)")
    parser.add_argument("--steps_per_round", type=int, default=None,
                        help="timed steps per system and round (default: 1 on CPU, 5 on GPU)")
    parser.add_argument("--compile_layers", default=None,
                        help="depths whose scanned train step is compiled to compare compile "
                             "times, e.g. 2,24 (the CPU default), or 'none'")
    parser.add_argument("--max_load", type=float, default=None,
                        help="wait until the 1-minute load average is at most this")
    parser.add_argument("--max_wait", type=float, default=600.0,
                        help="seconds to wait for --max_load before starting anyway")
    parser.add_argument("--no_isolate", action="store_true",
                        help="run every system in this process (no per-system RSS)")
    parser.add_argument("--only", help="GPU preset: comma list of system names to run")
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="then trace a few steps of each JAX system with jax.profiler into "
                             "DIR/<system>/ (with its compiled program, program.hlo.txt) and add "
                             "where the time went, by category, pass, model module and operation, "
                             "to the JSON and report")
    parser.add_argument("--out", help="write the JSON here")
    parser.add_argument("--md", help="write a Markdown report here")
    args = parser.parse_args(argv)

    overrides = {}
    for item in args.set:
        overrides.update(_parse_fields(item))
    if args.dtype:
        overrides["dtype"] = args.dtype
    variants = {}
    for item in args.variant:
        name, _, fields = item.partition(":")
        variants[name] = _parse_fields(fields)
    peers = [] if args.peers in ("", "none") else [p for p in args.peers.split(",") if p]
    unknown = set(peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; choose from {PEERS}")
    mesh = None if args.mesh is None else tuple(sorted(ast.literal_eval(args.mesh).items()))

    if args.preset == "gpu":
        specs = _with_variants(gpu_systems(args.smoke), overrides, variants)
        if args.only:
            specs = [s for s in specs if s.name in args.only.split(",")]
            if not specs:
                parser.error(f"--only {args.only} matches no GPU system")
        rounds, steps, alternate = args.rounds or 3, args.steps_per_round or 5, False
        compile_layers = None
        reference = specs[0].name
        workload = ("T5 v1.1 base, batch 128 x (512 inputs, 114 targets), bf16 compute / fp32 "
                    "params, scan, minimal remat, dot-product (cuDNN, relative bias) attention; "
                    "~1B GPT-2-style decoder-only (24 x 1792, 14 heads of 128), batch 16 x 1024, "
                    "bf16, scan, minimal remat, dot-product (cuDNN, causal in kernel) attention; "
                    "AdamW; t2t only")
    else:
        kwargs = {"partitioning": args.partitioning, "mesh_shape": mesh,
                  "num_devices": args.num_devices, "optimizer": args.optimizer}
        if args.smoke:
            specs = cpu_systems("t5_1_1/tiny", 2, 32, 16, {"vocab_size": 512, **overrides},
                                variants, peers, **kwargs)
        else:
            specs = cpu_systems(args.size, args.batch_size, args.inputs, args.targets, overrides,
                                variants, peers, **kwargs)
        rounds = args.rounds or (1 if args.smoke else 5)
        steps = args.steps_per_round or 1
        alternate = True
        compile_layers = (1, 3) if args.smoke else (2, 24)
        reference = "t2t"
        c = specs[0].case
        workload = (f"{c.size}{' ' + str(dict(c.overrides)) if c.overrides else ''}, batch {c.batch_size} x "
                    f"{c.lengths}, random tokens in full rows, {overrides.get('dtype', 'float32')}, "
                    f"{args.optimizer} (same for every system), cross-entropy mean over target "
                    f"tokens; mesh {args.partitioning}{' ' + str(dict(mesh)) if mesh else ''} "
                    f"on {args.num_devices or 1} device(s)")
    if args.compile_layers is not None:
        compile_layers = (None if args.compile_layers == "none"
                          else tuple(int(x) for x in args.compile_layers.split(",")))

    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    load = wait_for_load(args.max_load, args.max_wait, log)
    log(f"1-minute load average {load:.2f}")
    extra = {"preset": args.preset, "smoke": args.smoke,
             "command": "t2t bench train " + " ".join(sys.argv[2:] if argv is None else argv),
             "settings": {"workload": workload, "rounds": rounds, "steps_per_round": steps,
                          "alternating": alternate, "learning_rate": LEARNING_RATE,
                          "adamw": ADAMW, "optimizer": args.optimizer,
                          "loss": "cross-entropy, mean over target tokens (t2t z-loss 0)",
                          "tokens_per_s": "batch x (inputs + targets) / median step time",
                          "mfu": "t2t model FLOPs per step / median step time / peak",
                          "memory": "peak_rss_*: getrusage ru_maxrss of each system's own worker "
                                    "process (delta: minus its mark after imports); "
                                    "xla_memory_per_device: compiled.memory_analysis()"}}
    result = run_benchmark(specs, rounds=rounds, steps_per_round=steps, alternate=alternate,
                           compile_layers=compile_layers, isolate=not args.no_isolate,
                           reference=reference, log=log, extra=extra,
                           profile_dir=args.profile)
    print(table(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(markdown_report(result))
    failed = [n for n, why in result["skipped"].items() if why.startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
