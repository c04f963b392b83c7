"""The power law in one variable: L = E + A x^-alpha, or L = k x^-alpha without the offset.

x is N, D or C (the frontier law is this law in C on the frontier runs). `fit_power` is the
batched estimator (least squares in log L), `power_loss` the formula `predict` evaluates.
"""

from __future__ import annotations

import math

import numpy as np

from ladder.fit.solver import minimise


class _PowerModel:
    """log L = log(E + exp(la - alpha * u)), u = log x - mean(log x); theta = (E, la, alpha)."""

    def __init__(self, u: np.ndarray):
        self.u = u

    def __call__(self, th: np.ndarray, jac: bool = False):
        E, la, al = th[:, 0:1], th[:, 1:2], th[:, 2:3]
        z = la - al * self.u
        with np.errstate(divide="ignore"):
            f = np.logaddexp(np.log(E), z)
        if not jac:
            return f
        share = np.exp(z - f)  # A x^-alpha / L
        J = np.stack([np.exp(-f), share, -self.u * share], axis=-1)
        return f, J


POWER_ALPHA_MAX = 10.0


def _power_starts(u: np.ndarray, L: np.ndarray, w: np.ndarray, emax: np.ndarray) -> np.ndarray:
    """Variable projection over a grid of alpha: for each alpha, (E, A) is a 2x2 weighted least
    squares in linear space (weights 1/L^2 make it the first-order log-space problem), clipped to
    0 <= E <= emax. The best grid point per row, scored in log space, starts the polish; this is
    what keeps 5-point fits from wandering off to E < 0 or E > min(L)."""
    alphas = np.geomspace(0.01, 4.0, 40)
    v = np.exp(-alphas[:, None] * u[None, :])  # (G, n)
    out = np.empty((w.shape[0], 3))
    chunk = max(1, 2_000_000 // (len(alphas) * len(u)))
    for s in range(0, w.shape[0], chunk):
        q = w[s : s + chunk] / L**2
        S1, SL = q.sum(1)[:, None], (q * L).sum(1)[:, None]
        Sv, Svv, SLv = q @ v.T, q @ (v * v).T, (q * L) @ v.T
        det = S1 * Svv - Sv**2
        with np.errstate(divide="ignore", invalid="ignore"):
            E = (SL * Svv - Sv * SLv) / det
        E = np.clip(np.nan_to_num(E, nan=0.0), 0.0, emax[s : s + chunk, None])
        A = np.maximum((SLv - E * Sv) / Svv, 1e-12 * L.min())
        pred = E[..., None] + A[..., None] * v[None]
        obj = (w[s : s + chunk, None, :] * (np.log(L) - np.log(pred)) ** 2).sum(-1)
        best = obj.argmin(1)
        rows = np.arange(len(best))
        out[s : s + chunk] = np.stack([E[rows, best], np.log(A[rows, best]), alphas[best]], 1)
    return out


def _emax(L: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Upper bound on E per row: just below the smallest loss the row actually uses."""
    return np.where(w > 0, L, np.inf).min(1) * (1 - 1e-6)


def fit_power(
    x: np.ndarray, L: np.ndarray, w: np.ndarray, offset: bool = True, warm: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fit the power law in x for every row of weights w (K, n). Returns (params, objective)
    where objective is the weighted sum of squared log residuals."""
    lx, ly = np.log(x), np.log(L)
    x0 = lx.mean()
    u = lx - x0
    if not offset:
        # ordinary least squares of log L on log x: exact on noiseless data, closed form
        sw = w.sum(1)
        mu, my = (w @ u) / sw, (w @ ly) / sw
        du, dy = u[None] - mu[:, None], ly[None] - my[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (w * du * dy).sum(1) / (w * du * du).sum(1)
        logk = my - slope * (mu + x0)  # the fitted line at log x = 0 (u = -x0)
        resid = ly[None] - (my[:, None] + slope[:, None] * du)
        return {"k": np.exp(logk), "alpha": -slope}, (w * resid**2).sum(1)
    emax = _emax(L, w)
    theta = _power_starts(u, L, w, emax)
    lower = np.array([0.0, -np.inf, 0.0])
    upper = np.stack([emax, np.full_like(emax, np.inf), np.full_like(emax, POWER_ALPHA_MAX)], 1)
    model = _PowerModel(u)
    theta, F = minimise(model, theta, ly, w, "l2", lower, upper, max_iter=200)
    if warm is not None:
        # bootstrap: also try the full-data optimum; keep whichever row-wise minimum is lower
        t2, F2 = minimise(model, np.clip(warm, lower, upper), ly, w, "l2", lower, upper, 200)
        better = F2 < F
        theta[better], F[better] = t2[better], F2[better]
    E, la, al = theta.T
    with np.errstate(over="ignore"):
        A = np.exp(la + al * x0)
    return {"E": E, "A": A, "alpha": al, "_theta": theta}, 2 * F


def power_warnings(params: dict, L: np.ndarray, symbol: str) -> list[str]:
    out = []
    if params["E"] <= 1e-9 * L.min():
        out.append("E is at its bound 0: the data show no irreducible loss (try --no-offset)")
    elif params["E"] >= L.min() * (1 - 2e-6):
        out.append("E is at its bound min(loss): the offset is not identified by these runs")
    if params["alpha"] >= POWER_ALPHA_MAX * (1 - 1e-9):
        out.append(f"alpha is at its bound {POWER_ALPHA_MAX}: loss barely depends on {symbol}")
    if not math.isfinite(params["A"]):
        out.append("A overflows a float; use predict() which works in log space")
    return out


def power_loss(p: dict, lv: np.ndarray) -> np.ndarray:
    """L at log x = lv, in log space: from (E, A, alpha) or, without the offset, (k, alpha)."""
    if "k" in p:
        return np.exp(np.log(p["k"]) - p["alpha"] * lv)
    return np.exp(np.logaddexp(np.log(p["E"]), np.log(p["A"]) - p["alpha"] * lv))
