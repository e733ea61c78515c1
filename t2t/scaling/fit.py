"""Scaling-law fits: Kaplan's power laws, Chinchilla's approaches 2 and 3, compute-optimal sizes.

Kaplan et al. 2020: L(X) = (X_c / X)^alpha for X = N, D or C, a straight line in log-log space,
each fitted to the lower envelope of loss against X (the runs no smaller-or-equal X beats: for C,
the compute-efficient frontier, one point per isoFLOP curve; for N, each size's best run).

Hoffmann et al. 2022 ("Chinchilla"):
- approach 2: a parabola of loss in log N through each isoFLOP curve (runs whose C agree within
  5%); its vertex is N_opt(C), and D_opt(C) follows from the FLOPs per token of a size-N_opt
  model; then N_opt ∝ C^a, D_opt ∝ C^b through the curves whose best run is neither their
  smallest nor their largest size (a vertex outside the sizes is extrapolation).
- approach 3: L(N, D) = E + A/N^alpha + B/D^beta, fitted as log L ≈ LSE(a - alpha log N,
  b - beta log D, e) (A = e^a, B = e^b, E = e^e) under a Huber loss (delta 1e-3) with L-BFGS from
  their grid of starts; percentile confidence intervals from refits on resampled points.

Compute per token. Chinchilla's C = 6ND is the special case c = 6, s = 1 of a cost model
C = c · N^s · D that `fit_cost_model` fits to the runs (log(C/D) against log N): at small sizes
the logits and attention make FLOPs per token far from 6N when N excludes embeddings. Minimising
L(N, C/(c·N^s)) over N gives, in closed form,

    N_opt(C) = G · (C/c)^(beta / (alpha + s·beta)),  G = (alpha·A / (s·beta·B))^(1/(alpha + s·beta))
    D_opt(C) = C / (c · N_opt^s)

which for c = 6, s = 1 is Hoffmann et al.'s N_opt = G (C/6)^(beta/(alpha+beta)),
D_opt = C/(6 N_opt).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy import optimize
from threadpoolctl import threadpool_limits

from t2t.scaling.points import ScalingPoint

HUBER_DELTA = 1e-3
# Hoffmann et al. (App. D.2): a grid of initialisations for L-BFGS, the best fit kept.
HOFFMANN_GRID = {
    "a": np.arange(0.0, 25.1, 5.0), "b": np.arange(0.0, 25.1, 5.0), "e": np.arange(-1.0, 1.01, 0.5),
    "alpha": np.arange(0.0, 2.01, 0.5), "beta": np.arange(0.0, 2.01, 0.5),
}
_THETA = ("a", "b", "e", "alpha", "beta")
# Box for L-BFGS-B, far outside any published fit (A = e^6, B = e^7.6, exponents 0.3): it changes no
# well-posed fit, and keeps e^a finite when a bootstrap resample of a few runs is ill-posed.
_BOUNDS = [(-20.0, 60.0)] * 3 + [(0.0, 3.0)] * 2


def _column(points: Sequence[ScalingPoint], name: str) -> np.ndarray:
    return np.array([getattr(p, name) for p in points], dtype=np.float64)


def group_by_budget(points: Sequence[ScalingPoint], rel_tol: float = 0.05
                    ) -> list[list[ScalingPoint]]:
    """isoFLOP curves: points sorted by compute, a new curve wherever C exceeds the curve's first
    C by more than `rel_tol` (runs spend their budget to within a step, not exactly)."""
    curves: list[list[ScalingPoint]] = []
    for p in sorted(points, key=lambda p: p.flops):
        if curves and p.flops <= curves[-1][0].flops * (1 + rel_tol):
            curves[-1].append(p)
        else:
            curves.append([p])
    return curves


def curve_flops(curve: Sequence[ScalingPoint]) -> float:
    """An isoFLOP curve's C: the geometric mean of its runs' compute."""
    return float(np.exp(np.mean(np.log(_column(curve, "flops")))))


def budget_of_each(points: Sequence[ScalingPoint], rel_tol: float = 0.05) -> np.ndarray:
    """Each point's isoFLOP curve's C, in the order of `points`."""
    curve_of = {id(p): curve_flops(c) for c in group_by_budget(points, rel_tol) for p in c}
    return np.array([curve_of[id(p)] for p in points])


# ------------------------------------------------------------------------------ Kaplan power laws

@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """L(X) = (scale / X) ** alpha, e.g. Kaplan's L(N) with alpha_N 0.076, N_c 8.8e13."""

    alpha: float
    scale: float

    def __call__(self, x):
        return (self.scale / np.asarray(x, dtype=np.float64)) ** self.alpha


def fit_power_law(x: Sequence[float], loss: Sequence[float]) -> PowerLaw:
    """Least squares of log L = alpha log X_c - alpha log X (needs two distinct x)."""
    x, loss = np.asarray(x, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    if len(np.unique(x)) < 2:
        raise ValueError(f"a power law needs at least two distinct x values, got {x.tolist()}")
    slope, intercept = np.polyfit(np.log(x), np.log(loss), 1)
    if slope >= 0:
        raise ValueError(f"loss does not fall with x (log-log slope {slope:.3g}): no power law "
                         f"L = (X_c/X)^alpha with alpha > 0 fits these points")
    return PowerLaw(alpha=-slope, scale=math.exp(intercept / -slope))


def lower_envelope(x: Sequence[float], loss: Sequence[float]) -> np.ndarray:
    """Indices, by increasing x, of the points whose loss is below every point's at smaller or
    equal x: the frontier.  x = [1, 2, 2, 3], loss = [5, 4, 3, 3.5] -> [0, 2]."""
    x, loss = np.asarray(x), np.asarray(loss)
    keep, best = [], math.inf
    for i in np.lexsort((loss, x)):  # by x, ties by loss
        if loss[i] < best:
            keep.append(i)
            best = loss[i]
    return np.array(keep, dtype=int)


def kaplan_fits(points: Sequence[ScalingPoint], rel_tol: float = 0.05) -> dict[str, PowerLaw]:
    """L(N), L(D), L(C) (keys "params", "tokens", "flops"), each on its lower envelope; C is each
    run's isoFLOP curve's (`group_by_budget`), so the runs of one budget compete for one point."""
    loss = _column(points, "loss")
    fits = {}
    for name in ("params", "tokens", "flops"):
        x = budget_of_each(points, rel_tol) if name == "flops" else _column(points, name)
        front = lower_envelope(x, loss)
        if len(front) >= 2:
            fits[name] = fit_power_law(x[front], loss[front])
    return fits


# ------------------------------------------------------------------------------ compute per token

@dataclasses.dataclass(frozen=True)
class CostModel:
    """Training FLOPs per token = coefficient · N^exponent; C = 6ND is CostModel(6.0, 1.0)."""

    coefficient: float = 6.0
    exponent: float = 1.0

    def flops_per_token(self, params):
        return self.coefficient * np.asarray(params, dtype=np.float64) ** self.exponent


def fit_cost_model(points: Sequence[ScalingPoint]) -> CostModel:
    """log(C/D) = log c + s log N by least squares; one size only gives s = 1."""
    n, per_token = _column(points, "params"), _column(points, "flops") / _column(points, "tokens")
    if len(np.unique(n)) < 2:
        return CostModel(float(np.exp(np.mean(np.log(per_token / n)))), 1.0)
    s, log_c = np.polyfit(np.log(n), np.log(per_token), 1)
    return CostModel(float(np.exp(log_c)), float(s))


# ------------------------------------------------------------------------------ approach 2

@dataclasses.dataclass(frozen=True)
class AllocationLaw:
    """X_opt(C) = coefficient · C^exponent (N_opt ∝ C^a, D_opt ∝ C^b)."""

    exponent: float
    coefficient: float

    def __call__(self, flops):
        return self.coefficient * np.asarray(flops, dtype=np.float64) ** self.exponent


def fit_allocation(flops: Sequence[float], optimum: Sequence[float]) -> AllocationLaw:
    """Least squares of log X_opt = log k + a log C (needs two budgets)."""
    if len(set(flops)) < 2:
        raise ValueError("an allocation law needs optima at two or more compute budgets")
    exponent, log_k = np.polyfit(np.log(flops), np.log(optimum), 1)
    return AllocationLaw(float(exponent), float(np.exp(log_k)))


@dataclasses.dataclass(frozen=True)
class IsoflopMinimum:
    """The vertex of one isoFLOP curve's parabola L = p0·(log N)² + p1·log N + p2."""

    flops: float  # the curve's C (`curve_flops`)
    params: float  # N_opt
    tokens: float  # D_opt = C / FLOPs per token at N_opt
    loss: float
    bracketed: bool  # an upward parabola, and a best run with a smaller and a larger neighbour
    parabola: tuple[float, float, float]


def isoflop_minimum(curve: Sequence[ScalingPoint], cost: CostModel) -> IsoflopMinimum:
    """Chinchilla's approach 2 on one curve (needs three distinct sizes)."""
    log_n, loss = np.log(_column(curve, "params")), _column(curve, "loss")
    if len(np.unique(log_n)) < 3:
        raise ValueError(f"an isoFLOP parabola needs three or more sizes, got {len(curve)} runs")
    p0, p1, p2 = np.polyfit(log_n, loss, 2)
    flops = curve_flops(curve)
    # A vertex extrapolated past the smallest or largest size is a guess: the data must turn up on
    # both sides of its best run.
    bracketed = p0 > 0 and log_n.min() < log_n[np.argmin(loss)] < log_n.max()
    # Otherwise the best sampled size stands in (and is left out of the exponents' fits).
    log_opt = -p1 / (2 * p0) if bracketed else log_n[np.argmin(loss)]
    params = float(np.exp(log_opt))
    return IsoflopMinimum(flops=flops, params=params,
                          tokens=float(flops / cost.flops_per_token(params)),
                          loss=float(np.polyval([p0, p1, p2], log_opt)), bracketed=bool(bracketed),
                          parabola=(float(p0), float(p1), float(p2)))


@dataclasses.dataclass(frozen=True)
class IsoflopFit:
    """Approach 2: each curve's minimum, and N_opt(C), D_opt(C) through the bracketed ones."""

    minima: tuple[IsoflopMinimum, ...]
    params: AllocationLaw | None
    tokens: AllocationLaw | None


def fit_isoflop(points: Sequence[ScalingPoint], cost: CostModel,
                rel_tol: float = 0.05) -> IsoflopFit:
    """Approach 2 over every curve with three or more sizes."""
    minima = tuple(isoflop_minimum(c, cost) for c in group_by_budget(points, rel_tol)
                   if len({p.params for p in c}) >= 3)
    good = [m for m in minima if m.bracketed]
    if len(good) < 2:
        return IsoflopFit(minima, None, None)
    flops = [m.flops for m in good]
    return IsoflopFit(minima, fit_allocation(flops, [m.params for m in good]),
                      fit_allocation(flops, [m.tokens for m in good]))


# ------------------------------------------------------------------------------ approach 3

@dataclasses.dataclass(frozen=True)
class ParametricLoss:
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, eq. 2)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __call__(self, params, tokens):
        n, d = np.asarray(params, dtype=np.float64), np.asarray(tokens, dtype=np.float64)
        return self.E + self.A / n ** self.alpha + self.B / d ** self.beta

    def params_exponent(self, cost: CostModel = CostModel()) -> float:
        """a in N_opt ∝ C^a: beta / (alpha + s·beta); 0.45 for Chinchilla's constants."""
        return self.beta / (self.alpha + cost.exponent * self.beta)

    def tokens_exponent(self, cost: CostModel = CostModel()) -> float:
        """b in D_opt ∝ C^b: 1 - s·a."""
        return 1.0 - cost.exponent * self.params_exponent(cost)

    def compute_optimal(self, flops, cost: CostModel = CostModel()
                        ) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) minimising L at compute C = c · N^s · D (module docstring).

        >>> n, d = ParametricLoss(1.8172, 482.01, 2085.43, 0.3478, 0.3658).compute_optimal(1e21)
        >>> round(float(d / n), 1)   # Epoch AI's refit: ~20 tokens per parameter
        21.6
        """
        s = cost.exponent
        total = self.alpha + s * self.beta
        g = (self.alpha * self.A / (s * self.beta * self.B)) ** (1.0 / total)
        scaled = np.asarray(flops, dtype=np.float64) / cost.coefficient
        params = g * scaled ** (self.beta / total)
        return params, scaled / params ** s

    @classmethod
    def from_theta(cls, theta: Sequence[float]) -> "ParametricLoss":
        a, b, e, alpha, beta = (float(t) for t in theta)
        return cls(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta)


def _lse_terms(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """[..., 3, points]: a - alpha log N, b - beta log D, e for parameter rows theta[..., 5]."""
    a, b, e, alpha, beta = np.moveaxis(theta[..., None], -2, 0)  # each [..., 1]
    return np.stack([a - alpha * log_n, b - beta * log_d, e + np.zeros_like(log_n)], axis=-2)


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    return np.where(np.abs(r) <= delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))


def huber_objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray,
                    delta: float = HUBER_DELTA) -> tuple[float, np.ndarray]:
    """Sum of Huber(LSE(a - alpha log N, b - beta log D, e) - log L) and its gradient in theta."""
    terms = _lse_terms(theta, log_n, log_d)
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    total = weights.sum(axis=0)
    r = top + np.log(total) - log_loss
    weights /= total  # d LSE / d term = softmax
    g = np.clip(r, -delta, delta)  # d Huber / d r
    grad = np.array([g @ weights[0], g @ weights[1], g @ weights[2],
                     -(g * weights[0]) @ log_n, -(g * weights[1]) @ log_d])
    return float(_huber(r, delta).sum()), grad


def _grid_values(starts: np.ndarray, log_n, log_d, log_loss, delta) -> np.ndarray:
    """The objective at each start row, all at once."""
    terms = _lse_terms(starts, log_n, log_d)  # [starts, 3, points]
    top = terms.max(axis=1)
    lse = top + np.log(np.exp(terms - top[:, None]).sum(axis=1))
    return _huber(lse - log_loss, delta).sum(axis=1)


def hoffmann_starts() -> np.ndarray:
    """Every combination of HOFFMANN_GRID, as rows (a, b, e, alpha, beta): 4,500 starts."""
    grids = np.meshgrid(*(HOFFMANN_GRID[k] for k in _THETA), indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=-1)


@dataclasses.dataclass(frozen=True)
class ParametricFit:
    """Approach 3's best fit, its objective, and bootstrap intervals (name -> (low, high))."""

    law: ParametricLoss
    theta: tuple[float, ...]
    objective: float
    intervals: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)


def _refine(starts: np.ndarray, data: tuple, delta: float) -> tuple[np.ndarray, float]:
    """The best L-BFGS result over `starts`."""
    best_theta, best_value = starts[0], math.inf
    # scipy's L-BFGS-B calls BLAS on 5 x 5 matrices; OpenBLAS's threads then contend for the cores
    # and, on a busy 2-core machine, made a fit 20x slower than with one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        for start in starts:
            # L-BFGS-B's ftol is relative to max(|f|, 1), and f is ~1e-4 here: the default would
            # stop far from the optimum, the early stop Besiroglu et al. found in Hoffmann et al.
            result = optimize.minimize(huber_objective, start, args=(*data, delta), jac=True,
                                       method="L-BFGS-B", bounds=_BOUNDS,
                                       options={"ftol": 1e-14, "gtol": 1e-12, "maxiter": 5000})
            if result.fun < best_value:
                best_theta, best_value = result.x, float(result.fun)
    return best_theta, best_value


def fit_parametric(params: Sequence[float], tokens: Sequence[float], loss: Sequence[float],
                   delta: float = HUBER_DELTA, refine: int | None = 32,
                   starts: np.ndarray | None = None) -> ParametricFit:
    """Approach 3: the best L-BFGS fit from the grid `starts` (default `hoffmann_starts()`).

    `refine` runs L-BFGS only from that many starts with the lowest objective (None: all of them),
    which finds the same optimum as the full grid on well-posed data at a fraction of the cost.
    """
    data = (np.log(params), np.log(tokens), np.log(loss))
    if len(data[0]) < len(_THETA):
        raise ValueError(f"L(N, D) has 5 free constants; fitting it needs at least 5 runs, got "
                         f"{len(data[0])}")
    starts = hoffmann_starts() if starts is None else np.asarray(starts, dtype=np.float64)
    if refine is not None and refine < len(starts):
        starts = starts[np.argsort(_grid_values(starts, *data, delta))[:refine]]
    theta, value = _refine(starts, data, delta)
    return ParametricFit(ParametricLoss.from_theta(theta), tuple(float(t) for t in theta), value)


def _summary(law: ParametricLoss, cost: CostModel) -> dict[str, float]:
    return {"E": law.E, "A": law.A, "B": law.B, "alpha": law.alpha, "beta": law.beta,
            "a": law.params_exponent(cost), "b": law.tokens_exponent(cost)}


def bootstrap_parametric(params: Sequence[float], tokens: Sequence[float], loss: Sequence[float],
                         fit: ParametricFit, cost: CostModel = CostModel(), samples: int = 100,
                         seed: int = 0, level: float = 0.95, delta: float = HUBER_DELTA,
                         refine: int = 2) -> ParametricFit:
    """`fit` with percentile intervals of E, A, B, alpha, beta, a and b from `samples` refits on
    points resampled with replacement (numpy seeded by `seed`). Each refit starts from the full
    fit and the `refine` best grid starts for its resample (Besiroglu et al. refit from the
    grid)."""
    arrays = [np.asarray(x, dtype=np.float64) for x in (params, tokens, loss)]
    rng = np.random.default_rng(seed)
    grid = hoffmann_starts()
    draws = []
    for _ in range(samples):
        pick = rng.integers(0, len(arrays[0]), len(arrays[0]))
        data = tuple(np.log(x[pick]) for x in arrays)
        best_grid = grid[np.argsort(_grid_values(grid, *data, delta))[:refine]]
        theta, _ = _refine(np.vstack([fit.theta, best_grid]), data, delta)
        draws.append(_summary(ParametricLoss.from_theta(theta), cost))
    tail = 100 * (1 - level) / 2
    intervals = {k: (float(np.percentile([d[k] for d in draws], tail)),
                     float(np.percentile([d[k] for d in draws], 100 - tail))) for k in draws[0]}
    return dataclasses.replace(fit, intervals=intervals)


# ------------------------------------------------------------------------------ one family

def fit_family(points: Sequence[ScalingPoint], bootstrap: int = 100, seed: int = 0,
               starts: int | None = 32, rel_tol: float = 0.05) -> dict:
    """Every fit for one family's points, as JSON-ready values; a fit the data cannot support is
    None, with the reason under "notes". `bootstrap` resamples give approach 3's intervals (0:
    none); `starts` is `fit_parametric`'s `refine`."""
    notes: list[str] = []
    cost = fit_cost_model(points)
    kaplan = {k: dataclasses.asdict(v) for k, v in kaplan_fits(points, rel_tol).items()}
    for name in sorted({"params", "tokens", "flops"} - set(kaplan)):
        notes.append(f"Kaplan L({name}): one point on the frontier; a power law needs two")
    iso = fit_isoflop(points, cost, rel_tol)
    if iso.params is None:
        notes.append(f"approach 2: {sum(m.bracketed for m in iso.minima)} of {len(iso.minima)} "
                     f"isoFLOP curves have a bracketed minimum; the exponents need two. Add sizes "
                     f"on both sides of each curve's best run.")
    parametric = None
    budgets = [curve_flops(c) for c in group_by_budget(points, rel_tol)]
    if len(points) >= len(_THETA):
        columns = [_column(points, k) for k in ("params", "tokens", "loss")]
        fit = fit_parametric(*columns, refine=starts)
        if bootstrap:
            fit = bootstrap_parametric(*columns, fit, cost, samples=bootstrap, seed=seed)
        n_opt, d_opt = fit.law.compute_optimal(np.array(budgets), cost)
        parametric = {**_summary(fit.law, cost), "huber_objective": fit.objective,
                      "intervals": fit.intervals,
                      "allocation": [{"flops": c, "params": float(n), "tokens": float(d),
                                      "tokens_per_param": float(d / n)}
                                     for c, n, d in zip(budgets, n_opt, d_opt)]}
    else:
        notes.append(f"approach 3: L(N, D) has 5 constants; {len(points)} runs are too few")
    return {
        "runs": len(points),
        "cost_model": dataclasses.asdict(cost),
        "kaplan": kaplan,
        "isoflop": {
            "minima": [dataclasses.asdict(m) for m in iso.minima],
            "params": None if iso.params is None else dataclasses.asdict(iso.params),
            "tokens": None if iso.tokens is None else dataclasses.asdict(iso.tokens),
        },
        "parametric": parametric,
        "notes": notes,
    }
