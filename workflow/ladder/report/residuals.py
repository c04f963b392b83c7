"""Residuals of every fitted law, one panel per law: ln L - ln L_fit at each rung it was fitted
on (for IsoFLOP, ln N_opt - fit at each budget)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ladder.report.figure import legend, missing, new_figure
from ladder.report.inputs import AXES, ReportInputs


def _residual_x(study: ReportInputs, entry: dict) -> tuple[np.ndarray | None, str]:
    """Where to place each residual: the law's variable (compute for two-variable laws) at
    the rungs it was fitted on, or the budget's compute for isoflop (one residual per budget)."""
    if entry.get("law") == "isoflop":
        budgets = (entry.get("optimal_allocation") or {}).get("budgets") or []
        if len(budgets) == len(entry["residuals_log"]):
            return np.array([b["C"] for b in budgets], dtype=float), AXES["compute"][1]
        return None, ""
    var = entry["x"] if isinstance(entry.get("x"), str) else "compute"
    by_rung = study.runs.set_index("rung")
    rows = entry.get("rows") or []
    if len(rows) != len(entry["residuals_log"]) or not all(r in by_rung.index for r in rows):
        return None, ""
    x = pd.to_numeric(by_rung.loc[rows, study.column(var)], errors="coerce")
    return x.to_numpy(dtype=float), AXES[var][1]


def plot_residuals(study: ReportInputs):
    """ln L - ln L_fit at every fitted rung, one panel per law (no-offset variants share their
    law's panel)."""
    groups = _panel_laws(study)
    if not groups:
        fig, (ax,) = new_figure()
        missing(ax, "no fitted law has residuals (every law was skipped)")
        return fig
    ncols = min(4, len(groups))
    fig, axes = new_figure(ncols, -(-len(groups) // ncols), width=4.2, height=3.4)
    for ax, key in zip(axes, groups, strict=False):
        _residual_panel(ax, study, key)
    for ax in axes[len(groups) :]:
        ax.axis("off")
    return fig


def _panel_laws(study: ReportInputs) -> list[str]:
    """One panel per fitted law with residuals; a no-offset variant joins its law's panel, or
    has its own when its law has none."""
    groups = [
        k
        for k in study.laws
        if study.law(k) and study.laws[k].get("residuals_log") and not k.endswith("_no_offset")
    ]
    groups += [
        k
        for k in study.laws
        if k.endswith("_no_offset") and study.law(k) and k.removesuffix("_no_offset") not in groups
    ]
    return groups


def _residual_panel(ax, study: ReportInputs, key: str) -> None:
    """The residuals of a law (blue) and of its no-offset variant (orange), in percent."""
    for k, colour in ((key, "C0"), (f"{key}_no_offset", "C1")):
        entry = study.law(k)
        if entry is None or not entry.get("residuals_log"):
            continue
        r = np.asarray(entry["residuals_log"], dtype=float)
        x, label = _residual_x(study, entry)
        if x is None:
            x, label = np.arange(len(r)), "fitted point"
        else:
            ax.set_xscale("log")
        ax.scatter(
            x,
            100 * r,
            s=18,
            color=colour,
            edgecolor="k",
            lw=0.4,
            label=f"{k}: rms {100 * np.sqrt(np.mean(r**2)):.2f}%",
        )
        ax.set_xlabel(label, fontsize=8)
    ax.axhline(0, color="k", lw=1)
    what = (
        "ln N_opt - fit (%)" if study.laws[key].get("law") == "isoflop" else "ln L - ln L_fit (%)"
    )
    ax.set_ylabel(what, fontsize=8)
    ax.set_title(key, fontsize=9)
    legend(ax, fontsize=7)
    ax.grid(True, alpha=0.25)
