"""isoFLOP planning: for each compute budget C, several ladder sizes, each trained for C FLOPs.

A size with training cost F FLOPs per packed row of `batch_size` rows trains for
`steps = round(C / (batch_size · F))` steps, i.e. D = steps · batch_size · tokens-per-row tokens, so
every run spends C to within half a step (Hoffmann et al. 2022's "approach 2" grid). Sizes that
would get fewer than `min_steps` steps are left out: too big for the budget to say anything.

Each run becomes a `t2t.sweeps.spec.Trial` whose bindings the trainer understands: the ladder's
fields as `model_config.<field>` overrides of its base size, `TRAIN_STEPS`, `BATCH_SIZE` and
`TASK_FEATURE_LENGTHS` (bound explicitly, so the run trains exactly what was planned, whatever the
gin files say). Its tags are what the fits read: family, params (N, non-embedding), tokens (D) and
flops (C actually spent), plus knob, width, total_params and budget (its curve's nominal C).

    >>> setup = LadderSetup("decoder_only", ("experiments/gpt2_tiny_lm.gin",),
    ...                     feature_lengths={"targets": 128}, batch_size=16, vocab_size=8192)
    >>> runs = plan_isoflop(setup, budgets=[1e13], knobs=[1, 2])
    >>> [(r.knob, r.steps) for r in runs]       # 1e13 / (16 · 128 · 3.49e6) = 1399 steps at knob 1
    [(1, 1399), (2, 552)]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from t2t.models.config import TransformerConfig
from t2t.models.sizes import get_size
from t2t.scaling.ladder import LADDER_BASES, WIDTH, LadderPoint, ladder_point
from t2t.sweeps.spec import Sweep, Trial


@dataclasses.dataclass(frozen=True)
class LadderSetup:
    """How one family's ladder is trained: its gin files, packed row lengths, batch and vocabulary.

    `vocab_size` must be the embedding rows the trainer will use (the vocabulary's padded size:
    8,192 for the embedded one); it is bound into every trial so the FLOP count cannot drift.
    """

    family: str
    gin_files: tuple[str, ...]
    feature_lengths: Mapping[str, int]
    batch_size: int
    vocab_size: int
    base: str | None = None
    width: int = WIDTH  # d_model per knob (t2t.scaling.ladder)

    @property
    def base_size(self) -> str:
        return self.base or LADDER_BASES[self.family]


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One ladder size trained on one budget."""

    setup: LadderSetup
    point: LadderPoint
    budget: float  # the nominal C of this isoFLOP curve
    steps: int

    @property
    def knob(self) -> int:
        return self.point.knob

    @property
    def flops_per_step(self) -> float:
        return self.setup.batch_size * self.point.training_flops_per_example

    @property
    def tokens(self) -> int:
        return self.steps * self.setup.batch_size * self.point.tokens_per_example

    @property
    def flops(self) -> float:
        """The compute actually spent: within half a step of `budget`."""
        return self.steps * self.flops_per_step

    @property
    def name(self) -> str:
        """A trial name like ``decoder_only-1e13-k2``."""
        return f"{self.setup.family}-{self.budget:.3g}-k{self.knob}".replace("e+", "e")


def plan_isoflop(setup: LadderSetup, budgets: Sequence[float], knobs: Sequence[int],
                 min_steps: int = 1) -> list[PlannedRun]:
    """Every (budget, knob) whose run has at least `min_steps` steps, budget by budget."""
    if setup.batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {setup.batch_size}.")
    points = [ladder_point(setup.family, k, setup.vocab_size, setup.feature_lengths, setup.base,
                           setup.width) for k in knobs]
    runs = []
    for budget in budgets:
        for point in points:
            steps = round(budget / (setup.batch_size * point.training_flops_per_example))
            if steps >= max(min_steps, 1):
                runs.append(PlannedRun(setup, point, float(budget), steps))
    return runs


def model_bindings(config: TransformerConfig, base: str) -> dict[str, Any]:
    """gin bindings that turn the named size `base` into `config`: the size plus changed fields."""
    base_config = get_size(base)
    changed = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
               if getattr(config, f.name) != getattr(base_config, f.name)}
    return {"model_config.size": base,
            **{f"model_config.{name}": value for name, value in changed.items()}}


def trial(run: PlannedRun) -> Trial:
    """The sweep trial of one planned run (bindings and tags as in the module docstring)."""
    setup, point = run.setup, run.point
    return Trial(
        name=run.name,
        gin_files=tuple(setup.gin_files),
        bindings={**model_bindings(point.config, setup.base_size),
                  "TRAIN_STEPS": run.steps, "BATCH_SIZE": setup.batch_size,
                  "TASK_FEATURE_LENGTHS": dict(setup.feature_lengths)},
        tags={"family": setup.family, "knob": run.knob, "width": setup.width,
              "params": point.non_embedding_params,
              "total_params": point.params, "tokens": run.tokens, "flops": run.flops,
              "budget": run.budget})


def isoflop_sweep(name: str, setups: Sequence[LadderSetup], budgets: Sequence[float],
                  knobs: Sequence[int], min_steps: int = 1, seeds: Sequence[int] = (0,),
                  bindings: Mapping[str, Any] | None = None) -> Sweep:
    """A sweep of every family's isoFLOP grid; `bindings` apply to every trial (e.g. evaluation
    intervals)."""
    trials = [trial(run) for setup in setups
              for run in plan_isoflop(setup, budgets, knobs, min_steps)]
    if not trials:
        raise ValueError(f"No (budget, knob) pair gets {min_steps} steps: raise the budgets "
                         f"{list(budgets)} or lower the knobs {list(knobs)} or min_steps.")
    return Sweep(name=name, trials=trials, seeds=tuple(seeds), bindings=dict(bindings or {}))
