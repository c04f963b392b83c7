"""The table of learning curves a curve law reads (curves.csv or any long-format CSV): one
`Curve` per run, with the lr of *every* step, and the runs grouped by model size.

The curve laws (ladder.fit.annealing, ladder.fit.multipower) need the whole schedule, not
the logged points: S1 sums the lr of every step. curves.csv carries each run's schedule
(`schedule`, `lr_peak`, `warmup_frac`, `min_lr_frac`, `decay_frac`, `steps_total`:
ladder.aggregate), so the lr of every step is recomputed with the trainer's own formula
(ladder.schedule) and checked against the logged lr. A CSV without those columns must log
every step (steps 1..n), and its lr column is the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ladder.fit.runs import FitError, truthy
from ladder.schedule import Schedule

SPEC_COLUMNS = {  # curves.csv column -> Schedule field
    "schedule": "schedule",
    "lr_peak": "lr",
    "warmup_frac": "warmup_frac",
    "min_lr_frac": "min_lr_frac",
    "decay_frac": "decay_frac",
    "steps_total": "steps",
}
LR_RTOL = 1e-6  # logged lr vs the recomputed schedule (the CSV keeps ~16 digits)


@dataclass
class CurveColumns:
    """Which columns hold the run, step, lr, loss, size and FLOPs per token."""

    run: str = "rung"
    step: str = "step"
    lr: str = "lr"
    loss: str = "loss_nats"
    size: str = "params_non_embedding"  # runs of one size share a law's parameters
    flops_per_token: str = "flops_per_token"


@dataclass
class Curve:
    """One run's curve: the logged points (completed steps, 1-based, increasing) and the lr of
    every step 0 .. n-1."""

    run: str
    steps: np.ndarray
    loss: np.ndarray
    lrs: np.ndarray
    size: float | None = None
    flops_per_token: float | None = None
    schedule: Schedule | None = None
    warmup_steps: int = 0
    batch_tokens: float | None = None

    @property
    def n_steps(self) -> int:
        return len(self.lrs)


@dataclass
class Curves:
    """Every usable run's curve, and what was left out (warnings)."""

    curves: list[Curve]
    columns: CurveColumns
    warnings: list[str] = field(default_factory=list)

    def groups(self) -> dict[str, list[Curve]]:
        """Runs of one model size (the size column; one group when there is none), in order
        of size. The label is the size ("N=1.2e+05") or "all"."""
        out: dict[str, list[Curve]] = {}
        for c in sorted(self.curves, key=lambda c: (c.size or 0.0, c.run)):
            out.setdefault("all" if c.size is None else f"N={c.size:.4g}", []).append(c)
        return out


def load_curves(df: pd.DataFrame, columns: CurveColumns) -> Curves:
    """Validate the table once: every problem is a FitError naming the column or run."""
    for flag, col in (("--run-col", columns.run), ("--step-col", columns.step)):
        if col not in df.columns:
            raise FitError(f"no column '{col}' ({flag}); the table has {', '.join(df.columns)}")
    if columns.loss not in df.columns:
        raise FitError(f"no loss column '{columns.loss}' (--loss-col)")
    warnings: list[str] = []
    if "diverged" in df.columns:
        bad = truthy(df["diverged"])
        if bad.any():
            warnings.append(f"excluded the diverged runs' curves ({bad.sum()} rows)")
            df = df[~bad]
    has_spec = all(c in df.columns for c in SPEC_COLUMNS)
    if not has_spec and columns.lr not in df.columns:
        raise FitError(
            f"no lr column '{columns.lr}' (--lr-col) and no schedule columns "
            f"({', '.join(SPEC_COLUMNS)}): the curve laws need the lr of every step"
        )
    out = []
    for run, rows in df.groupby(df[columns.run].astype(str), sort=False):
        curve = _curve(run, rows, columns, has_spec)
        if curve is not None:
            out.append(curve)
    if not out:
        raise FitError(f"no run has a finite, positive {columns.loss}")
    return Curves(out, columns, warnings)


def _curve(run: str, rows: pd.DataFrame, columns: CurveColumns, has_spec: bool) -> Curve | None:
    rows = rows.sort_values(columns.step)
    step = pd.to_numeric(rows[columns.step], errors="coerce").to_numpy(float)
    rows, step = rows[step != 0], step[step != 0]  # a step-0 row (the loss at init) has no area
    if not np.isfinite(step).all() or (step < 1).any() or (np.diff(step) <= 0).any():
        raise FitError(f"run {run}: column '{columns.step}' must be distinct whole steps >= 1")
    step = step.astype(int)
    first = rows.iloc[0]
    if has_spec:
        try:
            sched = Schedule(**{f: first[c] for c, f in SPEC_COLUMNS.items()})
            sched = Schedule(**{**sched.__dict__, "steps": int(sched.steps)})
            lrs = sched.lrs()
        except (ValueError, TypeError) as e:
            raise FitError(f"run {run}: bad schedule columns: {e}") from None
        if step[-1] > sched.steps:
            raise FitError(f"run {run}: logs step {step[-1]} of a {sched.steps}-step schedule")
        _check_logged_lr(run, rows, columns, step, lrs)
        warm = sched.warmup_steps
    else:
        sched = None
        if not np.array_equal(step, np.arange(1, len(step) + 1)):
            raise FitError(
                f"run {run} logs {len(step)} of {step[-1]} steps and the table has no schedule "
                f"columns ({', '.join(SPEC_COLUMNS)}): the lr of every step is needed"
            )
        lrs = pd.to_numeric(rows[columns.lr], errors="coerce").to_numpy(float)
        if not (np.isfinite(lrs) & (lrs >= 0)).all():
            raise FitError(f"run {run}: column '{columns.lr}' must be finite and >= 0")
        warm = int(np.argmax(lrs)) if lrs[0] < lrs.max() else 0  # the rise to the peak
    loss = pd.to_numeric(rows[columns.loss], errors="coerce").to_numpy(float)
    keep = np.isfinite(loss) & (loss > 0)  # val loss is logged at a few steps only
    if not keep.any():
        return None

    def scalar(col: str) -> float | None:
        if col not in rows.columns:
            return None
        v = pd.to_numeric(rows[col], errors="coerce").iloc[0]
        return float(v) if np.isfinite(v) and v > 0 else None

    return Curve(
        run,
        step[keep],
        loss[keep],
        lrs,
        scalar(columns.size),
        scalar(columns.flops_per_token),
        sched,
        warm,
        scalar("batch_tokens"),
    )


def _check_logged_lr(run, rows, columns: CurveColumns, step, lrs) -> None:
    """The logged lr must be the schedule's (else the schedule columns describe another run)."""
    if columns.lr not in rows.columns:
        return
    logged = pd.to_numeric(rows[columns.lr], errors="coerce").to_numpy(float)
    want = lrs[step - 1]
    bad = np.flatnonzero(~np.isclose(logged, want, rtol=LR_RTOL, atol=0))
    if bad.size:
        i = bad[0]
        raise FitError(
            f"run {run}: logged lr {logged[i]:.6g} at step {step[i]} is not its schedule's "
            f"{want[i]:.6g} (columns {', '.join(SPEC_COLUMNS)})"
        )
