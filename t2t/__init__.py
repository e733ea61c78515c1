"""t2t: text-to-text transformers in JAX/Flax, from one CPU to a pod."""

__version__ = "0.1.0"
