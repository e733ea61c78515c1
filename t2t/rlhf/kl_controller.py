"""The KL coefficient β of the reward r_t = score·[t is last] - β (log π(a_t) - log π_ref(a_t)).

Two controllers, as in Ziegler et al. 2019 (§2.2) and lm-human-preferences:

    fixed      β stays at its initial value (InstructGPT's PPO runs use a fixed β = 0.02)
    adaptive   β follows a target KL:  e = clip(KL / target - 1, -0.2, 0.2),
               β ← β (1 + e · n / horizon)  after a rollout batch of n responses,
               so β grows while the policy's KL to the SFT model exceeds the target and shrinks
               while it is below; the clip bounds how fast.

E.g. target 6 nats, horizon 10,000, n = 64: a batch with KL 12 multiplies β by 1 + 0.2 · 0.0064.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class KLController:
    """β, and how it changes after each rollout batch (adaptive iff `target` is set)."""

    value: float
    target: float | None = None  # nats per response; None: a fixed β
    horizon: int = 10_000  # responses over which β adapts by a factor e

    def __post_init__(self) -> None:
        if self.value < 0 or (self.target is not None and self.target <= 0) or self.horizon <= 0:
            raise ValueError(f"KL control needs kl_coef >= 0, kl_target > 0 (or None for a fixed "
                             f"coefficient) and kl_horizon > 0; got {self.value}, {self.target}, "
                             f"{self.horizon}.")

    def update(self, kl: float, num_responses: int) -> float:
        """Adapt β to a batch's mean KL per response; returns the new β."""
        if self.target is not None:
            error = min(max(kl / self.target - 1.0, -0.2), 0.2)
            self.value *= 1.0 + error * num_responses / self.horizon
        return self.value
