"""The laws of whole learning curves in the report: each size's fitted annealing curve over
its runs' observed ones (`plot_curve_fits`), and report.md's section (`section_curve_laws`):
each size's parameters and error, the held-out-schedule check, the law across sizes and its
held-out-size check, Approach 1's exponents."""

from __future__ import annotations

import numpy as np

from ladder.fit import annealing
from ladder.fit.curve_entry import CURVE_LAWS, SIZED_LAWS, fit_steps
from ladder.fit.curves import CurveColumns, load_curves
from ladder.fit.runs import FitError
from ladder.report.curves import smooth
from ladder.report.figure import legend, missing, new_figure

CURVE_PLOT_LAW = "annealing"


def _fitted_groups(study, key: str) -> dict[str, dict]:
    entry = study.curve_laws.get(key) or {}
    return {k: g for k, g in (entry.get("groups") or {}).items() if "params" in g}


def plot_curve_fits(study):
    """Per size: observed train loss (smoothed) and the annealing law's fitted curve, by step."""
    groups = _fitted_groups(study, CURVE_PLOT_LAW)
    if study.curves is None or not groups:
        fig, (ax,) = new_figure(width=7.2)
        missing(ax, "no annealing fit in fits.json (needs curves.csv: `ladder fit --curves`)")
        return fig
    entry = study.curve_laws[CURVE_PLOT_LAW]
    try:
        curves = {
            c.run: c for c in load_curves(study.curves, CurveColumns(**entry["columns"])).curves
        }
    except (FitError, TypeError) as e:
        fig, (ax,) = new_figure(width=7.2)
        missing(ax, f"curves.csv does not match fits.json: {e}")
        return fig
    ncols = min(3, len(groups))
    nrows = -(-len(groups) // ncols)
    fig, axes = new_figure(ncols, nrows, width=4.2, height=3.2)
    for ax, (label, group) in zip(axes, groups.items(), strict=False):
        for j, run in enumerate(group["runs"]):
            c = curves.get(run)
            if c is None:
                continue
            colour = f"C{j % 10}"
            ax.plot(c.steps, smooth(c.loss), color=colour, lw=1.0, alpha=0.6)
            steps = fit_steps(c, 400)
            pred = annealing.loss_of(
                annealing.Design([(c, steps)], entry["lambda"]), group["params"]
            )
            ax.plot(
                steps,
                pred,
                color=colour,
                lw=1.2,
                ls="--",
                label=f"{run} ({group['mare'][run]:.1%})",
            )
        ax.set_xscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/token)")
        legend(ax, fontsize=6)
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    fig.suptitle("Observed (solid, smoothed) and fitted annealing-law curves (dashed; MARE)")
    return fig


def _fmt(x: float | None, digits: int = 4) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def section_curve_laws(study) -> str:
    """Each curve law's per-size parameters and error, the held-out check, Approach 1."""
    lines: list[str] = []
    for key in CURVE_LAWS:
        entry = study.curve_laws.get(key)
        if not entry:
            continue
        if "skipped" in entry:
            lines.append(f"- {key}: skipped ({entry['skipped']})")
            continue
        lines += ["", f"**{key}** `{entry['formula']}` (λ = {entry['lambda']:g})", ""]
        lines += _group_table(entry)
        lines += ["", _holdout_line(key, entry)]
    for key in SIZED_LAWS:
        entry = study.curve_laws.get(key)
        if entry:
            lines += ["", *_sized_lines(key, entry)]
    a1 = study.curve_laws.get("approach1")
    if a1:
        lines += ["", _approach1_line(a1)]
    if not lines:
        return "No curve law was fitted (`ladder fit RUNS.csv --law all --curves CURVES.csv`)."
    return "\n".join(lines).strip()


def _group_table(entry: dict) -> list[str]:
    groups = {k: g for k, g in entry["groups"].items() if "params" in g}
    if not groups:
        return ["No size could be fitted."]
    names = list(next(iter(groups.values()))["params"])
    header = ["size", *names, "runs", "MARE", "held-out MARE"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, g in groups.items():
        cells = []
        for n in names:
            ci = g["ci95"].get(n)
            cells.append(
                _fmt(g["params"][n]) + (f" [{_fmt(ci[0], 3)}, {_fmt(ci[1], 3)}]" if ci else "")
            )
        held = g["holdout"].get("mare_mean")
        rows.append(
            "| " + " | ".join([label, *cells, str(len(g["runs"])), f"{g['mare_mean']:.2%}",
                               "–" if held is None else f"{held:.2%}"]) + " |"
        )  # fmt: skip
    return rows


def _holdout_line(key: str, entry: dict) -> str:
    held = [g["holdout"] for g in entry["groups"].values() if "mare_mean" in g.get("holdout", {})]
    if not held:
        return f"- held-out-schedule check ({key}): not possible (one run per size)"
    errors = [v for h in held for v in h["predicted"].values()]
    return (
        f"- held-out-schedule check ({key}): fitted on each size's longest run, predicted its "
        f"other {len(errors)} run(s)' curves: mean absolute relative error "
        f"{np.mean(errors):.2%} (worst {np.max(errors):.2%})"
    )


def _sized_lines(key: str, entry: dict) -> list[str]:
    """The law across sizes: its parameters, its error, and the held-out-size check's line."""
    if "skipped" in entry:
        return [f"- {key} (one law across sizes): skipped ({entry['skipped']})"]
    p, ci = entry["params"], entry.get("ci95") or {}
    cells = []
    for name, value in p.items():
        c = ci.get(name)
        band = f" [{_fmt(c[0], 3)}, {_fmt(c[1], 3)}]" if c else ""
        cells.append(f"{name} = {_fmt(value)}{band}")
    held = entry.get("holdout_size") or {}
    if "mare_mean" in held:
        errors = [e for e in held["predicted"].values() if e is not None]
        missed = [run for run, e in held["predicted"].items() if e is None]
        check = (
            f"- held-out-size check ({key}): fitted without the largest size (N = "
            f"{held['held_out_size']:.4g}), predicted its {len(held['predicted'])} run(s)' curves: "
            f"mean absolute relative error {held['mare_mean']:.2%} (worst {max(errors):.2%})"
        )
        if missed:
            check += f"; no finite prediction for {', '.join(missed)} (left out of the error)"
    else:
        check = f"- held-out-size check ({key}): not possible ({held.get('skipped', 'not run')})"
    return [
        f"**{key}** `{entry['formula']}` (one fit over {entry['n_runs']} runs of "
        f"{len(entry['sizes'])} sizes; λ = {entry['lambda']:g})",
        "",
        "- " + ", ".join(cells) + f"; MARE {entry['mare_mean']:.2%}",
        check,
    ]


def _approach1_line(a1: dict) -> str:
    if "skipped" in a1:
        return f"- Approach 1 (envelope of the curves): skipped ({a1['skipped']})"
    p, ci = a1["params"], a1.get("ci95") or {}

    def with_ci(name: str) -> str:
        c = ci.get(name)
        return _fmt(p[name], 3) + (f" [{_fmt(c[0], 3)}, {_fmt(c[1], 3)}]" if c else "")

    return (
        f"- Approach 1 (Hoffmann et al. 2022; the lowest loss over every curve at each "
        f"compute): N_opt ∝ C^{with_ci('a')}, D_opt ∝ C^{with_ci('b')} "
        f"({len(a1['sizes_on_envelope'])} sizes on the envelope)"
    )
