"""`ladder fit RUNS.csv --law all --bootstrap 1000 --seed 0 --out fits.json`: read the table,
fit_table, write fits.json (or print it) and a one-line summary per law.

Every problem with the input is a FitError, printed on one line with exit status 2.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from ladder.errors import failed
from ladder.fit.isoflop import METHODS as ISOFLOP_METHODS
from ladder.fit.laws import LAWS
from ladder.fit.runs import VARIABLES, Columns, FitError
from ladder.fit.table import fit_table, to_json, write_fits


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
    _estimator_options(ap)
    return ap


def _estimator_options(ap: argparse.ArgumentParser) -> None:
    """How the laws are fitted and their intervals drawn, and where fits.json goes."""
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
        "--isoflop-method",
        choices=list(ISOFLOP_METHODS),
        default=ISOFLOP_METHODS[0],
        help="isoflop: each budget's minimum from an Akima interpolant of log loss in log N "
        "(Porian et al. 2024; default) or a parabola (bracketed budgets only)",
    )
    ap.add_argument(
        "--loss-noise",
        type=float,
        default=None,
        metavar="NATS",
        help="isoflop: the runs' loss noise (sd, nats) for the optima's spread; default: "
        "estimated from the runs",
    )
    ap.add_argument(
        "--out",
        metavar="FITS.json",
        default=None,
        help="fits.json to write (default: JSON on stdout)",
    )


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
            args.isoflop_method,
            args.loss_noise,
        )
    except FitError as e:
        return failed("ladder fit", e)
    for text in result["meta"]["data_warnings"]:
        print(f"ladder fit: warning: {text}", file=sys.stderr)
    for key, entry in result["laws"].items():  # each law's own, besides the data's above
        for text in entry.get("warnings") or []:
            if text not in result["meta"]["data_warnings"]:
                print(f"ladder fit: warning: {key}: {text}", file=sys.stderr)
    if args.out is None:
        print(to_json(result), end="")
    else:
        write_fits(args.out, result)
        print(_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
