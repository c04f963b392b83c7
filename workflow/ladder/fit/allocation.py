"""The compute-optimal allocation of a fitted L(N, D), under the study's own FLOP count.

Hoffmann et al.'s closed form (N_opt = G (C/6)^a) assumes C = 6 N D. A study counts its own
FLOPs -- attention, the output layer -- so C / (N D) is not 6 and not constant: in
fineweb_isoflop's plan it spans 6.9-14.1 per non-embedding parameter and token, more for the
small models. Porian et al. 2024 show that this difference alone moves the exponent a. Here
the allocation minimises the fitted loss at fixed C under C = c(N) N D, with c(N) read from
the runs themselves (`compute_model`), so Approach 3's allocation is in the same C as
Approach 1's and 2's, which are fitted to the runs' C directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from ladder.fit.runs import Runs

ALLOC_POINTS = 9  # compute values, log-spaced over the table's range, the lines are fitted to
SEARCH_HALF_WIDTH = 6.0  # ln N searched either side of the 6ND closed form (e^6 ~ 400x)
SEARCH_POINTS = 241


@dataclass
class ComputeModel:
    """C = c(N) N D: c, FLOPs per parameter per token, per model size (knots in ln N; monotone
    cubic interpolation of ln c between them, constant beyond the sizes run)."""

    lN: np.ndarray
    lc: np.ndarray
    source: str  # the compute column, or "6*N*D"

    def c(self, lN: np.ndarray) -> np.ndarray:
        if len(self.lN) < 2:
            return np.full(np.shape(lN), math.exp(self.lc[0]))
        # monotone cubic (PCHIP): the allocation depends on the slope of c(N), which a
        # piecewise-linear interpolant gets wrong by up to the change between knots
        x = np.clip(lN, self.lN[0], self.lN[-1])
        return np.exp(PchipInterpolator(self.lN, self.lc)(x))

    def to_json(self) -> dict:
        c = np.exp(self.lc)
        return {
            "convention": "C = c(N) * N * D, c(N) = C / (N D) of the runs, interpolated "
            "(monotone cubic in log-log) between model sizes, constant beyond them",
            "column": self.source,
            "flops_per_param_token": {
                "min": float(c.min()),
                "median": float(np.median(c)),
                "max": float(c.max()),
            },
            "knots": {"N": [float(v) for v in np.exp(self.lN)], "c": [float(v) for v in c]},
        }

    @classmethod
    def from_json(cls, d: dict) -> ComputeModel:
        k = d["knots"]
        return cls(np.log(k["N"]), np.log(k["c"]), d.get("column", "?"))


def compute_model(runs: Runs) -> ComputeModel:
    """The table's FLOP count as a function of N: C/(N D) per distinct N (median over its
    runs); 6 when C was derived as 6 N D."""
    if runs.C is None or runs.columns.get("compute") == "6*N*D":
        return ComputeModel(np.zeros(1), np.full(1, math.log(6.0)), "6*N*D")
    lN = np.log(runs.N)
    lc = np.log(runs.C / (runs.N * runs.D))
    order = np.argsort(lN, kind="stable")
    lN, lc = lN[order], lc[order]
    size = np.concatenate([[0], np.cumsum(np.diff(lN) > 1e-9)])
    knots_N = np.array([lN[size == s].mean() for s in range(size[-1] + 1)])
    knots_c = np.array([np.median(lc[size == s]) for s in range(size[-1] + 1)])
    return ComputeModel(knots_N, knots_c, runs.columns.get("compute", "C"))


def allocate(loss, C: np.ndarray, model: ComputeModel, start: np.ndarray) -> np.ndarray:
    """ln N_opt minimising loss(lN, lD) at each compute C (M,) for K parameter sets at once.

    `loss(lN, lD)` broadcasts over (K, M, G) arrays; `start` (K, M) is a first guess of ln N
    (the 6ND closed form). The search is a grid of ln N around it, refined by the parabola
    through the best grid point and its neighbours. NaN where the minimum is at the grid's end.
    """
    offsets = np.linspace(-SEARCH_HALF_WIDTH, SEARCH_HALF_WIDTH, SEARCH_POINTS)
    lN = start[..., None] + offsets  # (K, M, G)
    lC = np.log(C)[None, :, None]
    lD = lC - np.log(model.c(lN)) - lN
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f = loss(lN, lD)
    f = np.where(np.isfinite(f), f, np.inf)
    i = f.argmin(-1)
    inner = (i > 0) & (i < SEARCH_POINTS - 1)
    j = np.clip(i, 1, SEARCH_POINTS - 2)
    f0, f1, f2 = (np.take_along_axis(f, (j + d)[..., None], -1)[..., 0] for d in (-1, 0, 1))
    h = offsets[1] - offsets[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = f0 - 2 * f1 + f2
        shift = np.where(denom > 0, 0.5 * h * (f0 - f2) / denom, 0.0)
    best = np.take_along_axis(lN, j[..., None], -1)[..., 0] + np.clip(shift, -h, h)
    return np.where(inner, best, np.nan)


def allocation_lines(
    loss, model: ComputeModel, C_range: tuple[float, float], start
) -> dict[str, np.ndarray]:
    """Fit N_opt = k_N C^a and D_opt = k_D C^b to the allocation at ALLOC_POINTS compute values
    over C_range, for K parameter sets; with tokens per parameter at the top of the range.
    `start(lC)` gives the first guess of ln N, (K, M)."""
    C = np.geomspace(C_range[0], C_range[1], ALLOC_POINTS)
    lC = np.log(C)
    lN = allocate(loss, C, model, start(lC))
    lD = lC - np.log(model.c(lN)) - lN
    x = lC - lC.mean()
    out = {}
    for y, slope, scale in ((lN, "a", "k_N"), (lD, "b", "k_D")):
        s = ((y - y.mean(-1, keepdims=True)) * x).sum(-1) / (x * x).sum()
        out[slope], out[scale] = s, np.exp(y.mean(-1) - s * lC.mean())
    out["tokens_per_param"] = np.exp(lD[..., -1] - lN[..., -1])
    out["N_at_C_max"], out["D_at_C_max"] = np.exp(lN[..., -1]), np.exp(lD[..., -1])
    return out
