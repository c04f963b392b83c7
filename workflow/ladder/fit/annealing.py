"""The learning-rate annealing law of Tissue et al. 2024 ("Scaling Law with Learning Rate
Annealing", https://arxiv.org/abs/2408.11029): the loss after step s of any schedule,

    L(s) = L0 + A · S1(s)^(−alpha) − C · S2(s)

S1(s) = Σ_{i≤s} η_i, the forward area (the warmup's steps included, as the paper does);
S2(s) = Σ_{i≤s} m_i with m_i = λ·m_{i−1} + (η_{i−1} − η_i), the annealing area with momentum
λ (the paper's 0.999). The warmup's rising lr adds no annealing area: S2 starts where the
warmup ends (η_{i−1} − η_i is taken as 0 for i ≤ warmup steps).

Fitted as the paper does: Huber loss (delta 1e-3) on the residuals of log L, from a grid of
starts (here: a grid of (L0, alpha), with A and C by weighted linear least squares at each),
each polished by ladder.fit.solver. One law per model size: L0, A, alpha and C belong to a
model and its data, not to a ladder (ladder.fit.sized is the form across sizes).
"""

from __future__ import annotations

import numpy as np

from ladder.fit.curves import Curve
from ladder.fit.solver import minimise

LAMBDA = 0.999  # Tissue et al. 2024, §3: the decay factor of the annealing momentum
ALPHA_MAX = 3.0
BOOT_RTOL = 1e-9  # a bootstrap refit stops when its Newton decrement is below this x objective
NAMES = ["L0", "A", "alpha", "C"]
FORMULA = "L(s) = L0 + A * S1(s)^(-alpha) - C * S2(s)"
METHOD = (
    "Tissue et al. 2024: S1 = sum of lr (warmup included), S2 = sum of m_i, m_i = lambda m_(i-1)"
    " + (lr_(i-1) - lr_i) from the end of the warmup; Huber(1e-3) on log L from a grid of "
    "(L0, alpha) starts, A and C by least squares at each"
)


def momentum(drop: np.ndarray, lam: float, chunk: int = 4096) -> np.ndarray:
    """m_i = lam·m_(i−1) + drop_i without a Python loop over steps: within a chunk,
    m_(i0+j) = lam^j·(lam·m_(i0−1) + Σ_(l≤j) drop_(i0+l)·lam^(−l)); chunks keep lam^(−l) far
    from overflow (lam^(−4096) = e^4.1 at lam = 0.999)."""
    out = np.empty(len(drop))
    carry = 0.0
    j = np.arange(chunk)
    up, down = lam ** (-j.astype(float)), lam ** j.astype(float)
    for s in range(0, len(drop), chunk):
        d = drop[s : s + chunk]
        n = len(d)
        out[s : s + n] = down[:n] * (lam * carry + np.cumsum(d * up[:n]))
        carry = out[s + n - 1]
    return out


def areas(lrs: np.ndarray, lam: float = LAMBDA, warmup_steps: int = 0):
    """(S1, S2) after every step 1..n of a schedule whose step i (0-based) has lr lrs[i]:
    cumulative sums and the momentum recursion, vectorised."""
    drop = np.zeros_like(lrs, dtype=float)
    drop[1:] = lrs[:-1] - lrs[1:]
    drop[: max(warmup_steps, 1)] = 0.0
    return np.cumsum(lrs, dtype=float), np.cumsum(momentum(drop, lam))


class Design:
    """The fit's points: log S1 and S2 at each, and which run each belongs to."""

    def __init__(self, parts: list[tuple[Curve, np.ndarray]], lam: float):
        l1, s2, run = [], [], []
        for j, (curve, steps) in enumerate(parts):
            S1, S2 = areas(curve.lrs, lam, curve.warmup_steps)
            l1.append(np.log(S1[steps - 1]))
            s2.append(S2[steps - 1])
            run.append(np.full(len(steps), j))
        self.log_s1, self.s2, self.run = map(np.concatenate, (l1, s2, run))

    @property
    def n(self) -> int:
        return len(self.s2)

    def __call__(self, th: np.ndarray, jac: bool = False):
        """log L (K, n) at theta rows (L0, log A, alpha, C), and the Jacobian."""
        L0, la, al, C = (th[:, k : k + 1] for k in range(4))
        power = np.exp(la - al * self.log_s1)
        L = L0 + power - C * self.s2
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.log(L)
        if not jac:
            return f
        inv = 1.0 / L
        J = np.stack([inv + 0 * power, power * inv, -self.log_s1 * power * inv, -self.s2 * inv], -1)
        return f, J


def loss_of(design: Design, params: dict) -> np.ndarray:
    """Predicted loss at the design's points, from fits.json's parameters."""
    th = to_theta(params)[None]
    return np.exp(design(th)[0])


def to_theta(params: dict) -> np.ndarray:
    return np.array([params["L0"], np.log(params["A"]), params["alpha"], params["C"]])


def to_params(theta: np.ndarray) -> dict[str, float]:
    return {
        "L0": float(theta[0]),
        "A": float(np.exp(theta[1])),
        "alpha": float(theta[2]),
        "C": float(theta[3]),
    }


# L0 >= 0, alpha in [0, ALPHA_MAX], C >= 0 (annealing lowers the loss). L0 is not bounded by
# the smallest loss: the annealing term takes a cooled-down run below L0.
LOWER = np.array([0.0, -np.inf, 0.0, 0.0])
UPPER = np.array([np.inf, np.inf, ALPHA_MAX, np.inf])
SEARCH_NAMES = ["L0", "log A", "alpha", "C"]  # the solver's variables, as LOWER/UPPER bound them


def bounds(y_loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return LOWER, UPPER


def grid_starts(design: Design, loss: np.ndarray, w: np.ndarray, keep: int = 6) -> np.ndarray:
    """The `keep` best grid points for weights w (1, n): for each (L0, alpha) on a grid, A and
    C by least squares of L − L0 on (S1^−alpha, −S2) weighted 1/L² (the log residual to first
    order), scored by the log-space objective."""
    l0s = loss.min() * np.array([0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25])
    alphas = np.geomspace(0.05, 2.0, 16)
    q = w[0] / loss**2
    rows = []
    for al in alphas:
        p = np.exp(-al * design.log_s1)
        X = np.stack([p, -design.s2], 1)
        XtX = (X * q[:, None]).T @ X
        for l0 in l0s:
            coef = np.linalg.lstsq(XtX, (X * q[:, None]).T @ (loss - l0), rcond=None)[0]
            A, C = max(coef[0], 1e-12), max(coef[1], 0.0)
            pred = l0 + A * p - C * design.s2
            if (pred <= 0).any():
                continue
            score = (w[0] * (np.log(loss) - np.log(pred)) ** 2).sum()
            rows.append((score, [l0, np.log(A), al, C]))
    rows.sort(key=lambda r: r[0])
    return np.array([r[1] for r in rows[:keep]])


def fit_annealing(
    design: Design, loss: np.ndarray, w: np.ndarray, warm: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Huber fit for every row of weights w (K, n): (theta (K, 4), objective (K,)). Without
    `warm`, w must be one row and the best of the grid's polished starts wins; with it (the
    bootstrap), every row starts from `warm`."""
    lower, upper = bounds(loss)
    y = np.log(loss)
    if warm is None:
        starts = np.clip(grid_starts(design, loss, w), lower, upper)
        th, F = minimise(design, starts, y, w[0], "huber", lower, upper, max_iter=200)
        best = int(np.argmin(F))
        return th[best : best + 1], F[best : best + 1]
    starts = np.clip(np.broadcast_to(warm, (len(w), 4)), lower, upper)
    # a resample's optimum is needed to interval precision, not the point estimate's
    return minimise(design, starts, y, w, "huber", lower, upper, max_iter=100, rtol=BOOT_RTOL)


fit = fit_annealing  # the interface ladder.fit.curve_entry uses for every curve law
