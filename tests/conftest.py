"""Test-wide setup: 8 fake CPU devices (set before JAX is imported) and small shared fixtures.

JAX's persistent compilation cache is on for the session (a fresh directory per run, through the
environment, so subprocess tests share it): many tests train the same tiny models, and a cache hit
replaces a multi-second XLA compile. Set T2T_TEST_COMPILATION_CACHE=0 to compile everything.
"""

import os
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if os.environ.get("T2T_TEST_COMPILATION_CACHE", "1") != "0":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="t2t-test-xla-cache-"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")


def pytest_collection_modifyitems(items):
    """The longest file first: xdist hands out whole files (`--dist loadfile`) in collection
    order, and test_gin_experiments.py (a quarter of the suite) collected near the end left the
    other worker idle for its last minutes."""
    items.sort(key=lambda item: item.path.name != "test_gin_experiments.py")
