"""Peak matmul throughput per device, the denominator of MFU.

Accelerators: the vendors' dense bf16 figures (no sparsity). CPUs have no meaningful datasheet figure,
so on a CPU the peak is measured: the median throughput of a large float32 matmul on this machine.
"""

from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp

# Dense bf16 FLOP/s per chip, by substring of `jax.Device.device_kind` (first match wins).
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("TPU v6", 918e12),   # v6e (Trillium)
    ("TPU v5p", 459e12),
    ("TPU v5 lite", 197e12),  # v5e reports "TPU v5 lite"
    ("TPU v5e", 197e12),
    ("TPU v5", 459e12),   # v5p reports plain "TPU v5"
    ("TPU v4", 275e12),
    ("H200", 989e12),     # same compute die as H100 SXM
    ("H100 PCIe", 756e12),
    ("H100", 989e12),     # SXM
    ("A100", 312e12),
)


def accelerator_peak_flops(device_kind: str) -> float | None:
    """The table's peak for a device kind, or None if unknown."""
    for key, flops in PEAK_BF16_FLOPS:
        if key.lower() in device_kind.lower():
            return flops
    return None


def matmul_flops_per_second(size: int, repeats: int) -> float:
    """Median float32 FLOP/s of a jitted `size` x `size` matmul on the default device, over
    `repeats` timed calls after a compiling one."""
    a = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2.0 * size**3 / statistics.median(times)


@functools.cache
def measured_cpu_peak_flops(size: int = 1024, repeats: int = 7) -> float:
    """The trainer's CPU peak: measured once per process (`matmul_flops_per_second`)."""
    return matmul_flops_per_second(size, repeats)


def peak_flops_per_device(device: jax.Device | None = None) -> float:
    """The MFU denominator for one device: table value for accelerators, measured for CPUs."""
    device = device or jax.devices()[0]
    if device.platform == "cpu":
        return measured_cpu_peak_flops()
    peak = accelerator_peak_flops(device.device_kind)
    if peak is None:
        raise ValueError(f"No peak FLOP/s known for device kind {device.device_kind!r}; add it to "
                         "t2t.training.peak_flops.PEAK_BF16_FLOPS.")
    return peak
