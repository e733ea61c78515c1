"""Benchmarks, each writing JSON and a short table: ``t2t bench data`` (objective + packing per CPU
core; data.py), ``t2t bench pipeline`` (the trainer's whole input pipeline; pipeline.py) and
``t2t bench train`` (train step, MFU, peers; train.py)."""
