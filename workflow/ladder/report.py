"""Plots and report.md from runs.csv and fits.json: what a researcher looks at and shares.

    ladder report RUNS.csv FITS.json --out DIR [--curves CURVES.csv] [--meta META.json]
                  [--config STUDY.yaml] [--extrapolate-to params=1e9|tokens=2e10|flops=1e21]

Every plot family has a fixed file name (PLOTS), written as PNG and SVG. A plot the data
cannot support is still written, as a figure that says what is missing, so the Snakemake rule
can declare fixed outputs and a small study still gets every file. Fitted curves and their 95%
bands come from `ladder.fit.predict` on fits.json's parameters and bootstrap samples: this
module never writes a law's formula itself. report.md is written last, through a temp file and
a rename, so a killed run never leaves one that looks complete.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib import ticker as mticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ladder import fit

# file stem -> (category, subcategory) for `snakemake --report`; one category per plot family
PLOTS: dict[str, tuple[str, str]] = {
    "loss_vs_params": ("1. Scaling laws", "Loss vs parameters"),
    "loss_vs_tokens": ("1. Scaling laws", "Loss vs tokens"),
    "loss_vs_compute": ("1. Scaling laws", "Loss vs compute"),
    "compute_frontier": ("2. Compute-optimal allocation", "Frontier and N, D lines"),
    "isoflop": ("2. Compute-optimal allocation", "IsoFLOP curves"),
    "learning_curves": ("3. Learning curves", "Loss vs tokens, every rung"),
    "scale_sensitivity": ("4. Scale properties", "Sensitivity: exponents"),
    "self_similarity": ("4. Scale properties", "Self-similarity: curve collapse"),
    "scale_independence": ("4. Scale properties", "Independence: exponent vs scale"),
    "residuals": ("5. Residuals", "Residuals of each law"),
}
FORMATS = ("png", "svg")

# axis variable -> (fit.py symbol, label with unit, target names accepted on the CLI)
AXES = {
    "params": ("N", "parameters N", ("params", "parameters", "n")),
    "tokens": ("D", "training tokens D", ("tokens", "d")),
    "compute": ("C", "training compute C (FLOPs)", ("flops", "compute", "c")),
}
EXPONENTS = ("alpha", "beta", "alpha_N", "alpha_D")  # loss exponents; a, b are allocation ones
LOSS_LABEL = "held-out loss (nats/token)"
COLLAPSE_FROM = 0.1  # fraction of a run's compute after which curves are compared (warmup ends)
BAND = (2.5, 97.5)


# --------------------------------------------------------------------------------------------
# inputs


@dataclass
class Study:
    """Everything the report reads; `runs` gains a boolean `ok` (not diverged, finite loss)."""

    runs: pd.DataFrame
    laws: dict[str, dict]
    fit_meta: dict = field(default_factory=dict)
    curves: pd.DataFrame | None = None
    entropy_nats: float | None = None
    config: dict | None = None
    target: tuple[str, float] | None = None  # (axis variable, value), e.g. ("params", 1e9)

    def column(self, var: str) -> str:
        """The runs.csv column the fits used for a variable (fits.json meta), else the default."""
        return getattr(self.fit_columns(), var)

    def values(self, var: str) -> np.ndarray:
        name = self.column(var)
        if var == "compute" and name not in self.runs.columns:
            # fit.py's own fallback (6·N·D) when the table has no FLOP column
            return 6.0 * self.values("params") * self.values("tokens")
        if name not in self.runs.columns:
            return np.full(len(self.runs), np.nan)
        return pd.to_numeric(self.runs[name], errors="coerce").to_numpy(dtype=float)

    def values_loss(self) -> np.ndarray:
        name = self.fit_columns().loss
        return pd.to_numeric(self.runs[name], errors="coerce").to_numpy(dtype=float)

    def fit_columns(self) -> fit.Columns:
        """The columns fits.json was fitted on, to refit subsets the same way."""
        used = self.fit_meta.get("columns") or {}
        default = fit.Columns()
        names = {
            k: used.get(k) if used.get(k) in self.runs.columns else getattr(default, k)
            for k in ("params", "tokens", "compute", "loss")
        }
        return fit.Columns(**names)

    def law(self, key: str) -> dict | None:
        """A fitted entry, or None when absent or skipped."""
        entry = self.laws.get(key)
        return entry if isinstance(entry, dict) and "skipped" not in entry else None

    def why_missing(self, key: str) -> str:
        entry = self.laws.get(key)
        if entry is None:
            return f"{key} is not in fits.json"
        return f"{key} skipped: {entry.get('skipped', '?')}"


def parse_target(text: str | dict | None) -> tuple[str, float] | None:
    """'params=1e9' or {'params': 1e9} (config report.extrapolate_to) -> ('params', 1e9)."""
    if text is None or text == {} or text == "":
        return None
    if isinstance(text, dict):
        if len(text) != 1:
            raise ValueError(f"extrapolate_to takes one of params, tokens, flops; got {text}")
        ((name, value),) = text.items()
    else:
        name, sep, value = str(text).partition("=")
        if not sep:
            raise ValueError(
                f"--extrapolate-to wants params=1e9, tokens=2e10 or flops=1e21; got '{text}'"
            )
    name = name.strip().lower()
    for var, (_, _, names) in AXES.items():
        if name in names:
            number = float(value)
            if not number > 0:
                raise ValueError(f"extrapolate_to {name} must be > 0, got {value}")
            return var, number
    raise ValueError(f"extrapolate_to: unknown quantity '{name}'; use params, tokens or flops")


def load(
    runs_csv: str,
    fits_json: str,
    curves_csv: str | None = None,
    meta_json: str | None = None,
    config_yaml: str | None = None,
    extrapolate_to: str | None = None,
) -> Study:
    """Read the tables; optional inputs that are absent (or empty) are simply not drawn."""
    runs = pd.read_csv(runs_csv)
    if "rung" not in runs.columns:
        runs.insert(0, "rung", [f"row {i + 1}" for i in range(len(runs))])
    runs["rung"] = runs["rung"].astype(str)
    fits = json.loads(Path(fits_json).read_text())
    study = Study(runs, fits.get("laws", {}), fits.get("meta", {}))
    loss_col = study.fit_columns().loss
    if loss_col not in runs.columns:
        raise ValueError(f"{runs_csv} has no loss column '{loss_col}'")
    diverged = runs["diverged"] if "diverged" in runs.columns else pd.Series(0, index=runs.index)
    # the same runs fit.py excludes: diverged (0/1, bool or text) or without a finite loss
    flagged = diverged.astype(str).str.strip().str.lower().isin(["1", "1.0", "true", "yes"])
    runs["ok"] = ~flagged.to_numpy() & np.isfinite(study.values_loss())
    if curves_csv and os.path.exists(curves_csv) and os.path.getsize(curves_csv) > 0:
        study.curves = pd.read_csv(curves_csv)
        study.curves["rung"] = study.curves["rung"].astype(str)
    if meta_json and os.path.exists(meta_json):
        value = json.loads(Path(meta_json).read_text()).get("entropy_nats_per_token")
        study.entropy_nats = float(value) if value is not None else None
    if config_yaml and os.path.exists(config_yaml):
        import yaml  # only the config section needs it

        study.config = yaml.safe_load(Path(config_yaml).read_text()) or {}
    if extrapolate_to is None and study.config:
        extrapolate_to = (study.config.get("report") or {}).get("extrapolate_to")
    study.target = parse_target(extrapolate_to)
    return study


# --------------------------------------------------------------------------------------------
# numbers from fit.py: curves, bands, allocations


def spread(entry: dict, f) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """f(params) at the entry's own parameters, with the 2.5-97.5 percentile band of f over its
    bootstrap samples (None when fits.json kept fewer than two)."""
    mid = np.asarray(f(None), dtype=float)
    samples = entry.get("samples") or []
    if len(samples) < 2:
        return mid, None, None
    with np.errstate(all="ignore"):
        draws = np.stack([np.asarray(f(s), dtype=float) for s in samples])
    lo, hi = np.nanpercentile(draws, BAND, axis=0)
    return mid, lo, hi


def band(entry: dict, **xs) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Predicted loss at xs (N=, D=, C=) with its 95% bootstrap band."""
    return spread(entry, lambda p: fit.predict(entry, p, **xs))


def optimal_loss(entry: dict, C: np.ndarray, params: dict | None = None) -> np.ndarray:
    """The loss a two-variable law reaches at compute C with its own compute-optimal N and D."""
    N, D = fit.optimal_allocation(entry, C, params)
    return fit.predict(entry, params, N=N, D=D)


def target_predictions(study: Study) -> list[dict]:
    """The predicted loss at the study's target from every law that can make it."""
    if study.target is None:
        return []
    var, value = study.target
    s, at = AXES[var][0], np.array([value])
    keys = [f"power_{var}", f"power_{var}_no_offset"] + (["frontier"] if var == "compute" else [])
    rows = []
    for key in keys:
        if (entry := study.law(key)) is not None:
            rows.append({"law": key, "how": f"at {s}", **_triple(band(entry, **{s: at}))})
    entry = study.law("chinchilla")
    if var == "compute" and entry is not None and entry.get("optimal_allocation"):
        res = spread(entry, lambda p: optimal_loss(entry, at, p))
        rows.append({"law": "chinchilla", "how": "at compute-optimal N, D", **_triple(res)})
    return rows


def _triple(res) -> dict:
    mid, lo, hi = res
    return {
        "loss": float(mid[0]),
        "lo": None if lo is None else float(lo[0]),
        "hi": None if hi is None else float(hi[0]),
    }


def _fmt(x, digits: int = 4) -> str:
    """Numbers in report.md: plain %g, so a table cell parses back with float()."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, (int, np.integer)) and abs(x) < 1e15:
        return str(int(x))
    return f"{float(x) + 0.0:.{digits}g}"  # + 0.0: no "-0"


def _param_text(entry: dict, names=None) -> str:
    parts = []
    for name, value in entry["params"].items():
        if names is not None and name not in names:
            continue
        ci = (entry.get("ci95") or {}).get(name)
        parts.append(f"{name}={value:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""))
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# figure helpers


def _figure(ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 4.6):
    # matplotlib's object API on the Agg canvas: no pyplot state, no display, nothing to close
    fig = Figure(figsize=(width * ncols, height * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def _missing(ax, text: str) -> None:
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


def _note(ax, text: str) -> None:
    """A short grey note in the lower-left corner of a panel (what could not be drawn)."""
    lines = [textwrap.fill(line, 70) for line in text.splitlines()]
    ax.text(
        0.02, 0.02, "\n".join(lines), transform=ax.transAxes, fontsize=7, color="0.3", va="bottom"
    )


def _clamp_loss_axis(ax, study: Study, losses: np.ndarray, extra=()) -> None:
    """Keep the loss axis on the data (and floor, and target marks): a law whose band spans
    decades should not flatten the runs into a line."""
    values = [v for v in [*losses, *extra] if v is not None and np.isfinite(v) and v > 0]
    if study.entropy_nats:
        values.append(study.entropy_nats)
    if values:
        ax.set_ylim(min(values) / 1.15, max(values) * 1.15)


def _legend(ax, **kw) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _floor(ax, study: Study) -> None:
    if study.entropy_nats is not None:
        ax.axhline(
            study.entropy_nats,
            color="k",
            ls=":",
            lw=1,
            label=f"source entropy {study.entropy_nats:.3g} nats",
        )


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _tick_text(value: float, _pos=None) -> str:
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


def _format_log_axes(fig) -> None:
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
            axis.set_major_formatter(mticker.FuncFormatter(_tick_text))
            axis.set_minor_formatter(mticker.NullFormatter())


def _save(fig, out: Path, stem: str) -> list[Path]:
    """Write stem.png and stem.svg through temp files, so no half-written plot is left."""
    paths = []
    _format_log_axes(fig)
    fig.tight_layout()
    for ext in FORMATS:
        path = out / f"{stem}.{ext}"
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{stem}.", suffix=f".{ext}")
        os.close(fd)
        try:
            fig.savefig(tmp, format=ext, dpi=110)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        paths.append(path)
    return paths


def _size_colours(values: np.ndarray):
    """A log colour scale over model sizes (or token counts); None when there is one value."""
    finite = values[np.isfinite(values) & (values > 0)]
    if len(np.unique(finite)) < 2:
        return None
    return LogNorm(finite.min(), finite.max())


def _solid_dashed(ax, x, y, x_max, **kw):
    """One line, solid up to the largest sampled x, dashed (extrapolated) beyond."""
    inside = x <= x_max * (1 + 1e-9)
    ax.plot(x[inside], y[inside], **kw)
    kw.pop("label", None)
    j = max(int(inside.sum()) - 1, 0)
    if j < len(x) - 1:
        ax.plot(x[j:], y[j:], **{**kw, "ls": "--"})


def _draw_law(
    ax, entry: dict, var: str, lo: float, hi: float, data_max: float, colour: str, label: str
) -> None:
    """The fitted curve with its 95% band: solid over the data, dashed beyond it."""
    xs = np.unique(np.append(np.geomspace(lo, hi, 200), data_max))  # solid ends at the rung
    mid, blo, bhi = band(entry, **{AXES[var][0]: xs})
    _solid_dashed(ax, xs, mid, data_max, color=colour, lw=2, label=label)
    if blo is not None:
        ax.fill_between(xs, blo, bhi, color=colour, alpha=0.18, lw=0)


# --------------------------------------------------------------------------------------------
# 1. loss vs parameters, tokens, compute


def plot_loss_vs(study: Study, var: str):
    """Rungs, the fitted power law (with and without offset) and the study's target."""
    fig, (ax,) = _figure()
    x, loss = study.values(var), study.values_loss()
    ok = study.runs["ok"].to_numpy() & np.isfinite(x) & (x > 0)
    if not ok.any():
        _missing(ax, f"no finished rungs with a {study.column(var)} value")
        return fig
    colour_by = "tokens" if var == "params" else "params"
    cval = study.values(colour_by)
    norm = _size_colours(cval[ok])
    if norm is not None:
        sc = ax.scatter(
            x[ok],
            loss[ok],
            c=cval[ok],
            norm=norm,
            cmap="viridis",
            zorder=3,
            edgecolor="k",
            lw=0.5,
            s=36,
        )
        fig.colorbar(sc, ax=ax, label=AXES[colour_by][1])
    else:
        ax.scatter(x[ok], loss[ok], color="k", zorder=3, s=30, label="rungs")
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
        label = f"{entry.get('formula', key)}\n{_param_text(entry)}"
        _draw_law(ax, entry, var, x[ok].min() / 1.5, hi, data_hi, colour, label)
        drawn = True
        if key in targets:
            _mark_target(ax, study.target[1], targets[key], colour)
    if not drawn:
        _note(ax, "no fitted law: " + study.why_missing(f"power_{var}"))
    _floor(ax, study)
    marks = [
        v
        for r in targets.values()
        for v in (r["lo"], r["hi"], r["loss"])
        if r["law"].startswith(f"power_{var}")
    ]
    _clamp_loss_axis(ax, study, loss[ok], marks)
    _loglog(ax, f"{AXES[var][1]}  [{study.column(var)}]")
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title(
        f"Loss vs {AXES[var][1].split(' (')[0]} (dashed: extrapolated; band: 95%)", fontsize=10
    )
    _legend(ax, fontsize=7, loc="best", framealpha=0.8)
    return fig


def _mark_target(ax, at: float, row: dict, colour: str) -> None:
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


def _loglog(ax, xlabel: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.grid(True, alpha=0.25)


# --------------------------------------------------------------------------------------------
# 2. compute frontier, compute-optimal N and D, IsoFLOP curves


ALLOCATORS = (
    ("chinchilla", "C0", "Chinchilla (approach 3)"),
    ("isoflop", "C2", "IsoFLOP"),
    ("frontier", "C3", "frontier runs"),
)


def allocation_band(entry: dict, C: np.ndarray) -> dict[str, tuple]:
    """N_opt and D_opt at C, each with its 95% band where the entry's samples determine one
    (chinchilla and isoflop samples do; the frontier's allocation is a fit to its runs)."""
    out = {}
    for j, name in enumerate(("N", "D")):

        def f(p, j=j):
            return fit.optimal_allocation(entry, C, p)[j]

        out[name] = (
            spread(entry, f)
            if entry["law"] in ("chinchilla", "isoflop")
            else (np.asarray(f(None), dtype=float), None, None)
        )
    return out


def plot_compute_frontier(study: Study):
    """Loss over compute with its lower envelope and laws; compute-optimal N and D lines."""
    fig, (ax, ax2) = _figure(2)
    C, L = study.values("compute"), study.values_loss()
    ok = study.runs["ok"].to_numpy() & np.isfinite(C) & (C > 0)
    if not ok.any():
        _missing(ax, "no finished rungs with a compute value")
        _missing(ax2, "no finished rungs")
        return fig
    N, D = study.values("params"), study.values("tokens")
    norm = _size_colours(N[ok])
    sc = ax.scatter(
        C[ok],
        L[ok],
        c=N[ok] if norm else "k",
        norm=norm,
        cmap="viridis",
        s=30,
        edgecolor="k",
        lw=0.5,
        zorder=3,
    )
    if norm:
        fig.colorbar(sc, ax=ax, label=AXES["params"][1])
    # the runs no cheaper run beats, as fit.py's frontier law sees them
    front = np.flatnonzero(ok)[fit.frontier_mask(C[ok], L[ok], np.ones((1, ok.sum())))[0]]
    front = front[np.argsort(C[front])]
    ax.plot(C[front], L[front], "k-", lw=1, alpha=0.5, label="lower envelope of the rungs")
    c_max = C[ok].max()
    c_hi = max(c_max, study.target[1] if study.target and study.target[0] == "compute" else 0)
    grid = np.geomspace(C[ok].min() / 1.5, c_hi * 1.5, 120)
    if (entry := study.law("frontier")) is not None:
        _draw_law(
            ax,
            entry,
            "compute",
            grid[0],
            grid[-1],
            c_max,
            "C3",
            "frontier law: " + _param_text(entry, ("E", "alpha")),
        )
    have = []
    for key, colour, name in ALLOCATORS:
        entry = study.law(key)
        if entry is None or not entry.get("optimal_allocation"):
            continue
        try:
            alloc = allocation_band(entry, grid)
        except fit.FitError:
            continue
        have.append(key)
        for sym, ls in (("N", "-"), ("D", ":")):
            mid, lo, hi = alloc[sym]
            _solid_dashed(
                ax2, grid, mid, c_max, color=colour, lw=2, ls=ls, label=f"{sym}_opt, {name}"
            )
            if lo is not None:
                ax2.fill_between(grid, lo, hi, color=colour, alpha=0.15, lw=0)
        if key == "chinchilla":
            mid, lo, hi = spread(entry, lambda p, e=entry: optimal_loss(e, grid, p))
            _solid_dashed(
                ax,
                grid,
                mid,
                c_max,
                color=colour,
                lw=1.5,
                label="Chinchilla loss at compute-optimal N, D",
            )
            if lo is not None:
                ax.fill_between(grid, lo, hi, color=colour, alpha=0.12, lw=0)
    marks = []
    for row in target_predictions(study):
        if row["law"] in ("frontier", "chinchilla"):
            _mark_target(ax, study.target[1], row, "C3" if row["law"] == "frontier" else "C0")
            marks += [row["loss"], row["lo"], row["hi"]]
    _clamp_loss_axis(ax, study, L[ok], marks)
    ax2.scatter(C[ok], N[ok], marker="o", color="0.45", s=14, label="rungs: N")
    ax2.scatter(C[ok], D[ok], marker="s", color="0.7", s=14, label="rungs: D")
    if not have:
        why = "\n".join(study.why_missing(k) for k, _, _ in ALLOCATORS)
        _note(ax2, "no compute-optimal allocation:\n" + why)
    _floor(ax, study)
    for a in (ax, ax2):
        _loglog(a, AXES["compute"][1])
        _legend(a, fontsize=7)
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title("Compute frontier (dashed: extrapolated; bands: 95%)", fontsize=10)
    ax2.set_ylabel("parameters N, tokens D")
    ax2.set_title("Compute-optimal N (solid) and D (dotted)", fontsize=10)
    return fig


def plot_isoflop(study: Study):
    """Loss vs N within each compute budget, the minima fit.py found, and N_opt(C)."""
    fig, (ax, ax2) = _figure(2)
    entry = study.law("isoflop")
    C, L, N = study.values("compute"), study.values_loss(), study.values("params")
    ok = study.runs["ok"].to_numpy() & np.isfinite(C) & (C > 0) & np.isfinite(N)
    if not ok.any():
        _missing(ax, "no finished rungs with compute and parameter counts")
        _missing(ax2, study.why_missing("isoflop"))
        return fig
    idx = np.flatnonzero(ok)
    labels = fit.budgets(C[ok], float(study.fit_meta.get("budget_tol", 0.25)))
    lC = np.array([np.log(C[idx[labels == g]]).mean() for g in np.unique(labels)])
    norm = LogNorm(np.exp(lC.min()), np.exp(lC.max()) * 1.0001)
    cmap = colormaps["plasma_r"]
    chin = study.law("chinchilla")
    c_per = ((chin or {}).get("optimal_allocation") or {}).get("flops_per_param_token", 6.0)
    for g in np.unique(labels):
        members = idx[labels == g]
        members = members[np.argsort(N[members])]
        colour = cmap(norm(np.exp(lC[g])))
        ax.plot(N[members], L[members], "o-", color=colour, lw=0.8, ms=5, mec="k", mew=0.4)
        if chin is not None and len(members) >= 3:
            # the fitted two-variable law along this budget's IsoFLOP line, D = C / (c N)
            ns = np.geomspace(N[members].min() / 1.3, N[members].max() * 1.3, 80)
            ax.plot(
                ns,
                fit.predict(chin, N=ns, D=np.exp(lC[g]) / (c_per * ns)),
                color=colour,
                lw=1.2,
                alpha=0.7,
            )
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="compute budget C (FLOPs)")
    if chin is not None:
        ax.plot([], [], color="0.4", lw=1.2, label="Chinchilla law along each budget")
    _loglog(ax, AXES["params"][1])
    ax.set_ylabel(LOSS_LABEL)
    ax.set_title("IsoFLOP profiles: loss vs N at fixed compute", fontsize=10)
    if entry is None:
        _missing(ax2, "no IsoFLOP fit:\n" + study.why_missing("isoflop"))
        if chin is not None:
            _legend(ax, fontsize=7)
        return fig
    minima = (entry.get("optimal_allocation") or {}).get("budgets") or []
    for m in minima:
        inside = m.get("in_range", True)
        ax.scatter(
            [m["N_opt"]],
            [m["loss"]],
            marker="*",
            s=160,
            zorder=4,
            lw=1,
            color=cmap(norm(m["C"])) if inside else "w",
            edgecolor="k" if inside else "r",
        )
    ax.scatter([], [], marker="*", s=120, color="0.5", edgecolor="k", label="fitted minimum")
    if any(not m.get("in_range", True) for m in minima):
        ax.scatter(
            [],
            [],
            marker="*",
            s=120,
            color="w",
            edgecolor="r",
            label="minimum outside the sampled sizes",
        )
    _legend(ax, fontsize=7)
    if not minima:
        _missing(ax2, "fits.json lists no per-budget minima for isoflop")
        return fig
    Cm = np.array([m["C"] for m in minima])
    grid = np.geomspace(
        Cm.min() / 2,
        max(Cm.max(), study.target[1] if study.target and study.target[0] == "compute" else 0) * 2,
        80,
    )
    alloc = allocation_band(entry, grid)
    for sym, colour, key in (("N", "C2", "N_opt"), ("D", "C4", "D_opt")):
        mid, lo, hi = alloc[sym]
        exponent = "a" if sym == "N" else "b"
        ci = (entry.get("ci95") or {}).get(exponent)
        text = f"{key} ∝ C^{entry['params'][exponent]:.3g}" + (
            f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""
        )
        _solid_dashed(ax2, grid, mid, Cm.max(), color=colour, lw=2, label=text)
        if lo is not None:
            ax2.fill_between(grid, lo, hi, color=colour, alpha=0.15, lw=0)
        ax2.scatter(Cm, [m[key] for m in minima], color=colour, edgecolor="k", zorder=3)
    _loglog(ax2, AXES["compute"][1])
    ax2.set_ylabel("compute-optimal N, D")
    ax2.set_title("Minima per budget and their power laws (band: 95%)", fontsize=10)
    _legend(ax2, fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# 3. learning curves


def _smooth(y: np.ndarray, frac: float = 0.02) -> np.ndarray:
    """A centred running mean over ~2% of the points: train loss per step is noisy."""
    k = max(1, int(len(y) * frac)) | 1
    if k == 1 or len(y) < 3 * k:
        return y
    pad = np.pad(y, k // 2, mode="edge")
    return np.convolve(pad, np.ones(k) / k, mode="valid")


def curve_of(study: Study, rung: str) -> pd.DataFrame | None:
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
    c = c.assign(smooth=_smooth(c["loss_nats"].to_numpy(dtype=float)))
    return c


def plot_learning_curves(study: Study):
    fig, (ax,) = _figure(width=7.2)
    if study.curves is None:
        _missing(ax, "no curves.csv: learning curves were not recorded")
        return fig
    N = study.values("params")
    norm = _size_colours(N) or LogNorm(max(np.nanmin(N), 1), max(np.nanmax(N), 1) * 1.01)
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
        _missing(ax, "curves.csv has no rows for the rungs in runs.csv")
        return fig
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=AXES["params"][1])
    ax.plot([], [], "k-", label="train loss (smoothed)")
    ax.scatter([], [], color="w", edgecolor="k", s=14, label="validation loss")
    if not study.runs["ok"].all():
        ax.plot([], [], "k:", label="diverged rung")
    _floor(ax, study)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training tokens seen")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"Learning curves of {drawn} rungs, coloured by size")
    _legend(ax, fontsize=8)
    ax.grid(True, alpha=0.25)
    return fig


# --------------------------------------------------------------------------------------------
# 4. the three scale properties, measured


def exponents(study: Study) -> list[dict]:
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


def _verdict(row: dict) -> str:
    """What an exponent's 95% interval says about whether loss moves with that variable."""
    if np.isfinite(row["lo"]) and row["lo"] > 0:
        return "excludes 0: loss falls with scale"
    if np.isfinite(row["hi"]) and row["hi"] < 0:
        return "below 0: loss rises with scale"
    if not np.isfinite(row["lo"]):
        return "no interval"
    return "includes 0: no evidence that loss moves"


def sensitivity(study: Study) -> list[dict]:
    """How fast loss moves: the local slope -d ln L / d ln x of each one-variable law at the
    largest rung, and the loss change per 10x scale from there, both from fit.predict."""
    out = []
    for var in AXES:
        entry = study.law(f"power_{var}")
        if entry is None:
            continue
        x = study.values(var)[study.runs["ok"].to_numpy()]
        x = x[np.isfinite(x) & (x > 0)]
        if not len(x):
            continue
        top = x.max()
        s = AXES[var][0]
        l0, l1 = (float(fit.predict(entry, **{s: np.array([v])})[0]) for v in (top, top * 10))
        eps = 1e-3
        lp, lm = (
            float(fit.predict(entry, **{s: np.array([top * math.exp(e)])})[0]) for e in (eps, -eps)
        )
        out.append(
            {
                "law": f"power_{var}",
                "var": var,
                "at": top,
                "slope": -(math.log(lp) - math.log(lm)) / (2 * eps),
                "loss": l0,
                "loss_10x": l1,
            }
        )
    return out


def plot_scale_sensitivity(study: Study):
    fig, (ax, ax2) = _figure(2)
    rows = exponents(study)
    if not rows:
        _missing(ax, "no fitted exponents: every law was skipped")
    else:
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
        n = int(excl.sum())
        ax.set_title(f"Fitted exponents: {n} of {len(rows)} exclude 0")
        if (~excl).any():
            _legend(ax, fontsize=8)
        ax.grid(True, axis="x", alpha=0.25)
    drawn = False
    for i, var in enumerate(AXES):
        entry = study.law(f"power_{var}")
        x = study.values(var)[study.runs["ok"].to_numpy()]
        x = x[np.isfinite(x) & (x > 0)]
        if entry is None or len(x) < 2:
            continue
        # the local exponent of total loss, -d ln L / d ln x, over the sampled range
        xs = np.geomspace(x.min(), x.max(), 60)
        s = AXES[var][0]
        e = 1e-3
        slopes = []
        for params in [entry["params"], *(entry.get("samples") or [])]:
            up = fit.predict(entry, params, **{s: xs * math.exp(e)})
            dn = fit.predict(entry, params, **{s: xs * math.exp(-e)})
            slopes.append(-(np.log(up) - np.log(dn)) / (2 * e))
        slopes = np.array(slopes)
        frac = xs / x.min()  # scale relative to the smallest rung, so axes share one scale
        ax2.plot(frac, slopes[0], color=f"C{i}", lw=2, label=f"{s}: -dlnL/dln{s}")
        if len(slopes) > 2:
            blo, bhi = np.nanpercentile(slopes[1:], BAND, axis=0)
            ax2.fill_between(frac, blo, bhi, color=f"C{i}", alpha=0.18, lw=0)
        drawn = True
    if not drawn:
        _missing(ax2, "no one-variable law fitted: local sensitivity not measured")
    else:
        ax2.set_xscale("log")
        ax2.axhline(0, color="k", lw=1, ls="--")
        ax2.set_xlabel("scale relative to the smallest rung")
        ax2.set_ylabel("local exponent of loss  -d ln L / d ln x")
        ax2.set_title("How fast loss moves with scale (band: 95%)")
        _legend(ax2, fontsize=8)
        ax2.grid(True, alpha=0.25)
    return fig


def irreducible(study: Study) -> tuple[float, str]:
    """The loss floor E for rescaling: a fitted E (two-variable law first), else the source
    entropy, else 0 (then L - E is the loss itself)."""
    for key in ("chinchilla", "power_compute", "power_params", "power_tokens"):
        entry = study.law(key)
        if entry is not None and "E" in entry["params"]:
            return float(entry["params"]["E"]), f"E of {key}"
    if study.entropy_nats is not None:
        return study.entropy_nats, "source entropy"
    return 0.0, "no fitted E; E = 0"


def collapse(study: Study) -> dict:
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
        c = curve_of(study, run["rung"])
        if c is None or len(c) < 5:
            out["skipped"].append(f"{run['rung']}: fewer than 5 curve points")
            continue
        tok = c["tokens"].to_numpy(dtype=float)
        y = c["smooth"].to_numpy(dtype=float) - E
        if y[-1] <= 0:
            out["skipped"].append(f"{run['rung']}: final train loss below E")
            continue
        fpt = run.get("flops_per_token", np.nan)
        fpt = fpt if np.isfinite(fpt) else run.get("flops", np.nan) / tok[-1]
        out["curves"].append(
            {
                "rung": run["rung"],
                "x": tok / tok[-1],
                "C": tok * fpt,
                "reducible": y,
                "rescaled": y / y[-1],
                "N": float(run.get(study.column("params"), np.nan)),
            }
        )
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
    return out


def plot_self_similarity(study: Study, result: dict):
    fig, (ax, ax2) = _figure(2)
    if "deviation" not in result:
        for a in (ax, ax2):
            _missing(a, "collapse not measured: " + result.get("reason", "?"))
        return fig
    Ns = np.array([c["N"] for c in result["curves"]])
    norm = _size_colours(Ns) or LogNorm(Ns.min(), Ns.min() * 1.01 + 1)
    cmap = colormaps["viridis"]
    for c in result["curves"]:
        colour = cmap(norm(c["N"])) if np.isfinite(c["N"]) else "0.5"
        ax.plot(c["C"], c["reducible"], color=colour, lw=1.3)
        ax2.plot(c["x"], c["rescaled"], color=colour, lw=1.3)
    grid = result["grid"]
    ax2.plot(grid, result["mean"], "k--", lw=1.5, label="mean rescaled curve")
    ax2.axvspan(grid[0], 1, color="0.9", zorder=0, label="compared range")
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_yscale("log")
        a.grid(True, alpha=0.25)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax2, label=AXES["params"][1])
    E = result["E"]
    ax.set_xlabel("compute so far C(t) (FLOPs)")
    ax.set_ylabel(f"reducible loss L - E (nats), E = {E:.4g} ({result['E_source']})")
    ax.set_title(f"Before rescaling: deviation {result['deviation_raw']:.3f}")
    ax2.set_xlabel("fraction of the run's compute C(t)/C")
    ax2.set_ylabel("(L(t) - E) / (L_end - E)")
    ax2.set_title(f"After rescaling: collapse deviation {result['deviation']:.3f}")
    _legend(ax2, fontsize=8)
    return fig


# the exponents refitted on subsets: cheap (closed-form starts), so a dozen refits take
# milliseconds; chinchilla's 4,500-start search would take seconds per subset
REFIT = (
    ("power_params", "alpha"),
    ("power_tokens", "alpha"),
    ("power_compute", "alpha"),
    ("frontier", "alpha"),
)
MAX_SUBSETS = 12


def independence(study: Study) -> dict[str, dict]:
    """Refit each law's exponent on sliding windows of consecutive compute levels and with one
    level left out; a scale-independent law gives the same exponent everywhere. A level is a
    compute budget (fit.budgets: runs within a factor 1 + budget_tol), i.e. a rung size in a
    plain ladder. Spread = the standard deviation of the refitted exponents."""
    runs = study.runs[study.runs["ok"]].drop(columns=["ok"]).reset_index(drop=True)
    C = study.values("compute")[study.runs["ok"].to_numpy()]
    out: dict[str, dict] = {}
    if not len(runs) or not np.isfinite(C).all():
        return {key: {"reason": "no finished rungs with a compute value"} for key, _ in REFIT}
    tol = float(study.fit_meta.get("budget_tol", 0.25))
    labels = fit.budgets(C, tol)
    levels = np.unique(labels)
    scale = np.array([np.exp(np.log(C[labels == g]).mean()) for g in levels])
    # windows of at least 3 levels (3 sizes pin an exponent), half the ladder when longer;
    # with 3 levels there is no window smaller than the ladder, only leave-one-out
    width = max(3, -(-len(levels) // 2))
    subsets = []  # (kind, scale, mask)
    if len(levels) > width:
        for s in _spaced(list(range(len(levels) - width + 1)), MAX_SUBSETS):
            mask = np.isin(labels, levels[s : s + width])
            subsets.append(("window", float(np.exp(np.log(scale[s : s + width]).mean())), mask))
    if len(levels) >= 3:
        for g in _spaced(list(levels), MAX_SUBSETS):
            subsets.append(("loo", float(scale[g]), labels != g))
    for key, name in REFIT:
        entry = study.law(key)
        if entry is None:
            out[key] = {"reason": study.why_missing(key)}
            continue
        full = float(entry["params"][name])
        res = {
            "name": name,
            "value": full,
            "ci95": (entry.get("ci95") or {}).get(name),
            "width": width,
            "windows": [],
            "loo": [],
        }
        for kind, at, mask in subsets:
            value = _refit(runs[mask], key, entry, name, tol, study.fit_columns())
            if value is not None:
                res["windows" if kind == "window" else "loo"].append((at, value))
        for kind in ("windows", "loo"):
            values = [v for _, v in res[kind]]
            if len(values) >= 2:
                res[f"{kind}_std"] = float(np.std(values))
                res[f"{kind}_range"] = (min(values), max(values))
        if len(res["windows"]) + len(res["loo"]) < 2:
            res["reason"] = (
                f"{len(levels)} compute level(s): too few subsets the law can be refitted on"
            )
        out[key] = res
    return out


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


def plot_scale_independence(study: Study, result: dict[str, dict]):
    fig, axes = _figure(len(REFIT), width=4.4, height=4.2)
    for ax, (key, name) in zip(axes, REFIT, strict=True):
        res = result.get(key, {})
        title = f"{key}: {name}"
        if not res.get("windows") and not res.get("loo"):
            _missing(ax, "not refitted:\n" + res.get("reason", "no fit"))
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
        spread = [
            f"{k.split('_')[0]} std {res[k]:.2g}" for k in ("windows_std", "loo_std") if k in res
        ]
        ax.set_title(title + ("\n" + ", ".join(spread) if spread else ""), fontsize=9)
        ax.set_xscale("log")
        ax.set_xlabel(AXES["compute"][1], fontsize=8)
        ax.set_ylabel(name)
        _legend(ax, fontsize=7)
        ax.grid(True, alpha=0.25)
    return fig


# --------------------------------------------------------------------------------------------
# 5. residuals


def _residual_x(study: Study, entry: dict) -> tuple[np.ndarray | None, str]:
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


def plot_residuals(study: Study):
    """ln L - ln L_fit at every fitted rung, one panel per law (no-offset variants share their
    law's panel)."""
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
    if not groups:
        fig, (ax,) = _figure()
        _missing(ax, "no fitted law has residuals (every law was skipped)")
        return fig
    ncols = min(4, len(groups))
    fig, axes = _figure(ncols, -(-len(groups) // ncols), width=4.2, height=3.4)
    for ax, key in zip(axes, groups, strict=False):
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
            "ln N_opt - fit (%)"
            if study.laws[key].get("law") == "isoflop"
            else "ln L - ln L_fit (%)"
        )
        ax.set_ylabel(what, fontsize=8)
        ax.set_title(key, fontsize=9)
        _legend(ax, fontsize=7)
        ax.grid(True, alpha=0.25)
    for ax in axes[len(groups) :]:
        ax.axis("off")
    return fig


# --------------------------------------------------------------------------------------------
# report.md


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


RUN_COLUMNS = (
    "params_total",
    "params_non_embedding",
    "tokens",
    "flops",
    "loss_nats",
    "bits_per_byte",
    "wall_s",
    "gpu_hours",
    "mfu",
    "diverged",
)


def section_config(study: Study) -> str:
    if not study.config:
        return "No study config given (`--config`); the report is built from the tables alone."
    lines = []
    for section, value in study.config.items():
        if section == "study":
            continue  # the report's title
        if isinstance(value, dict):
            items = [
                f"{k}={v}"
                for k, v in value.items()
                if v not in (None, {}, []) and not isinstance(v, dict)
            ]
            if items:
                lines.append(f"- **{section}**: " + ", ".join(items))
        elif value is not None:
            lines.append(f"- **{section}**: {value}")
    return "\n".join(lines)


def section_runs(study: Study) -> str:
    cols = [c for c in RUN_COLUMNS if c in study.runs.columns]
    rows = []
    for _, run in study.runs.iterrows():
        rows.append(
            [str(run["rung"])]
            + [_fmt(run[c]) if not isinstance(run[c], str) else run[c] for c in cols]
        )
    n_bad = int((~study.runs["ok"]).sum())
    head = (
        f"{len(study.runs)} rungs, {n_bad} diverged or without a loss. Units are in the "
        "column names (runs.csv): loss in nats/token, wall time in seconds.\n\n"
    )
    return head + _table(["rung", *cols], rows)


def section_laws(study: Study) -> str:
    rows, summary = [], []
    for key, entry in study.laws.items():
        if "skipped" in entry:
            summary.append([key, "skipped: " + str(entry["skipped"]), "–", "–", "–"])
            continue
        for name, value in entry["params"].items():
            ci = (entry.get("ci95") or {}).get(name) or [None, None]
            rows.append([key, name, _fmt(value), _fmt(ci[0]), _fmt(ci[1])])
        boot = entry.get("bootstrap") or {}
        summary.append(
            [
                key,
                f"`{entry.get('formula', '?')}`",
                _fmt(entry.get("n_points")),
                _fmt(entry.get("objective")),
                _fmt(boot.get("used")),
            ]
        )
    out = (
        _table(["law", "parameter", "value", "ci95_lo", "ci95_hi"], rows)
        if rows
        else "No law could be fitted."
    )
    out += "\n\n" + _table(["law", "formula", "n_points", "objective", "bootstrap_used"], summary)
    return out


def section_allocation(study: Study) -> str:
    C = study.values("compute")[study.runs["ok"].to_numpy()]
    C = C[np.isfinite(C)]
    budgets = [float(C.max())] if len(C) else []
    if study.target and study.target[0] == "compute":
        budgets.append(study.target[1])
    rows, exps, missing = [], [], []
    for key, _, _ in ALLOCATORS:
        entry = study.law(key)
        if entry is None or not (entry.get("optimal_allocation") or {}).get("k_N"):
            missing.append(study.why_missing(key) if entry is None else f"{key}: no allocation")
            continue
        ci = entry.get("ci95") or {}
        alloc = entry["optimal_allocation"]
        exps.append(
            [
                key,
                _fmt(alloc["a"]),
                *map(_fmt, ci.get("a", [None, None])),
                _fmt(alloc["b"]),
                *map(_fmt, ci.get("b", [None, None])),
            ]
        )
        for c in budgets:
            got = allocation_band(entry, np.array([c]))
            n, d = (float(got[s][0][0]) for s in ("N", "D"))
            lo_hi = [_fmt(None if got["N"][1] is None else got["N"][j][0]) for j in (1, 2)]
            rows.append([key, _fmt(c), _fmt(n), *lo_hi, _fmt(d), _fmt(d / n, 3)])
    if not exps:
        out = "No compute-optimal allocation could be estimated."
    else:
        out = "N_opt = k_N C^a and D_opt = k_D C^b; at the largest sampled compute"
        out += " and at the study's target:\n\n" if len(budgets) > 1 else ":\n\n"
        out += _table(
            ["law", "flops", "N_opt", "N_opt_lo", "N_opt_hi", "D_opt", "tokens_per_param"], rows
        )
        out += "\n\n" + _table(["law", "a", "a_lo", "a_hi", "b", "b_lo", "b_hi"], exps)
    if missing:
        out += "\n\nNot estimated: " + "; ".join(missing) + "."
    return out


def section_extrapolation(study: Study) -> str:
    rows = []
    for key, entry in study.laws.items():
        if study.law(key) is None:
            continue
        ex = entry.get("extrapolation") or {}
        if "skipped" in ex:
            rows.append([key, "–", "–", "–", "–", "–", "skipped: " + str(ex["skipped"])])
            continue
        for h in ex.get("held_out", []):
            rows.append(
                [
                    key,
                    str(h["run"]),
                    ex.get("quantity", "loss_nats"),
                    _fmt(h["observed"]),
                    _fmt(h["predicted"]),
                    _fmt(100 * h["rel_error"], 3),
                    f"fit on {ex.get('n_fit', '?')} runs",
                ]
            )
    out = "Each law refitted without the largest-compute rung(s), then asked to predict them:\n\n"
    out += (
        _table(["law", "held_out", "quantity", "observed", "predicted", "error_pct", "note"], rows)
        if rows
        else "No extrapolation check in fits.json."
    )
    if study.target:
        var, value = study.target
        s = AXES[var][0]
        rows = [
            [r["law"], r["how"], _fmt(r["loss"]), _fmt(r["lo"]), _fmt(r["hi"])]
            for r in target_predictions(study)
        ]
        out += f"\n\nPredicted loss at the study's target {s} = {value:.4g}:\n\n"
        out += (
            _table(["law", "evaluated", "loss_nats", "ci95_lo", "ci95_hi"], rows)
            if rows
            else f"no law in {s} was fitted ({study.why_missing(f'power_{var}')})."
        )
    return out


def section_properties(study: Study, sim: dict, ind: dict[str, dict]) -> str:
    lines = ["**Scale sensitivity** (does loss move with scale, and how fast):", ""]
    for r in exponents(study):
        lines.append(
            f"- {r['law']} {r['name']} = {_fmt(r['value'])} "
            f"[{_fmt(r['lo'])}, {_fmt(r['hi'])}] ({_verdict(r)})"
        )
    for r in sensitivity(study):
        s = AXES[r["var"]][0]
        lines.append(
            f"- at the largest rung ({s} = {_fmt(r['at'])}), -d ln L / d ln {s} = "
            f"{_fmt(r['slope'], 3)}; 10x more {r['var']} takes the predicted loss "
            f"from {_fmt(r['loss'])} to {_fmt(r['loss_10x'])} nats"
        )
    if len(lines) == 2:
        lines.append("- not measured: no law was fitted")
    lines += ["", "**Self-similarity** (do rescaled learning curves collapse?):", ""]
    if "deviation" in sim:
        gain = 1 - sim["deviation"] / sim["deviation_raw"] if sim["deviation_raw"] > 0 else 0
        effect = f"{gain:.0%} of the spread removed" if gain >= 0 else "rescaling adds spread"
        lines.append(
            f"- collapse deviation (mean std/mean across {len(sim['curves'])} runs over "
            f"C(t)/C in [{sim['grid'][0]:.2g}, 1]): {_fmt(sim['deviation'], 3)} after "
            f"rescaling vs {_fmt(sim['deviation_raw'], 3)} before ({effect}); "
            f"E = {_fmt(sim['E'])} ({sim['E_source']})"
        )
    else:
        lines.append(f"- not measured: {sim.get('reason', '?')}")
    lines += ["", "**Scale independence** (is the exponent the same across the ladder?):", ""]
    for key, res in ind.items():
        if "value" not in res or "reason" in res:
            lines.append(f"- {key}: not measured ({res.get('reason', '?')})")
            continue
        parts = [f"full ladder {res['name']} = {_fmt(res['value'])}"]
        for kind, text in (
            ("windows", f"windows of {res['width']} compute levels"),
            ("loo", "one level left out"),
        ):
            if f"{kind}_std" in res:
                lo, hi = res[f"{kind}_range"]
                parts.append(
                    f"{len(res[kind])} {text}: std {_fmt(res[f'{kind}_std'], 3)}, "
                    f"range [{_fmt(lo)}, {_fmt(hi)}]"
                )
        lines.append(f"- {key}: " + "; ".join(parts))
    return "\n".join(lines)


# report-side flags for a poor fit; fit.py's own warnings (parameters at bounds, minima outside
# the sampled sizes, bootstrap failures) are listed as they are
POOR_FIT_RMS = 0.03  # rms of ln L - ln L_fit above 3%: the law misses the runs
POOR_EXTRAPOLATION = 0.05  # held-out rung(s) predicted more than 5% off


def section_warnings(study: Study, sim: dict) -> str:
    lines = []
    bad = study.runs[~study.runs["ok"]]
    if len(bad):
        lines.append(f"- diverged or without a loss (excluded from fits): {', '.join(bad['rung'])}")
    for key, entry in study.laws.items():
        if "skipped" in entry:
            lines.append(f"- {key} not fitted: {entry['skipped']}")
            continue
        for w in entry.get("warnings") or []:
            if "diverged" in w or "NaN loss" in w:
                continue  # said once above
            lines.append(f"- {key}: {w}")
        r = np.asarray(entry.get("residuals_log") or [], dtype=float)
        if len(r) and (rms := float(np.sqrt(np.mean(r**2)))) > POOR_FIT_RMS:
            lines.append(
                f"- {key}: poor fit, rms log residual {100 * rms:.3g}% (> {100 * POOR_FIT_RMS:g}%)"
            )
        err = (entry.get("extrapolation") or {}).get("max_abs_rel_error")
        if err is not None and err > POOR_EXTRAPOLATION:
            lines.append(
                f"- {key}: extrapolation check misses the held-out rung(s) by up to "
                f"{100 * err:.3g}% (> {100 * POOR_EXTRAPOLATION:g}%)"
            )
    if study.curves is None:
        lines.append("- no curves.csv: learning curves and self-similarity not measured")
    lines += [f"- left out of the curve collapse: {why}" for why in sim["skipped"]]
    return "\n".join(lines) if lines else "None."


def render(study: Study, sim: dict, ind: dict[str, dict]) -> str:
    name = (study.config or {}).get("study", "")
    parts = [
        f"# Scaling-law report{': ' + name if name else ''}",
        "Every number below is read from runs.csv and fits.json (or computed from them by "
        "ladder.fit); intervals are 95% bootstrap percentiles.",
        "## Configuration in brief",
        section_config(study),
        "## Rungs",
        section_runs(study),
        "## Fitted laws",
        section_laws(study),
        "## Compute-optimal allocation",
        section_allocation(study),
        "## Extrapolation check",
        section_extrapolation(study),
        "## Scale properties",
        section_properties(study, sim, ind),
        "## Warnings",
        section_warnings(study, sim),
        "## Plots",
        "\n\n".join(f"![{sub}]({stem}.png)" for stem, (_, sub) in PLOTS.items()),
    ]
    return "\n\n".join(parts) + "\n"


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def make_report(study: Study, out_dir: str | os.PathLike) -> list[Path]:
    """Draw every plot and write report.md; returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "report.md"
    if md.exists():
        md.unlink()  # a report.md beside new plots must be the new one
    sim, ind = collapse(study), independence(study)
    figures = {
        "loss_vs_params": lambda: plot_loss_vs(study, "params"),
        "loss_vs_tokens": lambda: plot_loss_vs(study, "tokens"),
        "loss_vs_compute": lambda: plot_loss_vs(study, "compute"),
        "compute_frontier": lambda: plot_compute_frontier(study),
        "isoflop": lambda: plot_isoflop(study),
        "learning_curves": lambda: plot_learning_curves(study),
        "scale_sensitivity": lambda: plot_scale_sensitivity(study),
        "self_similarity": lambda: plot_self_similarity(study, sim),
        "scale_independence": lambda: plot_scale_independence(study, ind),
        "residuals": lambda: plot_residuals(study),
    }
    written = []
    for stem in PLOTS:
        written += _save(figures[stem](), out, stem)
    _write_text(md, render(study, sim, ind))
    return [*written, md]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ladder report", description=__doc__.splitlines()[0])
    ap.add_argument("runs", metavar="RUNS.csv")
    ap.add_argument("fits", metavar="FITS.json")
    ap.add_argument("--out", required=True, help="folder for the plots and report.md")
    ap.add_argument("--curves", help="curves.csv (learning curves); optional")
    ap.add_argument("--meta", help="tokens/meta.json (source entropy); optional")
    ap.add_argument("--config", help="the resolved study.yaml; optional")
    ap.add_argument(
        "--extrapolate-to",
        metavar="Q=V",
        help="params=1e9, tokens=2e10 or flops=1e21 (default: config report.extrapolate_to)",
    )
    args = ap.parse_args(argv)
    try:
        study = load(args.runs, args.fits, args.curves, args.meta, args.config, args.extrapolate_to)
    except (OSError, ValueError, KeyError) as e:
        print(f"ladder report: error: {e}", file=sys.stderr)
        return 2
    files = make_report(study, args.out)
    print(f"ladder report: wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
