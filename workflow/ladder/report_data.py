"""What the report reads (runs.csv, fits.json, curves, config) and the numbers it takes from
ladder.fit: curves and 95% bands from `predict` on the bootstrap samples, compute-optimal N and D
from `optimal_allocation`. No formula of a law is written here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ladder import fit
from ladder.fit import truthy

# axis variable -> (fit.py symbol, label with unit, target names accepted on the CLI)
AXES = {
    "params": ("N", "parameters N", ("params", "parameters", "n")),
    "tokens": ("D", "training tokens D", ("tokens", "d")),
    "compute": ("C", "training compute C (FLOPs)", ("flops", "compute", "c")),
}
BAND = (2.5, 97.5)  # percentiles of the bootstrap samples drawn as a 95% band
# the laws that estimate a compute-optimal allocation: key, plot colour, name in legends
ALLOCATORS = (
    ("chinchilla", "C0", "Chinchilla (approach 3)"),
    ("isoflop", "C2", "IsoFLOP"),
    ("frontier", "C3", "frontier runs"),
)


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

    def finished_values(self, var: str) -> np.ndarray:
        """A variable's finite, positive values over the finished (not diverged) rungs."""
        x = self.values(var)[self.runs["ok"].to_numpy()]
        return x[np.isfinite(x) & (x > 0)]

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

    def allocation(self, key: str) -> dict | None:
        """A fitted entry that estimates a compute-optimal allocation, else None."""
        entry = self.law(key)
        alloc = (entry or {}).get("optimal_allocation") or {}
        return entry if "k_N" in alloc else None

    def why_no_allocation(self, key: str) -> str:
        """Why a law gives no allocation: it was not fitted, or ladder.fit said why not (a
        frontier on a fixed-token ladder describes the design, not a result)."""
        if self.law(key) is None:
            return self.why_missing(key)
        warnings = self.laws[key].get("warnings") or []
        said = [w for w in warnings if w.startswith("no optimal allocation")]
        return f"{key}: " + ("; ".join(said) if said else "no allocation")


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
    # the same runs ladder.fit excludes: diverged (0/1, bool or text) or without a finite loss
    no_column = np.zeros(len(runs), dtype=bool)
    diverged = truthy(runs["diverged"]) if "diverged" in runs.columns else no_column
    runs["ok"] = ~diverged & np.isfinite(study.values_loss())
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


def param_text(entry: dict, names=None) -> str:
    parts = []
    for name, value in entry["params"].items():
        if names is not None and name not in names:
            continue
        ci = (entry.get("ci95") or {}).get(name)
        parts.append(f"{name}={value:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""))
    return ", ".join(parts)


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


# --------------------------------------------------------------------------------------------
# learning curves


def smooth(y: np.ndarray, frac: float = 0.02) -> np.ndarray:
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
    c = c.assign(smooth=smooth(c["loss_nats"].to_numpy(dtype=float)))
    return c
