"""The annealing law across model sizes: one law for a whole ladder's learning curves,

    L(N, s) = E + A · N^(−alpha) + B · S1(s)^(−beta) − F · S2(s) · N^gamma

N the model's non-embedding parameters (curves.csv's `params_non_embedding`), S1 and S2 the
forward and annealing areas of Tissue et al. 2024 exactly as ladder.fit.annealing computes
them (warmup in S1, none in S2). The form is the one OLMo's ladder code fits to its curves
("tissue_fit" in allenai/OLMo, olmo/scaling/scaling_laws/fitting_functions.py: Chinchilla's
A/N^alpha + E with Tissue et al.'s B/S1^beta, and an annealing gain that scales as N^gamma).
Fitted once over every size's runs, so it predicts a size that was not run.

Estimator as ladder.fit.annealing's: Huber (delta 1e-3) on log L, from a grid of starts (here
(alpha, beta, gamma), with E, A, B and F by weighted linear least squares at each), the best
polished by ladder.fit.solver.
"""

from __future__ import annotations

import itertools

import numpy as np

from ladder.fit.annealing import BOOT_RTOL, areas
from ladder.fit.curves import Curve
from ladder.fit.runs import FitError
from ladder.fit.solver import minimise

NAMES = ["E", "A", "alpha", "B", "beta", "F", "gamma"]
FORMULA = "L(N, s) = E + A * N^(-alpha) + B * S1(s)^(-beta) - F * S2(s) * N^gamma"
METHOD = (
    "OLMo ladder code's size-aware Tissue et al. 2024 law, fitted jointly over every size's "
    "runs: S1, S2 as the annealing law's; Huber(1e-3) on log L from a grid of (alpha, beta, "
    "gamma) starts, E, A, B and F by least squares at each"
)
REFERENCES = [
    "Tissue et al. 2024, Scaling Law with Learning Rate Annealing, arXiv:2408.11029 (S1, S2)",
    "allenai/OLMo, olmo/scaling/scaling_laws/fitting_functions.py, tissue_fit (the form in N)",
]
MAX_POINTS = 100  # per run: a 7-parameter law over every run needs no more (and is 5x faster)
MIN_SIZES = 3  # E, A and alpha are set by the sizes' offsets: fewer sizes cannot identify them


class Design:
    """The fit's points: log N, log S1 and S2 at each, and which run each belongs to."""

    def __init__(self, parts: list[tuple[Curve, np.ndarray]], lam: float):
        ln, l1, s2, run = [], [], [], []
        for j, (curve, steps) in enumerate(parts):
            if curve.size is None:
                raise FitError(f"run {curve.run} has no model size (--size-col)")
            S1, S2 = areas(curve.lrs, lam, curve.warmup_steps)
            ln.append(np.full(len(steps), np.log(curve.size)))
            l1.append(np.log(S1[steps - 1]))
            s2.append(S2[steps - 1])
            run.append(np.full(len(steps), j))
        self.log_n, self.log_s1, self.s2, self.run = map(np.concatenate, (ln, l1, s2, run))

    @property
    def n(self) -> int:
        return len(self.s2)

    def __call__(self, th: np.ndarray, jac: bool = False):
        """log L (K, n) at theta rows (E, log A, alpha, log B, beta, F, gamma), and the
        Jacobian (K, n, 7)."""
        E, la, al, lb, be, F, ga = (th[:, k : k + 1] for k in range(7))
        p_n = np.exp(la - al * self.log_n)
        p_s = np.exp(lb - be * self.log_s1)
        anneal = self.s2 * np.exp(ga * self.log_n)  # S2 · N^gamma
        L = E + p_n + p_s - F * anneal
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.log(L)
        if not jac:
            return f
        cols = [
            1.0 + 0 * p_n,
            p_n,
            -self.log_n * p_n,
            p_s,
            -self.log_s1 * p_s,
            -anneal + 0 * F,
            -F * anneal * self.log_n,
        ]
        return f, np.stack(cols, -1) / L[..., None]


def loss_of(design: Design, params: dict) -> np.ndarray:
    """Predicted loss at the design's points, from fits.json's parameters."""
    return np.exp(design(to_theta(params)[None])[0])


def to_theta(p: dict) -> np.ndarray:
    return np.array(
        [p["E"], np.log(p["A"]), p["alpha"], np.log(p["B"]), p["beta"], p["F"], p["gamma"]]
    )


def to_params(th: np.ndarray) -> dict[str, float]:
    E, la, al, lb, be, F, ga = map(float, th)
    return {"E": E, "A": float(np.exp(la)), "alpha": al, "B": float(np.exp(lb))} | {
        "beta": be,
        "F": F,
        "gamma": ga,
    }


# E >= 0; alpha, beta in [0, 3]; F >= 0 (annealing lowers the loss); |gamma| <= 1 (the
# annealing gain may grow or shrink with N, but not faster than N itself)
LOWER = np.array([0.0, -np.inf, 0.0, -np.inf, 0.0, 0.0, -1.0])
UPPER = np.array([np.inf, np.inf, 3.0, np.inf, 3.0, np.inf, 1.0])
SEARCH_NAMES = ["E", "log A", "alpha", "log B", "beta", "F", "gamma"]


def grid_starts(design: Design, loss: np.ndarray, w: np.ndarray, keep: int = 6) -> np.ndarray:
    """The `keep` best grid points for weights w (1, n): for each (alpha, beta, gamma), E, A,
    B and F by least squares of L on (1, N^−alpha, S1^−beta, −S2·N^gamma) weighted 1/L² (the
    log residual to first order), scored by the log-space objective. Every grid point's
    normal equations are a 4 x 4 block of one Gram matrix of all the grid's columns."""
    alphas, betas = np.geomspace(0.05, 1.5, 8), np.geomspace(0.05, 2.0, 10)
    gammas = np.linspace(-0.6, 0.6, 7)
    cols = np.concatenate(
        [
            np.ones((1, design.n)),
            np.exp(-alphas[:, None] * design.log_n),
            np.exp(-betas[:, None] * design.log_s1),
            -design.s2 * np.exp(gammas[:, None] * design.log_n),
        ]
    )
    q = w[0] / loss**2
    gram, rhs = (cols * q) @ cols.T, (cols * q) @ loss
    rows = []
    for i, j, k in itertools.product(range(8), range(10), range(7)):
        idx = [0, 1 + i, 9 + j, 19 + k]
        coef = np.linalg.lstsq(gram[np.ix_(idx, idx)], rhs[idx], rcond=None)[0]
        coef = np.maximum(coef, [0.0, 1e-12, 1e-12, 0.0])
        pred = coef @ cols[idx]
        if (pred <= 0).any():
            continue
        score = (w[0] * (np.log(loss) - np.log(pred)) ** 2).sum()
        E, A, B, F = coef
        rows.append((score, [E, np.log(A), alphas[i], np.log(B), betas[j], F, gammas[k]]))
    if not rows:
        raise FitError("cannot fit annealing_sized: no start of the grid predicts a positive loss")
    rows.sort(key=lambda r: r[0])
    return np.array([r[1] for r in rows[:keep]])


def fit(
    design: Design, loss: np.ndarray, w: np.ndarray, warm: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Huber fit for every row of weights w (K, n): (theta (K, 7), objective (K,)); see
    ladder.fit.annealing.fit_annealing."""
    y = np.log(loss)
    if warm is None:
        starts = np.clip(grid_starts(design, loss, w), LOWER, UPPER)
        th, F = minimise(design, starts, y, w[0], "huber", LOWER, UPPER, max_iter=300)
        best = int(np.argmin(F))
        return th[best : best + 1], F[best : best + 1]
    starts = np.clip(np.broadcast_to(warm, (len(w), 7)), LOWER, UPPER)
    return minimise(design, starts, y, w, "huber", LOWER, UPPER, max_iter=100, rtol=BOOT_RTOL)
