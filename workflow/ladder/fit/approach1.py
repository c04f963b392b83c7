"""Hoffmann et al. 2022's Approach 1 on whole curves ("Training Compute-Optimal Large
Language Models", https://arxiv.org/abs/2203.15556, §3.1): at each compute C, the lowest loss
over every run's learning curve; the model size N and tokens D of the run that reaches it;
then N_opt = k_N C^a and D_opt = k_D C^b by least squares in log-log.

As the paper does: each curve is smoothed (a centred moving average over SMOOTH_FRAC of its
points) and interpolated (linear in log C) onto GRID log-spaced compute values; a value counts
only where at least two sizes' curves reach it. Intervals: percentiles of the same fit to
bootstrap resamples of the runs. `ladder.fit.frontier` is the same idea on final losses only.

A caution the paper's design answers: the middle of a cosine run is not the loss a shorter
run would reach (its lr has not decayed), so the envelope of cosine curves is biased toward
the longest runs; WSD cooldowns or several cosine lengths per size avoid that.
"""

from __future__ import annotations

import zlib

import numpy as np

from ladder.fit.curves import Curves
from ladder.fit.runs import FitError

GRID = 1500  # compute values (Hoffmann et al. used 1500)
SMOOTH_FRAC = 0.02
FORMULA = "N_opt = k_N * C^a, D_opt = k_D * C^b on the lowest loss over all curves at each C"


def _tracks(curves: Curves) -> list[tuple[str, float, np.ndarray, np.ndarray, float]]:
    """(run, N, log C, smoothed log loss, flops per token) of every run's curve."""
    out = []
    for c in curves.curves:
        if c.size is None or c.flops_per_token is None or c.batch_tokens is None:
            raise FitError(
                "approach1 needs the size, flops_per_token and batch_tokens columns "
                f"(run {c.run} lacks one; --size-col names the size)"
            )
        lC = np.log(c.flops_per_token * c.batch_tokens * c.steps)
        k = max(1, int(SMOOTH_FRAC * len(c.loss)))
        ll = np.convolve(np.log(c.loss), np.ones(k) / k, mode="same")
        edge = np.arange(len(ll))
        ll = np.where((edge < k // 2) | (edge >= len(ll) - k // 2), np.log(c.loss), ll)
        out.append((c.run, c.size, lC, ll, c.flops_per_token))
    return out


def envelope(tracks, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grid values used, N and D of the lowest curve at each)."""
    L = np.full((len(tracks), len(grid)), np.inf)
    for j, (_, _, lC, ll, _) in enumerate(tracks):
        inside = (grid >= lC[0]) & (grid <= lC[-1])
        L[j, inside] = np.interp(grid[inside], lC, ll)
    sizes = np.array([t[1] for t in tracks])
    reach = np.isfinite(L)
    by_size = np.stack([reach[sizes == n].any(0) for n in np.unique(sizes)])
    usable = by_size.sum(0) >= 2
    best = np.argmin(L, 0)[usable]
    C = np.exp(grid[usable])
    N = sizes[best]
    D = C / np.array([t[4] for t in tracks])[best]
    return C, N, D


def _lines(C: np.ndarray, N: np.ndarray, D: np.ndarray) -> dict[str, float]:
    X = np.stack([np.ones_like(C), np.log(C)], 1)
    (cN, a), (cD, b) = (np.linalg.lstsq(X, np.log(v), rcond=None)[0] for v in (N, D))
    return {"a": float(a), "b": float(b), "k_N": float(np.exp(cN)), "k_D": float(np.exp(cD))}


def fit_approach1(curves: Curves, bootstrap: int = 200, seed: int = 0) -> dict:
    """fits.json's "approach1" entry."""
    tracks = _tracks(curves)
    lo = min(t[2][0] for t in tracks)
    hi = max(t[2][-1] for t in tracks)
    grid = np.linspace(lo, hi, GRID)
    C, N, D = envelope(tracks, grid)
    if len(np.unique(N)) < 2:
        raise FitError("cannot fit approach1: fewer than 2 model sizes on the envelope")
    params = _lines(C, N, D)
    rng = np.random.default_rng([seed, zlib.crc32(b"approach1")])
    draws = []
    for _ in range(bootstrap):
        pick = [tracks[i] for i in np.unique(rng.integers(0, len(tracks), len(tracks)))]
        Cb, Nb, Db = envelope(pick, grid)
        if len(np.unique(Nb)) >= 2:
            draws.append(_lines(Cb, Nb, Db))
    ci = {}
    if len(draws) >= 2:
        for name in params:
            lo_, hi_ = np.percentile([d[name] for d in draws], [2.5, 97.5])
            ci[name] = [float(lo_), float(hi_)]
    changes = np.flatnonzero(np.diff(N) != 0)
    return {
        "law": "approach1",
        "formula": FORMULA,
        "params": params,
        "ci95": ci,
        "optimal_allocation": params,
        "n_points": int(len(C)),
        "envelope": [  # where the lowest curve changes size: enough to draw the envelope
            {"C": float(C[i]), "N": float(N[i]), "D": float(D[i])}
            for i in np.unique(np.r_[0, changes, changes + 1, len(C) - 1])
        ],
        "sizes_on_envelope": sorted({float(n) for n in N}),
        "bootstrap": {
            "resamples": bootstrap,
            "used": len(draws),
            "seed": seed,
            "method": "percentile interval (2.5, 97.5) of the lines refitted to the envelope "
            "of each resample of the runs",
        },
        "method": f"Hoffmann et al. 2022 Approach 1: curves smoothed over {SMOOTH_FRAC:.0%} of "
        f"their points, interpolated in log C onto {GRID} values; least squares in log-log",
        "warnings": list(curves.warnings),
    }
