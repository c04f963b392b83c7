"""Scaling-law fits: laws, estimators, bootstrap intervals and extrapolation checks.

    ladder fit RUNS.csv --law all --bootstrap 1000 --seed 0 --out fits.json

Python API (report.py and the tests use these; docs/fitting.md has the details):

    fit_table(df, laws="all", x=None, offset=True, columns=None, bootstrap=1000, seed=0,
              budget_tol=0.25) -> dict
        The object written to fits.json: {"laws": {KEY: entry}, "meta": {...}}.
    predict(law, params=None, N=None, D=None, C=None) -> np.ndarray
        Loss in nats. `law` is a fits.json entry (dict) or a key ("power_params",
        "power_compute_no_offset", "chinchilla", "kaplan", "frontier"); `params` defaults to
        the entry's own and may be one of its bootstrap "samples" (to draw bands).
    optimal_allocation(entry, C, params=None) -> (N_opt, D_opt)
        Compute-optimal model size and tokens for chinchilla, isoflop and frontier entries.
    FitError(ValueError)
        Every problem with the input; `main` prints it on one line and returns 2.

Keys of fits.json["laws"]: "power_{params,tokens,compute}" and the same with "_no_offset",
"chinchilla", "kaplan", "isoflop", "frontier". An entry is {"skipped": reason} when
`--law all` finds that the data cannot support the law, else it holds "law", "x", "formula",
"params", "ci95", "n_points", "objective", "objective_kind", "residuals_log", "rows",
"extrapolation", "optimal_allocation", "warnings", "bootstrap" and "samples".

All fits work on log loss. Every estimator is written for a batch: K problems share the runs and
differ in per-run weights (bootstrap counts) and starting points, so 1000 bootstrap refits are
one vectorised minimisation rather than 1000 calls into scipy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import ndtr, stdtrit

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, Approach 3
N_SAMPLES = 200  # bootstrap parameter vectors kept in fits.json for the report's bands
VARIABLES = {"params": "N", "tokens": "D", "compute": "C"}
LAWS = ("power", "chinchilla", "kaplan", "isoflop", "frontier")


class FitError(ValueError):
    """Bad input: the message names the problem and is shown to the user as is."""


# --------------------------------------------------------------------------------------------
# the table of runs


@dataclass
class Columns:
    """Which CSV columns hold N, D, C and the loss (defaults follow runs.csv)."""

    params: str = "params_non_embedding"
    tokens: str = "tokens"
    compute: str = "flops"
    loss: str = "loss_nats"


@dataclass
class Runs:
    """The usable runs: positive, finite arrays, one entry per run; None where no column."""

    loss: np.ndarray
    N: np.ndarray | None
    D: np.ndarray | None
    C: np.ndarray | None
    ids: list[str]
    columns: dict[str, str]  # variable -> the column it came from ("6*N*D" for derived C)
    warnings: list[str] = field(default_factory=list)
    loss_column: str = "loss_nats"

    def __len__(self) -> int:
        return len(self.loss)

    def var(self, x: str) -> np.ndarray | None:
        return {"params": self.N, "tokens": self.D, "compute": self.C}[x]

    def subset(self, keep: np.ndarray) -> Runs:
        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[keep]

        ids = [i for i, k in zip(self.ids, keep, strict=True) if k]
        return Runs(
            pick(self.loss),
            pick(self.N),
            pick(self.D),
            pick(self.C),
            ids,
            self.columns,
            list(self.warnings),
            self.loss_column,
        )


def _truthy(values: pd.Series) -> np.ndarray:
    """A `diverged` column may be bool, 0/1 or text; missing means not diverged."""
    if values.dtype == bool:
        return values.to_numpy()
    text = values.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "1.0", "yes", "y", "t"]).to_numpy()


def _names(ids: list[str], mask: np.ndarray, most: int = 10) -> str:
    picked = [i for i, m in zip(ids, mask, strict=True) if m]
    return ", ".join(picked[:most]) + (
        f", ... ({len(picked) - most} more)" if len(picked) > most else ""
    )


def load_runs(df: pd.DataFrame, columns: Columns, need: set[str]) -> Runs:
    """Validate the table and pull out the arrays the fits use.

    `need` names the variables ("params", "tokens", "compute") that must be present; the others
    are loaded when their column exists. Diverged runs and runs with a NaN (or infinite) loss are
    excluded with a warning; any other non-positive or missing value is an error, because a fit
    that silently drops runs answers a different question.
    """
    if columns.loss not in df.columns:
        raise FitError(
            f"missing loss column '{columns.loss}' (set --loss-col); "
            f"columns are: {', '.join(map(str, df.columns))}"
        )
    n_rows = len(df)
    if n_rows == 0:
        raise FitError("the table has no rows")
    ids = (
        df["rung"].astype(str).tolist()
        if "rung" in df.columns
        else [f"row {i + 1}" for i in range(n_rows)]
    )
    keep = np.ones(n_rows, dtype=bool)
    warnings: list[str] = []
    if "diverged" in df.columns:
        div = _truthy(df["diverged"])
        if div.any():
            warnings.append(f"excluded {div.sum()} diverged run(s): {_names(ids, div)}")
        keep &= ~div
    raw = df[columns.loss]
    loss = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    text = raw.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    # a NaN or +inf loss is what a diverged run leaves behind: drop it, loudly (text that is
    # not a number is left in, for column() below to report)
    bad_loss = keep & (np.isnan(loss) | (loss == np.inf)) & ~(text & np.isnan(loss))
    if bad_loss.any():
        warnings.append(f"excluded {bad_loss.sum()} run(s) with NaN loss: {_names(ids, bad_loss)}")
    keep &= ~bad_loss
    if not keep.any():
        raise FitError("no usable runs: every row is diverged or has a NaN loss")

    def column(name: str) -> np.ndarray:
        values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
        bad = keep & ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FitError(
                f"column '{name}' has {bad.sum()} non-positive, NaN or non-numeric "
                f"value(s) (first: {ids[i]} = {df[name].iloc[i]!r})"
            )
        return values[keep]

    arrays: dict[str, np.ndarray | None] = {}
    sources: dict[str, str] = {}
    for var in VARIABLES:
        name = getattr(columns, var)
        if name in df.columns:
            arrays[var], sources[var] = column(name), name
        else:
            arrays[var] = None
    arrays["loss"] = column(columns.loss)
    if arrays["compute"] is None and arrays["params"] is not None and arrays["tokens"] is not None:
        # the usual estimate, Kaplan et al. 2020 eq. 2.1: 6 FLOPs per parameter per token
        arrays["compute"], sources["compute"] = 6.0 * arrays["params"] * arrays["tokens"], "6*N*D"
    for var in sorted(need):
        if arrays[var] is None:
            flag = {"params": "--params-col", "tokens": "--tokens-col", "compute": "--compute-col"}[
                var
            ]
            name = getattr(columns, var)
            hint = " (or give params and tokens columns)" if var == "compute" else ""
            raise FitError(
                f"missing {var} column '{name}' (set {flag}{hint}); "
                f"columns are: {', '.join(map(str, df.columns))}"
            )
    return Runs(
        arrays["loss"],
        arrays["params"],
        arrays["tokens"],
        arrays["compute"],
        [i for i, k in zip(ids, keep, strict=True) if k],
        sources,
        warnings,
        columns.loss,
    )


# --------------------------------------------------------------------------------------------
# a batched Levenberg-Marquardt: K problems at once, each with its own weights and bounds


def _rho(r: np.ndarray, loss: str) -> np.ndarray:
    if loss == "l2":
        return 0.5 * r * r
    a = np.abs(r)
    return np.where(a <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))


def minimise(
    model,
    theta: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    loss: str = "l2",
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    max_iter: int = 100,
    exact: bool = False,
    rtol: float = 1e-14,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise sum_i w[k, i] * rho(model(theta[k])_i - y_i) for every row k of theta.

    `model(theta, jac=False)` returns predictions (K, n) and with jac=True also the Jacobian
    (K, n, p). loss "l2" is least squares; "huber" is Huber(HUBER_DELTA). Steps solve
    (H + lam * |H|) s = -g through a 5x5-sized eigendecomposition, so an indefinite exact Hessian
    still gives a descent step (|eigenvalues|, as in saddle-free Newton). For the Huber loss the
    default H is the IRLS majoriser sum w psi(r)/r J J^T, robust far from the optimum; exact=True
    adds the model's curvature (model.hess) for quadratic convergence when polishing. Variables
    at a bound whose gradient points outward are held fixed (a projected Newton step).
    Returns (theta, objective), both per row.
    """
    theta = np.array(theta, dtype=float)
    K, p = theta.shape
    n = y.shape[-1]
    w = np.broadcast_to(w, (K, n))
    lower = np.broadcast_to(-np.inf if lower is None else lower, (K, p))
    upper = np.broadcast_to(np.inf if upper is None else upper, (K, p))
    theta = np.clip(theta, lower, upper)

    def evaluate(th: np.ndarray, ww: np.ndarray):
        # predictions and Jacobian together: a trial that is accepted needs no recomputation
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            f, J = model(th, jac=True)
            F = (ww * _rho(f - y, loss)).sum(1)
        return f, J, np.where(np.isfinite(F), F, np.inf)

    f_all, J_all, F = evaluate(theta, w)
    lam = np.full(K, 1e-3)
    active = np.isfinite(F)
    eye = np.eye(p, dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        every = idx.size == K  # plain views, no copies of the (K, n, p) Jacobian
        pick = slice(None) if every else idx
        th, ww, lo, hi = theta[pick], w[pick], lower[pick], upper[pick]
        f, J = f_all[pick], J_all[pick]
        r = f - y
        if loss == "l2":
            psi, curv = r, ww
        else:
            psi = np.clip(r, -HUBER_DELTA, HUBER_DELTA)
            inside = np.abs(r) <= HUBER_DELTA
            if exact:
                curv = ww * inside
            else:
                curv = ww * np.where(inside, 1.0, HUBER_DELTA / np.maximum(np.abs(r), 1e-300))
        g = np.einsum("kn,knp->kp", ww * psi, J)
        H = np.matmul(J.transpose(0, 2, 1) * curv[:, None, :], J)
        if exact and hasattr(model, "hess"):
            H = H + model.hess(th, ww * psi)
        frozen = ((th <= lo) & (g > 0)) | ((th >= hi) & (g < 0))
        g = np.where(frozen, 0.0, g)
        H = np.where(frozen[:, :, None] | frozen[:, None, :], 0.0, H)
        H = np.where(frozen[:, :, None] & eye, 1.0, H)
        bad = ~np.isfinite(H).all((1, 2)) | ~np.isfinite(g).all(1)
        H[bad], g[bad] = np.eye(p), 0.0
        ev, V = np.linalg.eigh(H)
        aev = np.abs(ev)
        scale = np.maximum(aev.max(1, keepdims=True), 1e-300)
        gv = np.einsum("kpq,kp->kq", V, g)
        # Newton decrement with the undamped |H|: below rtol * F the row has converged
        decrement = (gv * gv / np.maximum(aev, 1e-12 * scale)).sum(1)
        done = (decrement <= rtol * F[idx] + 1e-300) | bad
        step = -np.einsum("kpq,kq->kp", V, gv / (aev + lam[idx, None] * scale + 1e-15 * scale))
        trial = np.clip(th + step, lo, hi)
        f_new, J_new, F_new = evaluate(trial, ww)
        ok = (F_new < F[idx]) & ~done
        theta[idx[ok]], F[idx[ok]] = trial[ok], F_new[ok]
        f_all[idx[ok]], J_all[idx[ok]] = f_new[ok], J_new[ok]
        lam[idx] = np.where(ok, np.maximum(lam[idx] / 4, 1e-12), lam[idx] * 4)
        # a row that cannot decrease even with tiny steps is at its (numerical) minimum
        done |= ~ok & (lam[idx] > 1e12)
        active[idx[done]] = False
    return theta, F


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


def _power_warnings(params: dict, L: np.ndarray, symbol: str) -> list[str]:
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
    return float(_rho(r, "huber").sum()), psi @ J[0]


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
# IsoFLOP profiles, Hoffmann et al. 2022 Approach 2

ISOFLOP_WINDOW_DEX = 1.0  # largest half-width (decades of N) of a budget's parabola window
ISOFLOP_MIN_SIZES = 5  # fewest model sizes in a window (when the budget has that many)


def budgets(C: np.ndarray, tol: float) -> np.ndarray:
    """Label runs by compute budget, 0 = smallest: walking up in compute, a run more than a
    factor (1 + tol) above the first run of the current budget starts the next one."""
    order = np.argsort(C, kind="stable")
    labels = np.empty(len(C), dtype=int)
    label, start = 0, C[order[0]]
    for i in order:
        if C[i] > start * (1 + tol):
            label, start = label + 1, C[i]
        labels[i] = label
    return labels


def _wlstsq(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    return np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]


def isoflop_minimum(t: np.ndarray, L: np.ndarray, lD: np.ndarray, w: np.ndarray) -> dict | None:
    """The loss minimum of one budget from a parabola in t = ln N fitted around it.

    The true profile E + A N^-alpha + B (C/cN)^-beta is asymmetric in ln N: relative to its
    curvature its cubic term is (beta - alpha)/3 per unit ln N, so a parabola fitted to a wide
    sweep that is off-centre tilts towards the far side, by an amount that changes from budget
    to budget and so biases the exponent a. The window here is therefore symmetric about the
    current vertex estimate -- as wide as the sweep allows on the nearer side, at most
    ISOFLOP_WINDOW_DEX decades, at least ISOFLOP_MIN_SIZES sizes -- and is re-centred until it
    stops changing. What remains is a shift of order (beta - alpha)/3 * 0.3 h^2 that is the same
    for every budget of equal window h, so it moves k_N but not a. Returns None when there is
    no minimum (fewer than 3 sizes, or a parabola that opens downward).
    """
    use = w > 0
    t, L, lD, w = t[use], L[use], lD[use], w[use]
    sizes = np.unique(t)
    if len(sizes) < 3:
        return None
    need = min(ISOFLOP_MIN_SIZES, len(sizes))
    centre, window, coef = t[np.argmin(L)], None, None
    for _ in range(20):
        room = min(centre - sizes[0], sizes[-1] - centre, ISOFLOP_WINDOW_DEX * math.log(10))
        radius = max(room, np.sort(np.abs(sizes - centre))[need - 1])
        sel = np.abs(t - centre) <= radius * (1 + 1e-12) + 1e-12
        if window is not None and np.array_equal(sel, window):
            break
        window, origin = sel, centre
        tc = t[sel] - origin
        coef = _wlstsq(np.stack([np.ones_like(tc), tc, tc * tc], 1), L[sel], w[sel])
        if not coef[2] > 0:
            return None
        centre = float(np.clip(origin - coef[1] / (2 * coef[2]), sizes[0], sizes[-1]))
    v = -coef[1] / (2 * coef[2])  # vertex, relative to the window's origin
    t_opt = origin + v
    tc = t[window] - origin
    slope = _wlstsq(np.stack([np.ones_like(tc), tc], 1), lD[window], w[window])
    return {
        "t_opt": t_opt,
        "lD_opt": slope[0] + slope[1] * v,
        "loss_opt": coef[0] + coef[1] * v + coef[2] * v * v,
        "in_range": bool(sizes[0] <= t_opt <= sizes[-1]),
        "n_window": int(window.sum()),
        "N_range": (float(np.exp(sizes[0])), float(np.exp(sizes[-1]))),
    }


def fit_isoflop(
    N: np.ndarray, D: np.ndarray, C: np.ndarray, L: np.ndarray, labels: np.ndarray, w: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, list[dict]]:
    """Approach 2 for each row of weights: a minimum per budget, then log N_opt and log D_opt
    regressed on log C. Returns (params, objective, per-budget minima of the last row)."""
    lN, lD = np.log(N), np.log(D)
    groups = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    lC = np.array([np.log(C[g]).mean() for g in groups])  # a budget's compute: geometric mean
    K = len(w)
    params = {name: np.full(K, np.nan) for name in ("a", "b", "k_N", "k_D")}
    F = np.full(K, np.nan)
    minima: list[dict] = []
    for k in range(K):
        minima = []
        for g, members in enumerate(groups):
            m = isoflop_minimum(lN[members], L[members], lD[members], w[k, members])
            if m is not None:
                minima.append({"budget": g, "lC": lC[g], **m})
        if len(minima) < 2:
            continue
        x = np.array([m["lC"] for m in minima])
        X = np.stack([np.ones_like(x), x], 1)
        (cN, aN), (cD, aD) = (
            np.linalg.lstsq(X, np.array([m[key] for m in minima]), rcond=None)[0]
            for key in ("t_opt", "lD_opt")
        )
        params["a"][k], params["b"][k] = aN, aD
        with np.errstate(over="ignore"):
            params["k_N"][k], params["k_D"][k] = np.exp(cN), np.exp(cD)
        F[k] = float(((np.array([m["t_opt"] for m in minima]) - cN - aN * x) ** 2).sum())
    return params, F, minima


# --------------------------------------------------------------------------------------------
# the compute frontier, Hoffmann et al. 2022 Approach 1 (on final losses)


def frontier_mask(C: np.ndarray, L: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(K, n) mask of the lower envelope per row of weights: the runs whose loss is below that
    of every (weighted-in) run with less or equal compute."""
    order = np.lexsort((L, C))
    Ls = np.where(w[:, order] > 0, L[order], np.inf)
    before = np.concatenate(
        [np.full((len(w), 1), np.inf), np.minimum.accumulate(Ls, axis=1)[:, :-1]], axis=1
    )
    on = np.zeros_like(Ls, dtype=bool)
    on[:, order] = Ls < before
    return on


# --------------------------------------------------------------------------------------------
# the driver: one entry per law, with bootstrap intervals and the extrapolation check


@dataclass
class Law:
    """What the driver needs to know about one fitted law (one key in fits.json)."""

    key: str
    law: str
    x: str | list[str]  # the variable(s) the law is a function of
    formula: str
    names: list[str]  # its parameters (the "params" and each bootstrap sample)
    needs: tuple[str, ...]  # the columns it needs
    offset: bool = True
    derived: tuple[str, ...] = ()  # functions of the parameters that also get intervals
    objective_kind: str = "sum of squared residuals of log L"


def make_law(name: str, x: str = "params", offset: bool = True) -> Law:
    if name == "power":
        s = VARIABLES[x]
        if offset:
            return Law(
                f"power_{x}", "power", x, f"L = E + A * {s}^(-alpha)", ["E", "A", "alpha"], (x,)
            )
        return Law(
            f"power_{x}_no_offset",
            "power",
            x,
            f"L = k * {s}^(-alpha)",
            ["k", "alpha"],
            (x,),
            offset=False,
        )
    if name == "chinchilla":
        return Law(
            "chinchilla",
            "chinchilla",
            ["params", "tokens"],
            "L = E + A / N^alpha + B / D^beta",
            ["E", "A", "B", "alpha", "beta"],
            ("params", "tokens"),
            derived=("a", "b"),
            objective_kind="sum of Huber(delta=1e-3) of residuals of log L",
        )
    if name == "kaplan":
        return Law(
            "kaplan",
            "kaplan",
            ["params", "tokens"],
            "L = ((N_c / N)^(alpha_N / alpha_D) + D_c / D)^alpha_D",
            ["N_c", "D_c", "alpha_N", "alpha_D"],
            ("params", "tokens"),
        )
    if name == "isoflop":
        return Law(
            "isoflop",
            "isoflop",
            "compute",
            "N_opt = k_N * C^a, D_opt = k_D * C^b",
            ["a", "b", "k_N", "k_D"],
            ("params", "tokens", "compute"),
            objective_kind="sum of squared residuals of ln N_opt against ln C",
        )
    if name == "frontier":
        return Law(
            "frontier",
            "frontier",
            "compute",
            "L = E + A * C^(-alpha) on the lower envelope of loss over compute",
            ["E", "A", "alpha"],
            ("compute",),
        )
    raise FitError(f"unknown law '{name}'; choose from {', '.join(LAWS)} or all")


DISTINCT_RTOL = 0.05  # values closer than 5% count as one when asking "does x vary?"


def _distinct(a: np.ndarray) -> int:
    """How many distinct values a positive array has, at DISTINCT_RTOL: token counts rounded
    to whole batches differ by a hair, and a law in a variable spanning 1% is not a law."""
    la = np.sort(np.log(a))
    return int(1 + (np.diff(la) > math.log1p(DISTINCT_RTOL)).sum()) if len(la) else 0


def _usable_budgets(runs: Runs, tol: float) -> int:
    labels = budgets(runs.C, tol)
    return sum(_distinct(runs.N[labels == g]) >= 3 for g in np.unique(labels))


def support(law: Law, runs: Runs, tol: float = 0.25) -> str | None:
    """Why these runs cannot support the law, or None when they can."""
    for var in law.needs:
        if runs.var(var) is None:
            return f"no {var} column"
    n_params = len(law.names)
    if law.law in ("power", "chinchilla", "kaplan") and len(runs) < n_params:
        return f"{len(runs)} runs for {n_params} parameters"
    if law.law == "power":
        found = _distinct(runs.var(law.x))
        if found < 3:
            return f"needs at least 3 distinct {law.x} values (5% apart); found {found}"
    elif law.law in ("chinchilla", "kaplan"):
        for var in ("params", "tokens"):
            found = _distinct(runs.var(var))
            if found < 3:
                return f"needs at least 3 distinct {var} values (5% apart); found {found}"
    elif law.law == "isoflop":
        found = _usable_budgets(runs, tol)
        if found < 2:
            return (
                f"needs at least 2 compute budgets with 3+ model sizes each; found {found} "
                f"(runs within a factor {1 + tol:g} in compute share a budget: --budget-tol)"
            )
        return None
    elif law.law == "frontier":
        found = int(frontier_mask(runs.C, runs.loss, np.ones((1, len(runs)))).sum())
        if found < n_params:
            return f"{found} runs on the compute frontier for {n_params} parameters"
    return None


def _fit_once(law: Law, runs: Runs, w: np.ndarray, warm=None, tol: float = 0.25):
    """Batched fit of one law: (params as arrays over the rows of w, objective, state), where
    state warm-starts the bootstrap (and is the per-budget minima for isoflop)."""
    if law.law == "power":
        p, F = fit_power(runs.var(law.x), runs.loss, w, law.offset, warm)
        return p, F, p.get("_theta", [None])[0]
    if law.law == "chinchilla":
        return fit_chinchilla(runs.N, runs.D, runs.loss, w, warm)
    if law.law == "kaplan":
        return fit_kaplan(runs.N, runs.D, runs.loss, w, warm)
    if law.law == "isoflop":
        return fit_isoflop(runs.N, runs.D, runs.C, runs.loss, budgets(runs.C, tol), w)
    if law.law == "frontier":
        on = frontier_mask(runs.C, runs.loss, w)
        p, F = fit_power(runs.C, runs.loss, w * on, True, warm)
        return p, F, p["_theta"][0]
    raise AssertionError(law.law)


def _row(params: dict, k: int) -> dict[str, float]:
    return {name: float(v[k]) for name, v in params.items() if not name.startswith("_")}


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


def _expanded_tail(n: int, p: int, level: float = 0.95) -> float:
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


def _n_effective(law: Law, runs: Runs, minima, tol: float) -> int:
    """Observations behind the fit: runs, frontier runs, or budgets (isoflop)."""
    if law.law == "isoflop":
        return len(minima)
    if law.law == "frontier":
        return int(frontier_mask(runs.C, runs.loss, np.ones((1, len(runs)))).sum())
    return len(runs)


def _bootstrap(law: Law, runs: Runs, state, B: int, seed: int, tol: float) -> dict:
    """Percentile intervals from B resamples of the runs, refitted as one batch."""
    counts = _resample(law, runs, B, seed, tol)
    # a resample that no longer supports the law (say, 2 distinct sizes left) has no fit
    usable = np.array([support(law, runs.subset(c > 0), tol) is None for c in counts])
    names = law.names + list(law.derived)
    table = np.empty((0, len(names)))
    if usable.any():
        params, _, _ = _fit_once(law, runs, counts[usable], state, tol)
        table = np.stack([params[name] for name in names], 1)
        table = table[np.isfinite(table).all(1)]
    ci = {}
    if len(table) >= 2:
        p = 2 if law.law == "isoflop" else len(law.names)  # isoflop: 2 per regression line
        tail = 100 * _expanded_tail(_n_effective(law, runs, state, tol), p)
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


def _size(law: Law, runs: Runs) -> np.ndarray:
    """What "largest" means for the extrapolation check: compute, or x when C is unknown."""
    if runs.C is not None:
        return runs.C
    return runs.var(law.x if isinstance(law.x, str) else law.x[0])


def _sel(a: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if a is None else a[idx]


def _extrapolation(law: Law, runs: Runs, tol: float, minima: list[dict] | None = None) -> dict:
    """Refit without the largest-compute run(s) (every run within a factor 1 + tol of the
    largest compute: the top budget) and compare the refit's prediction for them."""
    if law.law == "isoflop":
        return _isoflop_extrapolation(runs, tol, minima or [])
    held = _size(law, runs) >= _size(law, runs).max() / (1 + tol)
    rest = runs.subset(~held)
    reason = support(law, rest, tol)
    if reason is not None:
        return {"skipped": f"without the largest-compute run(s): {reason}"}
    params, _, _ = _fit_once(law, rest, np.ones((1, len(rest))), None, tol)
    idx = np.flatnonzero(held)
    if law.law == "frontier":  # the frontier predicts the best run at that compute
        idx = idx[[np.argmin(runs.loss[idx])]]
    entry = {"law": law.law, "x": law.x, "offset": law.offset}
    fitted = _row(params, 0)
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
    p = _row(params, 0)
    C = math.exp(top[0]["lC"])
    observed = np.exp([top[0]["t_opt"], top[0]["lD_opt"]])
    predicted = np.array([p["k_N"] * C ** p["a"], p["k_D"] * C ** p["b"]])
    return _held_out(
        "N_opt, D_opt",
        [f"N_opt at C={C:.3g}", f"D_opt at C={C:.3g}"],
        observed,
        predicted,
        int(w.sum()),
        p,
    )


def _allocation(law: Law, runs: Runs, params: dict, state) -> tuple[dict | None, list[str]]:
    """The entry's "optimal_allocation" (N_opt = k_N C^a, D_opt = k_D C^b) and its warnings."""
    if law.law == "chinchilla":
        # the allocation is for the table's own compute convention: C = c N D with c the
        # median FLOPs per parameter per token (6 when C was derived as 6ND)
        c = float(np.median(runs.C / (runs.N * runs.D))) if runs.C is not None else 6.0
        return {**chinchilla_allocation(params, c), "flops_per_param_token": c}, []
    if law.law == "isoflop":
        warnings = []
        for m in state:
            if not m["in_range"]:
                lo, hi = m["N_range"]
                warnings.append(
                    f"budget C={math.exp(m['lC']):.3g}: the loss minimum at "
                    f"N={math.exp(m['t_opt']):.3g} lies outside the sampled sizes "
                    f"[{lo:.3g}, {hi:.3g}]; its N_opt is extrapolated"
                )
        table = [
            {
                "C": math.exp(m["lC"]),
                "N_opt": math.exp(m["t_opt"]),
                "D_opt": math.exp(m["lD_opt"]),
                "loss": m["loss_opt"],
                "in_range": m["in_range"],
                "n_window": m["n_window"],
            }
            for m in state
        ]
        return {key: params[key] for key in ("a", "b", "k_N", "k_D")} | {"budgets": table}, warnings
    if law.law == "frontier":
        on = frontier_mask(runs.C, runs.loss, np.ones((1, len(runs))))[0]
        points = [
            {"run": runs.ids[i], "C": float(runs.C[i]), "loss": float(runs.loss[i])}
            for i in np.flatnonzero(on)
        ]
        out: dict = {"frontier": points}
        if runs.N is not None and runs.D is not None and _distinct(runs.C[on]) >= 2:
            lC = np.log(runs.C[on])
            X = np.stack([np.ones_like(lC), lC], 1)
            (cN, a), (cD, b) = (
                np.linalg.lstsq(X, np.log(v[on]), rcond=None)[0] for v in (runs.N, runs.D)
            )
            out.update({"a": float(a), "b": float(b), "k_N": math.exp(cN), "k_D": math.exp(cD)})
            for point, i in zip(points, np.flatnonzero(on), strict=True):
                point.update({"N": float(runs.N[i]), "D": float(runs.D[i])})
        return out, []
    return None, []


def chinchilla_allocation(p: dict, c: float = 6.0) -> dict:
    """Minimise E + A/N^alpha + B/D^beta subject to c N D = C:
    N_opt = G (C/c)^a, D_opt = (C/c)^b / G, G = (alpha A / (beta B))^(1/(alpha+beta)),
    a = beta/(alpha+beta), b = alpha/(alpha+beta) (Hoffmann et al. 2022, eq. 4)."""
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


def _law_warnings(law: Law, params: dict, runs: Runs) -> list[str]:
    out = []
    if law.law in ("power", "frontier") and law.offset:
        symbol = "C" if law.law == "frontier" else VARIABLES[law.x]
        out += _power_warnings(params, runs.loss, symbol)
    if law.law == "chinchilla":
        if params["E"] < 1e-3 * runs.loss.min():
            out.append("E is ~0: these runs do not identify an irreducible loss")
        if min(params["alpha"], params["beta"]) <= 0:
            out.append("an exponent is <= 0: loss does not fall with N or D in these runs")
    if law.law == "kaplan":
        lo, hi = KAPLAN_ALPHA_BOUNDS
        for name in ("alpha_N", "alpha_D"):
            if not lo * (1 + 1e-9) < params[name] < hi * (1 - 1e-9):
                out.append(f"{name} is at its bound ({lo}, {hi})")
    for name, value in params.items():
        if not math.isfinite(value):
            out.append(f"{name} overflows a float")
    return out


def fit_law(
    law: Law, runs: Runs, bootstrap: int = 1000, seed: int = 0, budget_tol: float = 0.25
) -> dict:
    """Fit one law to runs that support it and build its fits.json entry."""
    params, objective, state = _fit_once(law, runs, np.ones((1, len(runs))), None, budget_tol)
    best = _row(params, 0)
    if any(math.isnan(best[name]) for name in law.names):
        raise FitError(
            f"cannot fit {law.key}: no fit (fewer than 2 budgets have a loss minimum)"
            if law.law == "isoflop"
            else f"cannot fit {law.key}: the fit diverged"
        )
    entry: dict = {
        "law": law.law,
        "x": law.x,
        "formula": law.formula,
        "params": {name: best[name] for name in law.names},
    }
    if law.law == "power":
        entry["offset"] = law.offset
    entry["columns"] = {var: runs.columns.get(var, var) for var in law.needs} | {
        "loss": runs.loss_column
    }
    allocation, warnings = _allocation(law, runs, best, state)
    if law.law == "isoflop":
        lC = np.array([m["lC"] for m in state])
        residuals = [m["t_opt"] for m in state] - (np.log(best["k_N"]) + best["a"] * lC)
        rows = [f"C={math.exp(c):.3g}" for c in lC]
        n_points = int(sum(np.isin(budgets(runs.C, budget_tol), [m["budget"] for m in state])))
    else:
        pred = predict(entry, N=runs.N, D=runs.D, C=runs.C)
        residuals = np.log(runs.loss) - np.log(pred)
        rows = list(runs.ids)
        n_points = len(runs)
        if law.law == "frontier":
            on = frontier_mask(runs.C, runs.loss, np.ones((1, len(runs))))[0]
            residuals, rows = residuals[on], [r for r, o in zip(rows, on, strict=True) if o]
            n_points = int(on.sum())
    entry.update(
        {
            "ci95": {},
            "n_points": n_points,
            "objective": float(objective[0]),
            "objective_kind": law.objective_kind,
            "residuals_log": [float(v) for v in residuals],
            "rows": rows,
            "extrapolation": _extrapolation(law, runs, budget_tol, state),
            "optimal_allocation": allocation,
            "samples": [],
            "bootstrap": {
                "resamples": bootstrap,
                "used": 0,
                "seed": seed,
                "method": "expanded percentile; runs resampled with replacement"
                + (" within each budget" if law.law == "isoflop" else ""),
            },
        }
    )
    warnings = list(runs.warnings) + warnings + _law_warnings(law, best, runs)
    if bootstrap > 0:
        boot = _bootstrap(law, runs, state, bootstrap, seed, budget_tol)
        entry["ci95"], entry["samples"] = boot["ci95"], boot["samples"]
        entry["bootstrap"]["used"] = boot["used"]
        warnings += boot["warnings"]
    entry["warnings"] = warnings
    return entry


def fit_table(
    df: pd.DataFrame,
    laws: str = "all",
    x: str | None = None,
    offset: bool = True,
    columns: Columns | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    budget_tol: float = 0.25,
) -> dict:
    """Fit `laws` ("all" or one of LAWS) to a table of runs; returns the fits.json object.

    With "all", a law the runs cannot support is recorded as {"skipped": reason}; asked for
    alone, it raises FitError. x and offset choose the power law's variable and form and apply
    to laws="power" only.
    """
    columns = columns or Columns()
    if laws != "all" and laws not in LAWS:
        raise FitError(f"unknown law '{laws}'; choose from {', '.join(LAWS)} or all")
    if x is not None and x not in VARIABLES:
        raise FitError(f"unknown x '{x}'; choose from {', '.join(VARIABLES)}")
    if laws != "power" and (x is not None or not offset):
        raise FitError("--x and --no-offset apply to --law power only")
    if bootstrap < 0:
        raise FitError(f"--bootstrap must be >= 0, got {bootstrap}")
    if not budget_tol > 0:
        raise FitError(f"--budget-tol must be > 0, got {budget_tol}")
    if laws == "all":
        todo = [make_law("power", v, off) for v in VARIABLES for off in (True, False)]
        todo += [make_law(name) for name in LAWS[1:]]
    else:
        todo = [make_law(laws, x or "params", offset)]
    need = set() if laws == "all" else set(todo[0].needs)
    runs = load_runs(df, columns, need)
    result: dict[str, dict] = {}
    for law in todo:
        reason = support(law, runs, budget_tol)
        try:
            if reason is not None:
                raise FitError(f"cannot fit {law.key}: {reason}")
            try:
                result[law.key] = fit_law(law, runs, bootstrap, seed, budget_tol)
            except (ArithmeticError, np.linalg.LinAlgError) as e:
                # a numerical failure on odd data is reported, not a crash of the whole table
                raise FitError(
                    f"cannot fit {law.key}: numerical failure ({type(e).__name__}: {e})"
                ) from e
        except FitError as e:
            if laws != "all":
                raise
            result[law.key] = {"skipped": str(e).removeprefix(f"cannot fit {law.key}: ")}
    meta = {
        "n_runs": len(runs),
        "columns": runs.columns | {"loss": columns.loss},
        "bootstrap": bootstrap,
        "seed": seed,
        "budget_tol": budget_tol,
        "data_warnings": runs.warnings,
    }
    return {"laws": result, "meta": meta}


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


def optimal_allocation(entry: dict, C, params: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal (N_opt, D_opt) at compute C from a chinchilla, isoflop or frontier entry;
    `params` may be one of a chinchilla or isoflop entry's bootstrap "samples"."""
    C = np.asarray(C, dtype=float)
    alloc = entry.get("optimal_allocation") or {}
    if entry.get("law") == "chinchilla" and params is not None:
        alloc = chinchilla_allocation(params, alloc.get("flops_per_param_token", 6.0))
    elif entry.get("law") == "isoflop" and params is not None:
        alloc = params
    if "k_N" not in alloc:
        raise FitError(f"no compute-optimal allocation for law '{entry.get('law')}'")
    return alloc["k_N"] * C ** alloc["a"], alloc["k_D"] * C ** alloc["b"]


# --------------------------------------------------------------------------------------------
# command line


def _clean(obj):
    """JSON-safe: numpy scalars to Python, NaN/inf to null (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(obj: dict, path: str) -> None:
    """Write atomically: a temp file in the same directory, then os.replace, so a killed job
    never leaves a half-written fits.json for the next rule to read."""
    text = json.dumps(_clean(obj), indent=1, allow_nan=False) + "\n"
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fits.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_csv(path: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise FitError(f"no such file: {path}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        raise FitError(f"cannot read {path}: {str(e).splitlines()[0]}") from None


def _summary(result: dict) -> str:
    lines = []
    for key, entry in result["laws"].items():
        if "skipped" in entry:
            lines.append(f"{key}: skipped ({entry['skipped']})")
            continue
        parts = []
        for name, value in entry["params"].items():
            ci = entry["ci95"].get(name)
            parts.append(f"{name}={value:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""))
        lines.append(f"{key}: " + ", ".join(parts))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="ladder fit", description="Fit scaling laws to a table of runs (runs.csv or any CSV)."
    )
    ap.add_argument("runs", metavar="RUNS.csv")
    ap.add_argument(
        "--law",
        required=True,
        choices=[*LAWS, "all"],
        help="law to fit; 'all' fits every law the data supports",
    )
    ap.add_argument(
        "--x",
        choices=list(VARIABLES),
        default=None,
        help="variable of the power law (default params)",
    )
    ap.add_argument(
        "--no-offset",
        action="store_true",
        help="power law without the irreducible loss: L = k x^-alpha",
    )
    d = Columns()
    for flag, symbol, default in (
        ("params", "N", d.params),
        ("tokens", "D", d.tokens),
        ("compute", "C", d.compute),
        ("loss", "loss", d.loss),
    ):
        extra = "; 6*N*D when absent" if flag == "compute" else ""
        ap.add_argument(
            f"--{flag}-col",
            metavar="COL",
            default=default,
            help=f"{symbol} column (default {default}{extra})",
        )
    ap.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for the 95%% intervals; 0 skips them",
    )
    ap.add_argument("--seed", type=int, default=0, metavar="S", help="bootstrap seed")
    ap.add_argument(
        "--budget-tol",
        type=float,
        default=0.25,
        metavar="TOL",
        help="runs within a factor 1+TOL in compute share a budget (isoflop; default 0.25)",
    )
    ap.add_argument(
        "--out",
        metavar="FITS.json",
        default=None,
        help="fits.json to write (default: JSON on stdout)",
    )
    args = ap.parse_args(argv)
    cols = Columns(args.params_col, args.tokens_col, args.compute_col, args.loss_col)
    try:
        result = fit_table(
            _read_csv(args.runs),
            args.law,
            args.x,
            not args.no_offset,
            cols,
            args.bootstrap,
            args.seed,
            args.budget_tol,
        )
    except FitError as e:
        print(f"ladder fit: error: {e}", file=sys.stderr)
        return 2
    for text in result["meta"]["data_warnings"]:
        print(f"ladder fit: warning: {text}", file=sys.stderr)
    if args.out is None:
        print(json.dumps(_clean(result), indent=1, allow_nan=False))
    else:
        write_json(result, args.out)
        print(_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
