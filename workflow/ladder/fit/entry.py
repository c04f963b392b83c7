"""One law, one fits.json entry: `fit_law` fits a law to runs that support it and adds its
residuals, compute-optimal allocation, extrapolation check, warnings and bootstrap intervals.
"""

from __future__ import annotations

import math

import numpy as np

from ladder.fit.bootstrap import intervals
from ladder.fit.chinchilla import chinchilla_allocation_entry, chinchilla_warnings
from ladder.fit.extrapolation import extrapolation
from ladder.fit.frontier import frontier_allocation, on_frontier
from ladder.fit.isoflop import isoflop_allocation
from ladder.fit.kaplan import kaplan_warnings
from ladder.fit.laws import Law, first_row, fit_once
from ladder.fit.power import power_warnings
from ladder.fit.predict import predict
from ladder.fit.runs import VARIABLES, FitError, Runs, budgets


def fit_law(
    law: Law, runs: Runs, bootstrap: int = 1000, seed: int = 0, budget_tol: float = 0.25
) -> dict:
    """Fit one law to runs that support it and build its fits.json entry."""
    params, objective, state = fit_once(law, runs, np.ones((1, len(runs))), None, budget_tol)
    best = first_row(params)
    if any(math.isnan(best[name]) for name in law.names):
        raise FitError(
            f"cannot fit {law.key}: no fit (fewer than 2 budgets have a loss minimum)"
            if law.law == "isoflop"
            else f"cannot fit {law.key}: the fit diverged"
        )
    entry = _head(law, runs, best)
    residuals, rows, n_points = _residuals(law, runs, entry, state, budget_tol)
    allocation, warnings = _allocation(law.law, runs, best, state)
    entry.update(
        {
            "ci95": {},
            "n_points": n_points,
            "objective": float(objective[0]),
            "objective_kind": law.objective_kind,
            "residuals_log": [float(v) for v in residuals],
            "rows": rows,
            "extrapolation": extrapolation(law, runs, budget_tol, state),
            "optimal_allocation": allocation,
            "samples": [],
            "bootstrap": {
                "resamples": bootstrap,
                "used": 0,
                "seed": seed,
                "method": "expanded percentile; runs resampled with replacement"
                + (" within each budget" if law.law == "isoflop" else ""),
            },
        }
    )
    warnings = list(runs.warnings) + warnings + _law_warnings(law, best, runs)
    if bootstrap > 0:
        boot = intervals(law, runs, state, bootstrap, seed, budget_tol)
        entry["ci95"], entry["samples"] = boot["ci95"], boot["samples"]
        entry["bootstrap"]["used"] = boot["used"]
        warnings += boot["warnings"]
    entry["warnings"] = warnings
    return entry


def _head(law: Law, runs: Runs, best: dict[str, float]) -> dict:
    """The entry's first keys: which law, its formula, its parameters, the columns it read."""
    entry: dict = {
        "law": law.law,
        "x": law.x,
        "formula": law.formula,
        "params": {name: best[name] for name in law.names},
    }
    if law.law == "power":
        entry["offset"] = law.offset
    entry["columns"] = {var: runs.columns.get(var, var) for var in law.needs} | {
        "loss": runs.loss_column
    }
    return entry


def _residuals(
    law: Law, runs: Runs, entry: dict, minima, tol: float
) -> tuple[np.ndarray, list[str], int]:
    """(log residuals, what each belongs to, runs behind the fit). Per run for the loss laws
    (frontier: its runs only); per budget for isoflop, whose fit is of ln N_opt on ln C."""
    if law.law == "isoflop":
        p = entry["params"]
        lC = np.array([m["lC"] for m in minima])
        residuals = np.array([m["t_opt"] for m in minima]) - (np.log(p["k_N"]) + p["a"] * lC)
        used = np.isin(budgets(runs.C, tol), [m["budget"] for m in minima])
        return residuals, [f"C={math.exp(c):.3g}" for c in lC], int(used.sum())
    residuals = np.log(runs.loss) - np.log(predict(entry, N=runs.N, D=runs.D, C=runs.C))
    on = on_frontier(runs) if law.law == "frontier" else np.ones(len(runs), dtype=bool)
    rows = [r for r, o in zip(runs.ids, on, strict=True) if o]
    return residuals[on], rows, int(on.sum())


def _allocation(law: str, runs: Runs, params: dict, state) -> tuple[dict | None, list[str]]:
    """The entry's "optimal_allocation" (N_opt = k_N C^a, D_opt = k_D C^b) and its warnings
    (`state`: isoflop's per-budget minima); None for the laws that have none."""
    if law == "chinchilla":
        return chinchilla_allocation_entry(runs, params), []
    if law == "isoflop":
        return isoflop_allocation(runs, params, state)
    if law == "frontier":
        return frontier_allocation(runs)
    return None, []


def _law_warnings(law: Law, params: dict, runs: Runs) -> list[str]:
    out = []
    if law.law in ("power", "frontier") and law.offset:
        symbol = "C" if law.law == "frontier" else VARIABLES[law.x]
        out += power_warnings(params, runs.loss, symbol)
    if law.law == "chinchilla":
        out += chinchilla_warnings(params, runs.loss)
    if law.law == "kaplan":
        out += kaplan_warnings(params)
    for name, value in params.items():
        if not math.isfinite(value):
            out.append(f"{name} overflows a float")
    return out
