"""Learning-rate schedules as a factor of the base rate, by optimizer step: linear warm-up, then cosine
decay to zero, step decay, or constant. A pure function of the step, so resuming restores it exactly."""

from __future__ import annotations

import math
from typing import Literal

Schedule = Literal["cosine", "step", "constant"]


def lr_factor(step: int, total_steps: int, warmup_steps: int = 0, schedule: Schedule = "cosine",
              step_every: int = 0, gamma: float = 0.1) -> float:
    """The multiplier of the base learning rate at optimizer step ``step`` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return gamma ** ((step - warmup_steps) // step_every) if step_every > 0 else 1.0
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}: choose cosine, step or constant")
