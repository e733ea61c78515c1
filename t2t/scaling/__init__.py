"""Scaling laws: a one-knob size ladder, isoFLOP sweeps, Kaplan and Chinchilla fits, plots.

See experiments/scaling_ladder/README.md for a sweep that uses all of it.
"""
