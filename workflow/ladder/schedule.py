"""Learning-rate schedules: the lr of every step of a run, as training uses it and as the
curve laws (ladder.fit.annealing, ladder.fit.multipower) need it.

`Schedule` holds the six numbers that fix a run's schedule (a Rung has them all);
`lr_at(step)` is the one formula training steps with, `lrs()` the same formula over every
step at once (numpy, the same operations in the same order, so it equals lr_at step by step:
tests/test_curves_fit.py checks it). `parse_spec` reads `--predict-schedule` specs such as
`wsd:decay_frac=0.2,steps=4000,lr=3e-3`.

Imports no torch: `ladder fit` recomputes a run's schedule from curves.csv alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ladder.rung import decay_start

SCHEDULES = ("cosine", "constant", "wsd")


@dataclass(frozen=True)
class Schedule:
    """A run's lr schedule: `steps` steps, peak `lr`, linear warmup over
    round(warmup_frac·steps) steps, then cosine / constant / WSD to min_lr_frac·lr."""

    steps: int
    lr: float
    schedule: str = "cosine"
    warmup_frac: float = 0.0
    min_lr_frac: float = 0.0
    decay_frac: float = 0.2

    @classmethod
    def of(cls, r: Any) -> Schedule:
        """From anything with these six attributes (a Rung)."""
        return cls(**{f.name: getattr(r, f.name) for f in fields(cls)})

    @property
    def warmup_steps(self) -> int:
        return min(self.steps, round(self.warmup_frac * self.steps))

    def lr_at(self, step: int) -> float:
        """Learning rate of step `step` (0-based) of `steps`.

        Linear warmup over round(warmup_frac·steps) steps, then
        - cosine: half a cosine from lr to min_lr_frac·lr, reached at the last step;
        - constant: lr;
        - wsd: lr until the last round(decay_frac·steps) steps, then the "1 − sqrt" cooldown
          to min_lr_frac·lr (Hägele et al. 2024, https://arxiv.org/abs/2405.18392, §3).
        """
        n, peak = self.steps, self.lr
        low = self.lr * self.min_lr_frac
        warm = self.warmup_steps
        if step < warm:
            return peak * (step + 1) / warm
        if self.schedule == "constant":
            return peak
        if self.schedule == "cosine":
            p = (step - warm) / max(1, n - 1 - warm)
            return low + (peak - low) * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
        if self.schedule == "wsd":
            start = decay_start(n, warm, self.decay_frac)
            decay = n - start
            if step < start or decay == 0:
                return peak
            q = (step - start + 1) / decay
            return low + (peak - low) * (1 - math.sqrt(q))
        raise ValueError(f"schedule '{self.schedule}' is not one of {', '.join(SCHEDULES)}")

    def lrs(self) -> np.ndarray:
        """The lr of every step 0 .. steps-1: lr_at's arithmetic, vectorised."""
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule '{self.schedule}' is not one of {', '.join(SCHEDULES)}")
        n, peak = self.steps, self.lr
        low = self.lr * self.min_lr_frac
        warm = self.warmup_steps
        step = np.arange(n)
        out = np.full(n, float(peak))
        if self.schedule == "cosine":
            p = (step - warm) / max(1, n - 1 - warm)
            out = low + (peak - low) * 0.5 * (1 + np.cos(math.pi * np.minimum(1.0, p)))
        elif self.schedule == "wsd":
            start = decay_start(n, warm, self.decay_frac)
            decay = n - start
            if decay > 0:
                q = (step - start + 1) / decay
                cool = low + (peak - low) * (1 - np.sqrt(np.maximum(q, 0.0)))
                out = np.where(step < start, float(peak), cool)
        if warm > 0:
            out[:warm] = peak * (step[:warm] + 1) / warm
        return out


SPEC_KEYS = ("steps", "lr", "warmup_frac", "min_lr_frac", "decay_frac")


def parse_spec(spec: str, base: Schedule) -> Schedule:
    """`NAME[:key=value,...]` -> the base schedule with that name and those fields changed;
    keys: steps, lr (peak), warmup_frac, min_lr_frac, decay_frac. ValueError names a bad part."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in SCHEDULES:
        raise ValueError(f"schedule '{name}' in '{spec}' is not one of {', '.join(SCHEDULES)}")
    changes: dict[str, Any] = {"schedule": name}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in SPEC_KEYS:
            raise ValueError(
                f"'{part}' in '{spec}' is not key=value with key one of {', '.join(SPEC_KEYS)}"
            )
        try:
            changes[key] = int(value) if key == "steps" else float(value)
        except ValueError:
            raise ValueError(f"'{part}' in '{spec}': '{value}' is not a number") from None
    out = replace(base, **changes)
    if out.steps < 1 or not out.lr > 0:
        raise ValueError(f"'{spec}': steps must be >= 1 and lr > 0")
    return out
