"""Matplotlib helpers shared by every plot: figures on the Agg canvas (no pyplot state),
panels that say what is missing, cheap log-axis labels, colours by size, and PNG + SVG writes
through ladder.artifacts."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib import ticker as mticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ladder.artifacts import atomic_file
from ladder.report.inputs import ReportInputs

FORMATS = ("png", "svg")
LOSS_LABEL = "held-out loss (nats/token)"


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 4.6):
    # matplotlib's object API on the Agg canvas: no pyplot state, no display, nothing to close
    fig = Figure(figsize=(width * ncols, height * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def missing(ax, text: str) -> None:
    """An empty panel that says what is missing (the file must exist, the data may not)."""
    lines = [textwrap.fill(line, 48) for line in text.splitlines()]
    ax.text(
        0.5,
        0.5,
        "\n".join(lines),
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=10,
        color="0.3",
    )
    ax.set_xticks([])
    ax.set_yticks([])


def note(ax, text: str) -> None:
    """A short grey note in the lower-left corner of a panel (what could not be drawn)."""
    lines = [textwrap.fill(line, 70) for line in text.splitlines()]
    ax.text(
        0.02, 0.02, "\n".join(lines), transform=ax.transAxes, fontsize=7, color="0.3", va="bottom"
    )


def clamp_loss_axis(ax, study: ReportInputs, losses: np.ndarray, extra=()) -> None:
    """Keep the loss axis on the data (and floor, and target marks): a law whose band spans
    decades should not flatten the runs into a line."""
    values = [v for v in [*losses, *extra] if v is not None and np.isfinite(v) and v > 0]
    if study.entropy_nats:
        values.append(study.entropy_nats)
    if values:
        ax.set_ylim(min(values) / 1.15, max(values) * 1.15)


def legend(ax, **kw) -> None:
    """A legend only when something is labelled (matplotlib warns about empty ones)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def entropy_floor(ax, study: ReportInputs) -> None:
    """The source entropy, where known: no model can go below it."""
    if study.entropy_nats is not None:
        ax.axhline(
            study.entropy_nats,
            color="k",
            ls=":",
            lw=1,
            label=f"source entropy {study.entropy_nats:.3g} nats",
        )


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def tick_text(value: float, _pos=None) -> str:
    """'0.5', '20', '3×10⁶' as plain text: mathtext tick labels ($10^{6}$) cost more to draw
    than the rest of a plot."""
    if not value > 0:
        return ""
    if 1e-3 <= value < 1e4:
        return f"{value:g}"
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = value / 10**exponent
    head = "" if abs(mantissa - 1) < 1e-6 else f"{mantissa:.2g}×"
    return f"{head}10{str(exponent).translate(SUPERSCRIPT)}"


def format_log_axes(fig) -> None:
    """Readable, cheap tick labels on every log axis: decades when the axis spans several,
    1-2-5 steps when it spans less (a loss axis often covers less than a decade)."""
    for ax in fig.axes:
        for axis, lim, scale in (
            (ax.xaxis, ax.get_xlim(), ax.get_xscale()),
            (ax.yaxis, ax.get_ylim(), ax.get_yscale()),
        ):
            if scale != "log" or not (lim[0] > 0 and lim[1] > 0):
                continue
            decades = abs(math.log10(lim[1] / lim[0]))
            if decades >= 1.5:
                subs = (1.0,)
            elif decades >= 0.5:
                subs = (1.0, 2.0, 5.0)
            else:
                subs = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
            axis.set_major_locator(mticker.LogLocator(base=10, subs=subs, numticks=12))
            axis.set_major_formatter(mticker.FuncFormatter(tick_text))
            axis.set_minor_formatter(mticker.NullFormatter())


def save_figure(fig, out: Path, stem: str) -> list[Path]:
    """Write stem.png and stem.svg, each to a temp file renamed into place (ladder.artifacts),
    so no half-written plot is left."""
    paths = []
    format_log_axes(fig)
    fig.tight_layout()
    for ext in FORMATS:
        path = out / f"{stem}.{ext}"
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=110)
        paths.append(path)
    return paths


def size_colours(values: np.ndarray):
    """A log colour scale over model sizes (or token counts); None when there is one value."""
    finite = values[np.isfinite(values) & (values > 0)]
    if len(np.unique(finite)) < 2:
        return None
    return LogNorm(finite.min(), finite.max())


def scatter_by(fig, ax, x, y, by: np.ndarray, label: str) -> None:
    """Rungs as points coloured on a log scale by `by` (size or tokens) with a colour bar, or
    black when `by` takes one value (a fixed-token ladder coloured by tokens)."""
    norm = size_colours(by)
    if norm is None:
        ax.scatter(x, y, color="k", zorder=3, s=30, label="rungs")
        return
    sc = ax.scatter(x, y, c=by, norm=norm, cmap="viridis", zorder=3, edgecolor="k", lw=0.5, s=32)
    fig.colorbar(sc, ax=ax, label=label)


def solid_dashed(ax, x, y, x_max, **kw):
    """One line, solid up to the largest sampled x, dashed (extrapolated) beyond."""
    inside = x <= x_max * (1 + 1e-9)
    ax.plot(x[inside], y[inside], **kw)
    kw.pop("label", None)
    j = max(int(inside.sum()) - 1, 0)
    if j < len(x) - 1:
        ax.plot(x[j:], y[j:], **{**kw, "ls": "--"})


def loglog(ax, xlabel: str) -> None:
    """Log-log axes with a light grid: every law here is a line or curve in log-log."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.grid(True, alpha=0.25)
