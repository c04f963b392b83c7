"""The compute frontier, Hoffmann et al. 2022 Approach 1 (on final losses).

The runs no cheaper run beats (`frontier_mask`); the frontier law is the power law in C fitted
to them (ladder.fit.power), and `frontier_allocation` the log-log lines of their N and D
against C, when the design lets those lines say anything.
"""

from __future__ import annotations

import math

import numpy as np

from ladder.fit.runs import Runs, distinct, one_ratio, points


def frontier_mask(C: np.ndarray, L: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(K, n) mask of the lower envelope per row of weights: the runs whose loss is below that
    of every (weighted-in) run with less or equal compute."""
    order = np.lexsort((L, C))
    Ls = np.where(w[:, order] > 0, L[order], np.inf)
    before = np.concatenate(
        [np.full((len(w), 1), np.inf), np.minimum.accumulate(Ls, axis=1)[:, :-1]], axis=1
    )
    on = np.zeros_like(Ls, dtype=bool)
    on[:, order] = Ls < before
    return on


def on_frontier(runs: Runs) -> np.ndarray:
    """The runs on the lower envelope of loss over compute (all runs weighted in)."""
    return frontier_mask(runs.C, runs.loss, np.ones((1, len(runs))))[0]


def frontier_allocation(runs: Runs) -> tuple[dict | None, list[str]]:
    """Log-log lines of the frontier runs' N and D against C, or None with the reason."""
    on = on_frontier(runs)
    reason = _frontier_allocation_trivial(runs, on)
    if reason is not None:
        return None, [f"no optimal allocation: {reason}"]
    idx = np.flatnonzero(on)
    lC = np.log(runs.C[idx])
    X = np.stack([np.ones_like(lC), lC], 1)
    (cN, a), (cD, b) = (np.linalg.lstsq(X, np.log(v[idx]), rcond=None)[0] for v in (runs.N, runs.D))
    alloc = {"a": float(a), "b": float(b), "k_N": math.exp(cN), "k_D": math.exp(cD)}
    return alloc | {"frontier": points(runs, idx)}, []


def _frontier_allocation_trivial(runs: Runs, on: np.ndarray) -> str | None:
    """Why the frontier's N and D slopes would say nothing about the runs, or None.

    On a ladder with one token count every run's compute grows with N alone, so its frontier
    has N_opt ∝ C^1 and D_opt ∝ C^0 by construction (one model size: the reverse); on a ladder
    whose every size has one token count (D ∝ N, say) the frontier follows that path. The
    slopes describe the design, not a result, and are not reported."""
    if runs.N is None or runs.D is None:
        return "the table has no params or tokens column"
    for var, grows, fixed in (("tokens", "N", "D"), ("params", "D", "N")):
        values = runs.var(var)
        if distinct(values) < 2:
            return (
                f"every run has the same {var} ({np.median(values):.3g}), so on the frontier "
                f"{grows}_opt ∝ C^1 and {fixed}_opt ∝ C^0 by design, not as a result "
                "(it takes runs that trade N against D at equal compute, e.g. an IsoFLOP design)"
            )
    found = one_ratio(runs)
    if found is not None:
        return (
            f"every run has D = {found[1]:.3g} x {found[0]} (one tokens-per-parameter line), so "
            "the frontier's N and D grow along that line by design, not as a result"
        )
    if all(distinct(runs.D[runs.N == n]) < 2 for n in np.unique(runs.N)):
        return (
            "each model size was trained on one token count, so the frontier's N and D are the "
            "design's own path read back (it takes several token counts per size)"
        )
    if distinct(runs.C[on]) < 2:
        return "the frontier runs share one compute value"
    return None
