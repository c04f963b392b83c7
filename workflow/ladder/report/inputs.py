"""What the report reads, loaded into one `ReportInputs`: runs.csv (with a boolean `ok` per rung),
fits.json, and the optional curves.csv, tokens/meta.json (source entropy) and resolved study
config; `parse_target` reads the extrapolation target (CLI or config report.extrapolate_to).
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
from ladder.fit.curve_table import CURVE_LAW_NAMES

# axis variable -> (fit.py symbol, label with unit, target names accepted on the CLI)
AXES = {
    "params": ("N", "parameters N", ("params", "parameters", "n")),
    "tokens": ("D", "training tokens D", ("tokens", "d")),
    "compute": ("C", "training compute C (FLOPs)", ("flops", "compute", "c")),
}


@dataclass
class ReportInputs:
    """Everything the report reads; `runs` gains a boolean `ok` (not diverged, finite loss)."""

    runs: pd.DataFrame
    laws: dict[str, dict]
    fit_meta: dict = field(default_factory=dict)
    curves: pd.DataFrame | None = None
    entropy_nats: float | None = None
    config: dict | None = None
    target: tuple[str, float] | None = None  # (axis variable, value), e.g. ("params", 1e9)
    curve_laws: dict[str, dict] = field(default_factory=dict)  # annealing, multipower, approach1
    task_laws: dict[str, dict] = field(default_factory=dict)  # "task", "task:<name>" (fit.task)
    tasks: pd.DataFrame | None = None  # tasks.csv: every checkpoint's task scores

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

    def _allocator(self, key: str) -> dict | None:
        """A loss law's entry, or a curve law's (Approach 1 allocates from the curves)."""
        entry = self.laws.get(key, (self.curve_laws or {}).get(key))
        return entry if isinstance(entry, dict) else None

    def allocation(self, key: str) -> dict | None:
        """A fitted entry that estimates a compute-optimal allocation, else None."""
        entry = self._allocator(key)
        if entry is None or "skipped" in entry:
            return None
        alloc = entry.get("optimal_allocation") or {}
        return entry if "k_N" in alloc else None

    def why_no_allocation(self, key: str) -> str:
        """Why a law gives no allocation: it was not fitted, or ladder.fit said why not (a
        frontier on a fixed-token ladder describes the design, not a result)."""
        entry = self._allocator(key)
        if entry is None:
            fitted_on = (
                " (fitted on curves.csv: ladder fit --curves)" if key in CURVE_LAW_NAMES else ""
            )
            return f"{key} is not in fits.json{fitted_on}"
        if "skipped" in entry:
            return f"{key} skipped: {entry.get('skipped', '?')}"
        warnings = entry.get("warnings") or []
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
    tasks_csv: str | None = None,
) -> ReportInputs:
    """Read the tables; optional inputs that are absent (or empty) are simply not drawn."""
    try:
        runs = pd.read_csv(runs_csv)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read the runs table {runs_csv}: {e}") from None
    if "rung" not in runs.columns:
        runs.insert(0, "rung", [f"row {i + 1}" for i in range(len(runs))])
    runs["rung"] = runs["rung"].astype(str)
    try:
        fits = json.loads(Path(fits_json).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {fits_json} (from `ladder fit`): {e}") from None
    if not isinstance(fits, dict):
        raise ValueError(f"{fits_json} is not a fits.json (from `ladder fit`): not a JSON object")
    laws = fits.get("laws", {})
    # the laws of whole curves have their own section (ladder.report.curve_laws)
    curve_laws = {k: laws.pop(k) for k in CURVE_LAW_NAMES if k in laws}
    # so do the task laws (ladder.fit.task): accuracy, not loss
    task_laws = {k: laws.pop(k) for k in list(laws) if k == "task" or k.startswith("task:")}
    study = ReportInputs(
        runs, laws, fits.get("meta", {}), curve_laws=curve_laws, task_laws=task_laws
    )
    cols = study.fit_columns()
    if cols.compute not in runs.columns and {cols.params, cols.tokens} <= set(runs.columns):
        # fit.py's own fallback (6·N·D) when the table has no FLOP column, as a column, so
        # every panel and refit reads compute the way the fits did
        runs[cols.compute] = (
            6.0
            * pd.to_numeric(runs[cols.params], errors="coerce")
            * (pd.to_numeric(runs[cols.tokens], errors="coerce"))
        )
    loss_col = cols.loss
    if loss_col not in runs.columns:
        raise ValueError(f"{runs_csv} has no loss column '{loss_col}'")
    # the same runs ladder.fit excludes: diverged (0/1, bool or text) or without a finite loss
    no_column = np.zeros(len(runs), dtype=bool)
    diverged = truthy(runs["diverged"]) if "diverged" in runs.columns else no_column
    runs["ok"] = ~diverged & np.isfinite(study.values_loss())
    if curves_csv and os.path.exists(curves_csv) and os.path.getsize(curves_csv) > 0:
        study.curves = pd.read_csv(curves_csv)
        study.curves["rung"] = study.curves["rung"].astype(str)
    if tasks_csv and os.path.exists(tasks_csv) and os.path.getsize(tasks_csv) > 0:
        study.tasks = pd.read_csv(tasks_csv)
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
