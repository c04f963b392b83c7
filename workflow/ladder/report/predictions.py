"""What ladder.fit predicts from fits.json, for the plots and report.md: curves and their 95%
bands from `predict` on the bootstrap samples, the loss at the study's target, and
compute-optimal N and D from `optimal_allocation`. No formula of a law is written here.
"""

from __future__ import annotations

import numpy as np

from ladder import fit
from ladder.report.inputs import AXES, ReportInputs

BAND = (2.5, 97.5)  # percentiles of the bootstrap samples drawn as a 95% band
# the laws that estimate a compute-optimal allocation: key, plot colour, name in legends
ALLOCATORS = (
    ("chinchilla", "C0", "Chinchilla (approach 3)"),
    ("isoflop", "C2", "IsoFLOP"),
    ("frontier", "C3", "frontier runs"),
    ("approach1", "C4", "curves' envelope (approach 1)"),
)


def spread(entry: dict, f) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """f(params) at the entry's own parameters, with the 2.5-97.5 percentile band of f over its
    bootstrap samples (None when fits.json kept fewer than two)."""
    mid = np.asarray(f(None), dtype=float)
    samples = entry.get("samples") or []
    if len(samples) < 2:
        return mid, None, None
    with np.errstate(all="ignore"):
        draws = np.stack([np.asarray(f(s), dtype=float) for s in samples])
    lo, hi = np.nanpercentile(draws, BAND, axis=0)
    return mid, lo, hi


def band(entry: dict, **xs) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Predicted loss at xs (N=, D=, C=) with its 95% bootstrap band."""
    return spread(entry, lambda p: fit.predict(entry, p, **xs))


def optimal_loss(entry: dict, C: np.ndarray, params: dict | None = None) -> np.ndarray:
    """The loss a two-variable law reaches at compute C with its own compute-optimal N and D."""
    N, D = fit.optimal_allocation(entry, C, params)
    return fit.predict(entry, params, N=N, D=D)


def target_predictions(study: ReportInputs) -> list[dict]:
    """The predicted loss at the study's target from every law that can make it."""
    if study.target is None:
        return []
    var, value = study.target
    s, at = AXES[var][0], np.array([value])
    keys = [f"power_{var}", f"power_{var}_no_offset"] + (["frontier"] if var == "compute" else [])
    rows = []
    for key in keys:
        if (entry := study.law(key)) is not None:
            rows.append({"law": key, "how": f"at {s}", **_triple(band(entry, **{s: at}))})
    entry = study.law("chinchilla")
    if var == "compute" and entry is not None and entry.get("optimal_allocation"):
        res = spread(entry, lambda p: optimal_loss(entry, at, p))
        rows.append({"law": "chinchilla", "how": "at compute-optimal N, D", **_triple(res)})
    return rows


def _triple(res) -> dict:
    mid, lo, hi = res
    return {
        "loss": float(mid[0]),
        "lo": None if lo is None else float(lo[0]),
        "hi": None if hi is None else float(hi[0]),
    }


def allocation_band(entry: dict, C: np.ndarray) -> dict[str, tuple]:
    """N_opt and D_opt at C, each with its 95% band where the entry's samples determine one
    (chinchilla and isoflop samples do; the frontier's allocation is a fit to its runs)."""
    out = {}
    for j, name in enumerate(("N", "D")):

        def f(p, j=j):
            return fit.optimal_allocation(entry, C, p)[j]

        out[name] = (
            spread(entry, f)
            if entry["law"] in ("chinchilla", "isoflop")
            else (np.asarray(f(None), dtype=float), None, None)
        )
    return out
