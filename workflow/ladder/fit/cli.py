"""`ladder fit RUNS.csv --law all --bootstrap 1000 --seed 0 --out fits.json`: read the table,
fit_table, write fits.json (or print it) and a one-line summary per law.

`ladder fit CURVES.csv --law annealing|multipower|annealing_sized|approach1` fits a law of
whole learning curves instead (ladder.fit.curve_table); `--law all --curves CURVES.csv` adds
them to the runs' laws in one fits.json.

Every problem with the input is a FitError, printed on one line with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd

from ladder.errors import failed
from ladder.fit.annealing import LAMBDA
from ladder.fit.curve_entry import MAX_POINTS, Options
from ladder.fit.curve_table import CURVE_LAW_NAMES, IN_ALL, fit_curves, write_predictions
from ladder.fit.curves import CurveColumns
from ladder.fit.isoflop import METHODS as ISOFLOP_METHODS
from ladder.fit.laws import LAWS
from ladder.fit.runs import VARIABLES, Columns, FitError, truthy
from ladder.fit.table import fit_table, to_json, write_fits
from ladder.fit.task import TaskColumns, check_step2, fit_task, load_points, parse_target


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
        if "groups" in entry:  # a curve law: one fit per model size
            lines += _curve_summary(key, entry)
            continue
        if entry.get("law") == "task":  # the task law: its chained predictions
            lines += _task_summary(key, entry)
        parts = []
        for name, value in entry["params"].items():
            ci = entry["ci95"].get(name)
            parts.append(f"{name}={value:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""))
        held = (entry.get("holdout_size") or {}).get("mare_mean")  # the law across sizes
        extra = f" (held-out largest size: MARE {held:.2%})" if held is not None else ""
        lines.append(f"{key}: " + ", ".join(parts) + extra)
    return "\n".join(lines)


def _task_summary(key: str, entry: dict) -> list[str]:
    lines = []
    for p in entry.get("predictions", []):
        ci = p.get("acc_ci95")
        band = f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""
        lines.append(
            f"{key}: N={p['N']:.3g}, D={p['D']:.3g}: task loss {p['task_loss']:.4g}, "
            f"acc {p['acc']:.3g}{band}"
        )
    return lines


def _curve_summary(key: str, entry: dict) -> list[str]:
    lines = []
    for label, group in entry["groups"].items():
        if "skipped" in group:
            lines.append(f"{key} {label}: skipped ({group['skipped']})")
            continue
        parts = [f"{name}={value:.4g}" for name, value in group["params"].items()]
        held = group["holdout"].get("mare_mean")
        extra = f", held-out MARE {held:.2%}" if held is not None else ""
        lines.append(f"{key} {label}: {', '.join(parts)} (MARE {group['mare_mean']:.2%}{extra})")
    return lines


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="ladder fit", description="Fit scaling laws to a table of runs (runs.csv or any CSV)."
    )
    ap.add_argument("runs", metavar="RUNS.csv")
    ap.add_argument(
        "--law",
        required=True,
        choices=[*LAWS, *CURVE_LAW_NAMES, "task", "all"],
        help="law to fit; 'all' fits every law the data supports; annealing, multipower, "
        "annealing_sized and approach1 read a curves table (curves.csv); task fits a "
        "task's accuracy in two steps (Bhagia et al. 2024) to runs.csv or tasks.csv",
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
    _curve_options(ap)
    _task_options(ap)
    return ap


def _task_options(ap: argparse.ArgumentParser) -> None:
    """--law task (ladder.fit.task): which columns hold the task loss and accuracy."""
    d = TaskColumns()
    ap.add_argument(
        "--task-loss-col", metavar="COL", default=d.task_loss, help="task: (default bpb)"
    )
    ap.add_argument("--acc-col", metavar="COL", default=d.acc, help="task: (default acc)")
    ap.add_argument("--task-col", metavar="COL", default=d.task, help="task: (default task)")
    ap.add_argument("--task", metavar="NAME", help="task: the task's rows of a long table")
    ap.add_argument(
        "--chance",
        type=float,
        default=None,
        metavar="P",
        help="task: chance accuracy, step 2's floor (default: the table's chance column)",
    )
    ap.add_argument(
        "--tasks",
        metavar="TASKS.csv",
        help="with --law all: also fit every task of this long table: laws['task:<name>'] "
        "(and laws.task, the first task); a task the data cannot support is skipped with why",
    )
    ap.add_argument(
        "--predict",
        action="append",
        default=[],
        metavar="N,D",
        help="task: predict task loss and accuracy of N parameters on D tokens; repeatable",
    )
    ap.add_argument(
        "--step2",
        metavar="FORM",
        default="sigmoid",
        help="task: step 2's form, accuracy against task loss: sigmoid (OLMo, Bhagia et al. "
        "2024; default) or exp, top-1 error eps - k exp(-gamma L) (Gadre et al. 2024)",
    )


def _curve_options(ap: argparse.ArgumentParser) -> None:
    """The curve laws' columns and options (ladder.fit.curve_table)."""
    d = CurveColumns()
    for flag, default in (("run", d.run), ("step", d.step), ("lr", d.lr), ("size", d.size)):
        ap.add_argument(
            f"--{flag}-col", metavar="COL", default=default, help=f"curves: (default {default})"
        )
    ap.add_argument(
        "--curves",
        metavar="CURVES.csv",
        help="with --law all: also fit annealing, annealing_sized and approach1 to these curves",
    )
    ap.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        default=LAMBDA,
        help=f"annealing momentum (Tissue et al. 2024; default {LAMBDA})",
    )
    ap.add_argument(
        "--max-points",
        type=int,
        default=MAX_POINTS,
        help=f"curve points per run a fit uses, thinned evenly (default {MAX_POINTS})",
    )
    ap.add_argument(
        "--predict-schedule",
        action="append",
        default=[],
        metavar="SPEC",
        help="NAME[:key=value,...], NAME one of cosine, constant, wsd, keys steps, lr, "
        "warmup_frac, min_lr_frac, decay_frac (default: the size's longest run's); repeatable",
    )
    ap.add_argument(
        "--predict-size",
        action="append",
        default=[],
        type=float,
        metavar="N",
        help="annealing_sized: predict the curve of a model of N parameters (--size-col's "
        "count), under each --predict-schedule (default: the largest size's longest run's "
        "schedule); repeatable",
    )
    ap.add_argument(
        "--predict-out",
        metavar="CSV",
        help="where the predicted curves go (default: predictions.csv beside --out)",
    )


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


def _curve_laws(args, skip: bool) -> tuple[dict, list[dict]]:
    """The curve laws asked for: one named law, or with --law all and --curves all three."""
    laws = list(IN_ALL) if skip else [args.law]
    cols = CurveColumns(args.run_col, args.step_col, args.lr_col, args.loss_col, args.size_col)
    opts = Options(
        args.bootstrap,
        args.seed,
        args.lam,
        args.max_points,
        tuple(args.predict_schedule),
        tuple(args.predict_size),
    )
    path = args.curves if skip else args.runs
    return fit_curves(_read_csv(path), laws, cols, opts, skip)


def _curves_only(args) -> dict:
    entries, rows = _curve_laws(args, skip=False)
    return {"laws": entries, "meta": {"curves": args.runs}, "_predicted": rows}


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    cols = Columns(args.params_col, args.tokens_col, args.compute_col, args.loss_col)
    try:
        check_step2(args.step2)
        if args.law in CURVE_LAW_NAMES:
            result = _curves_only(args)
        elif args.law == "task":
            result = _task(args)
        else:
            result = _runs_table(args, cols)
        rows = result.pop("_predicted", [])
    except FitError as e:
        return failed("ladder fit", e)
    _warn(result)
    if args.out is None:
        print(to_json(result), end="")
    else:
        write_fits(args.out, result)
        print(_summary(result))
    if args.predict_schedule or args.predict_size:
        beside = os.path.dirname(args.out or "") or "."
        path = args.predict_out or os.path.join(beside, "predictions.csv")
        write_predictions(path, rows)
        print(f"predicted curves: {path}", file=sys.stderr)
    return 0


def _task_columns(args, df) -> TaskColumns:
    # runs.csv names a run `rung`, tasks.csv `run`: the one the table has
    run = args.run_col if args.run_col in df.columns else TaskColumns.run
    # tasks.csv's N column is `params` (the same count as runs.csv's --params-col)
    params = args.params_col if args.params_col in df.columns else "params"
    return TaskColumns(
        params, args.tokens_col, args.task_loss_col, args.acc_col, run, args.task_col
    )


def _every_task(args) -> dict:
    """With --law all --tasks: one entry per task, {"skipped": reason} where it cannot be
    fitted, so a study with a small ladder still gets its fits.json."""
    df = _read_csv(args.tasks)
    cols = _task_columns(args, df)
    # tasks.csv has no `diverged` column: runs.csv says which runs diverged
    runs = _read_csv(args.runs)
    if "diverged" not in df.columns and {"diverged", args.run_col} <= set(runs.columns):
        gone = set(runs.loc[truthy(runs["diverged"]), args.run_col].astype(str))
        if cols.run in df.columns:
            df = df.assign(diverged=df[cols.run].astype(str).isin(gone))
    targets = [parse_target(t) for t in args.predict]
    if cols.task not in df.columns:
        raise FitError(f"{args.tasks}: no task column '{cols.task}' (set --task-col)")
    entries: dict = {}
    for name in sorted(df[cols.task].astype(str).unique()):
        try:
            points = load_points(df, cols, name, args.chance)
            entry = fit_task(
                points, targets, args.bootstrap, args.seed, _task_column_names(cols), args.step2
            )
            entry["task"] = name
        except FitError as e:
            entry = {"skipped": str(e), "task": name}
        entries.setdefault("task", entry)
        entries[f"task:{name}"] = entry
    return entries


def _task_column_names(cols: TaskColumns) -> dict:
    return {"params": cols.params, "tokens": cols.tokens, "task_loss": cols.task_loss} | {
        "acc": cols.acc
    }


def _task(args) -> dict:
    """fits.json with laws.task from a runs or tasks table (ladder.fit.task)."""
    df = _read_csv(args.runs)
    cols = _task_columns(args, df)
    targets = [parse_target(t) for t in args.predict]
    if args.bootstrap < 0:
        raise FitError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    points = load_points(df, cols, args.task, args.chance)
    try:
        entry = fit_task(
            points, targets, args.bootstrap, args.seed, _task_column_names(cols), args.step2
        )
    except FitError as e:
        raise FitError(f"cannot fit task: {e}") from None
    if args.task:
        entry["task"] = args.task
    meta = {"runs": args.runs, "bootstrap": args.bootstrap, "seed": args.seed}
    return {"laws": {"task": entry}, "meta": meta | {"data_warnings": points.warnings}}


def _runs_table(args, cols: Columns) -> dict:
    """fits.json from a runs table (and, with --law all --curves, the curve laws)."""
    if args.tasks and args.law != "all":
        raise FitError("--tasks goes with --law all (--law task reads its table itself)")
    if args.curves and args.law != "all":
        raise FitError("--curves goes with --law all (a curve law reads CURVES.csv itself)")
    if args.predict_size and not args.curves:
        raise FitError(
            "--predict-size goes with --law annealing_sized on CURVES.csv (or --law all "
            "--curves CURVES.csv): it predicts a learning curve"
        )
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
    if args.tasks:
        result["laws"].update(_every_task(args))
        result["meta"]["tasks"] = args.tasks
    if args.curves:
        entries, rows = _curve_laws(args, skip=True)
        result["laws"].update(entries)
        result["meta"]["curves"] = args.curves
        result["_predicted"] = rows
    return result


def _warn(result: dict) -> None:
    for text in result["meta"].get("data_warnings", []):
        print(f"ladder fit: warning: {text}", file=sys.stderr)
    for key, entry in result["laws"].items():  # each law's own, besides the data's above
        for text in entry.get("warnings") or []:
            if text not in result["meta"].get("data_warnings", []):
                print(f"ladder fit: warning: {key}: {text}", file=sys.stderr)
        for label, group in (entry.get("groups") or {}).items():  # a curve law's, per size
            for text in group.get("warnings") or []:
                print(f"ladder fit: warning: {key} {label}: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
