"""The extrapolation check of a fits.json entry: refit without the largest-compute run(s) and
predict them with a 95% prediction interval (for isoflop: the largest budget's N_opt and D_opt).
The check is whether what they measured lies inside the interval -- no fixed tolerance, since
what counts as close depends on the noise and on how far the ladder's rungs are apart.

Loss laws: the interval is a bootstrap prediction interval (Davison & Hinkley 1997, sec. 6.3.3):
for each resample of the remaining runs, the refit's prediction plus one of the refit's log
residuals (inflated by sqrt(n / (n - p)) for the parameters fitted), and the 2.5 / 97.5
percentiles of those. isoflop: the refit's prediction for each noise draw, plus that draw's
deviation of the held-out budget's own minimum from its median.
"""

from __future__ import annotations

import math

import numpy as np

from ladder.fit.bootstrap import refit, resample
from ladder.fit.frontier import frontier_mask
from ladder.fit.isoflop import fit_isoflop
from ladder.fit.laws import Law, first_row, fit_once, support
from ladder.fit.predict import predict
from ladder.fit.runs import FitError, Runs, budgets

EXTRAPOLATION_RESAMPLES = 400  # at most this many resamples for the prediction interval


def _size(law: Law, runs: Runs) -> np.ndarray:
    """What "largest" means for the extrapolation check: compute, or x when C is unknown."""
    if runs.C is not None:
        return runs.C
    return runs.var(law.x if isinstance(law.x, str) else law.x[0])


def _sel(a: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if a is None else a[idx]


def _predict_log(law: Law, runs: Runs, params: dict, idx: np.ndarray) -> np.ndarray:
    """ln of the predicted loss at runs idx, for one (floats) or K (arrays) parameter sets."""
    entry = {"law": law.law, "x": law.x, "offset": law.offset}
    p = {k: np.atleast_1d(np.asarray(v, float))[:, None] for k, v in params.items() if k[0] != "_"}
    pred = predict(entry, p, N=_sel(runs.N, idx), D=_sel(runs.D, idx), C=_sel(runs.C, idx))
    return np.log(pred)


def extrapolation(
    law: Law, runs: Runs, tol: float, bootstrap: int = 0, seed: int = 0, isoflop=None
) -> dict:
    """Refit without the largest-compute run(s) (every run within a factor 1 + tol of the
    largest compute: the top budget), predict them, and say whether each lies inside its
    95% prediction interval (bootstrap > 0). `isoflop`: its fit_isoflop arguments."""
    if law.law == "isoflop":
        return _isoflop_extrapolation(runs, tol, **(isoflop or {}))
    held = _size(law, runs) >= _size(law, runs).max() / (1 + tol)
    rest = runs.subset(~held)
    reason = support(law, rest, tol)
    if reason is not None:
        return {"skipped": f"without the largest-compute run(s): {reason}"}
    params, _, state = fit_once(law, rest, np.ones((1, len(rest))), None, tol)
    idx = np.flatnonzero(held)
    if law.law == "frontier":  # the frontier predicts the best run at that compute
        idx = idx[[np.argmin(runs.loss[idx])]]
    fitted = first_row(params)
    pred = np.exp(_predict_log(law, runs, fitted, idx)[0])
    out = _held_out("loss_nats", [runs.ids[i] for i in idx], runs.loss[idx], pred)
    out |= {"n_fit": len(rest), "params": fitted}
    if bootstrap > 0:
        B = min(bootstrap, EXTRAPOLATION_RESAMPLES)
        interval = _loss_interval(law, rest, runs, idx, fitted, state, B, seed, tol)
        if interval is not None:
            out = _with_interval(out, *interval)
    return out


def _loss_interval(law, rest: Runs, runs: Runs, idx, fitted, state, B, seed, tol):
    """(lo, hi, resamples used): the bootstrap prediction interval of the held-out losses."""
    counts = resample(law, rest, B, seed, stream="/extrapolation")
    params, usable = refit(law, rest, counts, state, tol)
    if params is None:
        return None
    lp = _predict_log(law, runs, {k: params[k] for k in law.names}, idx)  # (K, h)
    fit_idx = np.arange(len(rest))
    if law.law == "frontier":
        fit_idx = np.flatnonzero(frontier_mask(rest.C, rest.loss, np.ones((1, len(rest))))[0])
    r = np.log(rest.loss[fit_idx]) - _predict_log(law, rest, fitted, fit_idx)[0]
    n, p = len(r), len(law.names)
    r = r * math.sqrt(n / (n - p)) if n > p else np.zeros(1)
    draws = np.random.default_rng([seed, len(rest), 7]).integers(0, len(r), lp.shape)
    sim = lp + r[draws]
    sim = sim[np.isfinite(sim).all(1)]
    if len(sim) < 2:
        return None
    lo, hi = np.exp(np.percentile(sim, [2.5, 97.5], axis=0))
    return lo, hi, len(sim)


def _held_out(quantity: str, names: list[str], observed, predicted) -> dict:
    observed, predicted = np.asarray(observed, float), np.asarray(predicted, float)
    rel = (predicted - observed) / observed
    return {
        "quantity": quantity,
        "held_out": [
            {"run": i, "observed": float(o), "predicted": float(p), "rel_error": float(e)}
            for i, o, p, e in zip(names, observed, predicted, rel, strict=True)
        ],
        "max_abs_rel_error": float(np.abs(rel).max()),
        "n_held_out": len(names),
        "inside": None,
    }


def _with_interval(out: dict, lo, hi, used: int) -> dict:
    for h, a, b in zip(out["held_out"], lo, hi, strict=True):
        h.update({"lo": float(a), "hi": float(b), "inside": bool(a <= h["observed"] <= b)})
    n_inside = sum(h["inside"] for h in out["held_out"])
    out |= {"inside": n_inside == len(out["held_out"]), "n_inside": n_inside}
    out["interval"] = {"level": 0.95, "resamples": used}
    return out


def _isoflop_extrapolation(runs: Runs, tol: float, **kwargs) -> dict:
    """Refit without the largest budget; predict its N_opt and D_opt from the smaller ones."""
    labels = budgets(runs.C, tol)
    top = int(labels.max())
    full = kwargs.pop("full")
    mine = [m for m in full.used if m["profile"].label == top]
    if len(full.used) < 3 or not mine:
        return {"skipped": "needs 3 budgets with an interior loss minimum, the largest among them"}
    try:
        part = fit_isoflop(runs, tol, exclude=(top,), **kwargs)
    except FitError as e:
        return {"skipped": f"without the largest budget: {e}"}
    m = mine[0]
    lC = m["profile"].lC
    p = part.params
    observed = np.exp([m["t_opt"], m["lD_opt"]])
    predicted = np.array([p["k_N"] * math.exp(p["a"] * lC), p["k_D"] * math.exp(p["b"] * lC)])
    C = math.exp(lC)
    names = [f"N_opt at C={C:.3g}", f"D_opt at C={C:.3g}"]
    out = _held_out("N_opt, D_opt", names, observed, predicted)
    out |= {"n_fit": sum(len(q["profile"].members) for q in part.used), "params": p}
    if part.draws:
        k = min(len(part.draws["a"]), len(m["t_draws"]))
        sim = []
        for slope, scale, own, centre in (
            ("a", "k_N", m["t_draws"], m["t_opt"]),
            ("b", "k_D", m["lD_draws"], m["lD_opt"]),
        ):
            pred = np.log(part.draws[scale][:k]) + part.draws[slope][:k] * lC
            sim.append(pred + own[:k] - centre)
        lo, hi = np.exp(np.percentile(np.stack(sim, 1), [2.5, 97.5], axis=0))
        out = _with_interval(out, lo, hi, k)
    return out
