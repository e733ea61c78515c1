"""Downstream evaluation: T5's metrics (metrics.py), text-to-text tasks (tasks.py), the evaluator."""
