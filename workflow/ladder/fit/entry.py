"""One law, one fits.json entry: `fit_law` fits a law to runs that support it and adds its
residuals, compute-optimal allocation, extrapolation check, warnings and bootstrap intervals.
"""

from __future__ import annotations

import math

import numpy as np

from ladder.fit.bootstrap import N_SAMPLES, intervals
from ladder.fit.chinchilla import chinchilla_allocation_entry, chinchilla_warnings
from ladder.fit.extrapolation import extrapolation
from ladder.fit.frontier import frontier_allocation, on_frontier
from ladder.fit.isoflop import (
    METHODS as ISOFLOP_METHODS,
)
from ladder.fit.isoflop import (
    fit_isoflop,
    isoflop_allocation,
    isoflop_ci,
    isoflop_draw_samples,
)
from ladder.fit.kaplan import kaplan_warnings
from ladder.fit.laws import Law, first_row, fit_once
from ladder.fit.power import power_warnings
from ladder.fit.predict import predict
from ladder.fit.runs import VARIABLES, FitError, Runs


def fit_law(
    law: Law,
    runs: Runs,
    bootstrap: int = 1000,
    seed: int = 0,
    budget_tol: float = 0.25,
    isoflop_method: str = "akima",
    loss_noise: float | None = None,
) -> dict:
    """Fit one law to runs that support it and build its fits.json entry."""
    if law.law == "isoflop":
        return _isoflop_entry(law, runs, bootstrap, seed, budget_tol, isoflop_method, loss_noise)
    params, objective, state = fit_once(law, runs, np.ones((1, len(runs))), None, budget_tol)
    best = first_row(params)
    if any(math.isnan(best[name]) for name in law.names):
        raise FitError(f"cannot fit {law.key}: the fit diverged")
    entry = _head(law, runs, best)
    residuals, rows, n_points = _residuals(law, runs, entry)
    allocation, warnings = _allocation(law, runs, best)
    entry.update(
        {
            "ci95": {},
            "n_points": n_points,
            "objective": float(objective[0]),
            "objective_kind": law.objective_kind,
            "residuals_log": [float(v) for v in residuals],
            "rows": rows,
            "extrapolation": extrapolation(law, runs, budget_tol, bootstrap, seed),
            "optimal_allocation": allocation,
            "samples": [],
            "bootstrap": {
                "resamples": bootstrap,
                "used": 0,
                "seed": seed,
                "method": "percentile interval with tails expanded to "
                "sqrt(n/(n-p)) t(n-p) (Hesterberg 2015's expanded percentile, p parameters); "
                "runs resampled with replacement",
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


def _isoflop_entry(
    law: Law, runs: Runs, draws: int, seed: int, tol: float, method: str, noise: float | None
) -> dict:
    """Approach 2 (ladder.fit.isoflop): its interval comes from noise draws, not resampling,
    and the other method's exponent is recorded beside it as a sensitivity check."""
    try:
        fitted = fit_isoflop(runs, tol, method, draws, seed, noise)
    except FitError as e:
        raise FitError(f"cannot fit {law.key}: {e}") from None
    entry = _head(law, runs, fitted.params)
    entry["method"] = method
    allocation, warnings = isoflop_allocation(runs, fitted)
    used = fitted.used
    options = {"full": fitted, "method": method, "draws": draws, "seed": seed, "noise": noise}
    entry.update(
        {
            "ci95": isoflop_ci(fitted),
            "n_points": int(sum(len(m["profile"].members) for m in used)),
            "objective": fitted.objective(),
            "objective_kind": law.objective_kind,
            "residuals_log": [float(v) for v in fitted.residuals()],
            "rows": [f"C={math.exp(m['profile'].lC):.3g}" for m in used],
            "extrapolation": extrapolation(law, runs, tol, isoflop=options),
            "optimal_allocation": allocation,
            "sensitivity": _other_method(runs, tol, method, draws, seed, noise),
            "samples": isoflop_draw_samples(fitted, N_SAMPLES),
            "bootstrap": {
                "resamples": draws,
                "used": len(fitted.draws.get("a", [])),
                "seed": seed,
                "method": "percentile interval of the weighted fit to each noise draw of the "
                "budgets' minima (Porian et al. 2024); point estimate: the fit to each "
                "budget's median minimum",
            },
            "warnings": list(runs.warnings) + warnings,
        }
    )
    return entry


def _other_method(runs: Runs, tol: float, method: str, draws: int, seed: int, noise) -> dict:
    """The exponents by the other isoflop method: how much the answer depends on it."""
    other = next(m for m in ISOFLOP_METHODS if m != method)
    try:
        fitted = fit_isoflop(runs, tol, other, draws, seed, noise)
    except FitError as e:
        return {"isoflop_method": other, "skipped": str(e)}
    ci = isoflop_ci(fitted)
    return {
        "isoflop_method": other,
        "a": fitted.params["a"],
        "b": fitted.params["b"],
        "ci95": {k: ci[k] for k in ("a", "b") if k in ci},
        "budgets_used": len(fitted.used),
    }


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


def _residuals(law: Law, runs: Runs, entry: dict) -> tuple[np.ndarray, list[str], int]:
    """(log residuals, what each belongs to, runs behind the fit): per run (frontier: its runs
    only)."""
    residuals = np.log(runs.loss) - np.log(predict(entry, N=runs.N, D=runs.D, C=runs.C))
    on = on_frontier(runs) if law.law == "frontier" else np.ones(len(runs), dtype=bool)
    rows = [r for r, o in zip(runs.ids, on, strict=True) if o]
    return residuals[on], rows, int(on.sum())


def _allocation(law: Law, runs: Runs, params: dict) -> tuple[dict | None, list[str]]:
    """The entry's "optimal_allocation" (N_opt = k_N C^a, D_opt = k_D C^b) and its warnings;
    None for the laws that have none."""
    if law.law == "chinchilla":
        return chinchilla_allocation_entry(runs, params), []
    if law.law == "frontier":
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
