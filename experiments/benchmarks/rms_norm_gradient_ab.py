"""A/B in one process: t2t's training step with `rms_norm`'s hand-written gradient vs autodiff's.

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python experiments/benchmarks/rms_norm_gradient_ab.py \
        --rounds 8 --out experiments/benchmarks/rms_norm_gradient_cpu.json

Both programs are built and compiled in this process (`t2t bench train`'s T2tSystem, its cpu
preset's workload) and their steps alternate in rounds of two (A B, B A, ...), so that a shared
host's slow spells fall on both: on the 2-core host of rms_norm_gradient_cpu.md, separate
`t2t bench train` runs minutes apart differed by up to 20%, more than the change measured.
(The huge-pages tunable is what every `t2t` command sets for itself; see t2t.cli.)
"""

from __future__ import annotations

import argparse
import json
import statistics

import jax

from t2t.bench.train import Case, T2tSystem
from t2t.models import layers


def autodiff_rms_norm(x: jax.Array, scale: jax.Array, epsilon: float) -> jax.Array:
    """`layers.rms_norm`'s own forward (the same program), left to autodiff."""
    return layers._rms_norm_fwd(x, scale, epsilon)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    case = Case("t5_1_1/small", 8, (("inputs", 512), ("targets", 114)))
    hand = layers.rms_norm
    systems, memory = {}, {}
    for name, norm in (("autodiff", autodiff_rms_norm), ("hand", hand)):
        layers.rms_norm = norm  # RMSNorm looks it up when the step is traced, in setup()
        systems[name] = T2tSystem(case)
        memory[name] = systems[name].setup()["xla_memory_per_device"]
        print(name, "XLA memory (GiB):", memory[name], flush=True)
    layers.rms_norm = hand

    times: dict[str, list[float]] = {name: [] for name in systems}
    for r in range(args.rounds):
        order = list(systems) if r % 2 == 0 else list(reversed(systems))
        for name in order:
            times[name] += systems[name].run(2)
        print(f"round {r + 1}/{args.rounds}:",
              {name: round(statistics.median(t[-2:]), 3) for name, t in times.items()}, flush=True)
    ratios = [a / h for a, h in zip(times["autodiff"], times["hand"])]
    print("median step s:", {name: round(statistics.median(t), 3) for name, t in times.items()},
          "| autodiff / hand, median of step pairs:", round(statistics.median(ratios), 3))
    with open(args.out, "w") as f:
        json.dump({"step_s": times, "xla_memory_gib": memory,
                   "losses": {name: s.losses for name, s in systems.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
