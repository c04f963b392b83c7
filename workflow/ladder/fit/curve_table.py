"""The curve laws' part of fits.json: `fit_curves` fits laws of whole learning curves
("annealing", "multipower", "annealing_sized": ladder.fit.curve_entry; "approach1":
ladder.fit.approach1) to a curves table, and `write_predictions` writes the curves of
schedules that were not run.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ladder.artifacts import write_text
from ladder.fit import approach1
from ladder.fit.curve_entry import CURVE_LAWS, SIZED_LAWS, Options, fit_curve_law, fit_sized_law
from ladder.fit.curves import CurveColumns, load_curves
from ladder.fit.runs import FitError

CURVE_LAW_NAMES = (*CURVE_LAWS, *SIZED_LAWS, "approach1")  # the --law choices that read curves.csv
# what `--law all --curves` adds (the study's fit rule): the multi-power law costs ~10x the
# annealing law's time for a similar error, so it is fitted only when asked for; the law
# across sizes adds 3.4-4.2 s of CPU on 15 runs (benchmarks/curve_fit_speed.py)
IN_ALL = ("annealing", "annealing_sized", "approach1")
BOOTSTRAP_MAX = 200  # resamples for a curve law: each refits thousands of points


def fit_curves(
    df: pd.DataFrame, laws: list[str], columns: CurveColumns, opts: Options, skip: bool = False
) -> tuple[dict, list[dict]]:
    """({law: entry}, predicted rows) for each law; with `skip`, a law the curves cannot
    support is {"skipped": reason} instead of an error."""
    if not 0 < opts.lam < 1:
        raise FitError(f"--lambda must be in (0, 1), got {opts.lam}")
    if opts.max_points < 8:
        raise FitError(f"--max-points must be >= 8, got {opts.max_points}")
    bad = [n for n in opts.predict_sizes if not (np.isfinite(n) and n > 0)]
    if bad:
        raise FitError(f"--predict-size must be a positive parameter count, got {bad[0]:g}")
    if opts.predict_sizes and not set(laws) & set(SIZED_LAWS):
        raise FitError(
            f"--predict-size goes with --law {' or '.join(SIZED_LAWS)} (or --law all --curves): "
            "only a law across sizes predicts a size that was not run"
        )
    opts.bootstrap = min(opts.bootstrap, BOOTSTRAP_MAX)
    curves = load_curves(df, columns)
    out, rows = {}, []
    for law in laws:
        try:
            try:
                if law == "approach1":
                    out[law] = approach1.fit_approach1(curves, opts.bootstrap, opts.seed)
                    continue
                fit_law = fit_sized_law if law in SIZED_LAWS else fit_curve_law
                out[law], these = fit_law(law, curves, opts)
            except (ArithmeticError, np.linalg.LinAlgError) as e:
                raise FitError(f"cannot fit {law}: numerical failure ({e})") from e
            rows += [{"law": law, **r} for r in these]
        except FitError as e:
            if not skip:
                raise
            out[law] = {"skipped": str(e).removeprefix(f"cannot fit {law}: ")}
    return out, rows


def write_predictions(path: str | os.PathLike, rows: list[dict]) -> None:
    """The predicted curves, one row per (law, size, spec, step), written atomically."""
    cols = ["law", "group", "spec", "step", "lr", "loss_nats", "loss_lo", "loss_hi"]
    write_text(path, pd.DataFrame(rows, columns=cols).to_csv(index=False))
