"""The extrapolation check of a fits.json entry: refit without the largest-compute run(s) and
compare the refit's prediction for them with what they measured (for isoflop: the largest
budget's N_opt and D_opt).
"""

from __future__ import annotations

import math

import numpy as np

from ladder.fit.isoflop import fit_isoflop
from ladder.fit.laws import Law, first_row, fit_once, support
from ladder.fit.predict import optimal_allocation, predict
from ladder.fit.runs import Runs, budgets


def _size(law: Law, runs: Runs) -> np.ndarray:
    """What "largest" means for the extrapolation check: compute, or x when C is unknown."""
    if runs.C is not None:
        return runs.C
    return runs.var(law.x if isinstance(law.x, str) else law.x[0])


def _sel(a: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if a is None else a[idx]


def extrapolation(law: Law, runs: Runs, tol: float, minima: list[dict] | None = None) -> dict:
    """Refit without the largest-compute run(s) (every run within a factor 1 + tol of the
    largest compute: the top budget) and compare the refit's prediction for them."""
    if law.law == "isoflop":
        return _isoflop_extrapolation(runs, tol, minima or [])
    held = _size(law, runs) >= _size(law, runs).max() / (1 + tol)
    rest = runs.subset(~held)
    reason = support(law, rest, tol)
    if reason is not None:
        return {"skipped": f"without the largest-compute run(s): {reason}"}
    params, _, _ = fit_once(law, rest, np.ones((1, len(rest))), None, tol)
    idx = np.flatnonzero(held)
    if law.law == "frontier":  # the frontier predicts the best run at that compute
        idx = idx[[np.argmin(runs.loss[idx])]]
    entry = {"law": law.law, "x": law.x, "offset": law.offset}
    fitted = first_row(params)
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
    p = first_row(params)
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
