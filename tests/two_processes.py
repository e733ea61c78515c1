"""Run a Python script as two local JAX processes: 4 fake CPU devices each, joined by
`jax.distributed` through a free local port (the script reads ``port process_id *args`` from argv)."""

import os
import socket
import subprocess
import sys

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(script: str, *args: str, timeout: float = 300) -> list[str]:
    """Both processes' output (stdout and stderr), after both exit 0; a hang fails after `timeout`
    seconds (both processes killed) rather than stalling the suite."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    port = str(_free_port())
    workers = [subprocess.Popen([sys.executable, "-c", script, port, str(i), *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for i in range(2)]
    try:
        outputs = [w.communicate(timeout=timeout)[0] for w in workers]
    except subprocess.TimeoutExpired:
        for w in workers:
            w.kill()
        tails = "\n".join(f"process {i}:\n{w.communicate()[0][-2000:]}" for i, w in enumerate(workers))
        pytest.fail(f"the two processes did not finish within {timeout} s: a hang (one waiting for "
                    f"the other in a collective?)\n{tails}")
    for i, (worker, output) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, f"process {i}:\n{output[-3000:]}"
    return outputs
