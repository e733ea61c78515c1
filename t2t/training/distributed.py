"""Multi-host start: one process per host (TPU VM worker, SLURM task or GPU node), joined by JAX.

On TPU VMs and under SLURM, `jax.distributed.initialize()` finds the coordinator, the process count
and this process's index by itself; elsewhere pass them (`t2t train --coordinator_address=HOST:PORT
--num_processes=N --process_id=I`). After this, `jax.devices()` lists every host's devices, the
mesh spans them all, and each host feeds only its own rows of the global batch
(`Partitioner.shard_batch` with the pipeline's per-host share).
"""

from __future__ import annotations

import os

import jax

from t2t.configuration import ConfigError

# Environment variables that mean "JAX can find the cluster by itself" (TPU VMs are recognised by
# their accelerator device files: their ssh sessions carry no such variables).
_AUTO_DETECTED = ("SLURM_JOB_ID", "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS",
                  "OMPI_COMM_WORLD_SIZE")


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
    """Join the other processes of a multi-host run; returns whether JAX is now distributed.

    With no arguments, initialises only where a cluster environment is detected, so a single-host
    run never waits for a coordinator that does not exist.
    """
    explicit = (coordinator_address, num_processes, process_id)
    if all(v is None for v in explicit):
        on_tpu_vm = any(os.path.exists(p) for p in ("/dev/accel0", "/dev/vfio/0"))
        if not on_tpu_vm and not any(v in os.environ for v in _AUTO_DETECTED):
            return False
        jax.distributed.initialize()
        return True
    if any(v is None for v in explicit):
        raise ConfigError("Multi-host start needs all of --coordinator_address, --num_processes "
                         "and --process_id (or none of them, to auto-detect on TPU VMs and SLURM).")
    if not 0 <= process_id < num_processes:
        raise ConfigError(f"--process_id={process_id} is not in [0, {num_processes}).")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
    return True
