"""Compute-optimal allocation: the compute frontier (rungs, their lower envelope, the frontier
law, Chinchilla's loss at its optimal N and D) beside N_opt and D_opt from every law that
estimates them; the IsoFLOP profiles with the curves ladder.fit fitted (Akima interpolants or
parabolas), their minima and the minima's power laws in compute.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm

from ladder import fit
from ladder.fit.allocation import ComputeModel
from ladder.report.figure import (
    LOSS_LABEL,
    clamp_loss_axis,
    entropy_floor,
    legend,
    loglog,
    missing,
    new_figure,
    note,
    scatter_by,
    solid_dashed,
)
from ladder.report.inputs import AXES, ReportInputs
from ladder.report.laws import draw_law, mark_target, param_text
from ladder.report.predictions import (
    ALLOCATORS,
    allocation_band,
    optimal_loss,
    spread,
    target_predictions,
)

# --------------------------------------------------------------------------------------------
# the compute frontier and compute-optimal N and D


def plot_compute_frontier(study: ReportInputs):
    """Loss over compute with its lower envelope and laws; compute-optimal N and D lines."""
    fig, (ax, ax2) = new_figure(2)
    C = study.values("compute")
    ok = study.runs["ok"].to_numpy() & np.isfinite(C) & (C > 0)
    if not ok.any():
        missing(ax, "no finished rungs with a compute value")
        missing(ax2, "no finished rungs")
        return fig
    target = study.target[1] if study.target and study.target[0] == "compute" else 0
    grid = np.geomspace(C[ok].min() / 1.5, max(C[ok].max(), target) * 1.5, 120)
    _frontier_panel(fig, ax, study, ok, grid)
    _allocation_panel(ax2, study, ok, grid)
    return fig


def _frontier_panel(fig, ax, study: ReportInputs, ok: np.ndarray, grid: np.ndarray) -> None:
    """Loss over compute: the rungs, their lower envelope, the frontier law and Chinchilla's
    loss at its own compute-optimal N and D."""
    C, L, N = study.values("compute"), study.values_loss(), study.values("params")
    scatter_by(fig, ax, C[ok], L[ok], N[ok], AXES["params"][1])
    # the runs no cheaper run beats, as fit.py's frontier law sees them
    front = np.flatnonzero(ok)[fit.frontier_mask(C[ok], L[ok], np.ones((1, ok.sum())))[0]]
    front = front[np.argsort(C[front])]
    ax.plot(C[front], L[front], "k-", lw=1, alpha=0.5, label="lower envelope of the rungs")
    c_max = C[ok].max()
    if (entry := study.law("frontier")) is not None:
        label = "frontier law: " + param_text(entry, ("E", "alpha"))
        draw_law(ax, entry, "compute", grid[0], grid[-1], c_max, "C3", label)
    if (entry := study.allocation("chinchilla")) is not None:
        mid, lo, hi = spread(entry, lambda p: optimal_loss(entry, grid, p))
        label = "Chinchilla loss at compute-optimal N, D"
        solid_dashed(ax, grid, mid, c_max, color="C0", lw=1.5, label=label)
        if lo is not None:
            ax.fill_between(grid, lo, hi, color="C0", alpha=0.12, lw=0)
    marks = []
    for row in target_predictions(study):
        if row["law"] in ("frontier", "chinchilla"):
            mark_target(ax, study.target[1], row, "C3" if row["law"] == "frontier" else "C0")
            marks += [row["loss"], row["lo"], row["hi"]]
    clamp_loss_axis(ax, study, L[ok], marks)
    entropy_floor(ax, study)
    loglog(ax, AXES["compute"][1])
    legend(ax, fontsize=7)
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title("Compute frontier (dashed: extrapolated; bands: 95%)", fontsize=10)


def _allocation_panel(ax, study: ReportInputs, ok: np.ndarray, grid: np.ndarray) -> None:
    """N_opt and D_opt against compute from every law that estimates them, over the rungs'
    own N and D. A law without an allocation (e.g. the frontier of a fixed-token ladder, whose
    slopes would describe the design) is named in a note instead."""
    C, N, D = study.values("compute"), study.values("params"), study.values("tokens")
    c_max = C[ok].max()
    absent = []
    for key, colour, name in ALLOCATORS:
        if (entry := study.allocation(key)) is None:
            absent.append(study.why_no_allocation(key))
            continue
        alloc = allocation_band(entry, grid)
        for sym, ls in (("N", "-"), ("D", ":")):
            mid, lo, hi = alloc[sym]
            label = f"{sym}_opt, {name}"
            solid_dashed(ax, grid, mid, c_max, color=colour, lw=2, ls=ls, label=label)
            if lo is not None:
                ax.fill_between(grid, lo, hi, color=colour, alpha=0.15, lw=0)
    ax.scatter(C[ok], N[ok], marker="o", color="0.45", s=14, label="rungs: N")
    ax.scatter(C[ok], D[ok], marker="s", color="0.7", s=14, label="rungs: D")
    if len(absent) == len(ALLOCATORS):
        note(ax, "no compute-optimal allocation:\n" + "\n".join(absent))
    loglog(ax, AXES["compute"][1])
    legend(ax, fontsize=7)
    ax.set_ylabel("parameters N, tokens D")
    ax.set_title("Compute-optimal N (solid) and D (dotted)", fontsize=10)


# --------------------------------------------------------------------------------------------
# IsoFLOP profiles: the curves ladder fit fitted, their minima, and N_opt, D_opt(C)


def plot_isoflop(study: ReportInputs):
    """Loss vs N within each compute budget with the profile ladder.fit fitted to it and its
    minimum; the minima's N_opt and D_opt against compute and their power laws."""
    fig, (ax, ax2) = new_figure(2)
    entry = study.law("isoflop")
    C, N = study.values("compute"), study.values("params")
    ok = study.runs["ok"].to_numpy() & np.isfinite(C) & (C > 0) & np.isfinite(N)
    if not ok.any():
        missing(ax, "no finished rungs with compute and parameter counts")
        missing(ax2, study.why_missing("isoflop"))
        return fig
    minima = ((entry or {}).get("optimal_allocation") or {}).get("budgets") or []
    _profiles_panel(fig, ax, study, ok, minima)
    if entry is None:
        missing(ax2, "no IsoFLOP fit:\n" + study.why_missing("isoflop"))
    elif not minima:
        missing(ax2, "fits.json lists no per-budget minima for isoflop")
    else:
        _isoflop_lines(ax2, study, entry, minima)
    return fig


def _profiles_panel(fig, ax, study: ReportInputs, ok: np.ndarray, minima: list[dict]) -> None:
    """Loss vs N of the runs in each compute budget, coloured by budget, with the budget's
    fitted profile (or, without stored runs per budget, the Chinchilla law) and its minimum."""
    C, L, N = study.values("compute"), study.values_loss(), study.values("params")
    labels = fit.budgets(C[ok], float(study.fit_meta.get("budget_tol", 0.25)))
    lC = np.array([np.log(C[ok][labels == g]).mean() for g in np.unique(labels)])
    norm = LogNorm(np.exp(lC.min()), np.exp(lC.max()) * 1.0001)
    cmap = colormaps["plasma_r"]
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="compute budget C (FLOPs)")

    def colour(c: float):
        return cmap(norm(c))

    curves = any(m.get("points") for m in minima)
    for g in np.unique(labels):
        members = np.flatnonzero(ok)[labels == g]
        members = members[np.argsort(N[members])]
        # the runs, joined only when there is no fitted curve to show their shape
        style = dict(ms=5, mec="k", mew=0.4, lw=0.8, ls="none" if curves else "-")
        ax.plot(N[members], L[members], marker="o", color=colour(np.exp(lC[g])), **style)
    if curves:
        for i, m in enumerate(minima):
            if m.get("points"):
                _draw_curve(ax, m, colour(m["C"]), gid=f"isoflop-curve-{i}")
        kind = "parabola" if any("parabola" in m for m in minima) else "Akima interpolant"
        ax.plot([], [], color="0.4", lw=1.4, label=f"{kind} of each budget (the fitted profile)")
    else:
        _chinchilla_along_budgets(ax, study, np.flatnonzero(ok), labels, np.exp(lC), colour)
    _draw_minima(ax, minima, colour)
    loglog(ax, AXES["params"][1])
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title("IsoFLOP profiles: loss vs N at fixed compute", fontsize=10)
    legend(ax, fontsize=7)


def _draw_curve(ax, m: dict, colour, gid: str) -> None:
    """One budget's fitted profile from fits.json (fit.isoflop_curve: the Akima interpolant
    through its runs, or its parabola), over the sizes it was fitted on; a parabola is dashed
    out to its vertex where that lies beyond them, so the minimum's star sits on the curve."""
    fitted = [p["N"] for p in m["points"]]
    lo, hi = min(fitted), max(fitted)
    ends = (min(lo, m["N_opt"]), max(hi, m["N_opt"])) if "parabola" in m else (lo, hi)
    xs = np.unique(np.concatenate([np.geomspace(*ends, 100), [lo, hi, m["N_opt"]]]))
    xs = xs[(xs >= ends[0]) & (xs <= ends[1])]
    ys = fit.isoflop_curve(m, xs)
    inside = (xs >= lo) & (xs <= hi)
    ax.plot(xs[inside], ys[inside], color=colour, lw=1.4, gid=gid)
    for beyond in (xs <= lo, xs >= hi):
        if beyond.sum() > 1:
            ax.plot(xs[beyond], ys[beyond], color=colour, lw=1.2, ls="--", gid=gid)


def _chinchilla_along_budgets(ax, study: ReportInputs, idx, labels, budget_C, colour) -> None:
    """The fallback for a fits.json without per-budget curves (written before they were
    stored, or with no isoflop fit): the fitted Chinchilla law along each budget's line
    D = C / (c(N) N), in the table's own FLOP count where fits.json records it."""
    chin = study.law("chinchilla")
    if chin is None:
        return
    alloc = chin.get("optimal_allocation") or {}
    if "compute" in alloc:
        c_per = ComputeModel.from_json(alloc["compute"]).c
    else:
        c_value = alloc.get("flops_per_param_token", 6.0)

        def c_per(lN):
            return c_value

    N = study.values("params")
    for g in np.unique(labels):
        members = idx[labels == g]
        if len(members) < 3:
            continue
        ns = np.geomspace(N[members].min() / 1.3, N[members].max() * 1.3, 80)
        loss = fit.predict(chin, N=ns, D=budget_C[g] / (c_per(np.log(ns)) * ns))
        ax.plot(ns, loss, color=colour(budget_C[g]), lw=1.2, alpha=0.7)
    ax.plot([], [], color="0.4", lw=1.2, label="Chinchilla law along each budget")


def _draw_minima(ax, minima: list[dict], colour) -> None:
    """Each budget's fitted minimum as a star; hollow and red-edged when the budget was not
    used (its minimum lies at or beyond the ends of the sizes it sampled)."""
    for m in minima:
        inside = m.get("used", m.get("in_range", True))
        face, edge = (colour(m["C"]), "k") if inside else ("w", "r")
        ax.scatter(
            [m["N_opt"]], [m["loss"]], marker="*", s=160, zorder=4, lw=1, color=face, edgecolor=edge
        )
    if minima:
        ax.scatter([], [], marker="*", s=120, color="0.5", edgecolor="k", label="fitted minimum")
    if any(not m.get("used", m.get("in_range", True)) for m in minima):
        label = "budget dropped: minimum at an end of its sizes"
        ax.scatter([], [], marker="*", s=120, color="w", edgecolor="r", label=label)


def _isoflop_lines(ax, study: ReportInputs, entry: dict, minima: list[dict]) -> None:
    """The minima's N_opt and D_opt against compute, with the fitted power laws and bands
    (the budgets the fit used; dropped ones are on the profiles panel)."""
    minima = [m for m in minima if m.get("used", True)] or minima
    Cm = np.array([m["C"] for m in minima])
    target = study.target[1] if study.target and study.target[0] == "compute" else 0
    grid = np.geomspace(Cm.min() / 2, max(Cm.max(), target) * 2, 80)
    alloc = allocation_band(entry, grid)
    for sym, colour, key in (("N", "C2", "N_opt"), ("D", "C4", "D_opt")):
        mid, lo, hi = alloc[sym]
        exponent = "a" if sym == "N" else "b"
        ci = (entry.get("ci95") or {}).get(exponent)
        text = f"{key} ∝ C^{entry['params'][exponent]:.3g}" + (
            f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""
        )
        solid_dashed(ax, grid, mid, Cm.max(), color=colour, lw=2, label=text)
        if lo is not None:
            ax.fill_between(grid, lo, hi, color=colour, alpha=0.15, lw=0)
        ax.scatter(Cm, [m[key] for m in minima], color=colour, edgecolor="k", zorder=3)
    loglog(ax, AXES["compute"][1])
    ax.set_ylabel("compute-optimal N, D")
    ax.set_title("Minima per budget and their power laws (band: 95%)", fontsize=10)
    legend(ax, fontsize=8)
