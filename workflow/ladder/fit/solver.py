"""A batched Levenberg-Marquardt: K least-squares (or Huber) problems at once.

The estimators of the loss laws (power, chinchilla, kaplan) are written for a batch: K problems
share the runs and differ in per-run weights (bootstrap counts) and starting points, so 1000
bootstrap refits are one vectorised minimisation here rather than 1000 calls into scipy.
"""

from __future__ import annotations

import numpy as np

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, Approach 3


def rho(r: np.ndarray, loss: str) -> np.ndarray:
    """Per-residual loss: 0.5 r^2 ("l2") or Huber(HUBER_DELTA) ("huber")."""
    if loss == "l2":
        return 0.5 * r * r
    a = np.abs(r)
    return np.where(a <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))


def _newton_system(model, th, r, J, ww, lo, hi, loss: str, exact: bool):
    """Gradient g (K, p) and Hessian H (K, p, p) of the weighted loss at residuals r, with the
    variables held at a bound (gradient pointing outward) frozen: g = 0, H = identity there.
    Rows whose g or H is not finite are flagged `bad` (and given a harmless system)."""
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
    p = th.shape[1]
    frozen = ((th <= lo) & (g > 0)) | ((th >= hi) & (g < 0))
    g = np.where(frozen, 0.0, g)
    H = np.where(frozen[:, :, None] | frozen[:, None, :], 0.0, H)
    H = np.where(frozen[:, :, None] & np.eye(p, dtype=bool), 1.0, H)
    bad = ~np.isfinite(H).all((1, 2)) | ~np.isfinite(g).all(1)
    H[bad], g[bad] = np.eye(p), 0.0
    return g, H, bad


def _evaluate(model, th: np.ndarray, y: np.ndarray, ww: np.ndarray, loss: str):
    """(predictions, Jacobian, objective per row; inf where not finite) at `th`: together,
    so that a trial step that is accepted needs no recomputation."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f, J = model(th, jac=True)
        F = (ww * rho(f - y, loss)).sum(1)
    return f, J, np.where(np.isfinite(F), F, np.inf)


def _damped_step(g: np.ndarray, H: np.ndarray, lam: np.ndarray):
    """(Newton decrement with the undamped |H|, the step solving (|H| + lam·scale) s = -g)
    per row, through the eigendecomposition of H (|eigenvalues|: saddle-free Newton)."""
    ev, V = np.linalg.eigh(H)
    aev = np.abs(ev)
    scale = np.maximum(aev.max(1, keepdims=True), 1e-300)
    gv = np.einsum("kpq,kp->kq", V, g)
    decrement = (gv * gv / np.maximum(aev, 1e-12 * scale)).sum(1)
    step = -np.einsum("kpq,kq->kp", V, gv / (aev + lam[:, None] * scale + 1e-15 * scale))
    return decrement, step


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
    f_all, J_all, F = _evaluate(model, theta, y, w, loss)
    lam = np.full(K, 1e-3)
    active = np.isfinite(F)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        every = idx.size == K  # plain views, no copies of the (K, n, p) Jacobian
        pick = slice(None) if every else idx
        th, ww, lo, hi = theta[pick], w[pick], lower[pick], upper[pick]
        g, H, bad = _newton_system(model, th, f_all[pick] - y, J_all[pick], ww, lo, hi, loss, exact)
        decrement, step = _damped_step(g, H, lam[idx])
        # below rtol * F the row has converged
        done = (decrement <= rtol * F[idx] + 1e-300) | bad
        trial = np.clip(th + step, lo, hi)
        f_new, J_new, F_new = _evaluate(model, trial, y, ww, loss)
        ok = (F_new < F[idx]) & ~done
        theta[idx[ok]], F[idx[ok]] = trial[ok], F_new[ok]
        f_all[idx[ok]], J_all[idx[ok]] = f_new[ok], J_new[ok]
        lam[idx] = np.where(ok, np.maximum(lam[idx] / 4, 1e-12), lam[idx] * 4)
        # a row that cannot decrease even with tiny steps is at its (numerical) minimum
        done |= ~ok & (lam[idx] > 1e12)
        active[idx[done]] = False
    return theta, F
