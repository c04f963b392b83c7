"""IsoFLOP profiles, Hoffmann et al. 2022 Approach 2, as Porian et al. 2024 (sec. 2 and app. B
of "Resolving discrepancies in compute-optimal scaling of language models") estimate it.

Per compute budget, ln L is interpolated against ln N with scipy's Akima1DInterpolator and its
argmin taken on a fine grid; a budget whose lowest loss, or the interpolant's minimum, lies at
its smallest or largest size is dropped (its "minimum" would be an extrapolation; Hoffmann et
al. drop such budgets too). Each
minimum's spread comes from redoing the argmin under loss noise (estimated from the runs, or
given); ln N_opt and ln D_opt are fitted against ln C by least squares weighted 1/std^2, with
each budget's median over the noise draws as its observation, and the 95% interval is the
percentile interval of the same fit to each noise draw. method="parabola" puts a least-squares
parabola in ln N through each bracketed budget instead of the interpolant.

`fit_isoflop` does it all for a table of runs; `isoflop_allocation` is the entry's
"optimal_allocation"; `isoflop_curve` draws a budget's fitted profile.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import Akima1DInterpolator

from ladder.fit.runs import FitError, Runs, budgets, points

METHODS = ("akima", "parabola")  # --isoflop-method; the first is the default
GRID_PER_GAP = 25  # argmin grid points per gap between sampled sizes (Porian et al.)
STD_FLOOR = 1 / 3  # an optimum's sd is at least this share of the budget's mean log spacing
MIN_VALID = 0.5  # a budget needs an interior minimum in at least this share of noise draws
MAD_TO_SD = 1.4826  # MAD of a normal sample -> its standard deviation


@dataclass
class Profile:
    """One budget's loss profile: per distinct model size (sorted), mean ln N, ln L, ln D."""

    label: int  # the budget (0 = smallest compute)
    lC: float  # ln of its compute: the geometric mean of its runs' C
    lN: np.ndarray
    lL: np.ndarray
    lD: np.ndarray
    members: np.ndarray  # its runs, as indices into the table

    @property
    def k(self) -> int:
        return len(self.lN)


def profiles(runs: Runs, tol: float) -> list[Profile]:
    """Every compute budget with 3+ distinct model sizes. Runs of one size within a budget
    (seeds, repeats) are averaged in ln L."""
    labels = budgets(runs.C, tol)
    out = []
    for g in np.unique(labels):
        members = np.flatnonzero(labels == g)
        lN = np.log(runs.N[members])
        order = np.argsort(lN, kind="stable")
        members, lN = members[order], lN[order]
        size = np.concatenate([[0], np.cumsum(np.diff(lN) > 1e-9)])
        if size[-1] + 1 < 3:
            continue
        lL, lD = np.log(runs.loss[members]), np.log(runs.D[members])
        lC = float(np.log(runs.C[members]).mean())
        means = [_mean_by(size, v) for v in (lN, lL, lD)]
        out.append(Profile(int(g), lC, *means, members))
    return out


def _mean_by(group: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.bincount(group, weights=v) / np.bincount(group)


def usable_budgets(runs: Runs, tol: float) -> int:
    """How many compute budgets have 3+ distinct model sizes (a profile's worth)."""
    return len(profiles(runs, tol))


# --------------------------------------------------------------------------------------------
# loss noise


def pseudo_residuals(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each interior point minus the cubic through its two neighbours on either side (a line
    through one on either side when the profile has fewer than 5 points), scaled to the noise's
    standard deviation: Gasser, Sroka & Jennen-Steinmetz's (1986) pseudo-residuals, one degree
    higher so the profile's curvature does not pass for noise."""
    k, out = len(t), []
    span = 2 if k >= 5 else 1
    for i in range(span, k - span):
        nb = [j for j in range(i - span, i + span + 1) if j != i]
        w = np.array([math.prod((t[i] - t[m]) / (t[j] - t[m]) for m in nb if m != j) for j in nb])
        out.append((y[i] - w @ y[nb]) / math.sqrt(1 + w @ w))
    return np.array(out)


def estimate_noise(profs: list[Profile]) -> float:
    """The runs' loss noise in ln L (relative), from the data alone: a robust scale (MAD) of
    the pseudo-residuals of every budget, pooled (a budget of 6-10 sizes gives 2-6 of them).
    The MAD keeps the steep ends of wide sweeps, where a cubic does not follow the profile,
    from passing for noise."""
    r = np.concatenate([pseudo_residuals(p.lN, p.lL) for p in profs] + [np.zeros(0)])
    return float(MAD_TO_SD * np.median(np.abs(r))) if len(r) else 0.0


# --------------------------------------------------------------------------------------------
# one budget's minimum


def _grid(p: Profile) -> np.ndarray:
    return np.linspace(p.lN[0], p.lN[-1], (p.k - 1) * GRID_PER_GAP)


def _minima(method: str, p: Profile, lL: np.ndarray):
    """(ln N at the minimum, ln L there, interior?) for each column of lL (k, B)."""
    if method == "akima":
        grid = _grid(p)
        V = Akima1DInterpolator(p.lN, lL, axis=0)(grid)  # (G, B)
        i = V.argmin(0)
        return grid[i], V[i, np.arange(V.shape[1])], (i > 0) & (i < len(grid) - 1)
    # Hoffmann et al.: a parabola in the loss itself
    u0 = p.lN.mean()
    u = p.lN - u0
    c0, c1, c2 = np.linalg.pinv(np.stack([np.ones_like(u), u, u * u], 1)) @ np.exp(lL)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = -c1 / (2 * c2)
        ok = (c2 > 0) & (v > u[0]) & (v < u[-1])
        v = np.where(ok, v, np.where(c1 > 0, u[0], u[-1]))
        return u0 + v, np.log(c0 + c1 * v + c2 * v * v), ok


def _parabola(p: Profile) -> dict:
    u0 = float(p.lN.mean())
    u = p.lN - u0
    coef = np.linalg.lstsq(np.stack([np.ones_like(u), u, u * u], 1), np.exp(p.lL), rcond=None)[0]
    return {"ln_N0": u0, "coef": [float(c) for c in coef]}


def _rng(seed: int, label: int) -> np.random.Generator:
    # one stream per budget: the extrapolation check's refit sees the same draws
    return np.random.default_rng([seed, zlib.crc32(b"isoflop"), label])


def locate(p: Profile, method: str, noise: np.ndarray, draws: int, seed: int) -> dict:
    """One budget's minimum: from the data ("t_fit"), and its median ("t_opt"), sd and valid
    draws under loss noise (sd of ln L per size, `noise`), or why the budget is dropped."""
    t0, l0, ok0 = (v[0] for v in _minima(method, p, p.lL[:, None]))
    gap_N = (p.lN[-1] - p.lN[0]) / (p.k - 1)
    gap_D = abs(p.lD[-1] - p.lD[0]) / (p.k - 1)
    out = {"profile": p, "t_fit": float(t0), "loss_fit": float(l0), "dropped": None}
    lowest = int(np.argmin(p.lL))
    if lowest in (0, p.k - 1):
        # no run on the far side of the minimum: an interpolant (or parabola) that dips
        # below the end run is an extrapolation, not a measurement
        end = "smallest" if lowest == 0 else "largest"
        return out | {"dropped": f"its lowest loss is at its {end} size (not bracketed)"}
    if not ok0:
        end = "smallest" if t0 <= p.lN[0] + 1e-12 else "largest"
        what = "fitted parabola's minimum" if method == "parabola" else "minimum"
        return out | {"dropped": f"its {what} is at its {end} size"}
    if draws > 0:
        z = _rng(seed, p.label).standard_normal((p.k, draws))
        t, loss, ok = _minima(method, p, p.lL[:, None] + noise[:, None] * z)
        frac = float(ok.mean())
        if frac < MIN_VALID:
            return out | {
                "dropped": f"under loss noise {100 * (1 - frac):.0f}% of draws put its minimum "
                "at an end"
            }
        ts, loss = t[ok], loss[ok]
    else:
        frac, ts, loss = 1.0, np.array([t0]), np.array([l0])
    lD = np.interp(ts, p.lN, p.lD)
    return out | {
        "t_draws": ts,
        "lD_draws": lD,
        "valid": frac,
        "t_opt": float(np.median(ts)),
        "lD_opt": float(np.median(lD)),
        "loss_opt": float(np.median(loss)),
        # Porian et al.: a floor (an optimum is not located finer than ~1/3 of the spacing of
        # the sizes) and an inflation by the share of draws that found no interior minimum
        "sd_N": max(float(ts.std()), STD_FLOOR * gap_N) / frac,
        "sd_D": max(float(lD.std()), STD_FLOOR * gap_D) / frac,
    }


# --------------------------------------------------------------------------------------------
# the fit against compute


def _wls(x: np.ndarray, Y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares line of each row of Y (..., G) on x (G,): (slope, intercept)."""
    W = w / w.sum()
    xm = W @ x
    ym = Y @ W
    slope = ((Y - ym[..., None]) * (x - xm)) @ W / (W @ (x - xm) ** 2)
    return slope, ym - slope * xm


@dataclass
class IsoflopFit:
    params: dict[str, float]
    draws: dict[str, np.ndarray]  # the same fit to each noise draw (empty without draws)
    located: list[dict]  # every budget with 3+ sizes, used or dropped
    noise: dict  # the loss noise the draws used
    method: str

    @property
    def used(self) -> list[dict]:
        return [m for m in self.located if m["dropped"] is None]

    def residuals(self) -> np.ndarray:
        lC = np.array([m["profile"].lC for m in self.used])
        t = np.array([m["t_opt"] for m in self.used])
        return t - (math.log(self.params["k_N"]) + self.params["a"] * lC)

    def objective(self) -> float:
        w = np.array([m["sd_N"] ** -2.0 for m in self.used])
        return float((w * self.residuals() ** 2).sum())


def loss_noise(profs: list[Profile], given: float | None) -> dict:
    """The noise the draws add: given in nats (--loss-noise), or estimated in ln L."""
    if given is not None:
        return {"source": "given", "sigma_nats": float(given)}
    return {
        "source": "estimated",
        "sigma_ln_loss": estimate_noise(profs),
        "estimator": "1.4826 x median |pseudo-residual| (cubic through the 4 neighbouring "
        "sizes) pooled over budgets",
    }


def fit_isoflop(
    runs: Runs,
    tol: float,
    method: str = "akima",
    draws: int = 1000,
    seed: int = 0,
    noise: float | None = None,
    exclude: tuple[int, ...] = (),
) -> IsoflopFit:
    """Approach 2 on a table of runs (budgets labelled by `budgets(C, tol)`; labels in
    `exclude` are left out). `noise` is the loss noise in nats; None estimates it."""
    if method not in METHODS:
        raise FitError(f"unknown isoflop method '{method}'; choose from {', '.join(METHODS)}")
    profs = [p for p in profiles(runs, tol) if p.label not in exclude]
    info = loss_noise(profs, noise)
    located = []
    for p in profs:
        sd = noise / np.exp(p.lL) if noise is not None else np.full(p.k, info["sigma_ln_loss"])
        located.append(locate(p, method, sd, draws, seed))
    used = [m for m in located if m["dropped"] is None]
    if len(used) < 2:
        why = "; ".join(
            f"C={math.exp(m['profile'].lC):.3g}: {m['dropped']}" for m in located if m["dropped"]
        )
        raise FitError(
            f"fewer than 2 budgets have a loss minimum inside their sampled sizes ({why})"
        )
    lC = np.array([m["profile"].lC for m in used])
    params, table = {}, {}
    for y, sd, slope, scale in (("t", "sd_N", "a", "k_N"), ("lD", "sd_D", "b", "k_D")):
        w = np.array([m[sd] ** -2.0 for m in used])
        centre = np.array([m[f"{y}_opt"] for m in used])
        s, c = _wls(lC, centre, w)
        params[slope], params[scale] = float(s), float(np.exp(c))
        if draws > 0:
            m_min = min(len(m[f"{y}_draws"]) for m in used)
            Y = np.stack([m[f"{y}_draws"][:m_min] for m in used], 1)  # (draws, budgets)
            s, c = _wls(lC, Y, w)
            table[slope], table[scale] = s, np.exp(c)
    return IsoflopFit(params, table, located, info, method)


def isoflop_draw_samples(fitted: IsoflopFit, most: int) -> list[dict]:
    n = len(fitted.draws.get("a", []))
    return [
        {k: float(fitted.draws[k][i]) for k in ("a", "b", "k_N", "k_D")}
        for i in range(min(n, most))
    ]


def isoflop_ci(fitted: IsoflopFit) -> dict[str, list[float]]:
    """Percentile 95% intervals of the fits to the noise draws (Porian et al.'s interval)."""
    if not fitted.draws:
        return {}
    return {
        k: [float(v) for v in np.percentile(fitted.draws[k], [2.5, 97.5])]
        for k in ("a", "b", "k_N", "k_D")
    }


# --------------------------------------------------------------------------------------------
# fits.json


def isoflop_allocation(runs: Runs, fitted: IsoflopFit) -> tuple[dict, list[str]]:
    """The two lines, and per budget its minimum, spread and runs (or why it was dropped), so
    the report draws what was fitted."""
    warnings = [
        f"budget C={math.exp(m['profile'].lC):.3g} dropped: {m['dropped']}"
        for m in fitted.located
        if m["dropped"]
    ]
    table = [_isoflop_budget(runs, m, fitted.method) for m in fitted.located]
    alloc = dict(fitted.params) | {"method": fitted.method, "loss_noise": fitted.noise}
    return alloc | {"budgets": table}, warnings


def _isoflop_budget(runs: Runs, m: dict, method: str) -> dict:
    """One budget of an isoflop fit as fits.json stores it (docs/fitting.md)."""
    p: Profile = m["profile"]
    used = m["dropped"] is None
    t = m["t_opt"] if used else m["t_fit"]
    out = {
        "C": math.exp(p.lC),
        "N_opt": math.exp(t),
        "D_opt": math.exp(m["lD_opt"] if used else float(np.interp(t, p.lN, p.lD))),
        "loss": None,
        "used": used,
        "dropped": m["dropped"],
        "in_range": used,
        "N_sampled": [math.exp(p.lN[0]), math.exp(p.lN[-1])],
        "ln_N_opt_sd": m.get("sd_N"),
        "ln_D_opt_sd": m.get("sd_D"),
        "draws_valid": m.get("valid"),
        "curve": method,
        "points": points(runs, p.members),
    }
    if method == "parabola":
        out["parabola"] = _parabola(p)
    # the loss at N_opt on the budget's own fitted curve, where the report draws the minimum
    out["loss"] = float(isoflop_curve(out, out["N_opt"]))
    return out


def isoflop_parabola(budget: dict, N) -> np.ndarray:
    """Loss on a parabola-method budget's parabola at model sizes N (its "parabola" holds ln_N0
    and coef: loss = c0 + c1 u + c2 u^2, u = ln N - ln_N0)."""
    p = budget["parabola"]
    u = np.log(np.asarray(N, dtype=float)) - p["ln_N0"]
    c0, c1, c2 = p["coef"]
    return c0 + c1 * u + c2 * u * u


def isoflop_curve(budget: dict, N) -> np.ndarray:
    """Loss on the profile a budget was fitted with, at model sizes N within its sampled sizes:
    the parabola (parabola method) or the Akima interpolant of ln L in ln N through its runs."""
    if "parabola" in budget:
        return isoflop_parabola(budget, N)
    pts = sorted(budget["points"], key=lambda q: q["N"])
    lN = np.log([q["N"] for q in pts])
    size = np.concatenate([[0], np.cumsum(np.diff(lN) > 1e-9)])
    x, y = _mean_by(size, lN), _mean_by(size, np.log([q["loss"] for q in pts]))
    return np.exp(Akima1DInterpolator(x, y)(np.log(np.asarray(N, dtype=float))))
