"""The multi-power law of Luo et al. 2025 ("A Multi-Power Law for Loss Curve Prediction
Across Learning Rate Schedules", https://arxiv.org/abs/2503.12811, eq. 4): the loss after step
t of any schedule,

    L(t)  = L0 + A · (S1(t) + S_W)^(−alpha) − LD(t)
    LD(t) = B · Σ_{k≤t} (η_{k−1} − η_k) · G(η_k^(−gamma) · S_k(t)),  G(x) = 1 − (C·x + 1)^(−beta)
    S_k(t) = Σ_{k≤τ≤t} η_τ

S1 + S_W is the forward area with the warmup's (S_W) included, as in the paper; the sum in LD
runs over the steps after the warmup (η_0 is the peak). Parameters: L0 (the loss at infinite
area), A and alpha (the constant-lr power law), B (the scale of the loss drop the decay
buys), C and beta (how that drop saturates as the lr stays low: each decrement's drop grows
as a power law in the area since it happened), gamma (how that growth depends on the lr it
happens at). Fitted like ladder.fit.annealing: Huber(1e-3) on log L from a grid of
(alpha, C, beta, gamma) starts, L0, A and B by least squares at each.

Evaluation is exact (every decayed step of every point's past), vectorised as a sparse matrix
from (point, decayed step) pairs to points.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import sparse

from ladder.fit.annealing import BOOT_RTOL
from ladder.fit.curves import Curve
from ladder.fit.solver import minimise

NAMES = ["L0", "A", "alpha", "B", "C", "beta", "gamma"]
FORMULA = (
    "L(t) = L0 + A*(S1(t)+S_W)^(-alpha) - B*sum_k (lr_(k-1)-lr_k)*(1-(C*lr_k^(-gamma)*S_k(t)+1)"
    "^(-beta))"
)
METHOD = (
    "Luo et al. 2025 multi-power law; Huber(1e-3) on log L from a grid of (alpha, C, beta, "
    "gamma) starts, L0, A and B by least squares at each"
)
MAX_POINTS = 100  # per run: each point sums over its whole past
MAX_BINS = 256  # decayed steps are summed in at most ~this many bins per run (and one per point)
LR_FLOOR = 1e-6  # lr_k below LR_FLOOR x peak counts as LR_FLOOR x peak in lr_k^-gamma
BOOTSTRAP_MAX = 50  # resamples: each refit sums over every point's past
CHUNK = 25  # bootstrap rows refitted at once (each holds a value per (point, step) pair)


class Design:
    """The points (log of the forward area) and every (point, bin of decayed steps) pair: the
    bin's summed drop lr_(k-1) − lr_k, its drop-weighted log lr_k and the area S_k(t) since."""

    def __init__(self, parts: list[tuple[Curve, np.ndarray]], lam: float | None = None):
        log_s, run, pt, drop, log_lr, area = [], [], [], [], [], []
        offset = 0
        for j, (curve, steps) in enumerate(parts):
            S, bins = _bins(curve, steps)
            d, lr_k, S_k, last = bins
            n_before = np.searchsorted(last, steps)  # bins whose every step is before t
            t_of = np.repeat(steps, n_before)
            b_of = np.concatenate([np.arange(m) for m in n_before]).astype(int)
            log_s.append(np.log(S[steps]))
            run.append(np.full(len(steps), j))
            pt.append(offset + np.repeat(np.arange(len(steps)), n_before))
            drop.append(d[b_of])
            log_lr.append(np.log(np.maximum(lr_k[b_of], LR_FLOOR * curve.lrs.max())))
            area.append(S[t_of] - S_k[b_of])
            offset += len(steps)
        self.log_s, self.run = np.concatenate(log_s), np.concatenate(run)
        self.log_lr, self.area = np.concatenate(log_lr), np.concatenate(area)
        pair_point, pair_drop = np.concatenate(pt).astype(int), np.concatenate(drop)
        # sums over a point's pairs, weighted by the drops: one sparse product
        self.M = sparse.csr_matrix(
            (pair_drop, (pair_point, np.arange(len(pair_drop)))), shape=(offset, len(pair_drop))
        )

    @property
    def n(self) -> int:
        return len(self.log_s)

    def drop_terms(self, lC, beta, gamma):
        """Per pair: u = C x + 1 with x = lr_k^-gamma S_k(t), and G = 1 − u^-beta."""
        x = np.exp(-gamma * self.log_lr) * self.area
        u = np.exp(lC) * x + 1.0
        return x, u, 1.0 - u ** (-beta)

    def summed(self, values: np.ndarray) -> np.ndarray:
        """(K, pairs) -> (K, points): each point's drop-weighted sum over its pairs."""
        return np.asarray((self.M @ values.T).T)

    def __call__(self, th: np.ndarray, jac: bool = False):
        """log L (K, n) at theta rows (L0, log A, alpha, log B, log C, beta, gamma)."""
        L0, la, al, lB, lC, be, ga = (th[:, k : k + 1] for k in range(7))
        power = np.exp(la - al * self.log_s)
        x, u, G = self.drop_terms(lC, be, ga)
        B = np.exp(lB)
        LD = B * self.summed(G)
        L = L0 + power - LD
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.log(L)
        if not jac:
            return f
        inv = 1.0 / L
        dG_du = be * u ** (-be - 1.0)  # dG/du
        cx = np.exp(lC) * x
        d_lC = B * self.summed(dG_du * cx)
        d_be = B * self.summed(u ** (-be) * np.log(u))
        d_ga = B * self.summed(dG_du * cx * -self.log_lr)
        cols = [1.0 + 0 * power, power, -self.log_s * power, -LD, -d_lC, -d_be, -d_ga]
        return f, np.stack([c * inv for c in cols], -1)


def _bins(curve: Curve, steps: np.ndarray):
    """(S, (drop, lr, S_k, last step) per bin): the run's decayed steps k (0-based, after the
    warmup) in consecutive bins of at most steps/MAX_BINS steps, a bin edge at every point's
    t, so each bin is wholly before or after any point. In a bin the drops are summed and the
    lr and cumulative area are their drop-weighted means: exact when the bin is one step,
    first-order exact (the drops' centre of mass) otherwise."""
    lrs = curve.lrs
    S = np.concatenate([[0.0], np.cumsum(lrs)])  # S[t] = sum of the first t lrs
    d = np.zeros_like(lrs)
    d[1:] = lrs[:-1] - lrs[1:]
    d[: max(curve.warmup_steps, 1)] = 0.0
    k = np.flatnonzero(d)
    width = max(1, int(np.ceil(len(lrs) / MAX_BINS)))
    edges = np.union1d(steps, np.arange(0, len(lrs) + width, width))  # bin = [edge, next)
    b = np.searchsorted(edges, k, side="right")
    _, first, b = np.unique(b, return_index=True, return_inverse=True)
    wsum = np.bincount(b, np.abs(d[k]))
    drop = np.bincount(b, d[k])
    lr_k = np.bincount(b, np.abs(d[k]) * lrs[k]) / wsum
    S_k = np.bincount(b, np.abs(d[k]) * S[k]) / wsum
    last = np.maximum.reduceat(k, first) if len(k) else k
    return S, (drop, lr_k, S_k, last)


def loss_of(design: Design, params: dict) -> np.ndarray:
    return np.exp(design(to_theta(params)[None])[0])


def to_theta(p: dict) -> np.ndarray:
    return np.array(
        [p["L0"], np.log(p["A"]), p["alpha"], np.log(p["B"]), np.log(p["C"]), p["beta"], p["gamma"]]
    )


def to_params(th: np.ndarray) -> dict[str, float]:
    L0, la, al, lB, lC, be, ga = map(float, th)
    out = {"L0": L0, "A": np.exp(la), "alpha": al, "B": np.exp(lB), "C": np.exp(lC)}
    return {k: float(v) for k, v in out.items()} | {"beta": be, "gamma": ga}


LOWER = np.array([0.0, -np.inf, 0.0, -np.inf, -30.0, 0.01, 0.0])
UPPER = np.array([np.inf, np.inf, 3.0, np.inf, 30.0, 5.0, 2.0])
SEARCH_NAMES = ["L0", "log A", "alpha", "log B", "log C", "beta", "gamma"]


def grid_starts(design: Design, loss: np.ndarray, w: np.ndarray, keep: int = 3) -> np.ndarray:
    """The `keep` best grid points: for each (alpha, C, beta, gamma), (L0, A, B) by least
    squares of L on (1, area^-alpha, −drop sum) weighted 1/L², scored in log space."""
    q = w[0] / loss**2
    x_typ = np.median(np.exp(-0.5 * design.log_lr) * design.area) if design.area.size else 1.0
    rows = []
    grid = itertools.product(
        (0.2, 0.4, 0.7), np.log(np.array([0.1, 1.0, 10.0]) / max(x_typ, 1e-30)), (0.5,), (0.5,)
    )
    for al, lC, be, ga in grid:
        p = np.exp(-al * design.log_s)
        d = design.summed(design.drop_terms(lC, be, ga)[2][None])[0]
        X = np.stack([np.ones_like(p), p, -d], 1)
        coef = np.linalg.lstsq(X * np.sqrt(q)[:, None], loss * np.sqrt(q), rcond=None)[0]
        L0, A, B = max(coef[0], 0.0), max(coef[1], 1e-12), max(coef[2], 1e-12)
        pred = L0 + A * p - B * d
        if (pred <= 0).any():
            continue
        score = (w[0] * (np.log(loss) - np.log(pred)) ** 2).sum()
        rows.append((score, [L0, np.log(A), al, np.log(B), lC, be, ga]))
    rows.sort(key=lambda r: r[0])
    return np.array([r[1] for r in rows[:keep]])


def fit(design: Design, loss: np.ndarray, w: np.ndarray, warm: np.ndarray | None = None):
    """Huber fit per row of w (K, n): (theta (K, 7), objective (K,)); see annealing.fit."""
    y = np.log(loss)
    if warm is None:
        starts = np.clip(grid_starts(design, loss, w), LOWER, UPPER)
        th, F = minimise(design, starts, y, w[0], "huber", LOWER, UPPER, max_iter=200)
        best = int(np.argmin(F))
        return th[best : best + 1], F[best : best + 1]
    out_th, out_F = [], []
    for s in range(0, len(w), CHUNK):
        ww = w[s : s + CHUNK]
        starts = np.clip(np.broadcast_to(warm, (len(ww), 7)), LOWER, UPPER)
        th, F = minimise(design, starts, y, ww, "huber", LOWER, UPPER, 100, rtol=BOOT_RTOL)
        out_th.append(th)
        out_F.append(F)
    return np.concatenate(out_th), np.concatenate(out_F)
