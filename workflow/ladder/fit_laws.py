"""The loss laws: each one's model of log L, its batched estimator, and `predict`.

    power       L = E + A x^-alpha (or k x^-alpha), x one of N, D, C   fit_power
    chinchilla  L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022)    fit_chinchilla
    kaplan      L = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D        fit_kaplan

Every estimator takes weights w of shape (K, n), one row per problem (the full data, or a
bootstrap resample as per-run counts), and returns parameters as arrays over the K rows. The
frontier law is the power law in C on the runs ladder.fit_optimal.frontier_mask picks.
"""

from __future__ import annotations

import math

import numpy as np

from ladder.fit_runs import VARIABLES, FitError
from ladder.fit_solvers import HUBER_DELTA, minimise, rho

LAWS = ("power", "chinchilla", "kaplan", "isoflop", "frontier")  # the --law choices


# --------------------------------------------------------------------------------------------
# power law in one variable: L = E + A x^-alpha, or L = k x^-alpha without the offset


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


# --------------------------------------------------------------------------------------------
# Chinchilla, Hoffmann et al. 2022 Approach 3: L = E + A/N^alpha + B/D^beta


class _ChinchillaModel:
    """log L = LSE(a - alpha x, b - beta y, e), x and y the centred log N and log D.

    theta = (a', alpha, b', beta, e) with a' = a - alpha mean(log N) (and b' likewise): the
    same function as Hoffmann's, reparametrised so that a and alpha are not nearly collinear.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def _softmax(self, th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z1 = th[:, 0:1] - th[:, 1:2] * self.x
        z2 = th[:, 2:3] - th[:, 3:4] * self.y
        z3 = np.broadcast_to(th[:, 4:5], z1.shape)
        m = np.maximum(np.maximum(z1, z2), z3)
        e1, e2, e3 = np.exp(z1 - m), np.exp(z2 - m), np.exp(z3 - m)
        total = e1 + e2 + e3
        return m + np.log(total), np.stack([e1 / total, e2 / total, e3 / total])

    def _jac(self, s: np.ndarray) -> np.ndarray:
        return np.stack([s[0], -s[0] * self.x, s[1], -s[1] * self.y, s[2]], axis=-1)

    def __call__(self, th: np.ndarray, jac: bool = False):
        f, s = self._softmax(th)
        return (f, self._jac(s)) if jac else f

    def hess(self, th: np.ndarray, c: np.ndarray) -> np.ndarray:
        """sum_i c_i * Hessian of f_i. f is a log-sum-exp of affine maps, so its Hessian is the
        covariance of their (constant) gradients under the softmax weights."""
        _, s = self._softmax(th)
        x, y = self.x, self.y
        H = np.zeros((len(th), 5, 5))
        c1, c2 = c * s[0], c * s[1]
        H[:, 0, 0], H[:, 1, 1] = c1.sum(1), (c1 * x * x).sum(1)
        H[:, 0, 1] = H[:, 1, 0] = -(c1 * x).sum(1)
        H[:, 2, 2], H[:, 3, 3] = c2.sum(1), (c2 * y * y).sum(1)
        H[:, 2, 3] = H[:, 3, 2] = -(c2 * y).sum(1)
        H[:, 4, 4] = (c * s[2]).sum(1)
        J = self._jac(s)
        return H - np.matmul(J.transpose(0, 2, 1) * c[:, None, :], J)


def chinchilla_grid() -> np.ndarray:
    """Hoffmann et al.'s 4,500 starts as rows (a, alpha, b, beta, e), in their (uncentred) units:
    alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}."""
    exps, ab, e = np.arange(0, 2.01, 0.5), np.arange(0, 25.01, 5.0), np.arange(-1, 1.01, 0.5)
    grid = np.meshgrid(ab, exps, ab, exps, e, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def chinchilla_objective(
    theta: np.ndarray, N: np.ndarray, D: np.ndarray, L: np.ndarray
) -> tuple[float, np.ndarray]:
    """Hoffmann's objective sum_i Huber_1e-3(LSE(a - alpha log N, b - beta log D, e) - log L)
    and its gradient at one theta = (a, alpha, b, beta, e) in his units: what a plain loop of
    scipy L-BFGS minimises from each start (the reference in the benchmark and the tests)."""
    model = _ChinchillaModel(np.log(N), np.log(D))
    f, J = model(np.atleast_2d(np.asarray(theta, dtype=float)), jac=True)
    r = f[0] - np.log(L)
    psi = np.clip(r, -HUBER_DELTA, HUBER_DELTA)
    return float(rho(r, "huber").sum()), psi @ J[0]


# pruning schedule for the 4,500 starts: (LM iterations for every start left, starts kept).
# On six data sets (IsoFLOP and random designs, 0.5-3% noise, alpha < = > beta) it matched a
# search that runs every start to convergence to 1e-15; benchmarks/fit_speed.py checks it
# against the plain L-BFGS loop over all starts.
CHINCHILLA_PRUNE = ((1, 1000), (10, 50))


def _chinchilla_minimise(model, theta, ly, w, polish_iter: int = 60):
    theta, F = minimise(model, theta, ly, w, "huber", max_iter=200, rtol=1e-10)
    # IRLS converges linearly; exact Newton finishes the job quadratically
    return minimise(model, theta, ly, w, "huber", max_iter=polish_iter, exact=True, rtol=1e-16)


def _shift(theta: np.ndarray, x0: float, y0: float, sign: float) -> np.ndarray:
    """Between Hoffmann's (a, alpha, b, beta, e) (sign -1 centres) and centred theta (+1)."""
    out = np.array(theta, dtype=float, ndmin=2)
    out[:, 0] += sign * out[:, 1] * x0
    out[:, 2] += sign * out[:, 3] * y0
    return out


def fit_chinchilla(
    N: np.ndarray, D: np.ndarray, L: np.ndarray, w: np.ndarray, warm: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Approach 3 for each row of weights w (K, n).

    Without `warm`, for a single row of weights, the whole 4,500-start grid is searched: every
    start takes a few vectorised LM steps, the best are kept and stepped further, and the
    survivors converge and are polished with exact Newton. With `warm` (rows of Hoffmann's
    (a, alpha, b, beta, e), e.g. the distinct minima of the full-data fit) every row of w
    starts from each of them instead: a bootstrap resample moves the optimum a little, it does
    not create new basins. Returns (params, objective, up to 3 distinct minima found).
    """
    lx, lyd, ly = np.log(N), np.log(D), np.log(L)
    x0, y0 = lx.mean(), lyd.mean()
    model = _ChinchillaModel(lx - x0, lyd - y0)
    if warm is None:
        theta = _shift(chinchilla_grid(), x0, y0, -1.0)
        for iters, kept in CHINCHILLA_PRUNE:
            theta, F = minimise(model, theta, ly, w, "huber", max_iter=iters)
            keep = np.argsort(F, kind="stable")[:kept]
            theta, F = theta[keep], F[keep]
        theta, F = _chinchilla_minimise(model, theta, ly, w)
        order = np.argsort(F, kind="stable")
        minima: list[np.ndarray] = []
        for t in theta[order]:
            if all(np.abs(t - m).max() > 1e-3 for m in minima):
                minima.append(t)
        best, F = theta[order[:1]], F[order[:1]]
        found = np.array(minima[:3])
    else:
        best, F = None, None
        for start in _shift(warm, x0, y0, -1.0):
            t, f = _chinchilla_minimise(model, np.tile(start, (len(w), 1)), ly, w)
            if best is None:
                best, F = t, f
            else:
                better = f < F
                best[better], F[better] = t[better], f[better]
        found = _shift(warm, x0, y0, -1.0)
    a, al, b, be, e = _shift(best, x0, y0, 1.0).T
    with np.errstate(over="ignore", invalid="ignore"):
        params = {
            "E": np.exp(e),
            "A": np.exp(a),
            "B": np.exp(b),
            "alpha": al,
            "beta": be,
            "a": be / (al + be),
            "b": al / (al + be),
        }
    return params, F, _shift(found, x0, y0, 1.0)


# --------------------------------------------------------------------------------------------
# Kaplan et al. 2020 eq. 1.5: L = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D


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


# --------------------------------------------------------------------------------------------
# prediction from a fitted entry (or a bootstrap sample of its parameters)


def _parse_key(key: str) -> dict:
    if key.startswith("power_"):
        rest = key.removeprefix("power_")
        x = rest.removesuffix("_no_offset")
        if x in VARIABLES:
            return {"law": "power", "x": x, "offset": not rest.endswith("_no_offset")}
    elif key in LAWS:
        return {"law": key}
    raise FitError(f"unknown law key '{key}'")


def _as_log(v, name: str) -> np.ndarray:
    if v is None:
        raise FitError(f"this law needs {name}=")
    return np.log(np.asarray(v, dtype=float))


def predict(law: str | dict, params: dict | None = None, N=None, D=None, C=None) -> np.ndarray:
    """Predicted loss (nats) of a fitted law at N (params), D (tokens) and/or C (FLOPs).

    `law` is a fits.json entry or its key; `params` defaults to the entry's "params" (pass one of
    its "samples" to draw a bootstrap band). Only the variables the law uses are read. Computed
    in log space, so exponents far outside the data do not overflow.
    """
    entry = _parse_key(law) if isinstance(law, str) else law
    if "skipped" in entry:
        raise FitError(f"cannot predict from a skipped law: {entry['skipped']}")
    p = params if params is not None else entry.get("params")
    if p is None:
        raise FitError("predict needs params (a law key alone has none)")
    kind = entry["law"]
    with np.errstate(divide="ignore", over="ignore"):
        if kind in ("power", "frontier"):
            s = "C" if kind == "frontier" else VARIABLES[entry["x"]]
            lv = _as_log({"N": N, "D": D, "C": C}[s], s)
            if "k" in p:
                return np.exp(np.log(p["k"]) - p["alpha"] * lv)
            return np.exp(np.logaddexp(np.log(p["E"]), np.log(p["A"]) - p["alpha"] * lv))
        if kind == "chinchilla":
            lN, lD = _as_log(N, "N"), _as_log(D, "D")
            terms = np.broadcast_arrays(
                np.log(p["A"]) - p["alpha"] * lN, np.log(p["B"]) - p["beta"] * lD, np.log(p["E"])
            )
            return np.exp(np.logaddexp.reduce(np.stack(terms), axis=0))
        if kind == "kaplan":
            lN, lD = _as_log(N, "N"), _as_log(D, "D")
            aN, aD = p["alpha_N"], p["alpha_D"]
            lse = np.logaddexp(aN / aD * (np.log(p["N_c"]) - lN), np.log(p["D_c"]) - lD)
            return np.exp(aD * lse)
    raise FitError(f"law '{kind}' predicts an allocation, not a loss: use optimal_allocation")
