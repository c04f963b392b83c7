"""The three scale properties, measured and drawn (docs/report.md):

    sensitivity   every exponent's interval; the local exponent -d ln L / d ln x
    similarity    learning curves rescaled by compute and reducible loss, and how well they collapse
                  compared with rescaling by other runs' scales (a shuffled baseline)
    independence  exponents refitted on windows of compute levels and with one level left out

The measurements (`exponents`, `sensitivity`, `collapse`, `independence`) feed report.md too.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm

from ladder import fit
from ladder.report.curves import curve_of
from ladder.report.figure import legend, loglog, missing, new_figure, size_colours
from ladder.report.inputs import AXES, ReportInputs
from ladder.report.predictions import spread

EXPONENTS = ("alpha", "beta", "alpha_N", "alpha_D")  # loss exponents; a, b are allocation ones
COLLAPSE_FROM = 0.1  # fraction of a run's compute after which curves are compared (warmup ends)


# --------------------------------------------------------------------------------------------
# sensitivity: does loss move with scale, and how fast


def exponents(study: ReportInputs) -> list[dict]:
    """Every fitted exponent with its interval: rows of law, name, value, lo, hi."""
    rows = []
    for key, entry in study.laws.items():
        if study.law(key) is None:
            continue
        for name in EXPONENTS:
            if name in entry["params"]:
                ci = (entry.get("ci95") or {}).get(name, [np.nan, np.nan])
                rows.append(
                    {
                        "law": key,
                        "name": name,
                        "value": entry["params"][name],
                        "lo": ci[0],
                        "hi": ci[1],
                    }
                )
    return rows


def verdict(row: dict) -> str:
    """What an exponent's 95% interval says about whether loss moves with that variable."""
    if np.isfinite(row["lo"]) and row["lo"] > 0:
        return "excludes 0: loss falls with scale"
    if np.isfinite(row["hi"]) and row["hi"] < 0:
        return "below 0: loss rises with scale"
    if not np.isfinite(row["lo"]):
        return "no interval"
    return "includes 0: no evidence that loss moves"


def local_exponent(entry: dict, params: dict | None, s: str, x: np.ndarray) -> np.ndarray:
    """-d ln L / d ln x of a one-variable law at x (a central difference of fit.predict)."""
    eps = 1e-3
    up = fit.predict(entry, params, **{s: x * math.exp(eps)})
    down = fit.predict(entry, params, **{s: x * math.exp(-eps)})
    return -(np.log(up) - np.log(down)) / (2 * eps)


def sensitivity(study: ReportInputs) -> list[dict]:
    """How fast loss moves: the local slope -d ln L / d ln x of each one-variable law at the
    largest rung, and the loss change per 10x scale from there, both from fit.predict."""
    out = []
    for var, (s, _, _) in AXES.items():
        entry, x = study.law(f"power_{var}"), study.finished_values(var)
        if entry is None or not len(x):
            continue
        top = np.array([x.max()])
        loss, loss_10x = (float(fit.predict(entry, **{s: v})[0]) for v in (top, 10 * top))
        slope = float(local_exponent(entry, None, s, top)[0])
        out.append(
            {"law": f"power_{var}", "var": var, "at": top[0], "slope": slope}
            | {"loss": loss, "loss_10x": loss_10x}
        )
    return out


def plot_scale_sensitivity(study: ReportInputs):
    """Every exponent with its interval; the local exponent of loss over the sampled range."""
    fig, (ax, ax2) = new_figure(2)
    _exponents_panel(ax, exponents(study))
    _local_exponent_panel(ax2, study)
    return fig


def _exponents_panel(ax, rows: list[dict]) -> None:
    if not rows:
        missing(ax, "no fitted exponents: every law was skipped")
        return
    ys = np.arange(len(rows))[::-1]
    vals = np.array([r["value"] for r in rows])
    lo, hi = np.array([r["lo"] for r in rows]), np.array([r["hi"] for r in rows])
    err = np.where(np.isfinite([lo, hi]), np.abs(np.array([vals - lo, hi - vals])), 0)
    excl = np.isfinite(lo) & (lo > 0)
    ax.errorbar(vals, ys, xerr=err, fmt="o", color="C0", capsize=4)
    ax.scatter(vals[~excl], ys[~excl], color="r", zorder=3, label="interval reaches 0")
    ax.axvline(0, color="k", lw=1, ls="--")
    ax.set_yticks(ys, [f"{r['law']}: {r['name']}" for r in rows], fontsize=8)
    ax.set_xlabel("exponent (95% interval)")
    ax.set_title(f"Fitted exponents: {int(excl.sum())} of {len(rows)} exclude 0")
    if (~excl).any():
        legend(ax, fontsize=8)
    ax.grid(True, axis="x", alpha=0.25)


def _local_exponent_band(entry: dict, s: str, xs: np.ndarray):
    """The local exponent at xs with its 95% band over the entry's bootstrap samples."""
    return spread(entry, lambda p: local_exponent(entry, p, s, xs))


def _local_exponent_panel(ax, study: ReportInputs) -> None:
    """-d ln L / d ln x of each one-variable law over its sampled range, with a 95% band."""
    drawn = False
    for i, (var, (s, _, _)) in enumerate(AXES.items()):
        entry, x = study.law(f"power_{var}"), study.finished_values(var)
        if entry is None or len(x) < 2:
            continue
        xs = np.geomspace(x.min(), x.max(), 60)
        mid, lo, hi = _local_exponent_band(entry, s, xs)
        frac = xs / x.min()  # scale relative to the smallest rung, so axes share one scale
        ax.plot(frac, mid, color=f"C{i}", lw=2, label=f"{s}: -dlnL/dln{s}")
        if lo is not None:
            ax.fill_between(frac, lo, hi, color=f"C{i}", alpha=0.18, lw=0)
        drawn = True
    if not drawn:
        missing(ax, "no one-variable law fitted: local sensitivity not measured")
        return
    ax.set_xscale("log")
    ax.axhline(0, color="k", lw=1, ls="--")
    ax.set_xlabel("scale relative to the smallest rung")
    ax.set_ylabel("local exponent of loss  -d ln L / d ln x")
    ax.set_title("How fast loss moves with scale (band: 95%)")
    legend(ax, fontsize=8)
    ax.grid(True, alpha=0.25)


# --------------------------------------------------------------------------------------------
# self-similarity: do rescaled learning curves collapse?


def irreducible(study: ReportInputs) -> tuple[float, str]:
    """The loss floor E for rescaling: a fitted E (two-variable law first), else the source
    entropy, else 0 (then L - E is the loss itself)."""
    for key in ("chinchilla", "power_compute", "power_params", "power_tokens"):
        entry = study.law(key)
        if entry is not None and "E" in entry["params"]:
            return float(entry["params"]["E"]), f"E of {key}"
    if study.entropy_nats is not None:
        return study.entropy_nats, "source entropy"
    return 0.0, "no fitted E; E = 0"


def collapse(study: ReportInputs) -> dict:
    """Rescale every learning curve to x = C(t)/C_run and y = (L(t) - E)/(L_end - E) and
    measure how far the curves are from one: the collapse deviation is the mean over
    x in [COLLAPSE_FROM, 1] of std/mean across runs, of y (after rescaling) and of L - E
    (before), on one log-spaced grid. The idea is Qiu et al. 2025, "Scaling collapse reveals
    universal dynamics in compute-optimally trained neural networks"."""
    E, source = irreducible(study)
    out = {"E": E, "E_source": source, "curves": [], "skipped": []}
    if study.curves is None:
        out["reason"] = "no curves.csv"
        return out
    for _, run in study.runs[study.runs["ok"]].iterrows():
        curve = _rescaled(study, run, E)
        if isinstance(curve, str):
            out["skipped"].append(f"{run['rung']}: {curve}")
        else:
            out["curves"].append(curve)
    if len(out["curves"]) < 2:
        out["reason"] = f"{len(out['curves'])} usable learning curve(s); 2 needed"
        return out
    lo = max(COLLAPSE_FROM, max(c["x"][0] for c in out["curves"]))
    grid = np.geomspace(lo, 1.0, 50)

    def on_grid(key: str) -> np.ndarray:
        ys = np.stack([np.interp(np.log(grid), np.log(c["x"]), c[key]) for c in out["curves"]])
        return np.where(ys > 0, ys, np.nan)

    def deviation(ys: np.ndarray) -> float:
        return float(np.nanmean(np.nanstd(ys, 0) / np.nanmean(ys, 0)))

    rescaled = on_grid("rescaled")
    out.update(
        {
            "grid": grid,
            "mean": np.nanmean(rescaled, 0),
            "deviation": deviation(rescaled),
            "deviation_raw": deviation(on_grid("reducible")),
        }
    )
    out.update(_shuffled_baseline(out["curves"], lo))
    return out


SHUFFLES = 20  # random re-pairings of the curves with other runs' scales


def _shuffled_baseline(curves: list[dict], lo: float) -> dict:
    """The collapse deviation a rescaling would reach by chance: each curve rescaled by another
    run's compute and final reducible loss (a random derangement of the runs, SHUFFLES times,
    seeded), over the same range of x where at least two curves are defined. The deviation
    of the raw curves mostly measures how far the final losses are apart; this baseline asks
    whether the runs' *own* scales collapse the shapes better than someone else's would."""
    n = len(curves)
    rng = np.random.default_rng(0)
    grid = np.geomspace(lo, 1.0, 50)
    values = []
    for _ in range(SHUFFLES):
        perm = rng.permutation(n)
        while np.any(perm == np.arange(n)):
            perm = rng.permutation(n)
        ys = []
        for c, other in zip(curves, (curves[j] for j in perm), strict=True):
            x = c["C"] / other["C"][-1]
            y = c["reducible"] / other["reducible"][-1]
            ys.append(np.interp(np.log(grid), np.log(x), y, left=np.nan, right=np.nan))
        ys = np.stack(ys)
        ys = np.where(ys > 0, ys, np.nan)
        both = np.sum(np.isfinite(ys), 0) >= 2
        if both.any():
            with np.errstate(invalid="ignore"):
                dev = np.nanstd(ys[:, both], 0) / np.nanmean(ys[:, both], 0)
            values.append(float(np.nanmean(dev)))
    if not values:
        return {}
    return {"deviation_shuffled": float(np.mean(values)), "shuffles": len(values)}


def _rescaled(study: ReportInputs, run: pd.Series, E: float) -> dict | str:
    """One finished run's learning curve against x = C(t)/C_run, before (L - E) and after
    rescaling by its final reducible loss; or why it cannot be used."""
    c = curve_of(study, run["rung"])
    if c is None or len(c) < 5:
        return "fewer than 5 curve points"
    tok = c["tokens"].to_numpy(dtype=float)
    y = c["smooth"].to_numpy(dtype=float) - E
    if y[-1] <= 0:
        return "final train loss below E"
    fpt = run.get("flops_per_token", np.nan)
    fpt = fpt if np.isfinite(fpt) else run.get("flops", np.nan) / tok[-1]
    return {
        "rung": run["rung"],
        "x": tok / tok[-1],
        "C": tok * fpt,
        "reducible": y,
        "rescaled": y / y[-1],
        "N": float(run.get(study.column("params"), np.nan)),
    }


def plot_self_similarity(study: ReportInputs, result: dict):
    """Learning curves before (L - E over compute) and after rescaling (collapse())."""
    fig, (ax, ax2) = new_figure(2)
    if "deviation" not in result:
        for a in (ax, ax2):
            missing(a, "collapse not measured: " + result.get("reason", "?"))
        return fig
    Ns = np.array([c["N"] for c in result["curves"]])
    norm = size_colours(Ns) or LogNorm(Ns.min(), Ns.min() * 1.01 + 1)
    cmap = colormaps["viridis"]
    for c in result["curves"]:
        colour = cmap(norm(c["N"])) if np.isfinite(c["N"]) else "0.5"
        ax.plot(c["C"], c["reducible"], color=colour, lw=1.3)
        ax2.plot(c["x"], c["rescaled"], color=colour, lw=1.3)
    grid = result["grid"]
    ax2.plot(grid, result["mean"], "k--", lw=1.5, label="mean rescaled curve")
    ax2.axvspan(grid[0], 1, color="0.9", zorder=0, label="compared range")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax2, label=AXES["params"][1])
    E = result["E"]
    loglog(ax, "compute so far C(t) (FLOPs)")
    loglog(ax2, "fraction of the run's compute C(t)/C")
    ax.set_ylabel(f"reducible loss L - E (nats), E = {E:.4g} ({result['E_source']})")
    ax.set_title(f"Before rescaling: deviation {result['deviation_raw']:.3f}")
    ax2.set_ylabel("(L(t) - E) / (L_end - E)")
    ax2.set_title(f"After rescaling: collapse deviation {result['deviation']:.3f}")
    legend(ax2, fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# scale independence: is the exponent the same across the ladder?

# the exponents refitted on subsets: cheap (closed-form starts), so a dozen refits take
# milliseconds; chinchilla's 4,500-start search would take seconds per subset
REFIT = (
    ("power_params", "alpha"),
    ("power_tokens", "alpha"),
    ("power_compute", "alpha"),
    ("frontier", "alpha"),
)
MAX_SUBSETS = 12


def independence(study: ReportInputs) -> dict[str, dict]:
    """Refit each law's exponent on sliding windows of consecutive compute levels and with one
    level left out; a scale-independent law gives the same exponent everywhere. A level is a
    compute budget (fit.budgets: runs within a factor 1 + budget_tol), i.e. a rung size in a
    plain ladder. A subset is refitted only if it has the law's parameters + 2 runs. Spread =
    the standard deviation of the refitted exponents, set against the full ladder's bootstrap
    standard deviation, and the refits outside the full ladder's 95% interval are counted."""
    runs = study.runs[study.runs["ok"]].drop(columns=["ok"]).reset_index(drop=True)
    C = study.values("compute")[study.runs["ok"].to_numpy()]
    if not len(runs) or not np.isfinite(C).all():
        return {key: {"reason": "no finished rungs with a compute value"} for key, _ in REFIT}
    tol = float(study.fit_meta.get("budget_tol", 0.25))
    levels = fit.budgets(C, tol)
    width, subsets = _subsets(C, levels)
    out: dict[str, dict] = {}
    for key, name in REFIT:
        entry = study.law(key)
        if entry is None:
            out[key] = {"reason": study.why_missing(key)}
            continue
        need = len(entry["params"]) + 2
        res = {
            "name": name,
            "value": float(entry["params"][name]),
            "ci95": (entry.get("ci95") or {}).get(name),
            "boot_sd": _boot_sd(entry, name),
            "width": width,
            "min_runs": need,
            "windows": [],
            "loo": [],
        }
        for kind, at, mask in subsets:
            if _fitted_runs(runs[mask], key, study.fit_columns()) < need:
                continue  # a fit with < 2 residual degrees of freedom says nothing of drift
            value = _refit(runs[mask], key, entry, name, tol, study.fit_columns())
            if value is not None:
                res[kind].append((at, value))
        out[key] = _summarise(res, len(np.unique(levels)))
    return out


def _boot_sd(entry: dict, name: str) -> float | None:
    """The full-ladder exponent's bootstrap standard deviation (from its stored samples)."""
    values = [s[name] for s in entry.get("samples") or [] if s.get(name) is not None]
    return float(np.std(values)) if len(values) >= 2 else None


def _fitted_runs(df: pd.DataFrame, key: str, columns: fit.Columns) -> int:
    """How many runs a refit of `key` on df would fit: all, or the frontier's."""
    if key != "frontier":
        return len(df)
    C = df[columns.compute].to_numpy(dtype=float)
    L = df[columns.loss].to_numpy(dtype=float)
    return int(fit.frontier_mask(C, L, np.ones((1, len(df))))[0].sum())


def _subsets(C: np.ndarray, labels: np.ndarray) -> tuple[int, list[tuple[str, float, np.ndarray]]]:
    """The window width (in levels) and the subsets to refit on: (kind, scale, mask) with kind
    "windows" or "loo" and scale the subset's (or the left-out level's) geometric-mean C."""
    levels = np.unique(labels)
    scale = np.array([np.exp(np.log(C[labels == g]).mean()) for g in levels])
    # windows of at least 5 levels (3 parameters + 2 residual degrees of freedom, with one run
    # per level), half the ladder when longer; subsets with too few runs are skipped later
    width = max(5, -(-len(levels) // 2))
    subsets = []
    if len(levels) > width:
        for s in _spaced(list(range(len(levels) - width + 1)), MAX_SUBSETS):
            mask = np.isin(labels, levels[s : s + width])
            subsets.append(("windows", float(np.exp(np.log(scale[s : s + width]).mean())), mask))
    if len(levels) >= 3:
        for g in _spaced(list(levels), MAX_SUBSETS):
            subsets.append(("loo", float(scale[g]), labels != g))
    return width, subsets


def _summarise(res: dict, n_levels: int) -> dict:
    """Add the spread (std and range) of each kind of refit and how many refits fall outside
    the full ladder's 95% interval (the reference: a drift is a change larger than the full
    fit's own uncertainty), or why there are none."""
    ci = res.get("ci95")
    for kind in ("windows", "loo"):
        values = [v for _, v in res[kind]]
        if len(values) >= 2:
            res[f"{kind}_std"] = float(np.std(values))
            res[f"{kind}_range"] = (min(values), max(values))
        if values and ci:
            res[f"{kind}_outside"] = int(sum(not ci[0] <= v <= ci[1] for v in values))
    if len(res["windows"]) + len(res["loo"]) < 2:
        res["reason"] = (
            f"{n_levels} compute level(s): too few subsets with {res['min_runs']} runs "
            "(the law's parameters + 2) to refit on"
        )
    return res


def _spaced(items: list, k: int) -> list:
    """At most k items, evenly spread (the ends kept), so a long ladder costs k refits."""
    if len(items) <= k:
        return items
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, k).round().astype(int))]


def _refit(
    df: pd.DataFrame, key: str, entry: dict, name: str, tol: float, columns: fit.Columns
) -> float | None:
    """One exponent refitted by ladder.fit on a subset of rungs (None when it can't be)."""
    law = entry["law"]
    kw = {"x": entry["x"], "offset": entry.get("offset", True)} if law == "power" else {}
    try:
        result = fit.fit_table(df, laws=law, bootstrap=0, budget_tol=tol, columns=columns, **kw)
    except fit.FitError:
        return None
    value = result["laws"].get(key, {}).get("params", {}).get(name)
    return float(value) if value is not None and math.isfinite(value) else None


def plot_scale_independence(study: ReportInputs, result: dict[str, dict]):
    """Each exponent refitted on windows of compute levels and with one level left out."""
    fig, axes = new_figure(len(REFIT), width=4.4, height=4.2)
    for ax, (key, name) in zip(axes, REFIT, strict=True):
        res = result.get(key, {})
        title = f"{key}: {name}"
        if not res.get("windows") and not res.get("loo"):
            missing(ax, "not refitted:\n" + res.get("reason", "no fit"))
            ax.set_title(title, fontsize=9)
            continue
        ax.axhline(res["value"], color="k", lw=1.5, label=f"full ladder: {res['value']:.3g}")
        if res.get("ci95"):
            ax.axhspan(*res["ci95"], color="0.88", label="its 95% interval")
        if res["windows"]:
            xw, vw = zip(*res["windows"], strict=True)
            ax.plot(xw, vw, "o-", color="C0", label=f"windows of {res['width']} levels")
        if res["loo"]:
            xl, vl = zip(*res["loo"], strict=True)
            ax.scatter(xl, vl, marker="x", color="C3", zorder=3, label="level left out (at it)")
        stds = [
            f"{k.split('_')[0]} std {res[k]:.2g}" for k in ("windows_std", "loo_std") if k in res
        ]
        if res.get("boot_sd") is not None:
            stds.append(f"bootstrap sd {res['boot_sd']:.2g}")
        ax.set_title(title + ("\n" + ", ".join(stds) if stds else ""), fontsize=9)
        ax.set_xscale("log")
        ax.set_xlabel(AXES["compute"][1], fontsize=8)
        ax.set_ylabel(name)
        legend(ax, fontsize=7)
        ax.grid(True, alpha=0.25)
    return fig
