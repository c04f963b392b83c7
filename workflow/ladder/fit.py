"""Scaling-law fits: laws, estimators, bootstrap intervals and extrapolation checks.

    ladder fit RUNS.csv --law all --bootstrap 1000 --seed 0 --out fits.json

Python API (report.py and the tests use these; docs/fitting.md has the details):

    fit_table(df, laws="all", x=None, offset=True, columns=None, bootstrap=1000, seed=0,
              budget_tol=0.25) -> dict
        The object written to fits.json: {"laws": {KEY: entry}, "meta": {...}}.
    predict(law, params=None, N=None, D=None, C=None) -> np.ndarray
        Loss in nats. `law` is a fits.json entry (dict) or a key ("power_params",
        "power_compute_no_offset", "chinchilla", "kaplan", "frontier"); `params` defaults to
        the entry's own and may be one of its bootstrap "samples" (to draw bands).
    optimal_allocation(entry, C, params=None) -> (N_opt, D_opt)
        Compute-optimal model size and tokens for chinchilla, isoflop and frontier entries.
    FitError(ValueError)
        Every problem with the input; `main` prints it on one line and returns 2.

Keys of fits.json["laws"]: "power_{params,tokens,compute}" and the same with "_no_offset",
"chinchilla", "kaplan", "isoflop", "frontier". An entry is {"skipped": reason} when
`--law all` finds that the data cannot support the law, else it holds "law", "x", "formula",
"params", "ci95", "n_points", "objective", "objective_kind", "residuals_log", "rows",
"extrapolation", "optimal_allocation", "warnings", "bootstrap" and "samples".

All fits work on log loss. The work is split by job; every name above (and the estimators) can
be imported from here:

    fit_runs     the table: Columns, Runs, load_runs, budgets, FitError
    fit_solvers  a batched Levenberg-Marquardt (K problems, one per bootstrap resample, at once)
    fit_laws     the loss laws (power, chinchilla, kaplan): models, estimators, predict
    fit_optimal  compute-optimal allocation: isoflop, frontier, chinchilla's closed form
    fit_entry    one law -> one fits.json entry: support, bootstrap, extrapolation check
    fit          this module: fit_table, write_json and the command line
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np
import pandas as pd

from ladder.fit_entry import N_SAMPLES, Law, expanded_tail, fit_law, make_law, support
from ladder.fit_laws import (
    CHINCHILLA_PRUNE,
    KAPLAN_ALPHA_BOUNDS,
    LAWS,
    POWER_ALPHA_MAX,
    chinchilla_grid,
    chinchilla_objective,
    fit_chinchilla,
    fit_kaplan,
    fit_power,
    predict,
)
from ladder.fit_optimal import (
    ISOFLOP_MIN_SIZES,
    ISOFLOP_WINDOW_DEX,
    chinchilla_allocation,
    fit_isoflop,
    frontier_mask,
    isoflop_minimum,
    isoflop_parabola,
    optimal_allocation,
)
from ladder.fit_runs import (
    DISTINCT_RTOL,
    VARIABLES,
    Columns,
    FitError,
    Runs,
    budgets,
    distinct,
    load_runs,
)
from ladder.fit_solvers import HUBER_DELTA, minimise

__all__ = [
    "CHINCHILLA_PRUNE",
    "DISTINCT_RTOL",
    "HUBER_DELTA",
    "ISOFLOP_MIN_SIZES",
    "ISOFLOP_WINDOW_DEX",
    "KAPLAN_ALPHA_BOUNDS",
    "LAWS",
    "N_SAMPLES",
    "POWER_ALPHA_MAX",
    "VARIABLES",
    "Columns",
    "FitError",
    "Law",
    "Runs",
    "budgets",
    "chinchilla_allocation",
    "chinchilla_grid",
    "chinchilla_objective",
    "distinct",
    "expanded_tail",
    "fit_chinchilla",
    "fit_isoflop",
    "fit_kaplan",
    "fit_law",
    "fit_power",
    "fit_table",
    "frontier_mask",
    "isoflop_minimum",
    "isoflop_parabola",
    "load_runs",
    "main",
    "make_law",
    "minimise",
    "optimal_allocation",
    "predict",
    "support",
    "write_json",
]


def fit_table(
    df: pd.DataFrame,
    laws: str = "all",
    x: str | None = None,
    offset: bool = True,
    columns: Columns | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    budget_tol: float = 0.25,
) -> dict:
    """Fit `laws` ("all" or one of LAWS) to a table of runs; returns the fits.json object.

    With "all", a law the runs cannot support is recorded as {"skipped": reason}; asked for
    alone, it raises FitError. x and offset choose the power law's variable and form and apply
    to laws="power" only.
    """
    columns = columns or Columns()
    todo = _laws_to_fit(laws, x, offset, bootstrap, budget_tol)
    runs = load_runs(df, columns, set() if laws == "all" else set(todo[0].needs))
    result = {
        law.key: _fit_or_skip(law, runs, laws == "all", bootstrap, seed, budget_tol) for law in todo
    }
    meta = {
        "n_runs": len(runs),
        "columns": runs.columns | {"loss": columns.loss},
        "bootstrap": bootstrap,
        "seed": seed,
        "budget_tol": budget_tol,
        "data_warnings": runs.warnings,
    }
    return {"laws": result, "meta": meta}


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


def _fit_or_skip(
    law: Law, runs: Runs, skip: bool, bootstrap: int, seed: int, budget_tol: float
) -> dict:
    """The law's entry. When the runs cannot support it: {"skipped": reason} if `skip` (--law
    all), else the FitError."""
    try:
        reason = support(law, runs, budget_tol)
        if reason is not None:
            raise FitError(f"cannot fit {law.key}: {reason}")
        try:
            return fit_law(law, runs, bootstrap, seed, budget_tol)
        except (ArithmeticError, np.linalg.LinAlgError) as e:
            # a numerical failure on odd data is reported, not a crash of the whole table
            raise FitError(
                f"cannot fit {law.key}: numerical failure ({type(e).__name__}: {e})"
            ) from e
    except FitError as e:
        if not skip:
            raise
        return {"skipped": str(e).removeprefix(f"cannot fit {law.key}: ")}


# --------------------------------------------------------------------------------------------
# command line


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


def write_json(obj: dict, path: str) -> None:
    """Write atomically: a temp file in the same directory, then os.replace, so a killed job
    never leaves a half-written fits.json for the next rule to read."""
    text = json.dumps(_clean(obj), indent=1, allow_nan=False) + "\n"
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fits.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_csv(path: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise FitError(f"no such file: {path}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        raise FitError(f"cannot read {path}: {str(e).splitlines()[0]}") from None


def _summary(result: dict) -> str:
    lines = []
    for key, entry in result["laws"].items():
        if "skipped" in entry:
            lines.append(f"{key}: skipped ({entry['skipped']})")
            continue
        parts = []
        for name, value in entry["params"].items():
            ci = entry["ci95"].get(name)
            parts.append(f"{name}={value:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""))
        lines.append(f"{key}: " + ", ".join(parts))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="ladder fit", description="Fit scaling laws to a table of runs (runs.csv or any CSV)."
    )
    ap.add_argument("runs", metavar="RUNS.csv")
    ap.add_argument(
        "--law",
        required=True,
        choices=[*LAWS, "all"],
        help="law to fit; 'all' fits every law the data supports",
    )
    ap.add_argument(
        "--x",
        choices=list(VARIABLES),
        default=None,
        help="variable of the power law (default params)",
    )
    ap.add_argument(
        "--no-offset",
        action="store_true",
        help="power law without the irreducible loss: L = k x^-alpha",
    )
    d = Columns()
    for flag, symbol, default in (
        ("params", "N", d.params),
        ("tokens", "D", d.tokens),
        ("compute", "C", d.compute),
        ("loss", "loss", d.loss),
    ):
        extra = "; 6*N*D when absent" if flag == "compute" else ""
        ap.add_argument(
            f"--{flag}-col",
            metavar="COL",
            default=default,
            help=f"{symbol} column (default {default}{extra})",
        )
    ap.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for the 95%% intervals; 0 skips them",
    )
    ap.add_argument("--seed", type=int, default=0, metavar="S", help="bootstrap seed")
    ap.add_argument(
        "--budget-tol",
        type=float,
        default=0.25,
        metavar="TOL",
        help="runs within a factor 1+TOL in compute share a budget (isoflop; default 0.25)",
    )
    ap.add_argument(
        "--out",
        metavar="FITS.json",
        default=None,
        help="fits.json to write (default: JSON on stdout)",
    )
    return ap


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    cols = Columns(args.params_col, args.tokens_col, args.compute_col, args.loss_col)
    try:
        result = fit_table(
            _read_csv(args.runs),
            args.law,
            args.x,
            not args.no_offset,
            cols,
            args.bootstrap,
            args.seed,
            args.budget_tol,
        )
    except FitError as e:
        print(f"ladder fit: error: {e}", file=sys.stderr)
        return 2
    for text in result["meta"]["data_warnings"]:
        print(f"ladder fit: warning: {text}", file=sys.stderr)
    if args.out is None:
        print(json.dumps(_clean(result), indent=1, allow_nan=False))
    else:
        write_json(result, args.out)
        print(_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
