"""Synthetic scaling data drawn from known constants, and optima found by brute force.

The optima here come from a numerical search (scipy's bounded scalar minimisation of the loss along
the compute constraint), not from t2t.scaling's closed form, so tests can compare the two.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from t2t.scaling.fit import CostModel, ParametricLoss
from t2t.scaling.points import ScalingPoint

# Hoffmann et al. 2022 (rounded, as published) and Besiroglu et al. 2024's refit (T5_REFERENCE §10).
CHINCHILLA = ParametricLoss(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
CHINCHILLA_TEX = ParametricLoss(E=1.6934, A=406.4, B=410.7, alpha=0.3392, beta=0.2849)
EPOCH = ParametricLoss(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)


def numeric_optimum(law: ParametricLoss, flops: float, cost: CostModel = CostModel()
                    ) -> tuple[float, float]:
    """(N, D) minimising law(N, D) subject to flops = c · N^s · D, by a 1-D search over log N."""
    def loss(log_n: float) -> float:
        n = np.exp(log_n)
        return float(law(n, flops / cost.flops_per_token(n)))

    result = optimize.minimize_scalar(loss, bounds=(0.0, np.log(flops)), method="bounded",
                                      options={"xatol": 1e-10})
    n = float(np.exp(result.x))
    return n, float(flops / cost.flops_per_token(n))


def isoflop_grid(law: ParametricLoss, budgets, sizes: int = 7, spread: float = 30.0,
                 noise: float = 0.0, seed: int = 0, cost: CostModel = CostModel(),
                 family: str = "decoder_only") -> list[ScalingPoint]:
    """For each budget, `sizes` models log-spaced over [N*/sqrt(spread), N*·sqrt(spread)] around
    the optimum N*, each on the budget's tokens, with log-normal loss noise of `noise`."""
    rng = np.random.default_rng(seed)
    points = []
    for flops in budgets:
        n_opt, _ = numeric_optimum(law, flops, cost)
        for n in n_opt * np.geomspace(spread ** -0.5, spread ** 0.5, sizes):
            d = flops / cost.flops_per_token(n)
            loss = float(law(n, d)) * float(np.exp(rng.normal(0.0, noise)))
            points.append(ScalingPoint(family, float(n), float(d), float(flops), loss))
    return points
