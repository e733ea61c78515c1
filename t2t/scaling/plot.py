"""Scaling-law plots, one set of PNGs per family, drawn from the points and `fit_family`'s fits.

    loss_vs_compute.png     every run's loss against C, coloured by N, with the compute-efficient
                            frontier and Kaplan's L(C) through it
    isoflop.png             loss against N on each isoFLOP curve, its parabola and vertex
    optimal_allocation.png  N_opt(C) and D_opt(C): approach 2's minima and power laws, approach 3's
                            closed form

Figures are built with `matplotlib.figure.Figure`, which renders PNGs with the Agg backend and
touches no global pyplot state (safe in tests and on machines without a display).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps, colors, ticker
from matplotlib.figure import Figure

from t2t.scaling.fit import (AllocationLaw, CostModel, ParametricLoss, PowerLaw, budget_of_each,
                             curve_flops, group_by_budget, lower_envelope)
from t2t.scaling.points import ScalingPoint


def _span(values: Sequence[float], pad: float = 1.5) -> np.ndarray:
    """A log-spaced axis from min/pad to max*pad."""
    return np.geomspace(min(values) / pad, max(values) * pad, 100)


def _log_axis(axis) -> None:
    """A log axis labelled at 1, 2 and 5 per decade: readable over a short range (a CPU ladder
    spans one decade of compute) as over a long one."""
    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0), numticks=10))
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:.3g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def loss_vs_compute(points: Sequence[ScalingPoint], fits: Mapping, path: Path) -> None:
    """Every run's loss against C, coloured by N; the frontier and Kaplan's L(C) through it."""
    flops = np.array([p.flops for p in points])
    loss = np.array([p.loss for p in points])
    params = np.array([p.params for p in points])
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    dots = ax.scatter(flops, loss, c=params, norm=colors.LogNorm(), cmap="viridis", zorder=3)
    fig.colorbar(dots, ax=ax, label="N (non-embedding parameters)")
    budgets = budget_of_each(points)  # the frontier's C, as kaplan_fits takes it
    front = lower_envelope(budgets, loss)
    ax.plot(budgets[front], loss[front], "k-", lw=1, label="frontier")
    x = _span(flops, pad=2.0)  # wide enough for two of the 1-2-5 ticks
    if "flops" in fits["kaplan"]:
        law = PowerLaw(**fits["kaplan"]["flops"])
        ax.plot(x, law(x), "r--", label=f"L(C) = ({law.scale:.3g}/C)^{law.alpha:.3f}")
    ax.set(xscale="log", xlim=(x[0], x[-1]), xlabel="C (training FLOPs)",
           ylabel="validation loss")
    _log_axis(ax.xaxis)
    ax.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")


def isoflop_curves(points: Sequence[ScalingPoint], fits: Mapping, path: Path,
                   rel_tol: float = 0.05) -> None:
    """Loss against N on each isoFLOP curve, with approach 2's parabola and its vertex."""
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    curves = group_by_budget(points, rel_tol)
    for i, curve in enumerate(curves):
        color = colormaps["plasma"](i / len(curves))
        n = np.array([p.params for p in curve])
        c = curve_flops(curve)
        ax.plot(n, [p.loss for p in curve], "o", color=color, label=f"C = {c:.2g}")
        m = next((m for m in fits["isoflop"]["minima"] if np.isclose(m["flops"], c)), None)
        if m is not None:
            x = _span(n, pad=1.2)
            ax.plot(x, np.polyval(m["parabola"], np.log(x)), "-", color=color, lw=1)
            if m["bracketed"]:
                ax.plot(m["params"], m["loss"], "*", color=color, ms=14, mec="k")
    ax.set(xscale="log", xlabel="N (non-embedding parameters)", ylabel="validation loss",
           title="isoFLOP curves (stars: parabola minima)")
    _log_axis(ax.xaxis)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=120, bbox_inches="tight")


def optimal_allocation(fits: Mapping, path: Path) -> None:
    """N_opt(C) and D_opt(C): approach 2's minima and power laws, approach 3's closed form."""
    iso = fits["isoflop"]
    minima = iso["minima"]
    parametric = fits["parametric"]
    cost = CostModel(**fits["cost_model"])
    budgets = [m["flops"] for m in minima] or [r["flops"] for r in parametric["allocation"]]
    x = _span(budgets, pad=3.0)
    fig = Figure(figsize=(11, 4.5))
    for ax, key, symbol in zip(fig.subplots(1, 2), ("params", "tokens"), ("N", "D")):
        for bracketed in (True, False):
            sel = [m for m in minima if m["bracketed"] == bracketed]
            ax.plot([m["flops"] for m in sel], [m[key] for m in sel], "o",
                    mfc="C0" if bracketed else "none", mec="C0",
                    label="isoFLOP minima" if bracketed else "best run (not bracketed)")
        if iso[key] is not None:
            law = AllocationLaw(**iso[key])
            ax.plot(x, law(x), "C0-", label=f"approach 2: {symbol}_opt ∝ C^{law.exponent:.3f}")
        if parametric is not None:
            law = ParametricLoss(*(parametric[k] for k in ("E", "A", "B", "alpha", "beta")))
            optimum = law.compute_optimal(x, cost)[0 if key == "params" else 1]
            exponent = parametric["a" if key == "params" else "b"]
            ax.plot(x, optimum, "C3--", label=f"approach 3: {symbol}_opt ∝ C^{exponent:.3f}")
        unit = "non-embedding parameters" if key == "params" else "tokens"
        ax.set(xscale="log", yscale="log", xlabel="C (training FLOPs)",
               ylabel=f"{symbol}_opt ({unit})")
        _log_axis(ax.xaxis)
        _log_axis(ax.yaxis)
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=120, bbox_inches="tight")


def plot_family(points: Sequence[ScalingPoint], fits: Mapping, out_dir: str | Path,
                family: str) -> list[Path]:
    """The three PNGs of one family under `out_dir/family/`; returns their paths."""
    out = Path(out_dir) / family
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "loss_vs_compute.png", out / "isoflop.png"]
    loss_vs_compute(points, fits, paths[0])
    isoflop_curves(points, fits, paths[1])
    if fits["isoflop"]["minima"] or fits["parametric"] is not None:
        paths.append(out / "optimal_allocation.png")
        optimal_allocation(fits, paths[2])
    return paths
