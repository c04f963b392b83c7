"""Loss against parameters, tokens and compute: the rungs, each fitted power law with its 95%
band (solid over the data, dashed beyond it) and the predicted loss at the study's target. The
helpers that draw a law, a target and a law's parameters serve the allocation plots too.
"""

from __future__ import annotations

import numpy as np

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
from ladder.report.predictions import band, target_predictions


def param_text(entry: dict, names=None) -> str:
    parts = []
    for name, value in entry["params"].items():
        if names is not None and name not in names:
            continue
        ci = (entry.get("ci95") or {}).get(name)
        parts.append(f"{name}={value:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""))
    return ", ".join(parts)


def draw_law(
    ax, entry: dict, var: str, lo: float, hi: float, data_max: float, colour: str, label: str
) -> None:
    """The fitted curve with its 95% band: solid over the data, dashed beyond it."""
    xs = np.unique(np.append(np.geomspace(lo, hi, 200), data_max))  # solid ends at the rung
    mid, blo, bhi = band(entry, **{AXES[var][0]: xs})
    solid_dashed(ax, xs, mid, data_max, color=colour, lw=2, label=label)
    if blo is not None:
        ax.fill_between(xs, blo, bhi, color=colour, alpha=0.18, lw=0)


def mark_target(ax, at: float, row: dict, colour: str) -> None:
    """The predicted loss at the study's target, with its 95% interval as an error bar."""
    yerr = None if row["lo"] is None else [[row["loss"] - row["lo"]], [row["hi"] - row["loss"]]]
    text = f"{row['law']} at {at:.3g}: {row['loss']:.4g} nats"
    if row["lo"] is not None:
        text += f" [{row['lo']:.4g}, {row['hi']:.4g}]"
    ax.errorbar(
        [at],
        [row["loss"]],
        yerr=yerr,
        fmt="*",
        ms=13,
        color=colour,
        mec="k",
        capsize=4,
        zorder=5,
        label=text,
    )


def plot_loss_vs(study: ReportInputs, var: str):
    """Rungs, the fitted power law (with and without offset) and the study's target."""
    fig, (ax,) = new_figure()
    x, loss = study.values(var), study.values_loss()
    ok = study.runs["ok"].to_numpy() & np.isfinite(x) & (x > 0)
    if not ok.any():
        missing(ax, f"no finished rungs with a {study.column(var)} value")
        return fig
    colour_by = "tokens" if var == "params" else "params"
    scatter_by(fig, ax, x[ok], loss[ok], study.values(colour_by)[ok], AXES[colour_by][1])
    bad = ~study.runs["ok"].to_numpy() & np.isfinite(x) & np.isfinite(loss) & (x > 0)
    if bad.any():
        ax.scatter(x[bad], loss[bad], marker="x", color="r", zorder=3, label="diverged")
    data_hi = x[ok].max()
    hi = max(data_hi, study.target[1] if study.target and study.target[0] == var else 0) * 1.5
    targets = {r["law"]: r for r in target_predictions(study)}
    drawn = False
    for key, colour in ((f"power_{var}", "C0"), (f"power_{var}_no_offset", "C1")):
        if (entry := study.law(key)) is None:
            continue
        label = f"{entry.get('formula', key)}\n{param_text(entry)}"
        draw_law(ax, entry, var, x[ok].min() / 1.5, hi, data_hi, colour, label)
        drawn = True
        if key in targets:
            mark_target(ax, study.target[1], targets[key], colour)
    if not drawn:
        note(ax, "no fitted law: " + study.why_missing(f"power_{var}"))
    entropy_floor(ax, study)
    marks = [
        v
        for r in targets.values()
        for v in (r["lo"], r["hi"], r["loss"])
        if r["law"].startswith(f"power_{var}")
    ]
    clamp_loss_axis(ax, study, loss[ok], marks)
    loglog(ax, f"{AXES[var][1]}  [{study.column(var)}]")
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title(
        f"Loss vs {AXES[var][1].split(' (')[0]} (dashed: extrapolated; band: 95%)", fontsize=10
    )
    legend(ax, fontsize=7, loc="best", framealpha=0.8)
    return fig
