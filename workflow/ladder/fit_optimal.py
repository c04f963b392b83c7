"""Compute-optimal allocation: how to split compute C = c N D between model size and tokens.

    isoflop     Approach 2 (Hoffmann et al. 2022): a parabola per budget, then N_opt = k_N C^a
    frontier    Approach 1 on final losses: the runs no cheaper run beats (frontier_mask)
    chinchilla  Approach 3's closed form from a fitted L = E + A/N^alpha + B/D^beta

`optimal_allocation(entry, C)` evaluates any of them from a fits.json entry.
"""

from __future__ import annotations

import math

import numpy as np

from ladder.fit_runs import FitError, Runs, distinct

# --------------------------------------------------------------------------------------------
# IsoFLOP profiles, Hoffmann et al. 2022 Approach 2

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


# --------------------------------------------------------------------------------------------
# the compute frontier, Hoffmann et al. 2022 Approach 1 (on final losses)


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


def chinchilla_allocation(p: dict, c: float = 6.0) -> dict:
    """Minimise E + A/N^alpha + B/D^beta subject to c N D = C:
    N_opt = G (C/c)^a, D_opt = (C/c)^b / G, G = (alpha A / (beta B))^(1/(alpha+beta)),
    a = beta/(alpha+beta), b = alpha/(alpha+beta) (Hoffmann et al. 2022, eq. 4)."""
    al, be = np.asarray(p["alpha"]), np.asarray(p["beta"])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        logG = (np.log(al * p["A"]) - np.log(be * p["B"])) / (al + be)
        a, b = be / (al + be), al / (al + be)
        out = {
            "a": a,
            "b": b,
            "G": np.exp(logG),
            "k_N": np.exp(logG - a * math.log(c)),
            "k_D": np.exp(-logG - b * math.log(c)),
        }
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}


def optimal_allocation(entry: dict, C, params: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal (N_opt, D_opt) at compute C from a chinchilla, isoflop or frontier entry;
    `params` may be one of a chinchilla or isoflop entry's bootstrap "samples"."""
    C = np.asarray(C, dtype=float)
    alloc = entry.get("optimal_allocation") or {}
    if entry.get("law") == "chinchilla" and params is not None:
        alloc = chinchilla_allocation(params, alloc.get("flops_per_param_token", 6.0))
    elif entry.get("law") == "isoflop" and params is not None:
        alloc = params
    if "k_N" not in alloc:
        raise FitError(f"no compute-optimal allocation for law '{entry.get('law')}'")
    return alloc["k_N"] * C ** alloc["a"], alloc["k_D"] * C ** alloc["b"]


# --------------------------------------------------------------------------------------------
# the optimal_allocation of a fits.json entry


def allocation_entry(law: str, runs: Runs, params: dict, state) -> tuple[dict | None, list[str]]:
    """A fits.json entry's "optimal_allocation" (N_opt = k_N C^a, D_opt = k_D C^b) and its
    warnings, for the law named `law` fitted to `runs` (`state`: isoflop's per-budget minima)."""
    if law == "chinchilla":
        # the allocation is for the table's own compute convention: C = c N D with c the
        # median FLOPs per parameter per token (6 when C was derived as 6ND)
        c = float(np.median(runs.C / (runs.N * runs.D))) if runs.C is not None else 6.0
        return {**chinchilla_allocation(params, c), "flops_per_param_token": c}, []
    if law == "isoflop":
        return _isoflop_allocation(runs, params, state)
    if law == "frontier":
        return _frontier_allocation(runs)
    return None, []


def _isoflop_allocation(runs: Runs, params: dict, minima: list[dict]) -> tuple[dict, list[str]]:
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
        "points": _points(runs, m["window"]),
    }


def _points(runs: Runs, idx: np.ndarray) -> list[dict]:
    """The runs a fit used, by id and with the numbers it used."""
    columns = {"C": runs.C, "N": runs.N, "D": runs.D, "loss": runs.loss}
    return [{"run": runs.ids[i]} | {k: float(v[i]) for k, v in columns.items()} for i in idx]


def _frontier_allocation(runs: Runs) -> tuple[dict | None, list[str]]:
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
    return alloc | {"frontier": _points(runs, idx)}, []


def _frontier_allocation_trivial(runs: Runs, on: np.ndarray) -> str | None:
    """Why the frontier's N and D slopes would say nothing about the runs, or None.

    On a ladder with one token count every run's compute grows with N alone, so its frontier
    has N_opt ∝ C^1 and D_opt ∝ C^0 by construction (one model size: the reverse): the slopes
    describe the design, not a result, and are not reported."""
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
    if distinct(runs.C[on]) < 2:
        return "the frontier runs share one compute value"
    return None
