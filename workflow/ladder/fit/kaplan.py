"""Kaplan et al. 2020 eq. 1.5: L = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D.

The formula in log space (`kaplan_loss`) and the batched least-squares estimator `fit_kaplan`.
"""

from __future__ import annotations

import math

import numpy as np

from ladder.fit.solver import minimise


class _KaplanModel:
    """log L = alpha_D LSE(z1 / alpha_D, z2 / alpha_D), z1 = c_N - alpha_N x, z2 = c_D - alpha_D y.

    theta = (c_N, alpha_N, c_D, alpha_D), x and y the centred log N and log D. c_N is the log
    loss of the D -> infinity limit at the mean N, which the data pin down, whereas log N_c
    (c_N / alpha_N, typically far outside the data) is nearly collinear with alpha_N.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def __call__(self, th: np.ndarray, jac: bool = False):
        t = th[:, 3:4]
        z1 = th[:, 0:1] - th[:, 1:2] * self.x
        z2 = th[:, 2:3] - t * self.y
        q1, q2 = z1 / t, z2 / t
        m = np.maximum(q1, q2)
        e1, e2 = np.exp(q1 - m), np.exp(q2 - m)
        lse = m + np.log(e1 + e2)
        if not jac:
            return t * lse
        s1 = e1 / (e1 + e2)
        s2 = 1.0 - s1
        d_alpha_D = lse - (s1 * z1 + s2 * z2) / t - s2 * self.y
        return t * lse, np.stack([s1, -s1 * self.x, s2, d_alpha_D], axis=-1)


KAPLAN_ALPHA_BOUNDS = (1e-3, 5.0)


def fit_kaplan(
    N: np.ndarray, D: np.ndarray, L: np.ndarray, w: np.ndarray, warm: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Least squares in log L from 75 starts (exponents 0.05-0.8, either term dominant or both
    equal at the data's centre), or from `warm` (the full-data optimum) for the bootstrap."""
    lx, lyd, ly = np.log(N), np.log(D), np.log(L)
    x0, y0 = lx.mean(), lyd.mean()
    model = _KaplanModel(lx - x0, lyd - y0)
    lo, hi = KAPLAN_ALPHA_BOUNDS
    lower = np.array([-np.inf, lo, -np.inf, lo])
    upper = np.array([np.inf, hi, np.inf, hi])
    if warm is None:
        mean = float((w[0] * ly).sum() / w[0].sum())
        starts = []
        for aN in (0.05, 0.1, 0.2, 0.4, 0.8):
            for aD in (0.05, 0.1, 0.2, 0.4, 0.8):
                for dN, dD in ((-aD * math.log(2),) * 2, (0.0, -3 * aD), (-3 * aD, 0.0)):
                    starts.append([mean + dN, aN, mean + dD, aD])
        theta, F = minimise(model, np.array(starts), ly, w, "l2", lower, upper, max_iter=300)
        best = np.argsort(F, kind="stable")[:1]
        theta, F = theta[best], F[best]
    else:
        theta, F = minimise(model, np.tile(warm, (len(w), 1)), ly, w, "l2", lower, upper, 300)
    cN, aN, cD, aD = theta.T
    with np.errstate(over="ignore"):
        params = {
            "N_c": np.exp(cN / aN + x0),
            "D_c": np.exp(cD / aD + y0),
            "alpha_N": aN,
            "alpha_D": aD,
        }
    return params, 2 * F, theta[0]


def kaplan_loss(p: dict, lN: np.ndarray, lD: np.ndarray) -> np.ndarray:
    """L at log N = lN and log D = lD, in log space."""
    aN, aD = p["alpha_N"], p["alpha_D"]
    lse = np.logaddexp(aN / aD * (np.log(p["N_c"]) - lN), np.log(p["D_c"]) - lD)
    return np.exp(aD * lse)


def kaplan_warnings(params: dict) -> list[str]:
    lo, hi = KAPLAN_ALPHA_BOUNDS
    return [
        f"{name} is at its bound ({lo}, {hi})"
        for name in ("alpha_N", "alpha_D")
        if not lo * (1 + 1e-9) < params[name] < hi * (1 - 1e-9)
    ]
