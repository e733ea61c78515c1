"""The machine a benchmark ran on, recorded beside its results.

A CPU's model name alone does not say what its float32 matmul peak is: two-core hosts that all call
themselves "AMD EPYC" have measured from 190 to 495 GFLOP/s on the same benchmark. So the record
names the CPU's family, model and stepping and the vector extensions that set that peak, next to
the software versions and the commit.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

# The /proc/cpuinfo flags that decide how fast a float32 (or bfloat16) matmul can run.
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_description(cpuinfo: str | None = None) -> dict:
    """The first processor of /proc/cpuinfo (or of the text `cpuinfo`): model name, vendor,
    family, model, stepping and `VECTOR_FLAGS` present. Off Linux, what `platform` knows."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block is enough
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    number = lambda key: int(fields[key]) if fields.get(key, "").isdigit() else None
    flags = set(fields.get("flags", "").split())
    return {
        "cpu_model": fields.get("model name") or platform.processor() or platform.machine(),
        "cpu_vendor": fields.get("vendor_id"),
        "cpu_family": number("cpu family"),
        "cpu_model_number": number("model"),
        "cpu_stepping": number("stepping"),
        "cpu_vector_flags": [flag for flag in VECTOR_FLAGS if flag in flags],
    }


def cpu_summary(machine: dict) -> str:
    """'AMD EPYC (family 25, model 17; avx2 fma avx512f avx512_bf16)' from a `cpu_description`."""
    details = []
    if machine.get("cpu_family") is not None:
        details.append(f"family {machine['cpu_family']}, model {machine.get('cpu_model_number')}")
    if machine.get("cpu_vector_flags"):
        details.append(" ".join(machine["cpu_vector_flags"]))
    return f"{machine['cpu_model']} ({'; '.join(details)})" if details else machine["cpu_model"]


def git(*args: str) -> str | None:
    """`git ARGS` in this checkout, or None where git or the checkout is missing."""
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_version() -> dict:
    """The commit benchmarked, whether the tree had uncommitted changes, and the time (UTC)."""
    status = git("status", "--porcelain")
    return {"git_commit": git("rev-parse", "HEAD"),
            "git_dirty": None if status is None else bool(status),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def host() -> dict:
    """CPU, core count and OS: what every benchmark records."""
    return {**cpu_description(), "cpu_cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}
