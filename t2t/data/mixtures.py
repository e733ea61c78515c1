"""Mixtures of sources with weights.

A mixture is itself a :class:`~t2t.data.sources.Source`: its units are the units of its members, and each
epoch's unit order is a weighted draw (with replacement, as many draws as there are units) in which a unit
of member ``i`` is picked with probability ``w_i / sum(w) / num_units_i``. So member ``i`` supplies about
a fraction ``w_i / sum(w)`` of the units (hence, for units of similar size, of the tokens), however many
units it has. The draw is a function of (seed, epoch) only, so mixtures keep the pipeline's determinism
and host independence.

    # gin
    mixture.members = {'c4': 'tfds:c4/en:3.1.0', 'books': 'local:/data/t2t-local'}
    mixture.weights = {'c4': 0.9, 'books': 0.1}
    train.data_source = 'mixture:default'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import gin
import numpy as np

from t2t.data.sources import Source, make_source


class MixtureSource(Source):
    def __init__(self, members: Mapping[str, Source], weights: Mapping[str, float], description: str):
        if set(members) != set(weights):
            raise ValueError(f"mixture members {sorted(members)} and weights {sorted(weights)} differ.")
        if any(w < 0 for w in weights.values()) or not sum(weights.values()) > 0:
            raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {dict(weights)}.")
        names = sorted(members)
        units, probs = [], []
        total = sum(weights.values())
        for name in names:
            member = members[name]
            units += member.units
            probs += [weights[name] / total / len(member.units)] * len(member.units)
        super().__init__(units, description)
        self.members, self.weights = dict(members), dict(weights)
        self.probabilities = np.asarray(probs) / np.sum(probs)

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([seed, 4, epoch])
        return rng.choice(len(self.units), size=len(self.units), p=self.probabilities)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(super().fingerprint().encode())
        digest.update(repr(sorted(self.weights.items())).encode())
        return digest.hexdigest()[:16]


@gin.configurable
def mixture(members: Mapping[str, str] = gin.REQUIRED, weights: Mapping[str, float] = gin.REQUIRED,
            split: str = "train", min_units: int = 1) -> MixtureSource:
    """A weighted mixture of ``make_source`` strings (``{name: source}``, ``{name: weight}``)."""
    sources = {name: make_source(spec, split, min_units=1) for name, spec in members.items()}
    described = ", ".join(f"{n}={members[n]}@{weights.get(n)}" for n in sorted(members))
    return MixtureSource(sources, weights, f"mixture({described})[{split}]")


def mixture_source(name: str, split: str = "train", min_units: int = 1) -> MixtureSource:
    """``train.data_source = 'mixture:<anything>'``: the mixture configured by ``mixture.*`` in gin."""
    return mixture(split=split, min_units=min_units)
