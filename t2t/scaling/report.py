"""Write the fits of `t2t.scaling.fit.fit_family` (one dict per family) as JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

_KAPLAN_NAMES = {"params": "L(N)", "tokens": "L(D)", "flops": "L(C)"}
_CONSTANTS = ("E", "A", "B", "alpha", "beta", "a", "b")


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def family_markdown(family: str, fits: Mapping) -> list[str]:
    """One family's section: Kaplan laws, approach 2's minima and exponents, approach 3."""
    cost = fits["cost_model"]
    lines = [f"## {family} ({fits['runs']} runs)", "",
             f"Training FLOPs per token fitted over the runs: {_g(cost['coefficient'])} · "
             f"N^{cost['exponent']:.3f} (Chinchilla's C = 6ND is 6 · N^1).", "",
             "### Kaplan power laws L(X) = (X_c / X)^alpha, on the lower envelope", ""]
    lines += _table(["law", "alpha", "X_c"],
                    [[_KAPLAN_NAMES[k], _g(v["alpha"]), _g(v["scale"])]
                     for k, v in fits["kaplan"].items()])
    iso = fits["isoflop"]
    lines += ["### Chinchilla approach 2: a parabola in log N per isoFLOP curve", ""]
    lines += _table(["C (FLOPs)", "N_opt", "D_opt", "D/N", "loss", "bracketed"],
                    [[_g(m["flops"]), _g(m["params"]), _g(m["tokens"]),
                      _g(m["tokens"] / m["params"]), f"{m['loss']:.4f}",
                      "yes" if m["bracketed"] else "no"] for m in iso["minima"]])
    if iso["params"] is not None:
        lines += [f"N_opt ∝ C^{iso['params']['exponent']:.3f}, "
                  f"D_opt ∝ C^{iso['tokens']['exponent']:.3f} (bracketed minima only).", ""]
    parametric = fits["parametric"]
    if parametric is not None:
        intervals = parametric["intervals"]
        lines += ["### Chinchilla approach 3: L(N, D) = E + A/N^alpha + B/D^beta", ""]
        lines += _table(["constant", "fit", "95% bootstrap interval"],
                        [[k, _g(parametric[k]),
                          " – ".join(_g(x) for x in intervals[k]) if k in intervals else "-"]
                         for k in _CONSTANTS])
        lines += ["a and b are the exponents of N_opt ∝ C^a and D_opt ∝ C^b under the fitted "
                  "FLOPs per token.", "",
                  "Compute-optimal allocation from the fitted constants:", ""]
        lines += _table(["C (FLOPs)", "N_opt", "D_opt", "tokens per parameter"],
                        [[_g(r["flops"]), _g(r["params"]), _g(r["tokens"]),
                          _g(r["tokens_per_param"])] for r in parametric["allocation"]])
    lines += [f"- {note}" for note in fits["notes"]]
    return lines + [""] * bool(fits["notes"])


def write_fits(fits: Mapping[str, Mapping], out_dir: str | Path, source: str) -> tuple[Path, Path]:
    """`scaling_fits.json` and `scaling_fits.md` in `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "scaling_fits.json", out / "scaling_fits.md"
    json_path.write_text(json.dumps({"source": source, "families": fits}, indent=2) + "\n")
    lines = ["# Scaling-law fits", "", f"From `{source}` (t2t scaling fit). N counts non-embedding "
             "parameters, D training tokens (inputs + targets), C training FLOPs "
             "(t2t.models.flops).", ""]
    for family, family_fits in fits.items():
        lines += family_markdown(family, family_fits)
    md_path.write_text("\n".join(lines).rstrip() + "\n")
    return json_path, md_path
