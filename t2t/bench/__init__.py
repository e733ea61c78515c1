"""Benchmarks: ``t2t bench data`` (input-pipeline throughput per CPU core; see data.py)."""
