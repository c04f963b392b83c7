"""The fits.json object: `fit_table` fits the laws asked for ("all": every law, with a
{"skipped": reason} entry for each one the runs cannot support) and `to_json`/`write_fits`
serialise it (strict JSON: NaN and inf become null).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd

from ladder.artifacts import write_text
from ladder.fit.allocation import compute_model
from ladder.fit.entry import fit_law
from ladder.fit.isoflop import METHODS as ISOFLOP_METHODS
from ladder.fit.laws import LAWS, Law, make_law, support, unidentified
from ladder.fit.runs import VARIABLES, Columns, FitError, Runs, load_runs


def fit_table(
    df: pd.DataFrame,
    laws: str = "all",
    x: str | None = None,
    offset: bool = True,
    columns: Columns | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    budget_tol: float = 0.25,
    isoflop_method: str = "akima",
    loss_noise: float | None = None,
) -> dict:
    """Fit `laws` ("all" or one of LAWS) to a table of runs; returns the fits.json object.

    With "all", a law the runs cannot support is recorded as {"skipped": reason}; asked for
    alone, it raises FitError. x and offset choose the power law's variable and form and apply
    to laws="power" only. isoflop_method ("akima" or "parabola") and loss_noise (nats; None:
    estimated from the runs) apply to isoflop.
    """
    columns = columns or Columns()
    todo = _laws_to_fit(laws, x, offset, bootstrap, budget_tol)
    if isoflop_method not in ISOFLOP_METHODS:
        raise FitError(
            f"unknown --isoflop-method '{isoflop_method}'; choose from {', '.join(ISOFLOP_METHODS)}"
        )
    if loss_noise is not None and not loss_noise > 0:
        raise FitError(f"--loss-noise must be > 0, got {loss_noise}")
    runs = load_runs(df, columns, set() if laws == "all" else set(todo[0].needs))
    options = {
        "bootstrap": bootstrap,
        "seed": seed,
        "budget_tol": budget_tol,
        "isoflop_method": isoflop_method,
        "loss_noise": loss_noise,
    }
    result = {law.key: _fit_or_skip(law, runs, laws == "all", options) for law in todo}
    meta = {
        "n_runs": len(runs),
        "columns": runs.columns | {"loss": columns.loss},
        "compute": _compute_note(runs),
        "design": design_note(runs),
        "data_warnings": runs.warnings,
    } | options
    return {"laws": result, "meta": meta}


def _compute_note(runs: Runs) -> dict | None:
    """How the table counts FLOPs: every allocation in fits.json is in this C."""
    if runs.C is None:
        return None
    if runs.N is None or runs.D is None:
        return {"column": runs.columns.get("compute")}
    return compute_model(runs).to_json()


def design_note(runs: Runs) -> dict:
    """Whether the design identifies N's and D's effects, and if not, one sentence on why and
    on what design would (report.md prints it)."""
    reason = unidentified(runs) if runs.N is not None and runs.D is not None else None
    if reason is None:
        return {"identifiable": True}
    return {
        "identifiable": False,
        "note": reason[0].upper()
        + reason[1:]
        + "; a design with at least two token budgets per model size would identify them "
        "(`ladder.tokens_per_param: [..]` with 2 or more values, `ladder.design: isoflop`, or "
        "`ladder.design: wsd`).",
    }


def _laws_to_fit(
    laws: str, x: str | None, offset: bool, bootstrap: int, budget_tol: float
) -> list[Law]:
    """The laws fit_table was asked for, after checking the arguments."""
    if laws != "all" and laws not in LAWS:
        raise FitError(f"unknown law '{laws}'; choose from {', '.join(LAWS)} or all")
    if x is not None and x not in VARIABLES:
        raise FitError(f"unknown x '{x}'; choose from {', '.join(VARIABLES)}")
    if laws != "power" and (x is not None or not offset):
        raise FitError("--x and --no-offset apply to --law power only")
    if bootstrap < 0:
        raise FitError(f"--bootstrap must be >= 0, got {bootstrap}")
    if not budget_tol > 0:
        raise FitError(f"--budget-tol must be > 0, got {budget_tol}")
    if laws != "all":
        return [make_law(laws, x or "params", offset)]
    power = [make_law("power", v, off) for v in VARIABLES for off in (True, False)]
    return power + [make_law(name) for name in LAWS[1:]]


def _fit_or_skip(law: Law, runs: Runs, skip: bool, options: dict) -> dict:
    """The law's entry. When the runs cannot support it: {"skipped": reason} if `skip` (--law
    all), else the FitError."""
    try:
        reason = support(law, runs, options["budget_tol"])
        if reason is not None:
            raise FitError(f"cannot fit {law.key}: {reason}")
        try:
            return fit_law(law, runs, **options)
        except (ArithmeticError, np.linalg.LinAlgError) as e:
            # a numerical failure on odd data is reported, not a crash of the whole table
            raise FitError(
                f"cannot fit {law.key}: numerical failure ({type(e).__name__}: {e})"
            ) from e
    except FitError as e:
        if not skip:
            raise
        return {"skipped": str(e).removeprefix(f"cannot fit {law.key}: ")}


def _clean(obj):
    """JSON-safe: numpy scalars to Python, NaN/inf to null (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def to_json(result: dict) -> str:
    """fits.json's text (one-space indent, final newline)."""
    return json.dumps(_clean(result), indent=1, allow_nan=False) + "\n"


def write_fits(path: str | os.PathLike, result: dict) -> None:
    """Write fits.json atomically (temp file + rename: a killed job never leaves half a file)."""
    write_text(path, to_json(result))
