"""Learning curves: one rung's curve from curves.csv (with its train loss smoothed) and every
rung's curve in one plot, coloured by size."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm

from ladder.report.figure import (
    entropy_floor,
    legend,
    loglog,
    missing,
    new_figure,
    size_colours,
)
from ladder.report.inputs import AXES, ReportInputs


def smooth(y: np.ndarray, frac: float = 0.02) -> np.ndarray:
    """A centred running mean over ~2% of the points: train loss per step is noisy."""
    k = max(1, int(len(y) * frac)) | 1
    if k == 1 or len(y) < 3 * k:
        return y
    pad = np.pad(y, k // 2, mode="edge")
    return np.convolve(pad, np.ones(k) / k, mode="valid")


def curve_of(study: ReportInputs, rung: str) -> pd.DataFrame | None:
    """One rung's learning curve (tokens > 0, finite train loss), with a smoothed column."""
    if study.curves is None:
        return None
    c = study.curves[study.curves["rung"] == rung]
    c = c[
        (pd.to_numeric(c["tokens"], errors="coerce") > 0)
        & np.isfinite(pd.to_numeric(c["loss_nats"], errors="coerce"))
    ]
    if len(c) < 2:
        return None
    c = c.sort_values("tokens")
    c = c.assign(smooth=smooth(c["loss_nats"].to_numpy(dtype=float)))
    return c


def plot_learning_curves(study: ReportInputs):
    """Every rung's smoothed train loss and its validation points, coloured by size."""
    fig, (ax,) = new_figure(width=7.2)
    if study.curves is None:
        missing(ax, "no curves.csv: learning curves were not recorded")
        return fig
    N = study.values("params")
    norm = size_colours(N) or LogNorm(max(np.nanmin(N), 1), max(np.nanmax(N), 1) * 1.01)
    cmap = colormaps["viridis"]
    drawn = 0
    order = np.argsort(N)
    for i in order:
        rung = study.runs["rung"].iloc[i]
        c = curve_of(study, rung)
        if c is None:
            continue
        colour = cmap(norm(N[i])) if np.isfinite(N[i]) else "0.5"
        ls = "-" if study.runs["ok"].iloc[i] else ":"
        ax.plot(c["tokens"], c["smooth"], color=colour, lw=1.3, ls=ls)
        if "val_loss_nats" in c.columns:
            v = c[np.isfinite(pd.to_numeric(c["val_loss_nats"], errors="coerce"))]
            ax.scatter(
                v["tokens"], v["val_loss_nats"], color=colour, s=14, edgecolor="k", lw=0.4, zorder=3
            )
        drawn += 1
    if not drawn:
        missing(ax, "curves.csv has no rows for the rungs in runs.csv")
        return fig
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=AXES["params"][1])
    ax.plot([], [], "k-", label="train loss (smoothed)")
    ax.scatter([], [], color="w", edgecolor="k", s=14, label="validation loss")
    if not study.runs["ok"].all():
        ax.plot([], [], "k:", label="diverged rung")
    entropy_floor(ax, study)
    loglog(ax, "training tokens seen")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"Learning curves of {drawn} rungs, coloured by size")
    legend(ax, fontsize=8)
    return fig
