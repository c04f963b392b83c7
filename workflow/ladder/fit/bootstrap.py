"""Bootstrap intervals for the loss laws: B resamples of the runs, refitted as one batch, and
95% percentile intervals from them with expanded tails (Hesterberg 2015's "expanded percentile"
interval, generalised to p parameters), plus N_SAMPLES parameter vectors for the report's
bands. (isoflop's interval comes from noise draws: ladder.fit.isoflop.)
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from scipy.special import ndtr, stdtrit

from ladder.fit.frontier import on_frontier
from ladder.fit.laws import Law, fit_once, support
from ladder.fit.runs import Runs

N_SAMPLES = 200  # bootstrap parameter vectors kept in fits.json for the report's bands


def _rng(seed: int, key: str) -> np.random.Generator:
    # one stream per law, so a law's intervals do not depend on which other laws were fitted
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def resample(law: Law, runs: Runs, B: int, seed: int, stream: str = "") -> np.ndarray:
    """(B, n) bootstrap counts: the runs resampled with replacement."""
    rng = _rng(seed, law.key + stream)
    n = len(runs)
    counts = np.zeros((B, n))
    draws = rng.integers(0, n, (B, n))
    np.add.at(counts, (np.arange(B)[:, None], draws), 1.0)
    return counts


def refit(law: Law, runs: Runs, counts: np.ndarray, state, tol: float):
    """The law refitted to each resample that still supports it: (params, which rows)."""
    # a resample that no longer supports the law (say, 2 distinct sizes left) has no fit
    usable = np.array([support(law, runs.subset(c > 0), tol) is None for c in counts])
    if not usable.any():
        return None, usable
    params, _, _ = fit_once(law, runs, counts[usable], state, tol)
    return params, usable


def expanded_tail(n: int, p: int, level: float = 0.95) -> float:
    """Tail probability for a percentile interval with expanded tails. Hesterberg (2015, "What
    teachers should know about the bootstrap", The American Statistician 69(4)) expands the
    percentile interval of a mean to the quantiles at z = sqrt(n / (n - 1)) t_{n-1}, because
    plain percentiles are too narrow in small samples (the bootstrap spread is a plug-in
    estimate, and normal rather than t). Here the same expansion with n - p degrees of freedom
    for a p-parameter fit -- our generalisation, not his: z = sqrt(n / (n - p)) t_{n-p}. At
    n = 15, p = 2 that is the 1.0 / 99.0 percentiles instead of 2.5 / 97.5; as n grows it tends
    to the plain percentile interval; with no residual degrees of freedom it is the full range."""
    if n <= p:
        return 0.0
    z = math.sqrt(n / (n - p)) * float(stdtrit(n - p, 0.5 + level / 2))
    return float(ndtr(-z))


def _n_effective(law: Law, runs: Runs) -> int:
    """Observations behind the fit: runs, or frontier runs."""
    if law.law == "frontier":
        return int(on_frontier(runs).sum())
    return len(runs)


def intervals(law: Law, runs: Runs, state, B: int, seed: int, tol: float) -> dict:
    """Percentile intervals (tails expanded) from B resamples of the runs, refitted as one
    batch."""
    params, _ = refit(law, runs, resample(law, runs, B, seed), state, tol)
    names = law.names + list(law.derived)
    table = np.empty((0, len(names)))
    if params is not None:
        table = np.stack([params[name] for name in names], 1)
        table = table[np.isfinite(table).all(1)]
    ci = {}
    if len(table) >= 2:
        tail = 100 * expanded_tail(_n_effective(law, runs), len(law.names))
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
