"""Bootstrap intervals: B resamples of the runs (within each budget for isoflop), refitted as
one batch, and "expanded percentile" 95% intervals from them, plus N_SAMPLES parameter
vectors for the report's bands.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from scipy.special import ndtr, stdtrit

from ladder.fit.frontier import on_frontier
from ladder.fit.laws import Law, fit_once, support
from ladder.fit.runs import Runs, budgets

N_SAMPLES = 200  # bootstrap parameter vectors kept in fits.json for the report's bands


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


def intervals(law: Law, runs: Runs, state, B: int, seed: int, tol: float) -> dict:
    """Percentile intervals from B resamples of the runs, refitted as one batch."""
    counts = _resample(law, runs, B, seed, tol)
    # a resample that no longer supports the law (say, 2 distinct sizes left) has no fit
    usable = np.array([support(law, runs.subset(c > 0), tol) is None for c in counts])
    names = law.names + list(law.derived)
    table = np.empty((0, len(names)))
    if usable.any():
        params, _, _ = fit_once(law, runs, counts[usable], state, tol)
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
