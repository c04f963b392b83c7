"""One law, one fits.json entry: whether the runs support it, the fit, its bootstrap intervals
and the extrapolation check.

`fit_law(make_law(name, ...), runs)` is what ladder.fit.fit_table calls for every law; the
estimators live in ladder.fit_laws (loss laws) and ladder.fit_optimal (allocation, which also
writes the entry's "optimal_allocation").
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, stdtrit

from ladder.fit_laws import (
    KAPLAN_ALPHA_BOUNDS,
    LAWS,
    fit_chinchilla,
    fit_kaplan,
    fit_power,
    power_warnings,
    predict,
)
from ladder.fit_optimal import (
    allocation_entry,
    fit_isoflop,
    frontier_mask,
    on_frontier,
    optimal_allocation,
)
from ladder.fit_runs import VARIABLES, FitError, Runs, budgets, distinct

N_SAMPLES = 200  # bootstrap parameter vectors kept in fits.json for the report's bands


@dataclass
class Law:
    """What the driver needs to know about one fitted law (one key in fits.json)."""

    key: str
    law: str
    x: str | list[str]  # the variable(s) the law is a function of
    formula: str
    names: list[str]  # its parameters (the "params" and each bootstrap sample)
    needs: tuple[str, ...]  # the columns it needs
    offset: bool = True
    derived: tuple[str, ...] = ()  # functions of the parameters that also get intervals
    objective_kind: str = "sum of squared residuals of log L"


def make_law(name: str, x: str = "params", offset: bool = True) -> Law:
    if name == "power":
        s = VARIABLES[x]
        if offset:
            return Law(
                f"power_{x}", "power", x, f"L = E + A * {s}^(-alpha)", ["E", "A", "alpha"], (x,)
            )
        return Law(
            f"power_{x}_no_offset",
            "power",
            x,
            f"L = k * {s}^(-alpha)",
            ["k", "alpha"],
            (x,),
            offset=False,
        )
    if name == "chinchilla":
        return Law(
            "chinchilla",
            "chinchilla",
            ["params", "tokens"],
            "L = E + A / N^alpha + B / D^beta",
            ["E", "A", "B", "alpha", "beta"],
            ("params", "tokens"),
            derived=("a", "b"),
            objective_kind="sum of Huber(delta=1e-3) of residuals of log L",
        )
    if name == "kaplan":
        return Law(
            "kaplan",
            "kaplan",
            ["params", "tokens"],
            "L = ((N_c / N)^(alpha_N / alpha_D) + D_c / D)^alpha_D",
            ["N_c", "D_c", "alpha_N", "alpha_D"],
            ("params", "tokens"),
        )
    if name == "isoflop":
        return Law(
            "isoflop",
            "isoflop",
            "compute",
            "N_opt = k_N * C^a, D_opt = k_D * C^b",
            ["a", "b", "k_N", "k_D"],
            ("params", "tokens", "compute"),
            objective_kind="sum of squared residuals of ln N_opt against ln C",
        )
    if name == "frontier":
        return Law(
            "frontier",
            "frontier",
            "compute",
            "L = E + A * C^(-alpha) on the lower envelope of loss over compute",
            ["E", "A", "alpha"],
            ("compute",),
        )
    raise FitError(f"unknown law '{name}'; choose from {', '.join(LAWS)} or all")


def _usable_budgets(runs: Runs, tol: float) -> int:
    labels = budgets(runs.C, tol)
    return sum(distinct(runs.N[labels == g]) >= 3 for g in np.unique(labels))


def support(law: Law, runs: Runs, tol: float = 0.25) -> str | None:
    """Why these runs cannot support the law, or None when they can."""
    for var in law.needs:
        if runs.var(var) is None:
            return f"no {var} column"
    n_params = len(law.names)
    if law.law in ("power", "chinchilla", "kaplan") and len(runs) < n_params:
        return f"{len(runs)} runs for {n_params} parameters"
    if law.law == "power":
        found = distinct(runs.var(law.x))
        if found < 3:
            return f"needs at least 3 distinct {law.x} values (5% apart); found {found}"
    elif law.law in ("chinchilla", "kaplan"):
        for var in ("params", "tokens"):
            found = distinct(runs.var(var))
            if found < 3:
                return f"needs at least 3 distinct {var} values (5% apart); found {found}"
        if len(runs) < n_params + 2:
            # with (almost) no residual degrees of freedom every bootstrap resample that
            # fits at all reproduces the same runs: intervals would be zero-width, not small
            return f"{len(runs)} runs for {n_params} parameters (needs {n_params + 2})"
        # D ∝ N (one tokens-per-parameter ratio) leaves N's and D's terms unidentifiable:
        # any split of the decline between them fits equally well
        if distinct(runs.D / runs.N) < 2:
            return "every run has the same tokens per parameter, so N and D cannot be told apart"
    elif law.law == "isoflop":
        found = _usable_budgets(runs, tol)
        if found < 2:
            return (
                f"needs at least 2 compute budgets with 3+ model sizes each; found {found} "
                f"(runs within a factor {1 + tol:g} in compute share a budget: --budget-tol)"
            )
        return None
    elif law.law == "frontier":
        found = int(on_frontier(runs).sum())
        if found < n_params:
            return f"{found} runs on the compute frontier for {n_params} parameters"
    return None


def _fit_once(law: Law, runs: Runs, w: np.ndarray, warm=None, tol: float = 0.25):
    """Batched fit of one law: (params as arrays over the rows of w, objective, state), where
    state warm-starts the bootstrap (and is the per-budget minima for isoflop)."""
    if law.law == "power":
        p, F = fit_power(runs.var(law.x), runs.loss, w, law.offset, warm)
        return p, F, p.get("_theta", [None])[0]
    if law.law == "chinchilla":
        return fit_chinchilla(runs.N, runs.D, runs.loss, w, warm)
    if law.law == "kaplan":
        return fit_kaplan(runs.N, runs.D, runs.loss, w, warm)
    if law.law == "isoflop":
        return fit_isoflop(runs.N, runs.D, runs.C, runs.loss, budgets(runs.C, tol), w)
    if law.law == "frontier":
        on = frontier_mask(runs.C, runs.loss, w)
        p, F = fit_power(runs.C, runs.loss, w * on, True, warm)
        return p, F, p["_theta"][0]
    raise AssertionError(law.law)


def _row(params: dict, k: int) -> dict[str, float]:
    return {name: float(v[k]) for name, v in params.items() if not name.startswith("_")}


def _rng(seed: int, key: str) -> np.random.Generator:
    # one stream per law, so a law's intervals do not depend on which other laws were fitted
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _resample(law: Law, runs: Runs, B: int, seed: int, tol: float) -> np.ndarray:
    """(B, n) bootstrap counts. Runs are resampled with replacement; for isoflop within each
    budget, since the design fixes how many runs each budget has."""
    rng = _rng(seed, law.key)
    n = len(runs)
    strata = budgets(runs.C, tol) if law.law == "isoflop" else np.zeros(n, dtype=int)
    counts = np.zeros((B, n))
    for g in np.unique(strata):
        members = np.flatnonzero(strata == g)
        draws = members[rng.integers(0, len(members), (B, len(members)))]
        np.add.at(counts, (np.arange(B)[:, None], draws), 1.0)
    return counts


def expanded_tail(n: int, p: int, level: float = 0.95) -> float:
    """Tail probability for an "expanded percentile" interval (Hesterberg 2015, "What teachers
    should know about the bootstrap", sec. 5.3): plain percentiles are too narrow in small
    samples (the bootstrap spread is a plug-in estimate, ~ (n - p)/n of the truth, and normal
    rather than t), so the tails are moved out to z = sqrt(n / (n - p)) t_{n-p}. At n = 15,
    p = 2 that is the 1.0 / 99.0 percentiles instead of 2.5 / 97.5; as n grows it tends to the
    plain percentile interval; with no residual degrees of freedom it is the full range."""
    if n <= p:
        return 0.0
    z = math.sqrt(n / (n - p)) * float(stdtrit(n - p, 0.5 + level / 2))
    return float(ndtr(-z))


def _n_effective(law: Law, runs: Runs, minima) -> int:
    """Observations behind the fit: runs, frontier runs, or budgets (isoflop)."""
    if law.law == "isoflop":
        return len(minima)
    if law.law == "frontier":
        return int(on_frontier(runs).sum())
    return len(runs)


def _bootstrap(law: Law, runs: Runs, state, B: int, seed: int, tol: float) -> dict:
    """Percentile intervals from B resamples of the runs, refitted as one batch."""
    counts = _resample(law, runs, B, seed, tol)
    # a resample that no longer supports the law (say, 2 distinct sizes left) has no fit
    usable = np.array([support(law, runs.subset(c > 0), tol) is None for c in counts])
    names = law.names + list(law.derived)
    table = np.empty((0, len(names)))
    if usable.any():
        params, _, _ = _fit_once(law, runs, counts[usable], state, tol)
        table = np.stack([params[name] for name in names], 1)
        table = table[np.isfinite(table).all(1)]
    ci = {}
    if len(table) >= 2:
        p = 2 if law.law == "isoflop" else len(law.names)  # isoflop: 2 per regression line
        tail = 100 * expanded_tail(_n_effective(law, runs, state), p)
        lo, hi = np.percentile(table, [tail, 100 - tail], axis=0)
        ci = {name: [float(lo[j]), float(hi[j])] for j, name in enumerate(names)}
    samples = [
        dict(zip(law.names, map(float, row[: len(law.names)]), strict=True))
        for row in table[:N_SAMPLES]
    ]
    warnings = []
    if len(table) < 0.95 * B:
        warnings.append(
            f"{B - len(table)} of {B} bootstrap resamples had too few distinct runs "
            "(or no fit) and were left out of the intervals"
        )
    return {"ci95": ci, "samples": samples, "used": int(len(table)), "warnings": warnings}


def _size(law: Law, runs: Runs) -> np.ndarray:
    """What "largest" means for the extrapolation check: compute, or x when C is unknown."""
    if runs.C is not None:
        return runs.C
    return runs.var(law.x if isinstance(law.x, str) else law.x[0])


def _sel(a: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if a is None else a[idx]


def _extrapolation(law: Law, runs: Runs, tol: float, minima: list[dict] | None = None) -> dict:
    """Refit without the largest-compute run(s) (every run within a factor 1 + tol of the
    largest compute: the top budget) and compare the refit's prediction for them."""
    if law.law == "isoflop":
        return _isoflop_extrapolation(runs, tol, minima or [])
    held = _size(law, runs) >= _size(law, runs).max() / (1 + tol)
    rest = runs.subset(~held)
    reason = support(law, rest, tol)
    if reason is not None:
        return {"skipped": f"without the largest-compute run(s): {reason}"}
    params, _, _ = _fit_once(law, rest, np.ones((1, len(rest))), None, tol)
    idx = np.flatnonzero(held)
    if law.law == "frontier":  # the frontier predicts the best run at that compute
        idx = idx[[np.argmin(runs.loss[idx])]]
    entry = {"law": law.law, "x": law.x, "offset": law.offset}
    fitted = _row(params, 0)
    pred = predict(entry, fitted, N=_sel(runs.N, idx), D=_sel(runs.D, idx), C=_sel(runs.C, idx))
    return _held_out(
        "loss_nats", [runs.ids[i] for i in idx], runs.loss[idx], pred, len(rest), fitted
    )


def _held_out(
    quantity: str, names: list[str], observed, predicted, n_fit: int, params: dict
) -> dict:
    rel = (np.asarray(predicted) - observed) / observed
    return {
        "quantity": quantity,
        "held_out": [
            {"run": i, "observed": float(o), "predicted": float(p), "rel_error": float(e)}
            for i, o, p, e in zip(names, observed, predicted, rel, strict=True)
        ],
        "n_fit": n_fit,
        "max_abs_rel_error": float(np.abs(rel).max()),
        "params": params,
    }


def _isoflop_extrapolation(runs: Runs, tol: float, minima: list[dict]) -> dict:
    """Refit without the largest budget; predict its N_opt and D_opt from the smaller ones."""
    labels = budgets(runs.C, tol)
    top = [m for m in minima if m["budget"] == labels.max()]
    if len(minima) < 3 or not top:
        return {"skipped": "needs 3 budgets with a loss minimum, the largest among them"}
    w = (labels != labels.max()).astype(float)[None]
    params, _, _ = fit_isoflop(runs.N, runs.D, runs.C, runs.loss, labels, w)
    p = _row(params, 0)
    C = math.exp(top[0]["lC"])
    observed = np.exp([top[0]["t_opt"], top[0]["lD_opt"]])
    predicted = np.array(optimal_allocation({"law": "isoflop"}, C, p))
    return _held_out(
        "N_opt, D_opt",
        [f"N_opt at C={C:.3g}", f"D_opt at C={C:.3g}"],
        observed,
        predicted,
        int(w.sum()),
        p,
    )


def _law_warnings(law: Law, params: dict, runs: Runs) -> list[str]:
    out = []
    if law.law in ("power", "frontier") and law.offset:
        symbol = "C" if law.law == "frontier" else VARIABLES[law.x]
        out += power_warnings(params, runs.loss, symbol)
    if law.law == "chinchilla":
        if params["E"] < 1e-3 * runs.loss.min():
            out.append("E is ~0: these runs do not identify an irreducible loss")
        if min(params["alpha"], params["beta"]) <= 0:
            out.append("an exponent is <= 0: loss does not fall with N or D in these runs")
    if law.law == "kaplan":
        lo, hi = KAPLAN_ALPHA_BOUNDS
        for name in ("alpha_N", "alpha_D"):
            if not lo * (1 + 1e-9) < params[name] < hi * (1 - 1e-9):
                out.append(f"{name} is at its bound ({lo}, {hi})")
    for name, value in params.items():
        if not math.isfinite(value):
            out.append(f"{name} overflows a float")
    return out


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


def fit_law(
    law: Law, runs: Runs, bootstrap: int = 1000, seed: int = 0, budget_tol: float = 0.25
) -> dict:
    """Fit one law to runs that support it and build its fits.json entry."""
    params, objective, state = _fit_once(law, runs, np.ones((1, len(runs))), None, budget_tol)
    best = _row(params, 0)
    if any(math.isnan(best[name]) for name in law.names):
        raise FitError(
            f"cannot fit {law.key}: no fit (fewer than 2 budgets have a loss minimum)"
            if law.law == "isoflop"
            else f"cannot fit {law.key}: the fit diverged"
        )
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
    residuals, rows, n_points = _residuals(law, runs, entry, state, budget_tol)
    allocation, warnings = allocation_entry(law.law, runs, best, state)
    entry.update(
        {
            "ci95": {},
            "n_points": n_points,
            "objective": float(objective[0]),
            "objective_kind": law.objective_kind,
            "residuals_log": [float(v) for v in residuals],
            "rows": rows,
            "extrapolation": _extrapolation(law, runs, budget_tol, state),
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
        boot = _bootstrap(law, runs, state, bootstrap, seed, budget_tol)
        entry["ci95"], entry["samples"] = boot["ci95"], boot["samples"]
        entry["bootstrap"]["used"] = boot["used"]
        warnings += boot["warnings"]
    entry["warnings"] = warnings
    return entry
