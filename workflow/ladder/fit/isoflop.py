"""IsoFLOP profiles, Hoffmann et al. 2022 Approach 2: a parabola per compute budget, then
N_opt = k_N C^a and D_opt = k_D C^b regressed on the budgets' minima.

`fit_isoflop` is the batched estimator, `isoflop_allocation` the entry's "optimal_allocation"
(the lines, and each budget's parabola, minimum and runs), `isoflop_parabola` draws one budget.
"""

from __future__ import annotations

import math

import numpy as np

from ladder.fit.runs import Runs, budgets, distinct, points

ISOFLOP_WINDOW_DEX = 1.0  # largest half-width (decades of N) of a budget's parabola window
ISOFLOP_MIN_SIZES = 5  # fewest model sizes in a window (when the budget has that many)


def _wlstsq(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    return np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]


def isoflop_minimum(t: np.ndarray, L: np.ndarray, lD: np.ndarray, w: np.ndarray) -> dict | None:
    """The loss minimum of one budget from a parabola in t = ln N fitted around it.

    The true profile E + A N^-alpha + B (C/cN)^-beta is asymmetric in ln N: relative to its
    curvature its cubic term is (beta - alpha)/3 per unit ln N, so a parabola fitted to a wide
    sweep that is off-centre tilts towards the far side, by an amount that changes from budget
    to budget and so biases the exponent a. The window here is therefore symmetric about the
    current vertex estimate -- as wide as the sweep allows on the nearer side, at most
    ISOFLOP_WINDOW_DEX decades, at least ISOFLOP_MIN_SIZES sizes -- and is re-centred until it
    stops changing. What remains is a shift of order (beta - alpha)/3 * 0.3 h^2 that is the same
    for every budget of equal window h, so it moves k_N but not a. Returns None when there is
    no minimum (fewer than 3 sizes, or a parabola that opens downward); else the vertex, the
    parabola loss = c0 + c1 u + c2 u^2 in u = t - t0 ("coef", "t0": centred, because ln N ~ 20
    would make absolute coefficients cancel) and the indices of the runs in its window.
    """
    use = np.flatnonzero(w > 0)
    t, L, lD, w = t[use], L[use], lD[use], w[use]
    sizes = np.unique(t)
    if len(sizes) < 3:
        return None
    need = min(ISOFLOP_MIN_SIZES, len(sizes))
    centre, window, coef = t[np.argmin(L)], None, None
    for _ in range(20):
        room = min(centre - sizes[0], sizes[-1] - centre, ISOFLOP_WINDOW_DEX * math.log(10))
        radius = max(room, np.sort(np.abs(sizes - centre))[need - 1])
        sel = np.abs(t - centre) <= radius * (1 + 1e-12) + 1e-12
        if window is not None and np.array_equal(sel, window):
            break
        window, origin = sel, centre
        tc = t[sel] - origin
        coef = _wlstsq(np.stack([np.ones_like(tc), tc, tc * tc], 1), L[sel], w[sel])
        if not coef[2] > 0:
            return None
        centre = float(np.clip(origin - coef[1] / (2 * coef[2]), sizes[0], sizes[-1]))
    v = -coef[1] / (2 * coef[2])  # vertex, relative to the window's origin
    t_opt = origin + v
    tc = t[window] - origin
    slope = _wlstsq(np.stack([np.ones_like(tc), tc], 1), lD[window], w[window])
    return {
        "t_opt": t_opt,
        "lD_opt": slope[0] + slope[1] * v,
        "loss_opt": coef[0] + coef[1] * v + coef[2] * v * v,
        "in_range": bool(sizes[0] <= t_opt <= sizes[-1]),
        "N_range": (float(np.exp(sizes[0])), float(np.exp(sizes[-1]))),
        "t0": float(origin),
        "coef": [float(c) for c in coef],
        "window": use[window],
    }


def isoflop_parabola(budget: dict, N) -> np.ndarray:
    """Loss on one budget's fitted parabola at model sizes N: `budget` is an entry of an
    isoflop fit's optimal_allocation["budgets"] (its "parabola" holds ln_N0 and coef)."""
    p = budget["parabola"]
    u = np.log(np.asarray(N, dtype=float)) - p["ln_N0"]
    c0, c1, c2 = p["coef"]
    return c0 + c1 * u + c2 * u * u


def fit_isoflop(
    N: np.ndarray, D: np.ndarray, C: np.ndarray, L: np.ndarray, labels: np.ndarray, w: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, list[dict]]:
    """Approach 2 for each row of weights: a minimum per budget, then log N_opt and log D_opt
    regressed on log C. Returns (params, objective, per-budget minima of the last row)."""
    lN, lD = np.log(N), np.log(D)
    groups = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    lC = np.array([np.log(C[g]).mean() for g in groups])  # a budget's compute: geometric mean
    K = len(w)
    params = {name: np.full(K, np.nan) for name in ("a", "b", "k_N", "k_D")}
    F = np.full(K, np.nan)
    minima: list[dict] = []
    for k in range(K):
        minima = []
        for g, members in enumerate(groups):
            m = isoflop_minimum(lN[members], L[members], lD[members], w[k, members])
            if m is not None:
                # the window's runs, as indices into the table rather than into the budget
                m["window"] = members[m["window"]]
                minima.append({"budget": g, "lC": lC[g], **m})
        if len(minima) < 2:
            continue
        x = np.array([m["lC"] for m in minima])
        X = np.stack([np.ones_like(x), x], 1)
        (cN, aN), (cD, aD) = (
            np.linalg.lstsq(X, np.array([m[key] for m in minima]), rcond=None)[0]
            for key in ("t_opt", "lD_opt")
        )
        params["a"][k], params["b"][k] = aN, aD
        with np.errstate(over="ignore"):
            params["k_N"][k], params["k_D"][k] = np.exp(cN), np.exp(cD)
        F[k] = float(((np.array([m["t_opt"] for m in minima]) - cN - aN * x) ** 2).sum())
    return params, F, minima


def usable_budgets(runs: Runs, tol: float) -> int:
    """How many compute budgets have 3+ distinct model sizes (a parabola's worth)."""
    labels = budgets(runs.C, tol)
    return sum(distinct(runs.N[labels == g]) >= 3 for g in np.unique(labels))


def isoflop_allocation(runs: Runs, params: dict, minima: list[dict]) -> tuple[dict, list[str]]:
    """The two regression lines, and per budget its parabola, minimum and the runs it used, so
    the report draws what was fitted rather than another law along the budget."""
    warnings = []
    for m in minima:
        if not m["in_range"]:
            lo, hi = m["N_range"]
            warnings.append(
                f"budget C={math.exp(m['lC']):.3g}: the loss minimum at "
                f"N={math.exp(m['t_opt']):.3g} lies outside the sampled sizes "
                f"[{lo:.3g}, {hi:.3g}]; its N_opt is extrapolated"
            )
    table = [_isoflop_budget(runs, m) for m in minima]
    return {key: params[key] for key in ("a", "b", "k_N", "k_D")} | {"budgets": table}, warnings


def _isoflop_budget(runs: Runs, m: dict) -> dict:
    """One budget of an isoflop fit as fits.json stores it (docs/fitting.md)."""
    return {
        "C": math.exp(m["lC"]),
        "N_opt": math.exp(m["t_opt"]),
        "D_opt": math.exp(m["lD_opt"]),
        "loss": m["loss_opt"],
        "in_range": m["in_range"],
        "N_sampled": list(m["N_range"]),
        "n_window": len(m["window"]),
        "parabola": {"ln_N0": m["t0"], "coef": m["coef"]},
        "points": points(runs, m["window"]),
    }
