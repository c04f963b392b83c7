"""Chinchilla, Hoffmann et al. 2022 Approach 3: L = E + A/N^alpha + B/D^beta.

The formula in log space (`chinchilla_loss`), Hoffmann's 4,500-start grid and Huber objective,
the batched estimator `fit_chinchilla`, and the closed-form compute-optimal allocation.
"""

from __future__ import annotations

import math

import numpy as np

from ladder.fit.allocation import ComputeModel, allocate, allocation_lines, compute_model
from ladder.fit.runs import Runs
from ladder.fit.solver import minimise


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


def chinchilla_loss(p: dict, lN: np.ndarray, lD: np.ndarray) -> np.ndarray:
    """L at log N = lN and log D = lD, as a log-sum-exp of the three terms."""
    terms = np.broadcast_arrays(
        np.log(p["A"]) - p["alpha"] * lN, np.log(p["B"]) - p["beta"] * lD, np.log(p["E"])
    )
    return np.exp(np.logaddexp.reduce(np.stack(terms), axis=0))


def chinchilla_warnings(params: dict, L: np.ndarray) -> list[str]:
    out = []
    if params["E"] < 1e-3 * L.min():
        out.append("E is ~0: these runs do not identify an irreducible loss")
    if min(params["alpha"], params["beta"]) <= 0:
        out.append("an exponent is <= 0: loss does not fall with N or D in these runs")
    return out


def chinchilla_allocation(p: dict, c: float = 6.0) -> dict:
    """Minimise E + A/N^alpha + B/D^beta subject to c N D = C, c constant:
    N_opt = G (C/c)^a, D_opt = (C/c)^b / G, G = (alpha A / (beta B))^(1/(alpha+beta)),
    a = beta/(alpha+beta), b = alpha/(alpha+beta) (Hoffmann et al. 2022, eq. 4). The closed
    form for C = 6ND; `chinchilla_allocation_lines` minimises under the study's own count."""
    al, be = np.asarray(p["alpha"]), np.asarray(p["beta"])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        logG = (np.log(al * p["A"]) - np.log(be * p["B"])) / (al + be)
        a, b = be / (al + be), al / (al + be)
        out = {
            "a": a,
            "b": b,
            "G": np.exp(logG),
            "k_N": np.exp(logG - a * math.log(c)),
            "k_D": np.exp(-logG - b * math.log(c)),
        }
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}


def _batched(p: dict) -> dict:
    """Parameters as (K, 1, 1) arrays, to broadcast over (K, compute values, grid)."""
    return {k: np.asarray(p[k], dtype=float).reshape(-1, 1, 1) for k in CHINCHILLA_NAMES}


CHINCHILLA_NAMES = ("E", "A", "B", "alpha", "beta")


def chinchilla_optimum(p: dict, C, model: ComputeModel) -> tuple[np.ndarray, np.ndarray]:
    """(N_opt, D_opt) at compute C minimising the law under C = c(N) N D, for one parameter
    set `p` (floats) and an array of C."""
    C = np.atleast_1d(np.asarray(C, dtype=float))
    q = _batched(p)
    lN = allocate(lambda n, d: chinchilla_loss(q, n, d), C, model, _start(q, model, np.log(C)))
    lN = lN[0]
    return np.exp(lN), C / (model.c(lN) * np.exp(lN))


def _start(q: dict, model: ComputeModel, lC: np.ndarray) -> np.ndarray:
    """The 6ND closed form at c = the study's median c: ln N to start the search from."""
    c = float(np.median(np.exp(model.lc)))
    al, be = q["alpha"][:, :, 0], q["beta"][:, :, 0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        logG = (np.log(al * q["A"][:, :, 0]) - np.log(be * q["B"][:, :, 0])) / (al + be)
        start = logG + be / (al + be) * (lC[None, :] - math.log(c))
    return np.where(np.isfinite(start), start, np.nan_to_num(start, nan=0.0))


def chinchilla_allocation_lines(
    p: dict, model: ComputeModel, C_range: tuple[float, float]
) -> dict[str, np.ndarray]:
    """For K parameter sets: a, k_N, b, k_D of the allocation lines fitted over C_range under
    the study's FLOP count, and N_opt, D_opt and tokens per parameter at its top."""
    q = _batched(p)
    return allocation_lines(
        lambda n, d: chinchilla_loss(q, n, d), model, C_range, lambda lC: _start(q, model, lC)
    )


def chinchilla_allocation_entry(runs: Runs, params: dict) -> dict:
    """A chinchilla entry's "optimal_allocation": the lines N_opt = k_N C^a, D_opt = k_D C^b
    fitted over the table's compute range, with C counted as the table counts it (c(N) of
    the runs; 6 when C was derived as 6ND), and the optimum at the table's largest C."""
    model = compute_model(runs)
    C_range = (float(runs.C.min()), float(runs.C.max()))
    lines = chinchilla_allocation_lines(params, model, C_range)
    one = {k: float(v[0]) for k, v in lines.items()}
    return {
        "a": one["a"],
        "b": one["b"],
        "k_N": one["k_N"],
        "k_D": one["k_D"],
        "C_range": list(C_range),
        "at_C_max": {
            "C": C_range[1],
            "N_opt": one["N_at_C_max"],
            "D_opt": one["D_at_C_max"],
            "tokens_per_param": one["tokens_per_param"],
        },
        "flops_per_param_token": float(np.median(np.exp(model.lc))),
        "compute": model.to_json(),
        "method": "numerical minimum of the fitted law at fixed C under the table's FLOP count",
    }
